/* The netpoller's per-request path in C, holding the GIL throughout (none of it blocks):

     hot_read(fd, n, sock)      preadv2(fd, n bytes, offset -1, RWF_NOWAIT) -> bytes, or -errno
     hot_pread(fd, n, offset)   preadv2(fd, n bytes, offset, RWF_NOWAIT)    -> bytes, or -errno
     hot_write(fd, data, sock)  pwritev2(fd, data, offset -1, RWF_NOWAIT)  -> count, or -errno
     hot_call_soon        the aiosys loop's call_soon when it is open and not in debug mode

   With sock true the fd is a socket and the calls are recvfrom(MSG_DONTWAIT) and
   sendto(MSG_DONTWAIT | MSG_NOSIGNAL): per call non-blocking as well, and they skip the VFS
   iovec layer that the readv family goes through (what the socket's own read and write use).

   Why C: on a 64-byte echo the Python layer spent ~1,200 instructions per cffi call on the
   call itself (argument conversion, releasing and retaking the GIL around a syscall that
   cannot block) and ~3,500 on call_soon -> Handle.__init__, which a Future's set_result runs
   for every wakeup.  uvloop runs both in C; so do these.

   hot_call_soon returns an asyncio.Handle: an instance of a slots-only subclass
   (aiosys.netpoll._leanloop.Handle) whose _run is hot_handle_run below.  It allocates one
   with the class's own allocator and fills its slots through the slots' member descriptors
   (tp_descr_set), so everything that inspects, cancels or runs handles sees asyncio's
   fields and isinstance(h, asyncio.Handle) holds.  It reproduces
   Handle.__init__ for a non-debug loop exactly: context copied when not given, _cancelled
   False, _repr and _source_traceback None.  A closed or debug loop, a keyword other than
   ``context`` or no callback at all go to the Python call_soon it was bound with, so the
   errors and the debug checks are asyncio's.  (It does not look at the loop's state on
   every call: aiosys.netpoll._leanloop binds it only while the loop is open and not in
   debug mode, and unbinds it in close() and set_debug(True).)

   Built without the limited API (the cffi module defines _CFFI_NO_LIMITED_API): this needs
   PyContext_CopyCurrent, the buffer protocol and _PyBytes_Resize. */
#include <Python.h>
#include <structmember.h> /* T_OBJECT_EX, READONLY */
#include <string.h>
#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#ifdef Py_GIL_DISABLED
#error "hotpath.c relies on the GIL to guard its scratch buffer"
#endif

long aiosys_preadv2(int fd, void *buf, size_t len, long long off, int flags);
long aiosys_pwritev2(int fd, const void *buf, size_t len, long long off, int flags);
long aiosys_syscall6(long trap, long a1, long a2, long a3, long a4, long a5, long a6);

/* Non-blocking for this call only, whatever the fd's O_NONBLOCK says; -errno on failure. */
static long hot_read_into(int fd, void *buf, size_t n, long long off, int sock)
{
    if (sock)
        return aiosys_syscall6(SYS_recvfrom, fd, (long)buf, (long)n, MSG_DONTWAIT, 0, 0);
    return aiosys_preadv2(fd, buf, n, off, RWF_NOWAIT);
}

static long hot_write_from(int fd, const void *buf, size_t n, int sock)
{
    if (sock)
        return aiosys_syscall6(SYS_sendto, fd, (long)buf, (long)n, MSG_DONTWAIT | MSG_NOSIGNAL,
                               0, 0);
    return aiosys_pwritev2(fd, buf, n, -1, RWF_NOWAIT);
}

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

/* Reads up to this size land here, then are copied into a bytes object of the exact size:
   cheaper than allocating n bytes and shrinking when (as on a socket) r is far below n.
   Guarded by the GIL, which every function here holds from start to end. */
#define HOT_SCRATCH 65536
static char hot_scratch[HOT_SCRATCH];

/* 0 and *out set: o is an exact int in [lo, hi]; -1 with TypeError (not an int) or
   ValueError (out of range) set. */
