/* The M pool: worker threads (Go's Ms) that run handed-off system calls without the GIL.

   Glossary (Go -> here):
     M      a pthread started by this file.  It never runs Python and never takes the GIL.
     P      an event loop, registered with an eventfd (its wakeup fd, Go's netpollBreak).
     slot   one handed-off call: trap, six words, result, timings.  Go's G is the Python-side
            record; the slot is the part the M needs.
     runq   the FIFO of queued slots (Go's global run queue, sched.runq).
     idle M an M parked on its own condition variable (Go's sched.midle and m.park note).

   Life of a call:
     1. The loop thread calls aiosys_pool_submit(): a free slot is filled and queued; an idle
        or spinning M is claimed, or a new M is started (below).
     2. An M pops the slot, stamps t_start, runs the raw syscall (retrying EINTR), stamps
        t_end, and publishes the slot on its P's completion list (exitsyscallfast).
     3. The P drains its completion list with aiosys_pool_drain() in one call.

   Waking the P (at most one eventfd write per poll cycle):
     - park mode (the loop calls aiosys_pool_park() before blocking in epoll_wait):
       the loop stores parked = 1, re-checks its completion count, then blocks.  An M that
       publishes does atomic_exchange(&parked, 0) and writes the eventfd only if it got 1.
       Both sides use sequentially consistent atomics, so one of them always sees the
       other (the store-then-load pattern of Go's netpollBreak / sched.nmspinning).
     - attach mode (a foreign loop whose blocking we cannot observe): an M writes the
       eventfd only if it flips wake_pending 0 -> 1; aiosys_pool_drain() clears it first.

   Growth (Go's startm/newm): when a slot is queued and no spinning or idle M can take it,
   a new M starts, up to max_threads.  A blocked pipe read therefore never starves the write
   it waits for.  At the cap the call waits in the runq (POOL_FULL_WAIT) or is refused with
   -EAGAIN (POOL_FULL_ERROR); it never hangs the submitter and never crashes.
   Idle Ms exit after idle_timeout_ns.

   Spinning: with more than one usable CPU, an M that finished a call spins worker_spin_ns
   for the next one before parking, and the loop spins (aiosys_pool_park) before blocking,
   because waking a halted vCPU costs ~20 us here.  Python sets both to 0 with one CPU.

   Locking: one mutex (mu) protects every list and counter below except the fields marked
   atomic, which are also written under mu but read without it by spinners.
   Nothing here calls into Python. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* From syscall.c (the builder includes the families in name order, so declare it). */
long aiosys_syscall6(long trap, long a1, long a2, long a3, long a4, long a5, long a6);

#define AIOSYS_POOL_MAX_P 64
#define AIOSYS_POOL_SLOTS 16384
#define AIOSYS_POOL_COMP_WORDS 5 /* slot, result, t_start, t_end, m_id */
#define AIOSYS_POOL_MAX_THREADS 4096
#define AIOSYS_POOL_FULL_WAIT 0
#define AIOSYS_POOL_FULL_ERROR 1
#define AIOSYS_POOL_F_CLOSE_ORPHAN 1 /* slot flag: an orphaned result >= 0 is an fd to close */
#define AIOSYS_POOL_F_DEFER_WAKE 2   /* submit only queues; aiosys_pool_kick() wakes an M */
#define AIOSYS_POOL_F_YIELD 4        /* one CPU: after waking an M, yield the CPU to it */
#define AIOSYS_POOL_STATS 16
#define AIOSYS_POOL_NIL 0xffffffffu

enum { SLOT_FREE = 0, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE };

struct aiosys_slot {
    long trap;
    long a[6];
    long result;
    long long t_submit, t_start, t_end;
    int p_id;
    unsigned p_gen; /* the P generation that submitted: a reused P id never gets it */
    int m_id;
    int state;
    unsigned flags;
    uint32_t next; /* link in the free list, the runq, a completion list or the orphan list */
};

struct aiosys_p {
    int used;
    int dead; /* unregistered: its slots go to the orphan list */
    unsigned gen;
    int efd;
    int attach;
    _Atomic int parked;
    _Atomic int wake_pending;
    _Atomic int ncomp;    /* completions waiting on this P's list */
    _Atomic int inflight; /* submitted, not yet drained */
    uint32_t comp_head, comp_tail;
};

struct aiosys_m {
    pthread_cond_t cv;
    int woken;              /* set by a submitter that claimed this idle M (under mu) */
    atomic_int signal_due;  /* claimed, cv not yet signalled (the claimer signals after
                               releasing mu): the M must not destroy cv until it is 0 */
    struct aiosys_m *next;  /* idle stack link */
    int id;
    pid_t tid;
};

