// Linux calls that Glibc's Swift module does not expose: timerfd (a wall-clock
// timer that notices clock jumps), SO_PEERCRED and malloc_trim, imported by
// Scheduler; CRC32C (SSE4.2 where the CPU has it), imported by ObjectStore;
// the Swift runtime's global-executor hook, imported by Core.
#ifndef CAIRN_CLINUX_H
#define CAIRN_CLINUX_H
#include <sys/types.h>
#include <stdint.h>
#include <stddef.h>

/// A CLOCK_REALTIME timerfd (close-on-exec); -1 and errno on error.
int cairn_timerfd_create(void);
/// Arms `fd` to expire at the absolute wall time sec.nsec, cancelled when the
/// clock is set (read() then fails with ECANCELED). sec = nsec = 0 disarms.
int cairn_timerfd_arm(int fd, int64_t sec, int64_t nsec);
/// Blocks until the timer expires (returns 1), the clock was set (returns 0),
/// or an error (returns -1, errno set; EINTR is retried).
int cairn_timerfd_wait(int fd);
/// The peer of a connected Unix socket; 0 or -1 and errno.
int cairn_peer_credentials(int fd, uid_t *uid, pid_t *pid);
/// CLOCK_MONOTONIC in microseconds (for sd_notify MONOTONIC_USEC).
uint64_t cairn_monotonic_usec(void);
/// CRC32C (Castagnoli) of `length` bytes, continuing from `crc` (0 to start);
/// the value S3's x-amz-checksum-crc32c carries (big-endian, base64).
uint32_t cairn_crc32c(uint32_t crc, const void *data, size_t length);
/// 1 when cairn_crc32c uses the SSE4.2 instruction, 0 for the table.
int cairn_crc32c_hardware(void);

/// malloc_trim(0): returns the heap's free memory to the kernel.
void cairn_malloc_trim(void);

/// Sets the Swift runtime's swift_task_enqueueGlobal_hook (libswift_Concurrency)
/// to `hook`, a Swift-calling-convention function (Core's CooperativePool).
/// Referenced at link time, so it works in the static build too, where the
/// symbol is not in the dynamic symbol table and dlsym cannot find it.
void cairn_set_enqueue_global_hook(void *hook);

#endif
