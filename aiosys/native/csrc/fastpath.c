/* CPython-level entry points for the few hot paths where cffi's own call costs more than the
   work: a cffi call releases and retakes the GIL around every C function (about 40 ns here),
   which is longer than a vDSO clock read.  These keep the GIL, as Go's RawSyscall keeps its P:
   they are only for calls that never block (RawSyscall*, RawSyscallNoError, the vDSO clocks).
   Syscall/Syscall6, which may block, stay on the cffi path that releases the GIL.

   cffi exposes no PyObject-level functions, so _lowlevel turns this PyMethodDef table into
   builtin functions with PyCFunction_NewEx (through ctypes.pythonapi, holding the GIL).

   Fast path only: exact ints that fit a machine word and a trap in 0..4095.  Anything else
   (wrong argument count, keywords, __index__ objects, uintptr values >= 2**63, a bad trap) is
   passed unchanged to the Python implementation registered by aiosys_fast_init, so the
   semantics and error messages are those of _lowlevel.py. */
#include <Python.h>
#include <time.h>

#ifndef METH_FASTCALL /* the limited-API headers hide it; CPython >= 3.7 accepts it */
#define METH_FASTCALL 0x0080
#endif

long aiosys_syscall3(long trap, long a1, long a2, long a3);
long aiosys_syscall6(long trap, long a1, long a2, long a3, long a4, long a5, long a6);

typedef PyObject *(*aiosys_fastcall_kw)(PyObject *, PyObject *const *, Py_ssize_t, PyObject *);

static PyObject *aiosys_errnos;      /* tuple: Errno(0) .. Errno(4095) */
static PyObject *aiosys_zero;        /* int 0 */
static PyObject *aiosys_slow_raw;    /* _lowlevel._RawSyscall_py */
static PyObject *aiosys_slow_raw6;   /* _lowlevel._RawSyscall6_py */
static PyObject *aiosys_slow_noerr;  /* _lowlevel._RawSyscallNoError_py */

static PyObject *aiosys_fast_nanotime(PyObject *self, PyObject *unused)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

static PyObject *aiosys_fast_walltime(PyObject *self, PyObject *unused)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

/* 1: *out holds the word; 0: not an exact int in range (take the slow path). */
static int aiosys_fast_word(PyObject *o, long *out)
{
    if (!PyLong_CheckExact(o))
        return 0;
    int overflow = 0;
    long v = PyLong_AsLongAndOverflow(o, &overflow);
    if (overflow)
        return 0;
    *out = v;
    return 1;
}