static struct {
    pthread_mutex_t mu;
    int initialized;
    struct aiosys_slot slots[AIOSYS_POOL_SLOTS];
    uint32_t free_head;
    uint32_t runq_head, runq_tail;
    _Atomic int qlen;
    uint32_t orphan_head, orphan_tail;
    int norphans;
    struct aiosys_p ps[AIOSYS_POOL_MAX_P];
    struct aiosys_m *idle; /* stack of parked Ms */
    int nthreads, nidle, nspinning, nrunning;
    int nwaking; /* Ms claimed or started for queued work that have not looked at it yet */
    int next_m_id;
    /* configuration */
    int max_threads;
    long long idle_timeout_ns;
    long long worker_spin_ns;
    int full_mode;
    /* counters */
    long long spawned, exited, completed, eintr_retries, wakeups, spawn_failures, rejected;
    pthread_cond_t drained_cv; /* broadcast when any slot completes (for wait_idle) */
    /* The monitor (Go's sysmon, its "retake a P stuck in a syscall" half): runs only while
       calls are queued that no M took; starts an M when the oldest has waited
       grow_after_ns.  Ms beyond eager_threads are started this way only, so a burst of
       short calls is served by a few busy Ms instead of a thread per call. */
    pthread_cond_t mon_cv;
    int mon_running, mon_idle;
    int eager_threads;
    long long grow_after_ns;
    long long mon_grows;
    long long last_done; /* t_end of the last completion (the monitor's progress mark) */
    long long last_grow; /* when the monitor last started an M */
    int shutdown;
    unsigned epoch; /* bumped by shutdown and fork: Ms of an older epoch exit */
    pid_t tids[AIOSYS_POOL_MAX_THREADS];
} pool;

static long long pool_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One step of a bounded spin.  sched_yield() rather than a bare pause: on a CPU shared with
   other runnable threads (the M we wait for may be queued on *this* CPU, and the test
   machines run several jobs at once), a pure spin burns the slice the other thread needs;
   measured here, a pause-only spin made a handoff 10x slower under load.  On an otherwise
   idle CPU sched_yield returns at once and this is still a spin. */
static inline void pool_spin_step(void)
{
    sched_yield();
}

static inline void pool_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void pool_reset_locked(void)
{
    for (uint32_t i = 0; i < AIOSYS_POOL_SLOTS; i++) {
        pool.slots[i].state = SLOT_FREE;
        pool.slots[i].next = i + 1 < AIOSYS_POOL_SLOTS ? i + 1 : AIOSYS_POOL_NIL;
    }
    pool.free_head = 0;
    pool.runq_head = pool.runq_tail = AIOSYS_POOL_NIL;
    atomic_store(&pool.qlen, 0);
    pool.orphan_head = pool.orphan_tail = AIOSYS_POOL_NIL;
    pool.norphans = 0;
    for (int i = 0; i < AIOSYS_POOL_MAX_P; i++) {
        struct aiosys_p *p = &pool.ps[i];
        p->used = 0;
        p->dead = 0;
        p->efd = -1;
        atomic_store(&p->parked, 0);
        atomic_store(&p->wake_pending, 0);
        atomic_store(&p->ncomp, 0);
        atomic_store(&p->inflight, 0);
        p->comp_head = p->comp_tail = AIOSYS_POOL_NIL;
    }
    pool.idle = NULL;
    pool.nthreads = pool.nidle = pool.nspinning = pool.nrunning = pool.nwaking = 0;
    pool.mon_running = pool.mon_idle = 0;
    memset(pool.tids, 0, sizeof pool.tids);
}

/* After fork() only the forking thread exists in the child: every M is gone and the mutex
   may have been held by one of them.  The child starts from an empty pool (Go re-creates
   its Ms lazily too); Python discards its P and G records in its own at-fork hook. */
static void pool_atfork_prepare(void) { pthread_mutex_lock(&pool.mu); }
static void pool_atfork_parent(void) { pthread_mutex_unlock(&pool.mu); }
static void pool_atfork_child(void)
{
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.drained_cv, NULL);
    pthread_cond_init(&pool.mon_cv, NULL);
    pool.epoch++;
    pool.shutdown = 0;
    pool_reset_locked();
}

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_init_once(void)
{
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.drained_cv, NULL);
    pthread_cond_init(&pool.mon_cv, NULL);
    pool.eager_threads = 2;
    pool.grow_after_ns = 200000; /* 200 us without progress (Go's sysmon: 20 us-10 ms) */
    pool.max_threads = 128;
    pool.idle_timeout_ns = 10LL * 1000000000LL; /* Go's sysmon retires idle Ms lazily too */
    pool.worker_spin_ns = 0;
    pool.full_mode = AIOSYS_POOL_FULL_WAIT;
    pool_reset_locked();
    pthread_atfork(pool_atfork_prepare, pool_atfork_parent, pool_atfork_child);
    pool.initialized = 1;
}

static void pool_init(void) { pthread_once(&pool_once, pool_init_once); }

/* ---- lists (all under mu) ------------------------------------------------------------ */

static void list_push(uint32_t *head, uint32_t *tail, uint32_t i)
{
    pool.slots[i].next = AIOSYS_POOL_NIL;
    if (*tail == AIOSYS_POOL_NIL)
        *head = i;
    else
        pool.slots[*tail].next = i;
    *tail = i;
}

static uint32_t list_pop(uint32_t *head, uint32_t *tail)
{
    uint32_t i = *head;
    if (i == AIOSYS_POOL_NIL)
        return i;
    *head = pool.slots[i].next;
    if (*head == AIOSYS_POOL_NIL)
        *tail = AIOSYS_POOL_NIL;
    return i;
}

static void slot_free_locked(uint32_t i)
{
    pool.slots[i].state = SLOT_FREE;
    pool.slots[i].next = pool.free_head;
    pool.free_head = i;
}

/* ---- the M --------------------------------------------------------------------------- */

