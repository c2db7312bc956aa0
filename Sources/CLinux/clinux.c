#define _GNU_SOURCE
#include <malloc.h>
#include "clinux.h"
#include <errno.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <stddef.h>

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

// ---- CRC32C (Castagnoli), for S3's x-amz-checksum-crc32c ----------------
// The SSE4.2 `crc32` instruction where the CPU has it (checked once), a
// byte-wise table otherwise. Three independent streams hide the
// instruction's 3-cycle latency on large buffers.

static uint32_t crc32c_table[256];

static void crc32c_init_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc32c_table[i] = c;
    }
}

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <string.h>

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    while (vec) { if (vec & 1) sum ^= *mat; vec >>= 1; mat++; }
    return sum;
}

// The linear operator "append `len` zero bytes" on a raw CRC register, as
// 32 columns (the image of each bit), computed bit by bit once at start-up.
static void crc32c_zeros_op(uint32_t *op, size_t len) {
    for (int n = 0; n < 32; n++) {
        uint32_t r = 1u << n;
        for (size_t i = 0; i < 8 * len; i++) r = (r >> 1) ^ (0x82F63B78u & (0u - (r & 1u)));
        op[n] = r;
    }
}

#define CRC32C_STRIDE 8192   // bytes per stream per round
static uint32_t crc32c_shift_op[32];
static int crc32c_have_sse42;

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw_1(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = crc;
    while (n && ((uintptr_t)p & 7)) { c = _mm_crc32_u8((uint32_t)c, *p++); n--; }
    while (n >= 8) { uint64_t v; memcpy(&v, p, 8); c = _mm_crc32_u64(c, v); p += 8; n -= 8; }
    while (n--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
    uint32_t c0 = ~crc;
    while (n >= 3 * CRC32C_STRIDE) {
        uint64_t a = c0, b = 0, c = 0;
        const uint8_t *pa = p, *pb = p + CRC32C_STRIDE, *pc = p + 2 * CRC32C_STRIDE;
        for (size_t i = 0; i < CRC32C_STRIDE; i += 8) {
            uint64_t va, vb, vc;
            memcpy(&va, pa + i, 8); memcpy(&vb, pb + i, 8); memcpy(&vc, pc + i, 8);
            a = _mm_crc32_u64(a, va); b = _mm_crc32_u64(b, vb); c = _mm_crc32_u64(c, vc);
        }
        // combine: crc(A|B|C) = shift(shift(a) ^ b) ^ c, shift = append STRIDE zero bytes
        uint32_t r = gf2_times(crc32c_shift_op, (uint32_t)a) ^ (uint32_t)b;
        c0 = gf2_times(crc32c_shift_op, r) ^ (uint32_t)c;
        p += 3 * CRC32C_STRIDE; n -= 3 * CRC32C_STRIDE;
    }
    return ~crc32c_hw_1(c0, p, n);
}
#endif

static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static void crc32c_setup(void) {
    crc32c_init_table();
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc32c_have_sse42 = __builtin_cpu_supports("sse4.2") != 0;
    crc32c_zeros_op(crc32c_shift_op, CRC32C_STRIDE);
#endif
}

uint32_t cairn_crc32c(uint32_t crc, const void *data, size_t length) {
    pthread_once(&crc32c_once, crc32c_setup);
#if defined(__x86_64__)
    if (crc32c_have_sse42) return crc32c_hw(crc, (const uint8_t *)data, length);
#endif
    return crc32c_sw(crc, (const uint8_t *)data, length);
}

int cairn_crc32c_hardware(void) {
    pthread_once(&crc32c_once, crc32c_setup);
#if defined(__x86_64__)
    return crc32c_have_sse42;
#else
    return 0;
#endif
}
void cairn_malloc_trim(void) { (void)malloc_trim(0); }

/* Declared by the Swift runtime (include/swift/Runtime/Concurrency.h) as a
   function pointer; only its address and size matter here. */
extern void *swift_task_enqueueGlobal_hook;

void cairn_set_enqueue_global_hook(void *hook) {
    swift_task_enqueueGlobal_hook = hook;
}
