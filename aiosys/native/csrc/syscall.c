/* Raw system calls, made with the architecture's trap instruction (Go's
   runtime/internal/syscall.Syscall6), or libc's syscall() elsewhere.

   Every entry returns what the kernel returned: a value, or -errno in [-4095, -1].  The C
   errno is never consulted, so nothing a signal handler or another call does between the
   trap and the caller's check can change the result ("errno preserved").  None of these
   touch Python objects: they are safe to run on a worker thread without the GIL. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_HIPRI
#define RWF_HIPRI 0x00000001
#endif
#ifndef RWF_DSYNC
#define RWF_DSYNC 0x00000002
#endif
#ifndef RWF_SYNC
#define RWF_SYNC 0x00000004
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif
#ifndef RWF_APPEND
#define RWF_APPEND 0x00000010
#endif
#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

static inline long aiosys_trap6(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
#if defined(__x86_64__)
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    /* The kernel clobbers rcx (return address) and r11 (rflags). */
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    register long x3 __asm__("x3") = a4;
    register long x4 __asm__("x4") = a5;
    register long x5 __asm__("x5") = a6;
    __asm__ __volatile__("svc 0"
                         : "+r"(x0)
                         : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                         : "memory", "cc");
    return x0;
#else
    /* libc fallback: syscall() reports failure through errno; fold it back into Go's
       single-register convention before anything else can touch errno. */
    long r = syscall(n, a1, a2, a3, a4, a5, a6);
    return r == -1 ? -(long)errno : r;
#endif
}

int aiosys_arch_uses_asm(void)
{
#if defined(__x86_64__) || defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}

long aiosys_syscall0(long trap) { return aiosys_trap6(trap, 0, 0, 0, 0, 0, 0); }

/* Go's RawSyscallNoError: the same trap, the result read as an unsigned word, so cffi hands
   back e.g. a uid of 0xfffffffe as a uid and never as -errno (Go issue 22924). */
unsigned long aiosys_syscall0_u(long trap)
{
    return (unsigned long)aiosys_trap6(trap, 0, 0, 0, 0, 0, 0);
}

unsigned long aiosys_syscall3_u(long trap, long a1, long a2, long a3)
{
    return (unsigned long)aiosys_trap6(trap, a1, a2, a3, 0, 0, 0);
}

long aiosys_syscall3(long trap, long a1, long a2, long a3)
{
    return aiosys_trap6(trap, a1, a2, a3, 0, 0, 0);
}

long aiosys_syscall6(long trap, long a1, long a2, long a3, long a4, long a5, long a6)
{
    return aiosys_trap6(trap, a1, a2, a3, a4, a5, a6);
}

/* preadv2/pwritev2 take the offset split in two registers (pos_l, pos_h) on every Linux ABI;
   on 64-bit ABIs pos_h is ignored but must still be passed. */
static long aiosys_rwv2(long nr, int fd, const struct iovec *iov, int iovcnt, long long off,
                        int flags)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    unsigned long long uoff = (unsigned long long)off;
    long lo = (long)uoff;
    long hi = (long)(sizeof(long) >= 8 ? 0 : (uoff >> 32));
    return aiosys_trap6(nr, fd, (long)iov, iovcnt, lo, hi, flags);
}

long aiosys_preadv2_vec(int fd, const struct iovec *iov, int iovcnt, long long off, int flags)
{
#ifdef SYS_preadv2
    return aiosys_rwv2(SYS_preadv2, fd, iov, iovcnt, off, flags);
#else
    return -ENOSYS;
#endif
}

long aiosys_pwritev2_vec(int fd, const struct iovec *iov, int iovcnt, long long off, int flags)
{
#ifdef SYS_pwritev2
    return aiosys_rwv2(SYS_pwritev2, fd, iov, iovcnt, off, flags);
#else
    return -ENOSYS;
#endif
}

long aiosys_preadv2(int fd, void *buf, size_t len, long long off, int flags)
{
    struct iovec iov = {buf, len};
    return aiosys_preadv2_vec(fd, &iov, 1, off, flags);
}

long aiosys_pwritev2(int fd, const void *buf, size_t len, long long off, int flags)
{
    struct iovec iov = {(void *)buf, len};
    return aiosys_pwritev2_vec(fd, &iov, 1, off, flags);
}
