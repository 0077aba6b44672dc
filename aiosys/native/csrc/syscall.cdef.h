/* Raw system calls.  Every function returns the kernel's raw value: a result, or -errno in
   [-4095, -1] (Go's rule).  None of them reads or writes the C errno. */
long aiosys_syscall0(long trap);
long aiosys_syscall3(long trap, long a1, long a2, long a3);
long aiosys_syscall6(long trap, long a1, long a2, long a3, long a4, long a5, long a6);
unsigned long aiosys_syscall0_u(long trap);
unsigned long aiosys_syscall3_u(long trap, long a1, long a2, long a3);
int aiosys_arch_uses_asm(void);

struct iovec { void *iov_base; size_t iov_len; };
long aiosys_preadv2(int fd, void *buf, size_t len, long long off, int flags);
long aiosys_pwritev2(int fd, const void *buf, size_t len, long long off, int flags);
long aiosys_preadv2_vec(int fd, const struct iovec *iov, int iovcnt, long long off, int flags);
long aiosys_pwritev2_vec(int fd, const struct iovec *iov, int iovcnt, long long off, int flags);

#define RWF_HIPRI ...
#define RWF_DSYNC ...
#define RWF_SYNC ...
#define RWF_NOWAIT ...
#define RWF_APPEND ...
#define IOV_MAX ...
