/*
 * loadgen: a small native TCP echo load generator for the aiosys benchmarks.
 *
 * N connections to 127.0.0.1:PORT, each ping-ponging one fixed-size message at a time
 * (one request outstanding per connection) for a fixed time.  Every echoed byte is checked
 * against what was sent: payloads are random slices of a random pool, so a server that
 * mixes up connections, drops or reorders bytes shows up as a mismatch.
 *
 * One thread, epoll, non-blocking sockets, level-triggered (the generator's own cost per
 * request is small next to a Python server's; it runs pinned on the other CPU).
 *
 * Output (stdout): one JSON object: requests, seconds, rps, latency p50/p90/p99/max (us),
 * the generator's own CPU seconds, errors and mismatches.
 * With --marks, "mark start" / "mark end" lines go to stderr when the measured window begins
 * (after --warmup seconds) and ends, so a harness can sample the server's CPU at those moments.
 *
 * Bounded: at most 10000 connections, 600 s, 16 MiB messages; loopback (127.0.0.0/8) only.
 * Exit status: 0 ok, 1 if any connection failed or any byte mismatched, 2 on usage/connect error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 10000
#define MAX_SECONDS 600.0
#define MAX_SIZE (16 * 1024 * 1024)
#define POOL_SLACK 65536 /* random offsets into the payload pool */

/* Latency histogram: 100 ns bins up to 10 ms, then 10 us bins up to ~1 s; beyond: overflow
 * (the exact max is kept separately). */
#define FINE_NS 100
#define FINE_BINS 100000 /* 10 ms */
#define COARSE_NS 10000
#define COARSE_BINS 100000 /* +1 s */

typedef struct {
    int fd;
    int alive;
    int want_out;      /* EPOLLOUT armed */
    size_t off;        /* payload offset into the pool for the current request */
    size_t sent, rcvd; /* bytes of the current request */
    uint64_t t0;       /* request start, ns */
} conn_t;