static int pool_write_efd(int efd)
{
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(efd, &one, sizeof one);
        if (n == (ssize_t)sizeof one || (n < 0 && errno == EAGAIN))
            return 0; /* EAGAIN: the counter is full, the loop is due to wake anyway */
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

static inline long pool_trap6(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
    return aiosys_syscall6(n, a1, a2, a3, a4, a5, a6); /* syscall.c, compiled before us */
}

/* Publish a finished slot (exitsyscallfast, or the orphan list when its P is gone: the
   exitsyscall0 of this side).  Called with mu held; returns the eventfd to write after
   unlocking, or -1.  *close_fd is set when an orphaned open must be undone here. */
static int publish_locked(uint32_t i, int *close_fd)
{
    struct aiosys_slot *s = &pool.slots[i];
    s->state = SLOT_DONE;
    pool.completed++;
    pool.last_done = s->t_end;
    struct aiosys_p *p = (s->p_id >= 0 && s->p_id < AIOSYS_POOL_MAX_P) ? &pool.ps[s->p_id] : NULL;
    if (p == NULL || !p->used || p->dead || p->gen != s->p_gen) {
        if ((s->flags & AIOSYS_POOL_F_CLOSE_ORPHAN) && s->result >= 0) {
            *close_fd = (int)s->result;
            s->flags &= ~(unsigned)AIOSYS_POOL_F_CLOSE_ORPHAN;
        }
        list_push(&pool.orphan_head, &pool.orphan_tail, i);
        pool.norphans++;
        pthread_cond_broadcast(&pool.drained_cv);
        return -1;
    }
    list_push(&p->comp_head, &p->comp_tail, i);
    atomic_fetch_add(&p->ncomp, 1);
    pthread_cond_broadcast(&pool.drained_cv);
    int wake;
    if (p->attach)
        wake = atomic_exchange(&p->wake_pending, 1) == 0;
    else
        wake = atomic_exchange(&p->parked, 0) == 1;
    if (wake) {
        pool.wakeups++;
        return p->efd;
    }
    return -1;
}

static int wake_m_locked(struct aiosys_m **signal_after);
static int start_m_locked(struct aiosys_m **signal_after);

static void *pool_worker(void *arg)
{
    struct aiosys_m self;
    memset(&self, 0, sizeof self);
    pthread_cond_init(&self.cv, NULL);
    self.tid = (pid_t)syscall(SYS_gettid);

    /* Process-directed signals belong to the loop thread (CPython runs handlers there).
       SIGURG stays deliverable, as in Go's Ms, so a worker's syscall can be interrupted on
       purpose (the EINTR retry below is tested that way). */
    sigset_t set;
    sigfillset(&set);
    sigdelset(&set, SIGURG);
    sigdelset(&set, SIGSEGV);
    sigdelset(&set, SIGBUS);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGILL);
    pthread_sigmask(SIG_SETMASK, &set, NULL);

    pthread_mutex_lock(&pool.mu);
    unsigned epoch = pool.epoch;
    self.id = (int)(intptr_t)arg;
    if (self.id >= 0 && self.id < AIOSYS_POOL_MAX_THREADS)
        pool.tids[self.id] = self.tid;
    if (pool.epoch == epoch && pool.nwaking > 0)
        pool.nwaking--; /* started by spawn_locked: now looking at the runq */
    int just_ran = 0;
    for (;;) {
        if (pool.shutdown || pool.epoch != epoch)
            break;
        uint32_t i = list_pop(&pool.runq_head, &pool.runq_tail);
        if (i == AIOSYS_POOL_NIL) {
            /* Spinning M: look for work a little before parking (Go's spinning Ms). */
            if (just_ran && pool.worker_spin_ns > 0) {
                just_ran = 0;
                pool.nspinning++;
                long long spin = pool.worker_spin_ns;
                pthread_mutex_unlock(&pool.mu);
                long long deadline = pool_now() + spin;
                while (atomic_load(&pool.qlen) == 0 && pool_now() < deadline)
                    pool_spin_step();
                pthread_mutex_lock(&pool.mu);
                pool.nspinning--;
                continue;
            }
            /* Park (Go's stopm): push onto the idle stack and wait to be claimed. */
            self.woken = 0;
            self.next = pool.idle;
            pool.idle = &self;
            pool.nidle++;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long long ns = ts.tv_nsec + pool.idle_timeout_ns % 1000000000LL;
            ts.tv_sec += (time_t)(pool.idle_timeout_ns / 1000000000LL + ns / 1000000000LL);
            ts.tv_nsec = (long)(ns % 1000000000LL);
            int rc = 0;
            while (!self.woken && !pool.shutdown && pool.epoch == epoch && rc != ETIMEDOUT &&
                   pool.nthreads <= pool.max_threads)
                rc = pthread_cond_timedwait(&self.cv, &pool.mu, &ts);
            if (self.woken) {
                pool.nwaking--; /* claimed by a submitter: now looking at the runq */
            } else {
                /* Not claimed: take ourselves off the idle stack. */
                struct aiosys_m **pp = &pool.idle;
                while (*pp != NULL && *pp != &self)
                    pp = &(*pp)->next;
                if (*pp == &self) {
                    *pp = self.next;
                    pool.nidle--;
                }
                if (pool.epoch != epoch || pool.shutdown)
                    break;
                if (pool.nthreads > pool.max_threads)
                    break; /* the cap was lowered: surplus idle Ms leave */
                if (atomic_load(&pool.qlen) == 0)
                    break; /* idle too long: exit */
            }
            continue;
        }
        atomic_fetch_sub(&pool.qlen, 1);
        /* More work queued and nobody else coming for it: wake the next M before running
           this call (Go's resetspinning -> wakep chain: one wakeup per submit burst, and
           the woken Ms fan out).  A blocked call therefore never sits on queued work. */
        if (atomic_load(&pool.qlen) > 0 && pool.nspinning + pool.nwaking == 0)
            (void)wake_m_locked(NULL);
        struct aiosys_slot *s = &pool.slots[i];
        s->state = SLOT_RUNNING;
        s->m_id = self.id;
        pool.nrunning++;
        long trap = s->trap, a0 = s->a[0], a1 = s->a[1], a2 = s->a[2], a3 = s->a[3],
             a4 = s->a[4], a5 = s->a[5];
        pthread_mutex_unlock(&pool.mu);

        long long t0 = pool_now();
        long r;
        for (;;) {
            r = pool_trap6(trap, a0, a1, a2, a3, a4, a5);
            if (r != -EINTR)
                break;
            /* A signal handler ran on this M: make the call again (PEP 475, Go's
               ignoringEINTR).  Counted at once so the retry is observable. */
            __atomic_fetch_add(&pool.eintr_retries, 1, __ATOMIC_RELAXED);
        }
        long long t1 = pool_now();

        int close_fd = -1;
        pthread_mutex_lock(&pool.mu);
        pool.nrunning--;
        if (pool.epoch != epoch)
            break; /* forked child: this slot no longer exists (cannot happen in practice) */
        s->result = r;
        s->t_start = t0;
        s->t_end = t1;
        int efd = publish_locked(i, &close_fd);
        if (efd >= 0 || close_fd >= 0) {
            pthread_mutex_unlock(&pool.mu);
            if (efd >= 0)
                pool_write_efd(efd);
            if (close_fd >= 0)
                close(close_fd);
            pthread_mutex_lock(&pool.mu);
        }
        just_ran = 1;
    }
    if (pool.epoch == epoch) {
        pool.nthreads--;
        pool.exited++;
        if (self.id >= 0 && self.id < AIOSYS_POOL_MAX_THREADS)
            pool.tids[self.id] = 0;
        pthread_cond_broadcast(&pool.drained_cv);
    }
    pthread_mutex_unlock(&pool.mu);
    /* A claimer may still be about to signal cv (it signals after releasing mu). */
    while (atomic_load(&self.signal_due))
        sched_yield();
    pthread_cond_destroy(&self.cv);
    return NULL;
}