static PyObject *aiosys_fast_slow(PyObject *fn, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
{
    if (fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "aiosys fast path used before aiosys_fast_init");
        return NULL;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_Size(kwnames) : 0;
    PyObject *pos = PyTuple_New(nargs);
    if (pos == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SetItem(pos, i, args[i]);
    }
    PyObject *kw = NULL;
    if (nkw) {
        kw = PyDict_New();
        for (Py_ssize_t i = 0; kw && i < nkw; i++) {
            if (PyDict_SetItem(kw, PyTuple_GetItem(kwnames, i), args[nargs + i]) < 0) {
                Py_DECREF(kw);
                kw = NULL;
            }
        }
        if (kw == NULL) {
            Py_DECREF(pos);
            return NULL;
        }
    }
    PyObject *res = PyObject_Call(fn, pos, kw);
    Py_DECREF(pos);
    Py_XDECREF(kw);
    return res;
}

static PyObject *aiosys_fast_triple(long r)
{
    if (r >= -4095 && r < 0) {
        PyObject *err = PyTuple_GetItem(aiosys_errnos, -r); /* borrowed */
        PyObject *m1 = PyLong_FromLong(-1);
        if (err == NULL || m1 == NULL) {
            Py_XDECREF(m1);
            return NULL;
        }
        PyObject *t = PyTuple_Pack(3, m1, aiosys_zero, err);
        Py_DECREF(m1);
        return t;
    }
    PyObject *v = PyLong_FromLong(r);
    if (v == NULL)
        return NULL;
    PyObject *t = PyTuple_Pack(3, v, aiosys_zero, PyTuple_GetItem(aiosys_errnos, 0));
    Py_DECREF(v);
    return t;
}

/* RawSyscall(trap, a1=0, a2=0, a3=0) -> (r1, r2, errno) */
static PyObject *aiosys_fast_raw(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
    long w[4] = {0, 0, 0, 0};
    if (kwnames != NULL || nargs < 1 || nargs > 4 || aiosys_errnos == NULL)
        return aiosys_fast_slow(aiosys_slow_raw, args, nargs, kwnames);
    for (Py_ssize_t i = 0; i < nargs; i++)
        if (!aiosys_fast_word(args[i], &w[i]))
            return aiosys_fast_slow(aiosys_slow_raw, args, nargs, kwnames);
    if (w[0] < 0 || w[0] >= 4096)
        return aiosys_fast_slow(aiosys_slow_raw, args, nargs, kwnames);
    return aiosys_fast_triple(aiosys_syscall3(w[0], w[1], w[2], w[3]));
}

/* RawSyscall6(trap, a1..a6=0) -> (r1, r2, errno) */
static PyObject *aiosys_fast_raw6(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
{
    long w[7] = {0, 0, 0, 0, 0, 0, 0};
    if (kwnames != NULL || nargs < 1 || nargs > 7 || aiosys_errnos == NULL)
        return aiosys_fast_slow(aiosys_slow_raw6, args, nargs, kwnames);
    for (Py_ssize_t i = 0; i < nargs; i++)
        if (!aiosys_fast_word(args[i], &w[i]))
            return aiosys_fast_slow(aiosys_slow_raw6, args, nargs, kwnames);
    if (w[0] < 0 || w[0] >= 4096)
        return aiosys_fast_slow(aiosys_slow_raw6, args, nargs, kwnames);
    return aiosys_fast_triple(aiosys_syscall6(w[0], w[1], w[2], w[3], w[4], w[5], w[6]));
}

/* RawSyscallNoError(trap, a1=0, a2=0, a3=0) -> (unsigned r1, 0) */
static PyObject *aiosys_fast_noerr(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames)
{
    long w[4] = {0, 0, 0, 0};
    if (kwnames != NULL || nargs < 1 || nargs > 4 || aiosys_zero == NULL)
        return aiosys_fast_slow(aiosys_slow_noerr, args, nargs, kwnames);
    for (Py_ssize_t i = 0; i < nargs; i++)
        if (!aiosys_fast_word(args[i], &w[i]))
            return aiosys_fast_slow(aiosys_slow_noerr, args, nargs, kwnames);
    if (w[0] < 0 || w[0] >= 4096)
        return aiosys_fast_slow(aiosys_slow_noerr, args, nargs, kwnames);
    PyObject *v = PyLong_FromUnsignedLong((unsigned long)aiosys_syscall3(w[0], w[1], w[2], w[3]));
    if (v == NULL)
        return NULL;
    PyObject *t = PyTuple_Pack(2, v, aiosys_zero);
    Py_DECREF(v);
    return t;
}

/* noerror0(trap) -> unsigned result: the generated getpid() is partial(noerror0, SYS_getpid). */
static PyObject *aiosys_fast_noerr0(PyObject *self, PyObject *arg)
{
    long trap;
    if (!aiosys_fast_word(arg, &trap) || trap < 0 || trap >= 4096) {
        PyErr_SetString(PyExc_ValueError, "noerror0 takes a syscall number (int in 0..4095)");
        return NULL;
    }
    return PyLong_FromUnsignedLong((unsigned long)aiosys_syscall3(trap, 0, 0, 0));
}

/* The same, bound: PyCFunction_NewEx(def, self=trap) makes a zero-argument builtin whose
   self is the syscall number, so the generated getpid() costs what os.getpid() costs. */
static PyObject *aiosys_fast_noerr_bound(PyObject *self, PyObject *unused)
{
    return aiosys_fast_noerr0(NULL, self);
}

/* aiosys_fast_init(errnos, raw_py, raw6_py, noerror_py) */
static PyObject *aiosys_fast_init(PyObject *self, PyObject *args)
{
    PyObject *errnos, *raw, *raw6, *noerr;
    if (!PyArg_ParseTuple(args, "OOOO", &errnos, &raw, &raw6, &noerr))
        return NULL;
    if (!PyTuple_Check(errnos) || PyTuple_Size(errnos) != 4096) {
        PyErr_SetString(PyExc_TypeError, "errnos must be a tuple of 4096 Errno objects");
        return NULL;
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL)
        return NULL;
    Py_INCREF(errnos);
    Py_INCREF(raw);
    Py_INCREF(raw6);
    Py_INCREF(noerr);
    Py_XDECREF(aiosys_zero);
    Py_XDECREF(aiosys_slow_raw);
    Py_XDECREF(aiosys_slow_raw6);
    Py_XDECREF(aiosys_slow_noerr);
    Py_XDECREF(aiosys_errnos);
    aiosys_zero = zero;
    aiosys_slow_raw = raw;
    aiosys_slow_raw6 = raw6;
    aiosys_slow_noerr = noerr;
    aiosys_errnos = errnos;
    Py_RETURN_NONE;
}

static PyMethodDef aiosys_fast_defs[] = {
    {"nanotime", aiosys_fast_nanotime, METH_NOARGS,
     "CLOCK_MONOTONIC in nanoseconds, through the vDSO (Go's runtime.nanotime)."},
    {"walltime", aiosys_fast_walltime, METH_NOARGS,
     "CLOCK_REALTIME in nanoseconds, through the vDSO (Go's runtime.walltime)."},
    {"RawSyscall", (PyCFunction)(void (*)(void))aiosys_fast_raw, METH_FASTCALL | METH_KEYWORDS,
     NULL},
    {"RawSyscall6", (PyCFunction)(void (*)(void))aiosys_fast_raw6, METH_FASTCALL | METH_KEYWORDS,
     NULL},
    {"RawSyscallNoError", (PyCFunction)(void (*)(void))aiosys_fast_noerr,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"noerror0", aiosys_fast_noerr0, METH_O,
     "noerror0(trap): a zero-argument syscall that cannot fail, result unsigned."},
    {"noerror_bound", aiosys_fast_noerr_bound, METH_NOARGS,
     "A zero-argument syscall that cannot fail (its number is this function's self)."},
    {"init", aiosys_fast_init, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* The i-th PyMethodDef, or NULL past the end (read by _lowlevel with the GIL released: it
   only returns an address). */
void *aiosys_fast_def(int i)
{
    int n = (int)(sizeof aiosys_fast_defs / sizeof aiosys_fast_defs[0]) - 1;
    return (i >= 0 && i < n) ? (void *)&aiosys_fast_defs[i] : NULL;
}

const char *aiosys_fast_name(int i)
{
    int n = (int)(sizeof aiosys_fast_defs / sizeof aiosys_fast_defs[0]) - 1;
    return (i >= 0 && i < n) ? aiosys_fast_defs[i].ml_name : NULL;
}