static int hot_word(PyObject *o, long long lo, long long hi, long long *out, const char *what)
{
    if (!PyLong_CheckExact(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || v < lo || v > hi) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "%s out of range [%lld, %lld]", what, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* n bytes from fd at off (-1: the file position) as a bytes object, or -errno. */
static PyObject *hot_read_bytes(int fd, long long n, long long off, int sock)
{
    if (n <= HOT_SCRATCH) {
        long r = hot_read_into(fd, hot_scratch, (size_t)n, off, sock);
        if (r < 0)
            return PyLong_FromLong(r);
        return PyBytes_FromStringAndSize(hot_scratch, (Py_ssize_t)r);
    }
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (b == NULL)
        return NULL;
    long r = hot_read_into(fd, PyBytes_AS_STRING(b), (size_t)n, off, sock);
    if (r < 0) {
        Py_DECREF(b);
        return PyLong_FromLong(r);
    }
    if (r != n && _PyBytes_Resize(&b, (Py_ssize_t)r) < 0)
        return NULL; /* b was freed */
    return b;
}

static PyObject *hot_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long fd, n;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "hot_read(fd, n, sock) takes three arguments");
        return NULL;
    }
    if (hot_word(args[0], 0, INT_MAX, &fd, "fd") < 0 ||
        hot_word(args[1], 1, PY_SSIZE_T_MAX, &n, "read size") < 0)
        return NULL;
    int sock = PyObject_IsTrue(args[2]);
    if (sock < 0)
        return NULL;
    return hot_read_bytes((int)fd, n, -1, sock);
}

/* hot_pread(fd, n, offset): a regular file's page-cache read, preadv2(RWF_NOWAIT) holding
   the GIL (a miss is EAGAIN, never a wait); offset -1 reads at the file position. */
static PyObject *hot_pread(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long fd, n, off;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "hot_pread(fd, n, offset) takes three arguments");
        return NULL;
    }
    if (hot_word(args[0], 0, INT_MAX, &fd, "fd") < 0 ||
        hot_word(args[1], 1, PY_SSIZE_T_MAX, &n, "read size") < 0 ||
        hot_word(args[2], -1, LLONG_MAX, &off, "offset") < 0)
        return NULL;
    return hot_read_bytes((int)fd, n, off, 0);
}

static PyObject *hot_write(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long fd;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "hot_write(fd, data, sock) takes three arguments");
        return NULL;
    }
    if (hot_word(args[0], 0, INT_MAX, &fd, "fd") < 0)
        return NULL;
    int sock = PyObject_IsTrue(args[2]);
    if (sock < 0)
        return NULL;
    PyObject *data = args[1];
    long r;
    if (PyBytes_CheckExact(data)) {
        r = hot_write_from((int)fd, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data),
                           sock);
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return NULL; /* TypeError/BufferError: not a contiguous bytes-like object */
        r = hot_write_from((int)fd, view.buf, (size_t)view.len, sock);
        PyBuffer_Release(&view);
    }
    return PyLong_FromLong(r);
}

/* ---- call_soon ------------------------------------------------------------------------ */

enum { H_CALLBACK, H_ARGS, H_CANCELLED, H_LOOP, H_TB, H_REPR, H_CONTEXT, H_NSLOTS };
static const char *const hot_slot_names[H_NSLOTS] = {
    "_callback", "_args", "_cancelled", "_loop", "_source_traceback", "_repr", "_context",
};
static PyTypeObject *hot_handle_type;          /* the loop's Handle: asyncio.Handle's subclass */
static PyObject *hot_report;                   /* report(handle, exc): a callback raised */
static PyObject *hot_str_context;

static Py_ssize_t hot_slot_offset[H_NSLOTS]; /* where each slot lives in the instance */

/* A new reference to slot i of a Handle h (AttributeError if unset, as the descriptor). */
static PyObject *hot_slot(PyObject *h, int i)
{
    PyObject *v = *(PyObject **)((char *)h + hot_slot_offset[i]);
    if (v == NULL) {
        PyErr_Format(PyExc_AttributeError, "Handle.%s is not set", hot_slot_names[i]);
        return NULL;
    }
    Py_INCREF(v);
    return v;
}

/* Handle._run: ``self._context.run(self._callback, *self._args)``; SystemExit and
   KeyboardInterrupt propagate, any other exception goes to report(self, exc) (which calls
   the loop's exception handler as asyncio's Handle._run does). */
