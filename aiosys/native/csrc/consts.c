/* Constants the typed wrappers (zsyscall) need, taken from the C headers rather than typed
   by hand.  Nothing to compile: the cdef's "#define X ..." lines make cffi read each value. */
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <limits.h>
static const unsigned long long AIOSYS_RLIM_INFINITY = (unsigned long long)RLIM64_INFINITY;
static const int AIOSYS_PATH_MAX = PATH_MAX;
