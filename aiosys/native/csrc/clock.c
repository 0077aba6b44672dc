/* glibc routes clock_gettime(CLOCK_MONOTONIC / CLOCK_REALTIME) through the vDSO, which reads
   the kernel's clock page without a trap, as Go's runtime·nanotime does. */
#include <sys/auxv.h>
#include <time.h>

long long aiosys_nanotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

long long aiosys_walltime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Whether the kernel mapped a vDSO into this process at all. */
int aiosys_vdso_present(void) { return getauxval(AT_SYSINFO_EHDR) != 0; }