static uint64_t hist_fine[FINE_BINS];
static uint64_t hist_coarse[COARSE_BINS];
static uint64_t hist_over;
static uint64_t lat_max;
static uint64_t lat_count;
static uint64_t lat_sum;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t xorshift(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void hist_add(uint64_t ns) {
    lat_count++;
    lat_sum += ns;
    if (ns > lat_max) lat_max = ns;
    if (ns < (uint64_t)FINE_NS * FINE_BINS) {
        hist_fine[ns / FINE_NS]++;
    } else {
        uint64_t c = (ns - (uint64_t)FINE_NS * FINE_BINS) / COARSE_NS;
        if (c < COARSE_BINS)
            hist_coarse[c]++;
        else
            hist_over++;
    }
}

static void hist_reset(void) {
    memset(hist_fine, 0, sizeof hist_fine);
    memset(hist_coarse, 0, sizeof hist_coarse);
    hist_over = lat_max = lat_count = lat_sum = 0;
}

/* Upper edge of the bin holding the q-quantile, in microseconds. */
static double hist_quantile_us(double q) {
    if (lat_count == 0) return 0.0;
    uint64_t rank = (uint64_t)(q * (double)(lat_count - 1)) + 1, seen = 0;
    for (int i = 0; i < FINE_BINS; i++) {
        seen += hist_fine[i];
        if (seen >= rank) return ((double)(i + 1) * FINE_NS) / 1000.0;
    }
    for (int i = 0; i < COARSE_BINS; i++) {
        seen += hist_coarse[i];
        if (seen >= rank)
            return ((double)FINE_NS * FINE_BINS + (double)(i + 1) * COARSE_NS) / 1000.0;
    }
    return (double)lat_max / 1000.0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P [--host 127.0.0.1] [--conns N] [--size BYTES]\n"
            "               [--seconds T] [--warmup T] [--max-requests N] [--seed S] [--marks]\n");
    exit(2);
}

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = -1, nconns = 10, size = 64, max_requests = 0;
    double seconds = 2.0, warmup = 0.0;
    int marks = 0;
    uint64_t seed = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (!strcmp(a, "--marks")) { marks = 1; continue; }
        if (!v) usage();
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = strtol(v, NULL, 10);
        else if (!strcmp(a, "--conns")) nconns = strtol(v, NULL, 10);
        else if (!strcmp(a, "--size")) size = strtol(v, NULL, 10);
        else if (!strcmp(a, "--seconds")) seconds = strtod(v, NULL);
        else if (!strcmp(a, "--warmup")) warmup = strtod(v, NULL);
        else if (!strcmp(a, "--max-requests")) max_requests = strtol(v, NULL, 10);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else usage();
        i++;
    }
    if (port <= 0 || port > 65535 || nconns < 1 || nconns > MAX_CONNS || size < 1 ||
        size > MAX_SIZE || seconds <= 0 || seconds > MAX_SECONDS || warmup < 0 ||
        warmup > MAX_SECONDS || max_requests < 0)
        usage();

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        printf("{\"error\": \"not an IPv4 address: %s\"}\n", host);
        return 2;
    }
    if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
        printf("{\"error\": \"refusing non-loopback address %s\"}\n", host);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (seed == 0) seed = now_ns() ^ ((uint64_t)getpid() << 32);
    rng_state = seed | 1;

    size_t pool_len = (size_t)size + POOL_SLACK;
    unsigned char *pool = malloc(pool_len);
    unsigned char *rbuf = malloc((size_t)size);
    conn_t *conns = calloc((size_t)nconns, sizeof *conns);
    if (!pool || !rbuf || !conns) {
        printf("{\"error\": \"out of memory\"}\n");
        return 2;
    }
    for (size_t i = 0; i < pool_len; i += 8) {
        uint64_t r = xorshift();
        memcpy(pool + i, &r, (pool_len - i) < 8 ? (pool_len - i) : 8);
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) { perror("epoll_create1"); return 2; }
    for (long i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) { printf("{\"error\": \"socket: %s\"}\n", strerror(errno)); return 2; }
        struct timeval tv = {5, 0}; /* bounded connect */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            printf("{\"error\": \"connect %s:%ld (conn %ld): %s\"}\n", host, port, i,
                   strerror(errno));
            return 2;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i].fd = fd;
        conns[i].alive = 1;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }

    uint64_t requests = 0, mismatches = 0, errors = 0, warm_requests = 0;
    int measuring = (warmup == 0.0);
    uint64_t t_start = now_ns();
    uint64_t t_measure = t_start;
    uint64_t t_end = t_start + (uint64_t)((warmup + seconds) * 1e9);
    uint64_t t_warm_end = t_start + (uint64_t)(warmup * 1e9);
    double cpu_measure = cpu_seconds();
    if (measuring && marks) { fprintf(stderr, "mark start\n"); fflush(stderr); }

    long alive = nconns;
    /* Start one request on a connection: pick a payload, write what fits. */