static PyObject *hot_handle_run(PyObject *self, PyObject *unused)
{
    PyObject *ctx = hot_slot(self, H_CONTEXT);
    PyObject *cb = ctx ? hot_slot(self, H_CALLBACK) : NULL;
    PyObject *args = cb ? hot_slot(self, H_ARGS) : NULL;
    PyObject *res = NULL;
    if (args != NULL && !PyTuple_Check(args))
        PyErr_SetString(PyExc_TypeError, "Handle._args must be a tuple");
    else if (args != NULL && PyContext_Enter(ctx) == 0) {
        res = PyObject_Call(cb, args, NULL);
        if (PyContext_Exit(ctx) < 0)
            Py_CLEAR(res);
    }
    Py_XDECREF(ctx);
    Py_XDECREF(cb);
    Py_XDECREF(args);
    if (res != NULL) {
        Py_DECREF(res);
        Py_RETURN_NONE;
    }
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
        return NULL;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    if (value == NULL)
        Py_RETURN_NONE; /* nothing to report (cannot happen: an error was set) */
    PyObject *r = PyObject_CallFunctionObjArgs(hot_report, self, value, NULL);
    Py_DECREF(value);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyMethodDef hot_handle_run_def = {
    "_run", hot_handle_run, METH_NOARGS, "Run the callback in its context (C)."};

/* hot_init(Handle, report): Handle is a slots-only subclass of asyncio.Handle; look up its
   slots' descriptors once and give it the C _run.  Refuses (TypeError) a Handle whose
   layout is not what this file fills in; the caller then keeps the Python path. */
static PyObject *hot_init(PyObject *self, PyObject *const *fargs, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(fargs[0]) || !PyCallable_Check(fargs[1])) {
        PyErr_SetString(PyExc_TypeError, "hot_init(Handle, report)");
        return NULL;
    }
    PyObject *handle_type = fargs[0];
    Py_ssize_t offset[H_NSLOTS];
    for (int i = 0; i < H_NSLOTS; i++) {
        PyObject *d = PyObject_GetAttrString(handle_type, hot_slot_names[i]);
        PyMemberDef *m = NULL;
        if (d != NULL && PyObject_TypeCheck(d, &PyMemberDescr_Type))
            m = ((PyMemberDescrObject *)d)->d_member;
        /* A writable object slot inside the instance, as __slots__ makes them. */
        int ok = m != NULL && m->type == T_OBJECT_EX && !(m->flags & READONLY) &&
                 m->offset > 0 &&
                 (size_t)m->offset + sizeof(PyObject *) <=
                     (size_t)((PyTypeObject *)handle_type)->tp_basicsize;
        if (ok)
            offset[i] = m->offset;
        Py_XDECREF(d); /* the type, which we keep, keeps its descriptors */
        if (!ok) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "Handle.%s is not a slot", hot_slot_names[i]);
            return NULL;
        }
    }
    if (hot_str_context == NULL && (hot_str_context = PyUnicode_InternFromString("context")) == NULL)
        return NULL;
    PyObject *run = PyDescr_NewMethod((PyTypeObject *)handle_type, &hot_handle_run_def);
    if (run == NULL || PyObject_SetAttrString(handle_type, "_run", run) < 0) {
        Py_XDECREF(run);
        return NULL;
    }
    Py_DECREF(run);
    memcpy(hot_slot_offset, offset, sizeof offset);
    Py_INCREF(handle_type);
    Py_XSETREF(hot_handle_type, (PyTypeObject *)handle_type);
    Py_INCREF(fargs[1]);
    Py_XSETREF(hot_report, fargs[1]);
    Py_RETURN_NONE;
}

static PyObject *hot_new_handle(PyObject *loop, PyObject *callback, PyObject *cargs,
                                PyObject *context)
{
    PyObject *h = hot_handle_type->tp_alloc(hot_handle_type, 0);
    if (h == NULL)
        return NULL;
    /* Fresh from tp_alloc: every slot is NULL, so a plain store is what the member
       descriptor's setter would do. */
    PyObject *values[H_NSLOTS] = {callback, cargs, Py_False, loop, Py_None, Py_None, context};
    for (int i = 0; i < H_NSLOTS; i++) {
        Py_INCREF(values[i]);
        *(PyObject **)((char *)h + hot_slot_offset[i]) = values[i];
    }
    return h;
}

/* self is the tuple (loop, ready.append, python_call_soon) bound by hot_bind_call_soon. */
static PyObject *hot_call_soon(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    PyObject *loop = PyTuple_GET_ITEM(self, 0);
    PyObject *append = PyTuple_GET_ITEM(self, 1);
    PyObject *slow = PyTuple_GET_ITEM(self, 2);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *context = NULL;
    int fast = hot_handle_type != NULL && nargs >= 1 && nkw <= 1;
    if (fast && nkw == 1) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, 0);
        fast = k == hot_str_context || PyUnicode_Compare(k, hot_str_context) == 0;
        if (PyErr_Occurred())
            return NULL;
        context = args[nargs];
    }
    if (!fast)
        return PyObject_Vectorcall(slow, args, (size_t)nargs, kwnames);

    PyObject *cargs = PyTuple_New(nargs - 1);
    if (cargs == NULL)
        return NULL;
    for (Py_ssize_t i = 1; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(cargs, i - 1, args[i]);
    }
    PyObject *ctx = (context == NULL || context == Py_None) ? PyContext_CopyCurrent() : context;
    if (ctx == NULL) {
        Py_DECREF(cargs);
        return NULL;
    }
    if (ctx == context)
        Py_INCREF(ctx);
    PyObject *h = hot_new_handle(loop, args[0], cargs, ctx);
    Py_DECREF(cargs);
    Py_DECREF(ctx);
    if (h == NULL)
        return NULL;
    PyObject *r = PyObject_CallOneArg(append, h);
    if (r == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    Py_DECREF(r);
    return h;
}