/* Go's newm.  Called with mu held. */
static int spawn_locked(void)
{
    if (pool.nthreads >= pool.max_threads)
        return -EAGAIN;
    int id = -1;
    for (int k = 0; k < AIOSYS_POOL_MAX_THREADS; k++) {
        int c = (pool.next_m_id + k) % AIOSYS_POOL_MAX_THREADS;
        if (pool.tids[c] == 0) {
            id = c;
            break;
        }
    }
    if (id < 0)
        return -EAGAIN;
    pool.next_m_id = (id + 1) % AIOSYS_POOL_MAX_THREADS;
    pool.tids[id] = -1; /* reserved until the thread stores its tid */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    /* Start with every signal blocked so none lands before the worker sets its mask. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t th;
    int rc = pthread_create(&th, &attr, pool_worker, (void *)(intptr_t)id);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pool.tids[id] = 0;
        pool.spawn_failures++;
        return -rc;
    }
    pool.nthreads++;
    pool.nwaking++;
    pool.spawned++;
    return 0;
}

static void *pool_monitor(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.mu);
    unsigned epoch = pool.epoch;
    long long quiet_since = pool_now();
    while (!pool.shutdown && pool.epoch == epoch) {
        uint32_t head = pool.runq_head;
        if (head == AIOSYS_POOL_NIL || atomic_load(&pool.qlen) <= pool.nspinning ||
            (pool.idle == NULL && pool.nthreads >= pool.max_threads)) {
            /* Nothing stuck (or nothing we may do).  Like Go's sysmon, nap and look again
               (10 ms) for a while, so a busy pool does not pay a wakeup of this thread per
               burst of calls; after a quiet second, sleep until a submitter calls. */
            long long now = pool_now();
            if (now - quiet_since > 1000000000LL) {
                pool.mon_idle = 1;
                pthread_cond_wait(&pool.mon_cv, &pool.mu);
                pool.mon_idle = 0;
                quiet_since = pool_now();
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                long long ns = ts.tv_nsec + 10000000LL;
                ts.tv_sec += (time_t)(ns / 1000000000LL);
                ts.tv_nsec = (long)(ns % 1000000000LL);
                pthread_cond_timedwait(&pool.mon_cv, &pool.mu, &ts);
            }
            continue;
        }
        quiet_since = pool_now();
        /* Progress-based, as Go's sysmon compares syscalltick between two looks: while
           some M keeps finishing calls the pool is busy, not stuck, and a new M would
           only add context switches (measured: growing on queue age alone went to the
           cap under CPU contention).  Grow when nothing finished for grow_after_ns. */
        long long now = pool_now();
        long long since = pool.slots[head].t_submit;
        if (pool.last_done > since)
            since = pool.last_done;
        if (pool.last_grow > since)
            since = pool.last_grow; /* give the M just started a chance to take the call */
        long long waited = now - since;
        if (waited >= pool.grow_after_ns) {
            /* Every M is busy and the oldest call has waited: maybe they are all blocked
               (a pipe read waiting for a write that is queued behind it).  Start one. */
            if (start_m_locked(NULL) == 0) {
                pool.mon_grows++;
                pool.last_grow = now;
            } else { /* cap or no thread: wait for the next submit or configure */
                pool.mon_idle = 1;
                pthread_cond_wait(&pool.mon_cv, &pool.mu);
                pool.mon_idle = 0;
            }
            continue;
        }
        long long sleep_ns = pool.grow_after_ns - waited;
        if (sleep_ns < 10000)
            sleep_ns = 10000;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = ts.tv_nsec + sleep_ns;
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&pool.mon_cv, &pool.mu, &ts);
    }
    if (pool.epoch == epoch) {
        pool.mon_running = 0;
        pthread_cond_broadcast(&pool.drained_cv);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

/* Tell the monitor a call is queued with no M for it (starting it if needed).  mu held. */
static void poke_monitor_locked(void)
{
    if (pool.mon_running) {
        if (pool.mon_idle)
            pthread_cond_signal(&pool.mon_cv);
        return;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t th;
    if (pthread_create(&th, &attr, pool_monitor, NULL) == 0)
        pool.mon_running = 1;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

/* Make sure someone will run the queued work (Go's wakep/startm).  mu held.
   Order: a spinning M takes it; else an idle M is claimed; else a new M if fewer than
   eager_threads exist; else the monitor starts one if the call is still waiting after
   grow_after_ns (so short calls queue behind busy Ms instead of spawning threads).
   signal_after: see start_m_locked. */
static int wake_m_locked(struct aiosys_m **signal_after)
{
    if (atomic_load(&pool.qlen) <= pool.nspinning)
        return 0; /* a spinning M will take it */
    if (pool.nwaking > 0)
        return 0; /* an M is on its way; it wakes the next if more is queued */
    if (pool.nthreads > 0 && pool.nrunning >= pool.eager_threads) {
        /* As many Ms in syscalls as CPUs (Go: no idle P, no new M): the queued call waits
           for one of them, unless they make no progress (blocked), then the monitor adds
           an M. */
        if (pool.nthreads < pool.max_threads || pool.idle != NULL)
            poke_monitor_locked();
        return -EAGAIN;
    }
    return start_m_locked(signal_after);
}

/* Claim an idle M, or start a new one.  mu held.
   With signal_after, a claimed M is returned there instead of signalled: the caller calls
   signal_claimed() once it has released mu.  Signalling under mu wakes an M that at once
   blocks again on mu; on one CPU that was two extra context switches per handoff. */
static int start_m_locked(struct aiosys_m **signal_after)
{
    if (pool.idle != NULL) {
        struct aiosys_m *m = pool.idle;
        pool.idle = m->next;
        pool.nidle--;
        pool.nwaking++;
        m->woken = 1;
        if (signal_after != NULL) {
            atomic_store(&m->signal_due, 1);
            *signal_after = m;
        } else {
            pthread_cond_signal(&m->cv);
        }
        return 0;
    }
    return spawn_locked();
}

/* mu released.  The M may already be running (it saw woken on a spurious or timed-out
   wakeup): then this signal is spurious for it, which its wait loop tolerates. */
static void signal_claimed(struct aiosys_m *m)
{
    if (m != NULL) {
        pthread_cond_signal(&m->cv);
        atomic_store(&m->signal_due, 0);
    }
}

/* Growth policy: Ms started at once on demand (default 2), and how long a queued call may
   wait for a busy pool before the monitor starts another M. */
int aiosys_pool_configure_growth(int eager_threads, long long grow_after_ns)
{
    pool_init();
    if (eager_threads < 1 || eager_threads > AIOSYS_POOL_MAX_THREADS || grow_after_ns < 0)
        return -EINVAL;
    pthread_mutex_lock(&pool.mu);
    pool.eager_threads = eager_threads;
    pool.grow_after_ns = grow_after_ns;
    if (pool.mon_running && pool.mon_idle)
        pthread_cond_signal(&pool.mon_cv);
    pthread_mutex_unlock(&pool.mu);
    return 0;
}

/* ---- API used by _mpool.py ------------------------------------------------------------ */

int aiosys_pool_configure(int max_threads, long long idle_timeout_ns, long long worker_spin_ns,
                          int full_mode)
{
    pool_init();
    if (max_threads < 1 || max_threads > AIOSYS_POOL_MAX_THREADS || idle_timeout_ns < 0 ||
        worker_spin_ns < 0 || worker_spin_ns > 10LL * 1000000LL ||
        (full_mode != AIOSYS_POOL_FULL_WAIT && full_mode != AIOSYS_POOL_FULL_ERROR))
        return -EINVAL;
    pthread_mutex_lock(&pool.mu);
    pool.max_threads = max_threads;
    pool.idle_timeout_ns = idle_timeout_ns;
    pool.worker_spin_ns = worker_spin_ns;
    pool.full_mode = full_mode;
    /* Wake idle Ms so they pick up a shorter idle timeout. */
    for (struct aiosys_m *m = pool.idle; m != NULL; m = m->next)
        pthread_cond_signal(&m->cv);
    if (pool.mon_running && pool.mon_idle)
        pthread_cond_signal(&pool.mon_cv);
    /* Queued work that now fits under a higher cap gets its Ms. */
    while (atomic_load(&pool.qlen) > pool.nspinning + pool.nidle &&
           pool.nthreads < pool.max_threads && spawn_locked() == 0)
        ;
    pthread_mutex_unlock(&pool.mu);
    return 0;
}

/* Register a P: its wakeup eventfd and whether it parks through aiosys_pool_park (0) or
   is attached to a foreign loop (1).  Returns the P id or -errno. */
int aiosys_pool_p_register(int efd, int attach)
{
    pool_init();
    if (efd < 0)
        return -EBADF;
    pthread_mutex_lock(&pool.mu);
    int id = -ENOSPC;
    for (int i = 0; i < AIOSYS_POOL_MAX_P; i++) {
        struct aiosys_p *p = &pool.ps[i];
        if (!p->used) {
            p->used = 1;
            p->dead = 0;
            p->gen++;
            p->efd = efd;
            p->attach = attach ? 1 : 0;
            atomic_store(&p->parked, 0);
            atomic_store(&p->wake_pending, 0);
            atomic_store(&p->ncomp, 0);
            atomic_store(&p->inflight, 0);
            p->comp_head = p->comp_tail = AIOSYS_POOL_NIL;
            id = i;
            break;
        }
    }
    pthread_mutex_unlock(&pool.mu);
    return id;
}

/* Switch a P between park mode (0) and attach mode (1). */
int aiosys_pool_p_set_attach(int p_id, int attach)
{
    if (p_id < 0 || p_id >= AIOSYS_POOL_MAX_P)
        return -EINVAL;
    pthread_mutex_lock(&pool.mu);
    struct aiosys_p *p = &pool.ps[p_id];
    int rc = (!p->used || p->dead) ? -EINVAL : 0;
    if (rc == 0)
        p->attach = attach ? 1 : 0;
    pthread_mutex_unlock(&pool.mu);
    return rc;
}

/* The P is going away (handoffp with nobody to take it): its queued and running slots,
   and completions it never drained, become orphans.  The eventfd is never written again.
   Returns how many slots were still in flight. */
int aiosys_pool_p_unregister(int p_id)
{
    if (p_id < 0 || p_id >= AIOSYS_POOL_MAX_P)
        return -EINVAL;
    pthread_mutex_lock(&pool.mu);
    struct aiosys_p *p = &pool.ps[p_id];
    if (!p->used) {
        pthread_mutex_unlock(&pool.mu);
        return -EINVAL;
    }
    uint32_t i;
    while ((i = list_pop(&p->comp_head, &p->comp_tail)) != AIOSYS_POOL_NIL) {
        list_push(&pool.orphan_head, &pool.orphan_tail, i);
        pool.norphans++;
    }
    int left = atomic_load(&p->inflight) - atomic_load(&p->ncomp);
    atomic_store(&p->ncomp, 0);
    atomic_store(&p->inflight, 0);
    p->used = 0;
    p->dead = 1;
    p->efd = -1;
    pthread_mutex_unlock(&pool.mu);
    return left;
}

/* entersyscall's queueing half: returns the slot index or -errno
   (-EAGAIN: no free slot, or the pool is at its cap in POOL_FULL_ERROR mode). */
long aiosys_pool_submit(int p_id, long trap, long a1, long a2, long a3, long a4, long a5,
                        long a6, unsigned flags)
{
    if (p_id < 0 || p_id >= AIOSYS_POOL_MAX_P || trap < 0 || trap >= 4096)
        return -EINVAL;
    pthread_mutex_lock(&pool.mu);
    struct aiosys_p *p = &pool.ps[p_id];
    if (!p->used || p->dead) {
        pthread_mutex_unlock(&pool.mu);
        return -EINVAL;
    }
    if (pool.full_mode == AIOSYS_POOL_FULL_ERROR && pool.idle == NULL &&
        atomic_load(&pool.qlen) >= pool.nspinning && pool.nthreads >= pool.max_threads) {
        pool.rejected++;
        pthread_mutex_unlock(&pool.mu);
        return -EAGAIN;
    }
    uint32_t i = pool.free_head;
    if (i == AIOSYS_POOL_NIL) {
        pool.rejected++;
        pthread_mutex_unlock(&pool.mu);
        return -EAGAIN;
    }
    pool.free_head = pool.slots[i].next;
    struct aiosys_slot *s = &pool.slots[i];
    s->trap = trap;
    s->a[0] = a1;
    s->a[1] = a2;
    s->a[2] = a3;
    s->a[3] = a4;
    s->a[4] = a5;
    s->a[5] = a6;
    s->result = 0;
    s->t_submit = pool_now();
    s->t_start = s->t_end = 0;
    s->p_id = p_id;
    s->p_gen = p->gen;
    s->m_id = -1;
    s->flags = flags;
    s->state = SLOT_QUEUED;
    list_push(&pool.runq_head, &pool.runq_tail, i);
    atomic_fetch_add(&pool.qlen, 1);
    atomic_fetch_add(&p->inflight, 1);
    /* Deferred wake (one usable CPU): the loop queues a whole batch and kicks once, so the
       M it wakes does not preempt the loop after every submit. */
    struct aiosys_m *claimed = NULL;
    int rc = (flags & AIOSYS_POOL_F_DEFER_WAKE) && pool.nthreads > 0 ? 0 : wake_m_locked(&claimed);
    if (rc < 0 && pool.nthreads == 0) {
        /* No M at all and none could start: undo, or the call would wait forever. */
        uint32_t *pp = &pool.runq_head, prev = AIOSYS_POOL_NIL;
        while (*pp != i) {
            prev = *pp;
            pp = &pool.slots[*pp].next;
        }
        *pp = s->next;
        if (pool.runq_tail == i)
            pool.runq_tail = prev;
        atomic_fetch_sub(&pool.qlen, 1);
        atomic_fetch_sub(&p->inflight, 1);
        slot_free_locked(i);
        pthread_mutex_unlock(&pool.mu);
        return rc;
    }
    pthread_mutex_unlock(&pool.mu);
    signal_claimed(claimed);
    /* One usable CPU: the woken M cannot run until this thread blocks or its slice ends
       (measured: ~10 us later, the rest of the loop pass).  Handing it the CPU now puts the
       syscall at the front: it runs, publishes and parks (or blocks in the kernel), and the
       loop finds the completion at its next poll instead of waiting for it. */
    if (claimed != NULL && (flags & AIOSYS_POOL_F_YIELD))
        sched_yield();
    return (long)i;
}

/* Wake an M for work queued with AIOSYS_POOL_F_DEFER_WAKE. */
void aiosys_pool_kick(void)
{
    pool_init();
    struct aiosys_m *claimed = NULL;
    pthread_mutex_lock(&pool.mu);
    if (atomic_load(&pool.qlen) > 0)
        (void)wake_m_locked(&claimed);
    pthread_mutex_unlock(&pool.mu);
    signal_claimed(claimed);
}

/* Take back a slot that no M has started yet (a cancelled call that never ran).
   Returns 1 if it was withdrawn (the syscall never happens), 0 if an M already has it. */
int aiosys_pool_withdraw(int p_id, long slot)
{
    if (slot < 0 || slot >= AIOSYS_POOL_SLOTS || p_id < 0 || p_id >= AIOSYS_POOL_MAX_P)
        return -EINVAL;
    pthread_mutex_lock(&pool.mu);
    struct aiosys_slot *s = &pool.slots[slot];
    int rc = 0;
    if (s->state == SLOT_QUEUED && s->p_id == p_id) {
        uint32_t *pp = &pool.runq_head, prev = AIOSYS_POOL_NIL;
        while (*pp != AIOSYS_POOL_NIL && *pp != (uint32_t)slot) {
            prev = *pp;
            pp = &pool.slots[*pp].next;
        }
        if (*pp == (uint32_t)slot) {
            *pp = s->next;
            if (pool.runq_tail == (uint32_t)slot)
                pool.runq_tail = prev;
            atomic_fetch_sub(&pool.qlen, 1);
            atomic_fetch_sub(&pool.ps[p_id].inflight, 1);
            slot_free_locked((uint32_t)slot);
            rc = 1;
        }
    }
    pthread_mutex_unlock(&pool.mu);
    return rc;
}

/* Copy up to maxn completions of P p_id (or of the orphan list when p_id == -1) into out,
   AIOSYS_POOL_COMP_WORDS words each: slot, result, t_start, t_end, m_id.  The slots are
   freed.  In attach mode wake_pending is cleared first, so a completion published after
   this point writes the eventfd again. */
int aiosys_pool_drain(int p_id, int64_t *out, int maxn)
{
    if (out == NULL || maxn <= 0 || p_id < -1 || p_id >= AIOSYS_POOL_MAX_P)
        return -EINVAL;
    uint32_t *head, *tail;
    struct aiosys_p *p = NULL;
    if (p_id >= 0) {
        p = &pool.ps[p_id];
        atomic_store(&p->wake_pending, 0);
        if (atomic_load(&p->ncomp) == 0)
            return 0; /* the common case costs no lock */
    } else if (pool.norphans == 0) {
        return 0;
    }
    pthread_mutex_lock(&pool.mu);
    if (p != NULL) {
        head = &p->comp_head;
        tail = &p->comp_tail;
    } else {
        head = &pool.orphan_head;
        tail = &pool.orphan_tail;
    }
    int n = 0;
    uint32_t i;
    while (n < maxn && (i = list_pop(head, tail)) != AIOSYS_POOL_NIL) {
        struct aiosys_slot *s = &pool.slots[i];
        int64_t *o = out + (long)n * AIOSYS_POOL_COMP_WORDS;
        o[0] = i;
        o[1] = s->result;
        o[2] = s->t_start;
        o[3] = s->t_end;
        o[4] = s->m_id;
        slot_free_locked(i);
        n++;
    }
    if (p != NULL) {
        atomic_fetch_sub(&p->ncomp, n);
        atomic_fetch_sub(&p->inflight, n);
    } else {
        pool.norphans -= n;
    }
    pthread_mutex_unlock(&pool.mu);
    return n;
}

/* Called by the loop before it blocks in epoll_wait (the netpoller's before_park hook).
   With calls in flight, spin up to spin_ns for a completion first.  Returns 1 if the P is
   now parked (the next completion writes the eventfd), 0 if completions are waiting (poll
   with timeout 0 and drain).  The GIL is released around this call by cffi. */
int aiosys_pool_park(int p_id, long long spin_ns)
{
    if (p_id < 0 || p_id >= AIOSYS_POOL_MAX_P)
        return -EINVAL;
    struct aiosys_p *p = &pool.ps[p_id];
    if (atomic_load(&p->ncomp) > 0)
        return 0;
    if (spin_ns > 0 && atomic_load(&p->inflight) > 0) {
        long long deadline = pool_now() + spin_ns;
        while (pool_now() < deadline) {
            if (atomic_load(&p->ncomp) > 0)
                return 0;
            pool_spin_step();
        }
    }
    atomic_store(&p->parked, 1);
    if (atomic_load(&p->ncomp) > 0) {
        /* Raced with a publisher.  If it already took the flag it also wrote the eventfd:
           the loop reads it on its next pass; harmless. */
        atomic_exchange(&p->parked, 0);
        return 0;
    }
    return 1;
}

/* The loop is back from epoll_wait (after_park). */
void aiosys_pool_unpark(int p_id)
{
    if (p_id >= 0 && p_id < AIOSYS_POOL_MAX_P)
        atomic_store(&pool.ps[p_id].parked, 0);
}

/* Completions waiting for P p_id (no lock; a hint). */
int aiosys_pool_pending(int p_id)
{
    if (p_id < 0 || p_id >= AIOSYS_POOL_MAX_P)
        return -EINVAL;
    return atomic_load(&pool.ps[p_id].ncomp);
}

/* Block (GIL released) until P p_id has no call left running or queued, or timeout_ns
   passes.  Returns the number still running or queued. */
int aiosys_pool_wait_idle(int p_id, long long timeout_ns)
{
    if (p_id < 0 || p_id >= AIOSYS_POOL_MAX_P)
        return -EINVAL;
    pool_init();
    struct aiosys_p *p = &pool.ps[p_id];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = ts.tv_nsec + (timeout_ns > 0 ? timeout_ns : 0) % 1000000000LL;
    ts.tv_sec += (time_t)((timeout_ns > 0 ? timeout_ns : 0) / 1000000000LL + ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_mutex_lock(&pool.mu);
    int left;
    while ((left = atomic_load(&p->inflight) - atomic_load(&p->ncomp)) > 0) {
        if (pthread_cond_timedwait(&pool.drained_cv, &pool.mu, &ts) == ETIMEDOUT) {
            left = atomic_load(&p->inflight) - atomic_load(&p->ncomp);
            break;
        }
    }
    pthread_mutex_unlock(&pool.mu);
    return left;
}

/* Start n more Ms now (sysmon's answer to a queue that does not move).  Returns how many
   started. */
int aiosys_pool_grow(int n)
{
    pool_init();
    if (n < 0 || n > AIOSYS_POOL_MAX_THREADS)
        return -EINVAL;
    pthread_mutex_lock(&pool.mu);
    int k = 0;
    while (k < n && spawn_locked() == 0)
        k++;
    pthread_mutex_unlock(&pool.mu);
    return k;
}

/* Ask every M to exit and wait up to timeout_ns for them.  Returns the number still alive
   (Ms blocked in a syscall exit when it returns).  Submitting again restarts the pool. */
int aiosys_pool_shutdown(long long timeout_ns)
{
    pool_init();
    pthread_mutex_lock(&pool.mu);
    pool.shutdown = 1;
    for (struct aiosys_m *m = pool.idle; m != NULL; m = m->next)
        pthread_cond_signal(&m->cv);
    pthread_cond_signal(&pool.mon_cv);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = ts.tv_nsec + (timeout_ns > 0 ? timeout_ns : 0) % 1000000000LL;
    ts.tv_sec += (time_t)((timeout_ns > 0 ? timeout_ns : 0) / 1000000000LL + ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    while (pool.nthreads > 0 || pool.mon_running) {
        if (pthread_cond_timedwait(&pool.drained_cv, &pool.mu, &ts) == ETIMEDOUT)
            break;
    }
    int left = pool.nthreads;
    pool.shutdown = 0;
    pthread_mutex_unlock(&pool.mu);
    return left;
}

/* Counters, AIOSYS_POOL_STATS words: nthreads, nidle, nspinning, nrunning, qlen, spawned,
   exited, completed, eintr_retries, wakeups, spawn_failures, rejected, norphans,
   max_threads, monitor grows, epoch. */
int aiosys_pool_stats(int64_t *out, int n)
{
    if (out == NULL || n < AIOSYS_POOL_STATS)
        return -EINVAL;
    pool_init();
    pthread_mutex_lock(&pool.mu);
    out[0] = pool.nthreads;
    out[1] = pool.nidle;
    out[2] = pool.nspinning;
    out[3] = pool.nrunning;
    out[4] = atomic_load(&pool.qlen);
    out[5] = pool.spawned;
    out[6] = pool.exited;
    out[7] = pool.completed;
    out[8] = __atomic_load_n(&pool.eintr_retries, __ATOMIC_RELAXED);
    out[9] = pool.wakeups;
    out[10] = pool.spawn_failures;
    out[11] = pool.rejected;
    out[12] = pool.norphans;
    out[13] = pool.max_threads;
    out[14] = pool.mon_grows;
    out[15] = pool.epoch;
    pthread_mutex_unlock(&pool.mu);
    return AIOSYS_POOL_STATS;
}

/* Thread ids of live Ms (for tests that signal a worker, and for sysmon).  Returns count. */
int aiosys_pool_tids(int64_t *out, int n)
{
    if (out == NULL || n <= 0)
        return -EINVAL;
    pool_init();
    pthread_mutex_lock(&pool.mu);
    int k = 0;
    for (int i = 0; i < AIOSYS_POOL_MAX_THREADS && k < n; i++)
        if (pool.tids[i] > 0)
            out[k++] = pool.tids[i];
    pthread_mutex_unlock(&pool.mu);
    return k;
}
