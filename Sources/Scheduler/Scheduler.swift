// The Scheduler module: the daemon loop (`cairn serve`), the pure schedule
// planner, the control socket, sd_notify, and the cluster lock.
import Core
