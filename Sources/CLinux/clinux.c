#define _GNU_SOURCE
#include "clinux.h"
#include <errno.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

int cairn_timerfd_create(void) {
    return timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC);
}

int cairn_timerfd_arm(int fd, int64_t sec, int64_t nsec) {
    struct itimerspec spec = {0};
    spec.it_value.tv_sec = (time_t)sec;
    spec.it_value.tv_nsec = (long)nsec;
    int flags = (sec == 0 && nsec == 0) ? 0 : (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET);
    return timerfd_settime(fd, flags, &spec, NULL);
}

int cairn_timerfd_wait(int fd) {
    for (;;) {
        uint64_t expirations = 0;
        ssize_t n = read(fd, &expirations, sizeof expirations);
        if (n == (ssize_t)sizeof expirations) return 1;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == ECANCELED) return 0;
        return -1;
    }
}

int cairn_peer_credentials(int fd, uid_t *uid, pid_t *pid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *uid = cred.uid;
    *pid = cred.pid;
    return 0;
}

uint64_t cairn_monotonic_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