#define KILL(c)                                                   \
    do {                                                          \
        epoll_ctl(ep, EPOLL_CTL_DEL, (c)->fd, NULL);              \
        close((c)->fd);                                           \
        (c)->alive = 0;                                           \
        alive--;                                                  \
        errors++;                                                 \
    } while (0)

    for (long i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        c->off = (size_t)(xorshift() % POOL_SLACK);
        c->sent = c->rcvd = 0;
        c->t0 = now_ns();
    }
    /* pending writes are flushed in the loop below (want_out starts armed) */
    for (long i = 0; i < nconns; i++) {
        conns[i].want_out = 1;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP,
                                 .data.u64 = (uint64_t)i};
        epoll_ctl(ep, EPOLL_CTL_MOD, conns[i].fd, &ev);
    }

    struct epoll_event events[256];
    int done = 0;
    while (!done && !stop_flag && alive > 0) {
        uint64_t now = now_ns();
        if (!measuring && now >= t_warm_end) {
            measuring = 1;
            warm_requests = requests;
            requests = 0;
            hist_reset();
            t_measure = now;
            cpu_measure = cpu_seconds();
            if (marks) { fprintf(stderr, "mark start\n"); fflush(stderr); }
        }
        if (now >= t_end) break;
        uint64_t until = measuring ? t_end : t_warm_end;
        int timeout_ms = (int)((until - now) / 1000000ull) + 1;
        int n = epoll_wait(ep, events, 256, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            break;
        }
        for (int k = 0; k < n && !done; k++) {
            conn_t *c = &conns[events[k].data.u64];
            if (!c->alive) continue;
            uint32_t e = events[k].events;
            if (e & EPOLLOUT && c->sent < (size_t)size) {
                ssize_t w = write(c->fd, pool + c->off + c->sent, (size_t)size - c->sent);
                if (w > 0) c->sent += (size_t)w;
                else if (w < 0 && errno != EAGAIN) { KILL(c); continue; }
            }
            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
                for (;;) {
                    size_t want = (size_t)size - c->rcvd;
                    if (want == 0) {
                        /* echoed more than was sent: read one byte to detect it */
                        unsigned char extra;
                        ssize_t r = read(c->fd, &extra, 1);
                        if (r > 0) { mismatches++; KILL(c); }
                        else if (r == 0) { KILL(c); }
                        else if (errno != EAGAIN) { KILL(c); }
                        break;
                    }
                    ssize_t r = read(c->fd, rbuf, want);
                    if (r > 0) {
                        if (memcmp(rbuf, pool + c->off + c->rcvd, (size_t)r) != 0) {
                            mismatches++;
                            KILL(c);
                            break;
                        }
                        c->rcvd += (size_t)r;
                        if (c->rcvd == (size_t)size && c->sent == (size_t)size) {
                            uint64_t t1 = now_ns();
                            requests++;
                            if (measuring) hist_add(t1 - c->t0);
                            if (max_requests && requests >= (uint64_t)max_requests) {
                                done = 1;
                                break;
                            }
                            /* next request on this connection */
                            c->off = (size_t)(xorshift() % POOL_SLACK);
                            c->sent = c->rcvd = 0;
                            c->t0 = t1;
                            ssize_t w = write(c->fd, pool + c->off, (size_t)size);
                            if (w > 0) c->sent = (size_t)w;
                            else if (w < 0 && errno != EAGAIN) { KILL(c); break; }
                        }
                        if ((size_t)r < want) break; /* buffer drained (stream socket) */
                        continue;
                    }
                    if (r == 0 || errno != EAGAIN) KILL(c); /* EOF or reset mid-run */
                    break;
                }
            }
            if (!c->alive) continue;
            int need_out = c->sent < (size_t)size;
            if (need_out != c->want_out) {
                struct epoll_event ev = {
                    .events = EPOLLIN | EPOLLRDHUP | (need_out ? EPOLLOUT : 0),
                    .data.u64 = events[k].data.u64};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->want_out = need_out;
            }
        }
    }
    uint64_t t_stop = now_ns();
    double cpu = cpu_seconds() - cpu_measure;
    if (marks) { fprintf(stderr, "mark end\n"); fflush(stderr); }
    for (long i = 0; i < nconns; i++)
        if (conns[i].alive) close(conns[i].fd);
    close(ep);

    double secs = (double)(t_stop - t_measure) / 1e9;
    if (!measuring) secs = 0.0;
    printf("{\"conns\": %ld, \"size\": %ld, \"seconds\": %.6f, \"warmup_requests\": %llu, "
           "\"requests\": %llu, \"rps\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
           "\"p99_us\": %.1f, \"max_us\": %.1f, \"mean_us\": %.2f, \"cpu_s\": %.6f, "
           "\"errors\": %llu, \"mismatches\": %llu, \"alive\": %ld, \"seed\": %llu}\n",
           nconns, size, secs, (unsigned long long)warm_requests, (unsigned long long)requests,
           secs > 0 ? (double)requests / secs : 0.0, hist_quantile_us(0.50),
           hist_quantile_us(0.90), hist_quantile_us(0.99), (double)lat_max / 1000.0,
           lat_count ? (double)lat_sum / (double)lat_count / 1000.0 : 0.0, cpu,
           (unsigned long long)errors, (unsigned long long)mismatches, alive,
           (unsigned long long)seed);
    free(pool);
    free(rbuf);
    free(conns);
    return (errors || mismatches) ? 1 : 0;
}
