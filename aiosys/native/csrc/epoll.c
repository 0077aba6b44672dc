/* epoll / eventfd stubs for the netpoller (Go's netpoll_epoll.go uses the same three calls).

   epoll_wait copies events out as pairs of uint64 (events, data) into a flat array the
   caller owns, so Python reads them with one memoryview.tolist() instead of one cffi struct
   access per field (and the packed x86_64 struct epoll_event layout never leaks out). */
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Upper bound on events per wait: bounds the on-stack copy below. */
#define AIOSYS_EPOLL_MAXEVENTS 1024

int aiosys_epoll_create1(int flags)
{
    int fd = epoll_create1(flags);
    return fd < 0 ? -errno : fd;
}

int aiosys_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static int aiosys_copy_events(const struct epoll_event *evs, int n, uint64_t *out)
{
    for (int i = 0; i < n; i++) {
        out[2 * i] = evs[i].events;
        out[2 * i + 1] = evs[i].data.u64;
    }
    return n;
}

int aiosys_epoll_wait(int epfd, uint64_t *out, int maxevents, int timeout_ms)
{
    if (out == NULL || maxevents <= 0 || maxevents > AIOSYS_EPOLL_MAXEVENTS)
        return -EINVAL;
    struct epoll_event evs[AIOSYS_EPOLL_MAXEVENTS];
    int n = epoll_wait(epfd, evs, maxevents, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    return aiosys_copy_events(evs, n, out);
}

/* epoll_pwait2 (Linux 5.11) takes a timespec, so sub-millisecond timeouts do not round up to
   a whole millisecond.  timeout_ns < 0 waits forever.  -ENOSYS tells the caller to fall back. */
int aiosys_epoll_pwait2(int epfd, uint64_t *out, int maxevents, long long timeout_ns)
{
#ifdef SYS_epoll_pwait2
    if (out == NULL || maxevents <= 0 || maxevents > AIOSYS_EPOLL_MAXEVENTS)
        return -EINVAL;
    struct epoll_event evs[AIOSYS_EPOLL_MAXEVENTS];
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000LL);
        ts.tv_nsec = (long)(timeout_ns % 1000000000LL);
        tsp = &ts;
    }
    long n = syscall(SYS_epoll_pwait2, epfd, evs, maxevents, tsp, NULL, 0);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    return aiosys_copy_events(evs, (int)n, out);
#else
    return -ENOSYS;
#endif
}

int aiosys_eventfd(unsigned int initval, int flags)
{
    int fd = eventfd(initval, flags);
    return fd < 0 ? -errno : fd;
}

int aiosys_eventfd_write(int fd, uint64_t value)
{
    for (;;) {
        ssize_t n = write(fd, &value, sizeof value);
        if (n == (ssize_t)sizeof value)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : -EIO;
    }
}

long long aiosys_eventfd_read(int fd)
{
    uint64_t value;
    for (;;) {
        ssize_t n = read(fd, &value, sizeof value);
        if (n == (ssize_t)sizeof value)
            return (long long)value;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : -EIO;
    }
}