static PyMethodDef hot_call_soon_def = {
    "call_soon", (PyCFunction)(void (*)(void))hot_call_soon, METH_FASTCALL | METH_KEYWORDS,
    "call_soon(callback, *args, context=None): asyncio's, without the interpreter."};

/* hot_bind_call_soon(loop, ready_append, python_call_soon) -> a builtin to store as the
   loop's call_soon instance attribute. */
static PyObject *hot_bind_call_soon(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyCallable_Check(args[1]) || !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "hot_bind_call_soon(loop, ready_append, python_call_soon)");
        return NULL;
    }
    if (hot_handle_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "hot_bind_call_soon before hot_init");
        return NULL;
    }
    PyObject *state = PyTuple_Pack(3, args[0], args[1], args[2]);
    if (state == NULL)
        return NULL;
    PyObject *fn = PyCFunction_NewEx(&hot_call_soon_def, state, NULL);
    Py_DECREF(state);
    return fn;
}

/* create_future: ``Future(loop=loop)`` with the keyword dict made once (functools.partial
   copies its keywords into a new dict on every call).  self is (Future, {"loop": loop}). */
static PyObject *hot_future(PyObject *self, PyObject *unused)
{
    static PyObject *no_args;
    if (no_args == NULL && (no_args = PyTuple_New(0)) == NULL)
        return NULL;
    return PyObject_Call(PyTuple_GET_ITEM(self, 0), no_args, PyTuple_GET_ITEM(self, 1));
}

static PyMethodDef hot_future_def = {
    "create_future", hot_future, METH_NOARGS, "create_future(): Future(loop=loop) (C)."};

/* hot_bind_create_future(Future, loop) -> a builtin to store as the loop's create_future. */
static PyObject *hot_bind_create_future(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "hot_bind_create_future(Future, loop)");
        return NULL;
    }
    PyObject *kw = Py_BuildValue("{sO}", "loop", args[1]);
    if (kw == NULL)
        return NULL;
    PyObject *state = PyTuple_Pack(2, args[0], kw);
    Py_DECREF(kw);
    if (state == NULL)
        return NULL;
    PyObject *fn = PyCFunction_NewEx(&hot_future_def, state, NULL);
    Py_DECREF(state);
    return fn;
}

/* hotpoll.c */
PyObject *aiosys_hot_dispatch(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

static PyMethodDef aiosys_hot_defs[] = {
    {"hot_dispatch", (PyCFunction)(void (*)(void))aiosys_hot_dispatch, METH_FASTCALL,
     "hot_dispatch(pairs, n, tags, fd_to_key) -> (ready, woke, stale, wake_seen)"},
    {"hot_read", (PyCFunction)(void (*)(void))hot_read, METH_FASTCALL,
     "hot_read(fd, n, sock) -> bytes or -errno: preadv2(RWF_NOWAIT), or recv(MSG_DONTWAIT)."},
    {"hot_pread", (PyCFunction)(void (*)(void))hot_pread, METH_FASTCALL,
     "hot_pread(fd, n, offset) -> bytes or -errno: preadv2(RWF_NOWAIT), offset -1: position."},
    {"hot_write", (PyCFunction)(void (*)(void))hot_write, METH_FASTCALL,
     "hot_write(fd, data, sock) -> count or -errno: pwritev2(RWF_NOWAIT), or send(MSG_DONTWAIT)."},
    {"hot_init", (PyCFunction)(void (*)(void))hot_init, METH_FASTCALL,
     "hot_init(Handle, report): Handle subclasses asyncio.Handle with slots only"},
    {"hot_bind_create_future", (PyCFunction)(void (*)(void))hot_bind_create_future,
     METH_FASTCALL, "hot_bind_create_future(Future, loop) -> create_future"},
    {"hot_bind_call_soon", (PyCFunction)(void (*)(void))hot_bind_call_soon, METH_FASTCALL,
     "hot_bind_call_soon(loop, ready_append, python_call_soon) -> call_soon"},
    {NULL, NULL, 0, NULL},
};

void *aiosys_hot_def(int i)
{
    int n = (int)(sizeof aiosys_hot_defs / sizeof aiosys_hot_defs[0]) - 1;
    return (i >= 0 && i < n) ? (void *)&aiosys_hot_defs[i] : NULL;
}

const char *aiosys_hot_name(int i)
{
    int n = (int)(sizeof aiosys_hot_defs / sizeof aiosys_hot_defs[0]) - 1;
    return (i >= 0 && i < n) ? aiosys_hot_defs[i].ml_name : NULL;
}
