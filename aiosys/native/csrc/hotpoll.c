/* The netpoller's event dispatch in C (NetpollSelector.process and Netpoller.dispatch run it
   on every epoll_wait of the loop; see aiosys/netpoll/_loop.py for the Python reading of the
   same rules).  Holds the GIL: it touches Python objects only.

     hot_dispatch(pairs, n, tags, fd_to_key) -> (ready, woke, stale, wake_seen)

   pairs is a buffer of uint64 (events, tag) pairs as the epoll stubs in epoll.c write them;
   n pairs are read, never more than the buffer holds.  For each pair:
     - tag in tags (an aiosys PollDesc, edge-triggered): a hang-up or error clears
       pd.stream; read events resolve the Future parked in pd.rg (if any) and set pd.rg to
       READY; write events do the same with pd.wg.  woke counts the Futures resolved.
     - else tag in fd_to_key (asyncio's own level-triggered reader/writer, tagged with the bare
       fd): (key, mask & key.events) is appended to ready, as a selector returns it.
     - else tag == WAKE_TAG: wake_seen is set (the caller drains the eventfd).
     - else: a stale event for a PollDesc that has gone (Go issue 59545); stale counts it.
   A Future that is already done (cancelled) is left alone, as in _epoll._wake. */
#include <Python.h>
#include <stdint.h>
#include <sys/epoll.h>

#define HOT_EVENT_READ 1  /* selectors.EVENT_READ */
#define HOT_EVENT_WRITE 2 /* selectors.EVENT_WRITE */
#define HOT_WAKE_TAG (1ULL << 63)
#define HOT_RMASK (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)
#define HOT_WMASK (EPOLLOUT | EPOLLHUP | EPOLLERR)
#define HOT_HUPMASK (EPOLLRDHUP | EPOLLHUP | EPOLLERR)

static PyObject *hp_str_rg, *hp_str_wg, *hp_str_stream, *hp_str_events, *hp_str_done,
    *hp_str_set_result, *hp_ready_state;

static int hp_init_strings(void)
{
    if (hp_str_rg != NULL)
        return 0;
    hp_str_rg = PyUnicode_InternFromString("rg");
    hp_str_wg = PyUnicode_InternFromString("wg");
    hp_str_stream = PyUnicode_InternFromString("stream");
    hp_str_events = PyUnicode_InternFromString("events");
    hp_str_done = PyUnicode_InternFromString("done");
    hp_str_set_result = PyUnicode_InternFromString("set_result");
    hp_ready_state = PyLong_FromLong(1); /* _epoll._READY */
    if (!hp_str_rg || !hp_str_wg || !hp_str_stream || !hp_str_events || !hp_str_done ||
        !hp_str_set_result || !hp_ready_state) {
        Py_CLEAR(hp_str_rg); /* retried on the next call */
        return -1;
    }
    return 0;
}

/* Swap pd.<slot> for READY and resolve the Future that was there.  1 woken, 0 not, -1 error. */
static int hp_wake(PyObject *pd, PyObject *slot)
{
    PyObject *g = PyObject_GetAttr(pd, slot);
    if (g == NULL)
        return -1;
    if (PyObject_SetAttr(pd, slot, hp_ready_state) < 0) {
        Py_DECREF(g);
        return -1;
    }
    int woke = 0;
    if (!PyLong_CheckExact(g)) { /* a parked Future (the states are small ints) */
        PyObject *done = PyObject_CallMethodNoArgs(g, hp_str_done);
        int is_done = done ? PyObject_IsTrue(done) : -1;
        Py_XDECREF(done);
        if (is_done == 0) {
            PyObject *r = PyObject_CallMethodOneArg(g, hp_str_set_result, Py_None);
            if (r == NULL)
                is_done = -1;
            Py_XDECREF(r);
            woke = 1;
        }
        if (is_done < 0) {
            Py_DECREF(g);
            return -1;
        }
    }
    Py_DECREF(g);
    return woke;
}

