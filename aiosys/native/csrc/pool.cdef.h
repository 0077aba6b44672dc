/* The C M pool (pool.c): worker pthreads that run handed-off syscalls without the GIL.
   Every function returns a value or -errno. */
int aiosys_pool_configure(int max_threads, long long idle_timeout_ns, long long worker_spin_ns,
                          int full_mode);
int aiosys_pool_configure_growth(int eager_threads, long long grow_after_ns);
int aiosys_pool_p_register(int efd, int attach);
int aiosys_pool_p_set_attach(int p_id, int attach);
int aiosys_pool_p_unregister(int p_id);
long aiosys_pool_submit(int p_id, long trap, long a1, long a2, long a3, long a4, long a5,
                        long a6, unsigned flags);
int aiosys_pool_withdraw(int p_id, long slot);
void aiosys_pool_kick(void);
int aiosys_pool_drain(int p_id, int64_t *out, int maxn);
int aiosys_pool_park(int p_id, long long spin_ns);
void aiosys_pool_unpark(int p_id);
int aiosys_pool_pending(int p_id);
int aiosys_pool_wait_idle(int p_id, long long timeout_ns);
int aiosys_pool_grow(int n);
int aiosys_pool_shutdown(long long timeout_ns);
int aiosys_pool_stats(int64_t *out, int n);
int aiosys_pool_tids(int64_t *out, int n);

#define AIOSYS_POOL_MAX_P ...
#define AIOSYS_POOL_SLOTS ...
#define AIOSYS_POOL_COMP_WORDS ...
#define AIOSYS_POOL_MAX_THREADS ...
#define AIOSYS_POOL_FULL_WAIT ...
#define AIOSYS_POOL_FULL_ERROR ...
#define AIOSYS_POOL_F_CLOSE_ORPHAN ...
#define AIOSYS_POOL_F_DEFER_WAKE ...
#define AIOSYS_POOL_STATS ...