/* The asyncio key's (key, mask & key.events) appended to ready. */
static int hp_ready_key(PyObject *ready, PyObject *key, uint64_t ev)
{
    long mask = 0;
    if (ev & ~(uint64_t)EPOLLIN)
        mask |= HOT_EVENT_WRITE;
    if (ev & ~(uint64_t)EPOLLOUT)
        mask |= HOT_EVENT_READ;
    PyObject *want = PyObject_GetAttr(key, hp_str_events);
    if (want == NULL)
        return -1;
    long w = PyLong_AsLong(want);
    Py_DECREF(want);
    if (w == -1 && PyErr_Occurred())
        return -1;
    PyObject *item = Py_BuildValue("(Ol)", key, mask & w);
    if (item == NULL)
        return -1;
    int rc = PyList_Append(ready, item);
    Py_DECREF(item);
    return rc;
}

/* One (events, tag) pair.  Returns -1 on error. */
static int hp_one(uint64_t ev, uint64_t tag, PyObject *tags, PyObject *fd_to_key,
                  PyObject *ready, long *woke, long *stale, int *wake_seen)
{
    PyObject *k = PyLong_FromUnsignedLongLong(tag);
    if (k == NULL)
        return -1;
    PyObject *pd = PyDict_GetItemWithError(tags, k); /* borrowed */
    if (pd != NULL) {
        Py_DECREF(k);
        Py_INCREF(pd); /* a woken task runs later, but keep pd alive across our calls */
        int rc = 0;
        if ((ev & HOT_HUPMASK) && PyObject_SetAttr(pd, hp_str_stream, Py_False) < 0)
            rc = -1;
        int w;
        if (rc == 0 && (ev & HOT_RMASK)) {
            if ((w = hp_wake(pd, hp_str_rg)) < 0)
                rc = -1;
            else
                *woke += w;
        }
        if (rc == 0 && (ev & HOT_WMASK)) {
            if ((w = hp_wake(pd, hp_str_wg)) < 0)
                rc = -1;
            else
                *woke += w;
        }
        Py_DECREF(pd);
        return rc;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(k);
        return -1;
    }
    PyObject *key = PyDict_GetItemWithError(fd_to_key, k); /* borrowed */
    Py_DECREF(k);
    if (key != NULL)
        return hp_ready_key(ready, key, ev);
    if (PyErr_Occurred())
        return -1;
    if (tag == HOT_WAKE_TAG)
        *wake_seen = 1;
    else
        *stale += 1;
    return 0;
}

PyObject *aiosys_hot_dispatch(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyDict_Check(args[2]) || !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "hot_dispatch(pairs, n, tags: dict, fd_to_key: dict)");
        return NULL;
    }
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (hp_init_strings() < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (n < 0 || (size_t)n > (size_t)view.len / (2 * sizeof(uint64_t))) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "hot_dispatch: %zd pairs do not fit the buffer", n);
        return NULL;
    }
    PyObject *ready = PyList_New(0);
    if (ready == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const unsigned char *base = view.buf;
    long woke = 0, stale = 0;
    int wake_seen = 0, rc = 0;
    /* Edge-triggered: an event skipped here never comes again, so one failing event (say a
       MemoryError) must not cost the others.  Every pair is delivered; the first error is
       raised afterwards. */
    PyObject *etype = NULL, *evalue = NULL, *etb = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t pair[2];
        memcpy(pair, base + (size_t)i * sizeof pair, sizeof pair); /* no alignment assumed */
        if (hp_one(pair[0], pair[1], args[2], args[3], ready, &woke, &stale, &wake_seen) < 0) {
            rc = -1;
            if (etype == NULL)
                PyErr_Fetch(&etype, &evalue, &etb);
            else
                PyErr_Clear();
        }
    }
    PyBuffer_Release(&view);
    if (rc < 0) {
        Py_DECREF(ready);
        PyErr_Restore(etype, evalue, etb);
        return NULL;
    }
    PyObject *out = Py_BuildValue("(Nlli)", ready, woke, stale, wake_seen);
    return out;
}
