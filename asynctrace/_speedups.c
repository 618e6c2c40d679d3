/* asynctrace._speedups: TaskRoot.send and the traced call's bookkeeping in C (optional;
 * _coro.py and _decorator.py have the same in Python).
 *
 * Problem: TaskRoot.send runs on every step of every traced task; in Python it costs more
 * than the step it wraps.
 *
 * Solution: a base type TaskRootBase whose instance members are TaskRoot's slots (objects,
 * so the Python code reads and writes them as before) and whose send / __next__ do exactly
 * what the Python TaskRoot.send does.  The cold paths (_blocked, _finish) stay in Python and
 * are called as methods of self.  The module globals of _coro that send reads are mirrored
 * in C statics: configure() MUST be called whenever they are rebound (Recorder.activate,
 * deactivate, use_clock), constants() once at import.
 *
 * A traced call (_decorator._wrap) costs about as much bookkeeping as the call itself in
 * Python: enter() makes a C CallSpan, links it as its root's _top and reads the clock;
 * leave() unlinks it and appends its record, exactly as _decorator._wrap_python / _end do.
 * The wrapper itself stays a native ``async def`` (inspect.iscoroutinefunction, awaits in C).
 *
 * Every task's start (_instrument._start_task: its parent, TaskRoot, registry, context and
 * name) is start_task() here: in Python it cost about as much as asyncio's create_task.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

/* ---- the _coro globals, mirrored (strong references) ---- */
static PyObject *g_append;       /* _coro.append */
static PyObject *g_append_list;  /* the list when g_append is that list's bound append */
static PyObject *g_append_buf;   /* the Records when g_append is its bound append */
static PyObject *g_clock;        /* _coro.clock */
static int g_clock_native;       /* g_clock is time.perf_counter and read here directly */
static PyObject *g_next_id;      /* _coro.next_id */
static PyObject *g_counter;      /* the itertools.count when g_next_id is its __next__ */
static PyObject *g_threshold;    /* _coro.blocked_threshold */
static double g_threshold_d;
static int g_threshold_is_float;
static int g_record_awaits;      /* truth of _coro.record_awaits */
static PyObject *g_run_sid;      /* _coro.run_sid */
/* _coro's __dict__ (set by task_constants): track_root is rebound per recorder, active read
 * by a traced body's enter */
static PyObject *t_coro_globals;

/* ---- constants of _coro ---- */
static PyObject *c_sleep_code, *c_aenter_code, *c_not_started, *c_reduce_awaited, *c_k_await;
static PyObject *c_coroutine_type;
static PyObject *c_current_root, *c_current_gather, *c_k_coro, *c_zero; /* enter(), leave() */
static PyObject *c_k_task, *c_empty; /* a task's end */

static PyObject *s_blocked, *s_finish, *s_coro, *s_sid, *s_native, *s_send, *s_cr_frame,
    *s_cr_await, *s_cr_code, *s_f_lasti, *s_f_locals, *s_delay, *s_top, *s_track, *s_info,
    *s_shown, *s_qualname, *s_track_root, *s_note_thread, *s_task_made, *s_name, *s_context, *s_get_name,
    *s_active, *s_call_status;
static PyObject *perf_counter;  /* time.perf_counter, to recognise it in configure() */
static PyCFunction list_append_meth;
static PyTypeObject *count_type; /* itertools.count */

/* The recorder's Records and Roots types, in _records.c (compiled into this extension). */
#include "_records.h"
int _asynctrace_records_append(PyObject *self, PyObject *rec);
int _asynctrace_records_append_fields(PyObject *self, PyObject *kind, PyObject *sid,
                                      PyObject *parent, PyObject *track, PyObject *start,
                                      PyObject *end, PyObject *end_seq, PyObject *what,
                                      PyObject *lasti, PyObject *status, PyObject *extra,
                                      int untrack);
PyObject *_asynctrace_records_of_append(PyObject *fn);
/* A traced body's entry, in _tracedbody.c. */
extern PyTypeObject _asynctrace_TracedBodyType;
PyObject *_asynctrace_enter_body(PyObject *info);
/* The span builder, in _cbuild.c. */
PyObject *_asynctrace_configure_spans(PyObject *module, PyObject *args);
PyObject *_asynctrace_configure_build(PyObject *module, PyObject *args);
PyObject *_asynctrace_build_spans(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *_asynctrace_link_spans(PyObject *module, PyObject *spans);
PyObject *_asynctrace_critical_walk(PyObject *module, PyObject *args);

typedef struct {
    PyObject_HEAD
    PyObject *weakreflist;
    PyObject *coro, *info, *native, *sid, *parent, *track, *start, *top, *aw_t, *aw_sid,
        *aw_parent, *aw_what, *aw_lasti, *aw_status, *task_name, *shown, *qualname, *outer;
    /* The running task, set by start_task: its get_name is _task_name then (read as a new
     * bound method), which saves one object per task for the garbage collector. */
    PyObject *task;
    RootsLink link; /* its place in the recorder's Roots */
} RootObject;

#define N_FIELDS 19

/* A CallSpan (see _coro.CallSpan): one running call of a traced coroutine function. */
typedef struct {
    PyObject_HEAD
    PyObject *coro, *info, *outer, *parent, *sid, *start, *track, *root;
    PyObject *frame; /* coro's frame, once an await read it: the same object every time */
    PyObject *frame_of; /* the coro that frame is of (not a reference: compared only) */
    int ended; /* leave() or fail() ran (a traced body's span, see _tracedbody.c) */
} CallObject;

#define N_CALL_FIELDS 9
static PyTypeObject CallType;
static PyObject *enter_call(PyObject *coro, PyObject *info);
static PyObject *leave_call(PyObject *call, PyObject *status);
#define FIELDS(o) (&(o)->coro)

static const char *const field_names[N_FIELDS] = {
    "_coro", "_info", "_native", "_sid", "_parent", "_track", "_start", "_top", "_aw_t",
    "_aw_sid", "_aw_parent", "_aw_what", "_aw_lasti", "_aw_status", "_task_name", "_shown",
    "__qualname__", "_outer", "_task",
};

/* A native coroutine's cr_frame, cr_await and cr_code getters, found once (NULL: not a getset
 * here, read with getattr): the same values as getattr gives, without its lookup by name. */
static getter coro_get_frame, coro_get_await, coro_get_code;

static getter
coro_getter(const char *name)
{
    for (PyGetSetDef *g = PyCoro_Type.tp_getset; g != NULL && g->name != NULL; g++) {
        if (strcmp(g->name, name) == 0) {
            return g->get;
        }
    }
    return NULL;
}

/* cr_code where it is a member (3.11): its definition, read with PyMember_GetOne. */
static PyMemberDef *coro_code_member;

static PyMemberDef *
coro_member(const char *name)
{
    for (PyMemberDef *m = PyCoro_Type.tp_members; m != NULL && m->name != NULL; m++) {
        if (strcmp(m->name, name) == 0) {
            return m;
        }
    }
    return NULL;
}

/* getattr(obj, name) for one of those three (new reference). */
static inline PyObject *
coro_attr(PyObject *obj, getter get, PyObject *name)
{
    if (Py_IS_TYPE(obj, &PyCoro_Type)) {
        if (get != NULL) {
            return get(obj, NULL);
        }
        if (name == s_cr_code && coro_code_member != NULL) {
            return PyMember_GetOne((const char *)obj, coro_code_member);
        }
    }
    return PyObject_GetAttr(obj, name);
}

/* A member's value (borrowed), or NULL with AttributeError set as the slot would raise. */
static PyObject *
field(RootObject *self, PyObject *value, int index)
{
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%s'",
                     Py_TYPE(self)->tp_name, field_names[index]);
    }
    return value;
}
#define FIELD(self, name, index) field((self), (self)->name, (index))
#define I_CORO 0
#define I_NATIVE 2
#define I_SID 3
#define I_TOP 7
#define I_AW_T 8
#define I_AW_SID 9
#define I_AW_PARENT 10
#define I_AW_WHAT 11
#define I_AW_LASTI 12
#define I_AW_STATUS 13

static PyObject *
read_clock(void)
{
    if (g_clock_native) {
#if PY_VERSION_HEX >= 0x030D0000
        PyTime_t t;
        if (PyTime_PerfCounterRaw(&t) == 0) {
            return PyFloat_FromDouble(PyTime_AsSecondsDouble(t));
        }
#elif defined(__linux__)
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) {
            /* As CPython's perf_counter: integer nanoseconds, then seconds. */
            long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
            volatile double d;
            if (ns % 1000000000LL == 0) {
                d = (double)(ns / 1000000000LL);
            }
            else {
                d = (double)ns;
                d /= 1e9;
            }
            return PyFloat_FromDouble(d);
        }
#endif
    }
    return PyObject_CallNoArgs(g_clock);
}

/* t - t0 > blocked_threshold, as Python evaluates it: 1, 0 or -1 on error. */
static int
over_threshold(PyObject *t0, PyObject *t)
{
    if (g_threshold_is_float && PyFloat_CheckExact(t0) && PyFloat_CheckExact(t)) {
        return PyFloat_AS_DOUBLE(t) - PyFloat_AS_DOUBLE(t0) > g_threshold_d;
    }
    PyObject *d = PyNumber_Subtract(t, t0);
    if (d == NULL) {
        return -1;
    }
    int r = PyObject_RichCompareBool(d, g_threshold, Py_GT);
    Py_DECREF(d);
    return r;
}

static PyObject *
next_seq(void)
{
    if (g_counter != NULL) {
        return Py_TYPE(g_counter)->tp_iternext(g_counter);
    }
    return PyObject_CallNoArgs(g_next_id);
}

static int
append_record(PyObject *record)
{
    if (g_append_buf != NULL) {
        return _asynctrace_records_append(g_append_buf, record);
    }
    if (g_append_list != NULL) {
        return PyList_Append(g_append_list, record);
    }
    PyObject *r = PyObject_CallOneArg(g_append, record);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* self._finish(exc, t0, step_top) for the exception set now, then the exception raised again
 * (as a bare ``raise``: with the traceback that _finish left on it).  Always returns NULL. */
static PyObject *
finish_and_reraise(RootObject *self, PyObject *t0, PyObject *step_top)
{
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(exc, tb);
    }
    Py_XDECREF(tb);
    Py_XDECREF(type);
    /* As in ``except BaseException as exc:``: exc is the exception being handled, so one
     * raised by _finish gets it as __context__. */
    PyObject *saved_type, *saved_exc, *saved_tb;
    PyErr_GetExcInfo(&saved_type, &saved_exc, &saved_tb);
    Py_INCREF(Py_TYPE(exc));
    Py_INCREF(exc);
    PyErr_SetExcInfo((PyObject *)Py_TYPE(exc), exc, PyException_GetTraceback(exc));
    PyObject *args[4] = {(PyObject *)self, exc, t0, step_top};
    PyObject *r = PyObject_VectorcallMethod(s_finish, args,
                                            4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    PyErr_SetExcInfo(saved_type, saved_exc, saved_tb);
    if (r == NULL) {
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(r);
    PyObject *exc_type = (PyObject *)Py_TYPE(exc);
    Py_INCREF(exc_type);
    PyErr_Restore(exc_type, exc, PyException_GetTraceback(exc));
    return NULL;
}

/* Replace a member (steals ``value``). */
#define SET(self, name, value)                 \
    do {                                       \
        PyObject *_old = (self)->name;         \
        (self)->name = (value);                \
        Py_XDECREF(_old);                      \
    } while (0)

/* One attribute of ``top``: the member when top is this root, else getattr (new ref). */
static PyObject *
top_attr(RootObject *self, PyObject *top, PyObject *name, PyObject *member, int index)
{
    if (top == (PyObject *)self) {
        PyObject *v = field(self, member, index);
        Py_XINCREF(v);
        return v;
    }
    if (Py_IS_TYPE(top, &CallType)) {
        CallObject *call = (CallObject *)top;
        PyObject *v = name == s_coro ? call->coro : name == s_sid ? call->sid : Py_True;
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(top, name);
}

/* What ``send`` does after the wrapped coroutine suspended with ``result`` (borrowed);
 * ``step_top`` is the root's _top when the step began (a blocked step belongs to it). */
static int
suspend(RootObject *self, PyObject *result, PyObject *t0, PyObject *step_top)
{
    PyObject *t = read_clock();
    if (t == NULL) {
        return -1;
    }
    int over = over_threshold(t0, t);
    if (over < 0) {
        goto error_t;
    }
    if (over) {
        PyObject *args[4] = {(PyObject *)self, t0, t, step_top};
        PyObject *r = PyObject_VectorcallMethod(s_blocked, args,
                                                4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r == NULL) {
            goto error_t;
        }
        Py_DECREF(r);
    }
    if (!g_record_awaits) {
        Py_DECREF(t);
        Py_INCREF(Py_None);
        SET(self, aw_t, Py_None);
        return 0;
    }
    PyObject *top = FIELD(self, top, I_TOP);
    if (top == NULL) {
        goto error_t;
    }
    Py_INCREF(top);
    PyObject *coro = top_attr(self, top, s_coro, self->coro, I_CORO);
    if (coro == NULL) {
        Py_DECREF(top);
        goto error_t;
    }
    SET(self, aw_t, t); /* steals t */
    PyObject *v = next_seq();
    if (v == NULL) {
        goto error;
    }
    SET(self, aw_sid, v);
    v = top_attr(self, top, s_sid, self->sid, I_SID);
    if (v == NULL) {
        goto error;
    }
    SET(self, aw_parent, v);
    Py_INCREF(Py_None);
    SET(self, aw_status, Py_None);
    v = top_attr(self, top, s_native, self->native, I_NATIVE);
    if (v == NULL) {
        goto error;
    }
    int native = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (native < 0) {
        goto error;
    }
    if (!native) {
        SET(self, aw_lasti, PyLong_FromLong(-1));
        goto what_is_result;
    }
    /* self._aw_lasti = coro.cr_frame.f_lasti (a traced call keeps the frame it read) */
    PyObject *frame;
    CallObject *call = Py_IS_TYPE(top, &CallType) ? (CallObject *)top : NULL;
    if (call != NULL && call->frame != NULL && call->frame_of == coro) {
        frame = Py_NewRef(call->frame);
    }
    else {
        frame = coro_attr(coro, coro_get_frame, s_cr_frame);
        if (frame == NULL) {
            goto error;
        }
        if (call != NULL && PyFrame_Check(frame)) {
            Py_XSETREF(call->frame, Py_NewRef(frame));
            call->frame_of = coro;
        }
    }
#if PY_VERSION_HEX >= 0x030B0000
    if (PyFrame_Check(frame)) {
        v = PyLong_FromLong(PyFrame_GetLasti((PyFrameObject *)frame));
    }
    else
#endif
    {
        v = PyObject_GetAttr(frame, s_f_lasti);
    }
    Py_DECREF(frame);
    if (v == NULL) {
        goto error;
    }
    SET(self, aw_lasti, v);
    PyObject *awaited = coro_attr(coro, coro_get_await, s_cr_await);
    if (awaited == NULL) {
        goto error;
    }
    if ((PyObject *)Py_TYPE(awaited) != c_coroutine_type) {
        Py_DECREF(awaited);
        goto what_is_result;
    }
    PyObject *what = coro_attr(awaited, coro_get_code, s_cr_code);
    if (what == NULL) {
        Py_DECREF(awaited);
        goto error;
    }
    if (what == c_sleep_code) {
        if (result != Py_None) {
            /* self._aw_what = float(awaited.cr_frame.f_locals["delay"]) */
            PyObject *delay = NULL;
            PyObject *f = coro_attr(awaited, coro_get_frame, s_cr_frame);
            if (f != NULL) {
                PyObject *locals = PyObject_GetAttr(f, s_f_locals);
                Py_DECREF(f);
                if (locals != NULL) {
                    PyObject *d = PyObject_GetItem(locals, s_delay);
                    Py_DECREF(locals);
                    if (d != NULL) {
                        delay = PyNumber_Float(d);
                        Py_DECREF(d);
                    }
                }
            }
            Py_DECREF(awaited);
            Py_DECREF(what);
            if (delay == NULL) {
                goto error;
            }
            SET(self, aw_what, delay);
            goto done;
        }
    }
    else if (what == c_aenter_code) {
        PyObject *inner = coro_attr(awaited, coro_get_await, s_cr_await);
        if (inner == NULL) {
            Py_DECREF(awaited);
            Py_DECREF(what);
            goto error;
        }
        if ((PyObject *)Py_TYPE(inner) == c_coroutine_type) {
            PyObject *inner_code = coro_attr(inner, coro_get_code, s_cr_code);
            if (inner_code == NULL) {
                Py_DECREF(inner);
                Py_DECREF(awaited);
                Py_DECREF(what);
                goto error;
            }
            Py_SETREF(what, inner_code);
        }
        Py_DECREF(inner);
    }
    Py_DECREF(awaited);
    SET(self, aw_what, what);
    goto done;
what_is_result:
    Py_INCREF(result);
    SET(self, aw_what, result);
done:
    Py_DECREF(coro);
    Py_DECREF(top);
    return 0;
error:
    Py_DECREF(coro);
    Py_DECREF(top);
    return -1;
error_t:
    Py_DECREF(t);
    return -1;
}

/* The await the task was suspended in, ended at t0: one K_AWAIT record. */
static int
resume(RootObject *self, PyObject *aw_t, PyObject *t0)
{
    PyObject *what = FIELD(self, aw_what, I_AW_WHAT);
    if (what == NULL) {
        return -1;
    }
    if (!PyCode_Check(what) && !PyFloat_CheckExact(what)) {
        what = PyObject_CallOneArg(c_reduce_awaited, what);
        if (what == NULL) {
            return -1;
        }
    }
    else {
        Py_INCREF(what);
    }
    /* (K_AWAIT, _aw_sid, _aw_parent, _sid, aw_t, t0, next_id(), what, None, _aw_lasti,
     *  _aw_status, None), read in that order */
    PyObject *items[12] = {c_k_await, self->aw_sid, self->aw_parent, self->sid, aw_t, t0,
                           NULL, what, Py_None, self->aw_lasti, self->aw_status, Py_None};
    if (FIELD(self, aw_sid, I_AW_SID) == NULL || FIELD(self, aw_parent, I_AW_PARENT) == NULL ||
        FIELD(self, sid, I_SID) == NULL) {
        Py_DECREF(what);
        return -1;
    }
    PyObject *seq = next_seq();
    if (seq == NULL) {
        Py_DECREF(what);
        return -1;
    }
    if (FIELD(self, aw_lasti, I_AW_LASTI) == NULL ||
        FIELD(self, aw_status, I_AW_STATUS) == NULL) {
        Py_DECREF(seq);
        Py_DECREF(what);
        return -1;
    }
    items[6] = seq;
    items[9] = self->aw_lasti;
    items[10] = self->aw_status;
    /* A tuple of untracked objects (numbers, code objects, strings, None) can be in no
     * cycle: untrack it now, as the collector would at its next pass, so that collections
     * while the program runs do not walk the records. */
    int untrack = !PyObject_GC_IsTracked(what) && !PyObject_GC_IsTracked(items[10]);
    int r;
    if (g_append_buf != NULL) { /* no tuple: the record's fields, in C */
        r = _asynctrace_records_append_fields(g_append_buf, c_k_await, items[1], items[2],
                                              items[3], items[4], items[5], seq, what,
                                              items[9], items[10], Py_None, untrack);
        Py_DECREF(seq);
        Py_DECREF(what);
        return r;
    }
    PyObject *rec = PyTuple_New(12);
    if (rec == NULL) {
        Py_DECREF(seq);
        Py_DECREF(what);
        return -1;
    }
    for (int i = 0; i < 12; i++) {
        if (i != 6 && i != 7) {
            Py_INCREF(items[i]);
        }
        PyTuple_SET_ITEM(rec, i, items[i]); /* steals seq and what */
    }
    if (untrack) {
        PyObject_GC_UnTrack(rec);
    }
    r = append_record(rec);
    Py_DECREF(rec);
    return r;
}

/* _coro.EndedTask in C: an ended root's _top, holding its span id.  Not tracked by the
 * garbage collector (an int is in no cycle), so that it does not count toward collections. */
typedef struct {
    PyObject_HEAD
    PyObject *sid;
} EndedObject;

static PyTypeObject EndedType;

static PyObject *
ended_task_new(PyObject *sid)
{
    EndedObject *ended = PyObject_New(EndedObject, &EndedType);
    if (ended != NULL) {
        ended->sid = Py_NewRef(sid);
    }
    return (PyObject *)ended;
}

static PyObject *
ended_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *sid;
    static char *names[] = {"sid", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:EndedTask", names, &sid)) {
        return NULL;
    }
    if (!PyLong_Check(sid)) {
        PyErr_Format(PyExc_TypeError, "EndedTask() takes a span id (an int), not %R", sid);
        return NULL;
    }
    return ended_task_new(sid);
}

static void
ended_dealloc(EndedObject *self)
{
    Py_DECREF(self->sid);
    PyObject_Free(self);
}

static PyMemberDef ended_members[] = {
    {"_sid", T_OBJECT_EX, offsetof(EndedObject, sid), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject EndedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asynctrace._speedups.EndedTask",
    .tp_basicsize = sizeof(EndedObject),
    .tp_dealloc = (destructor)ended_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("_coro.EndedTask in C: an ended task root's _top (its _sid only)."),
    .tp_members = ended_members,
    .tp_new = ended_new,
};

/* The task's coroutine returned at a step that began at t0: what TaskRoot._finish and _end
 * do for a StopIteration, without a Python call unless the step was blocked or the task has
 * a name getter (always, once created by _instrument: Task.get_name, a C method). */
static int
end_task(RootObject *self, PyObject *t0, PyObject *step_top)
{
    Py_INCREF(Py_None);
    SET(self, aw_t, Py_None);
    PyObject *t = read_clock();
    if (t == NULL) {
        return -1;
    }
    int over = over_threshold(t0, t);
    if (over > 0) {
        PyObject *args[4] = {(PyObject *)self, t0, t, step_top};
        PyObject *r = PyObject_VectorcallMethod(s_blocked, args,
                                                4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_XDECREF(r);
        over = r == NULL ? -1 : 0;
    }
    if (over < 0) {
        Py_DECREF(t);
        return -1;
    }
    PyObject *getter = self->task_name;
    PyObject *name;
    if (self->task != NULL) {
        name = PyObject_CallMethodNoArgs(self->task, s_get_name);
    }
    else if (getter == NULL || getter == Py_None) {
        name = c_empty;
        Py_INCREF(name);
    }
    else {
        name = PyObject_CallNoArgs(getter);
    }
    PyObject *seq = name == NULL ? NULL : next_seq();
    if (seq == NULL || FIELD(self, sid, I_SID) == NULL || FIELD(self, parent, 4) == NULL ||
        FIELD(self, start, 6) == NULL || FIELD(self, info, 1) == NULL) {
        Py_XDECREF(name);
        Py_XDECREF(seq);
        Py_DECREF(t);
        return -1;
    }
    /* (K_TASK, sid, parent, sid, start, t, next_id(), info, None, 0, None, name) */
    int r;
    if (g_append_buf != NULL) { /* no tuple: the record's fields, in C */
        r = _asynctrace_records_append_fields(g_append_buf, c_k_task, self->sid, self->parent,
                                              self->sid, self->start, t, seq, self->info,
                                              c_zero, Py_None, name,
                                              !PyObject_GC_IsTracked(self->info));
    }
    else {
        PyObject *rec = PyTuple_Pack(12, c_k_task, self->sid, self->parent, self->sid,
                                     self->start, t, seq, self->info, Py_None, c_zero, Py_None,
                                     name);
        r = rec == NULL ? -1 : append_record(rec);
        Py_XDECREF(rec);
    }
    Py_DECREF(name);
    Py_DECREF(seq);
    Py_DECREF(t);
    if (r < 0) {
        return -1;
    }
    Py_INCREF(Py_None);
    SET(self, task_name, Py_None);
    Py_CLEAR(self->task);
    /* self._top = EndedTask(self._sid) */
    PyObject *ended = ended_task_new(self->sid);
    if (ended == NULL) {
        return -1;
    }
    SET(self, top, ended);
    return 0;
}

/* One step of TaskRoot.send(value), as PyIter_Send gives it: PYGEN_NEXT with what the
 * coroutine yields in *presult, PYGEN_RETURN with what it returned (the task's span ended),
 * or PYGEN_ERROR with the exception set (a StopIteration too, from a coroutine that is not
 * native: as the Python send raises it). */
static PySendResult
root_step(RootObject *self, PyObject *value, PyObject **presult)
{
    *presult = NULL;
    if (g_append == NULL || c_k_await == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "asynctrace._speedups is not set up; call constants() and configure() "
                        "first (asynctrace._core._coro does on import)");
        return PYGEN_ERROR;
    }
    PyObject *t0 = read_clock();
    if (t0 == NULL) {
        return PYGEN_ERROR;
    }
    PySendResult outcome = PYGEN_ERROR;
    PyObject *result = NULL;
    PyObject *step_top = FIELD(self, top, I_TOP); /* where this step begins */
    if (step_top == NULL) {
        Py_DECREF(t0);
        return PYGEN_ERROR;
    }
    Py_INCREF(step_top);
    PyObject *aw_t = FIELD(self, aw_t, I_AW_T);
    if (aw_t == NULL) {
        goto done;
    }
    if (aw_t != Py_None) {
        if (aw_t == c_not_started) {
            Py_INCREF(t0);
            SET(self, start, t0);
        }
        else {
            Py_INCREF(aw_t);
            int r = resume(self, aw_t, t0);
            Py_DECREF(aw_t);
            if (r < 0) {
                goto done;
            }
        }
    }
    /* try: result = self._coro.send(value) */
    PyObject *coro = FIELD(self, coro, I_CORO);
    if (coro == NULL) {
        finish_and_reraise(self, t0, step_top);
        goto done;
    }
    Py_INCREF(coro);
    if (PyCoro_CheckExact(coro)) {
        PySendResult status = PyIter_Send(coro, value, &result);
        if (status == PYGEN_RETURN) {
            /* the task's span is ended in C (an error there propagates, as one in _finish
             * does from the Python send) */
            if (end_task(self, t0, step_top) == 0) {
                outcome = PYGEN_RETURN;
            }
            else {
                Py_CLEAR(result);
            }
            Py_DECREF(coro);
            goto done;
        }
        else if (status == PYGEN_ERROR) {
            result = NULL;
        }
    }
    else {
        result = PyObject_CallMethodOneArg(coro, s_send, value);
    }
    Py_DECREF(coro);
    if (result == NULL) {
        finish_and_reraise(self, t0, step_top);
        goto done;
    }
    if (suspend(self, result, t0, step_top) < 0) {
        Py_CLEAR(result);
    }
    else {
        outcome = PYGEN_NEXT;
    }
done:
    Py_DECREF(step_top);
    Py_DECREF(t0);
    *presult = result;
    return outcome;
}

/* TaskRoot.send(value): a new reference to what the coroutine yields, or NULL (a return
 * raises StopIteration(value), as coro.send does). */
static PyObject *
root_send(RootObject *self, PyObject *value)
{
    PyObject *result;
    if (root_step(self, value, &result) != PYGEN_RETURN) {
        return result;
    }
    PyObject *stop = result == Py_None ? PyObject_CallNoArgs(PyExc_StopIteration)
                                       : PyObject_CallOneArg(PyExc_StopIteration, result);
    Py_DECREF(result);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

/* am_send: the Task's step (and ``await``) gets the return value without a StopIteration,
 * as from a native coroutine.  A StopIteration raised by the step is a return too, as
 * PyIter_Send makes of one raised by __next__. */
static PySendResult
root_am_send(RootObject *self, PyObject *value, PyObject **presult)
{
    PySendResult outcome = root_step(self, value, presult);
    if (outcome == PYGEN_ERROR && PyErr_ExceptionMatches(PyExc_StopIteration)) {
        PyObject *type, *exc, *tb;
        PyErr_Fetch(&type, &exc, &tb);
        PyErr_NormalizeException(&type, &exc, &tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        PyObject *returned = exc == NULL ? NULL : PyObject_GetAttrString(exc, "value");
        Py_XDECREF(exc);
        if (returned == NULL) {
            return PYGEN_ERROR;
        }
        *presult = returned;
        return PYGEN_RETURN;
    }
    return outcome;
}


/* TaskRoot.__init__(coro, parent): the task span opens under ``parent`` and starts at the
 * task's first step; what _coro.TaskRoot.__init__ does, without a Python frame. */
static int
root_init(RootObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *coro, *parent;
    static char *names[] = {"coro", "parent", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:TaskRoot", names, &coro, &parent)) {
        return -1;
    }
    if (c_not_started == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "asynctrace._speedups is not set up; call "
                                             "constants() first (asynctrace._core._coro does)");
        return -1;
    }
    int native = Py_IS_TYPE(coro, &PyCoro_Type);
    PyObject *name, *info;
    if (native) {
        name = PyObject_GetAttr(coro, s_qualname);
        info = name == NULL ? NULL : coro_attr(coro, coro_get_code, s_cr_code);
    }
    else {
        /* _coro.coro_name(coro), which never raises for a coroutine that lacks a name */
        PyObject *module = PyImport_ImportModule("asynctrace._core._coro");
        PyObject *coro_name = module == NULL ? NULL : PyObject_GetAttrString(module, "coro_name");
        Py_XDECREF(module);
        name = coro_name == NULL ? NULL : PyObject_CallOneArg(coro_name, coro);
        Py_XDECREF(coro_name);
        info = name;
        Py_XINCREF(info);
    }
    PyObject *sid = info == NULL ? NULL : next_seq();
    PyObject *start = sid == NULL ? NULL : read_clock();
    if (start == NULL) {
        Py_XDECREF(name);
        Py_XDECREF(info);
        Py_XDECREF(sid);
        return -1;
    }
    Py_INCREF(coro);
    SET(self, coro, coro);
    SET(self, native, Py_NewRef(native ? Py_True : Py_False));
    SET(self, qualname, name);
    SET(self, info, info);
    SET(self, track, Py_NewRef(sid));
    SET(self, sid, sid);
    SET(self, parent, Py_NewRef(parent));
    SET(self, start, start);
    SET(self, top, Py_NewRef((PyObject *)self));
    SET(self, aw_t, Py_NewRef(c_not_started));
    SET(self, aw_status, Py_NewRef(Py_None));
    SET(self, task_name, Py_NewRef(Py_None));
    Py_CLEAR(self->task);
    SET(self, shown, Py_NewRef(Py_None));
    return 0;
}

static PyObject *
root_send_method(RootObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *value = Py_None;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs + nkw > 1) {
        PyErr_Format(PyExc_TypeError, "send() takes at most 1 argument (%zd given)", nargs + nkw);
        return NULL;
    }
    if (nargs == 1) {
        value = args[0];
    }
    else if (nkw == 1) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, 0);
        if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, "value") != 0) {
            PyErr_Format(PyExc_TypeError, "send() got an unexpected keyword argument '%S'",
                         name);
            return NULL;
        }
        value = args[0];
    }
    return root_send(self, value);
}

static PyObject *
root_iternext(RootObject *self)
{
    return root_send(self, Py_None);
}

static int
root_traverse(RootObject *self, visitproc visit, void *arg)
{
    PyObject **fields = FIELDS(self);
    for (int i = 0; i < N_FIELDS; i++) {
        Py_VISIT(fields[i]);
    }
    return 0;
}

static int
root_clear(RootObject *self)
{
    _asynctrace_roots_unlink(&self->link); /* gone for the recorder, as a weak reference */
    PyObject **fields = FIELDS(self);
    for (int i = 0; i < N_FIELDS; i++) {
        Py_CLEAR(fields[i]);
    }
    return 0;
}

static void
root_dealloc(RootObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    root_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define MEMBER(name, field) {name, T_OBJECT_EX, offsetof(RootObject, field), 0, NULL}
static PyMemberDef root_members[] = {
    MEMBER("_coro", coro), MEMBER("_info", info), MEMBER("_native", native),
    MEMBER("_sid", sid), MEMBER("_parent", parent), MEMBER("_track", track),
    MEMBER("_start", start), MEMBER("_top", top), MEMBER("_aw_t", aw_t),
    MEMBER("_aw_sid", aw_sid), MEMBER("_aw_parent", aw_parent), MEMBER("_aw_what", aw_what),
    MEMBER("_aw_lasti", aw_lasti), MEMBER("_aw_status", aw_status),
    MEMBER("_shown", shown), MEMBER("__qualname__", qualname), MEMBER("_outer", outer),
    {NULL, 0, 0, 0, NULL},
};

/* _task_name: the running task's get_name (see RootObject.task), else the member. */
static PyObject *
root_get_task_name(RootObject *self, void *closure)
{
    if (self->task != NULL) {
        return PyObject_GetAttr(self->task, s_get_name);
    }
    if (self->task_name == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '_task_name'",
                     Py_TYPE(self)->tp_name);
        return NULL;
    }
    return Py_NewRef(self->task_name);
}

static int
root_set_task_name(RootObject *self, PyObject *value, void *closure)
{
    if (value == NULL && self->task == NULL && self->task_name == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '_task_name'",
                     Py_TYPE(self)->tp_name);
        return -1;
    }
    Py_CLEAR(self->task);
    Py_XINCREF(value);
    Py_XSETREF(self->task_name, value);
    return 0;
}

static PyGetSetDef root_getset[] = {
    {"_task_name", (getter)root_get_task_name, (setter)root_set_task_name,
     PyDoc_STR("What names the task: its get_name while it runs, None once it ended."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef root_methods[] = {
    {"send", (PyCFunction)(void (*)(void))root_send_method, METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("send(value=None): resume the wrapped coroutine, recording the await.")},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods root_as_async = {
    .am_send = (sendfunc)root_am_send,
};

static PyTypeObject RootType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asynctrace._speedups.TaskRootBase",
    .tp_basicsize = sizeof(RootObject),
    .tp_dealloc = (destructor)root_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PyDoc_STR("TaskRoot's slots and its send in C; see asynctrace._core._coro.TaskRoot."),
    .tp_traverse = (traverseproc)root_traverse,
    .tp_clear = (inquiry)root_clear,
    .tp_weaklistoffset = offsetof(RootObject, weakreflist),
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)root_iternext,
    .tp_as_async = &root_as_async,
    .tp_methods = root_methods,
    .tp_members = root_members,
    .tp_getset = root_getset,
    .tp_init = (initproc)root_init,
    .tp_new = PyType_GenericNew,
};

/* ---- CallSpan and the traced call's bookkeeping (_decorator._wrap's enter / leave) ---- */

static int
call_traverse(CallObject *self, visitproc visit, void *arg)
{
    PyObject **fields = &self->coro;
    for (int i = 0; i < N_CALL_FIELDS; i++) {
        Py_VISIT(fields[i]);
    }
    return 0;
}

static int
call_clear(CallObject *self)
{
    PyObject **fields = &self->coro;
    for (int i = 0; i < N_CALL_FIELDS; i++) {
        Py_CLEAR(fields[i]);
    }
    return 0;
}

static void
call_dealloc(CallObject *self)
{
    PyObject_GC_UnTrack(self);
    call_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
call_native(PyObject *self, void *closure)
{
    Py_RETURN_TRUE;
}

/* The span of a traced body (see _tracedbody.c) ends: ``failed``, with the exception being
 * handled.  Once only: ``fail()`` in the body's handler, then ``leave()`` in its finally. */
static PyObject *
call_end_body(CallObject *self, int failed)
{
    if (self->ended) {
        Py_RETURN_NONE;
    }
    self->ended = 1;
    if (!failed) {
        return leave_call((PyObject *)self, Py_None);
    }
    PyObject *call_status = t_coro_globals == NULL
                                ? NULL
                                : PyDict_GetItemWithError(t_coro_globals, s_call_status);
    if (call_status == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "asynctrace._core._coro.call_status is missing");
        }
        return NULL;
    }
    PyObject *exc = PyErr_GetHandledException();
    PyObject *status = PyObject_CallOneArg(call_status, exc == NULL ? Py_None : exc);
    Py_XDECREF(exc);
    if (status == NULL) {
        return NULL;
    }
    PyObject *r = leave_call((PyObject *)self, status);
    Py_DECREF(status);
    return r;
}

static PyObject *
call_leave_method(CallObject *self, PyObject *unused)
{
    return call_end_body(self, 0);
}

static PyObject *
call_fail_method(CallObject *self, PyObject *unused)
{
    return call_end_body(self, 1);
}

static PyMethodDef call_methods[] = {
    {"leave", (PyCFunction)call_leave_method, METH_NOARGS,
     PyDoc_STR("The traced body returned: its span ends now (once; see fail).")},
    {"fail", (PyCFunction)call_fail_method, METH_NOARGS,
     PyDoc_STR("The traced body raises the exception being handled: its span ends now.")},
    {NULL, NULL, 0, NULL},
};

/* A span that is already over: what a traced body's enter() gives while nothing records. */
static PyObject *closed_span;

/* The CallSpan of the traced body running now (the caller of a C function: its frame is the
 * body's, its generator the call's coroutine), or closed_span while nothing records or for an
 * ``info`` of None (a TracedBody unpickled elsewhere). */
PyObject *
_asynctrace_enter_body(PyObject *info)
{
    PyObject *active = t_coro_globals == NULL
                           ? NULL
                           : PyDict_GetItemWithError(t_coro_globals, s_active);
    if (active == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyFrameObject *frame = active == Py_True && info != Py_None ? PyEval_GetFrame() : NULL;
    PyObject *coro = frame == NULL ? NULL : PyFrame_GetGenerator(frame);
    if (coro == NULL) {
        return Py_NewRef(closed_span);
    }
    PyObject *span = enter_call(coro, info);
    Py_DECREF(coro);
    return span;
}

#define CALL_MEMBER(name, field) {name, T_OBJECT_EX, offsetof(CallObject, field), 0, NULL}
static PyMemberDef call_members[] = {
    CALL_MEMBER("_coro", coro),     CALL_MEMBER("_info", info),   CALL_MEMBER("_outer", outer),
    CALL_MEMBER("_parent", parent), CALL_MEMBER("_sid", sid),     CALL_MEMBER("_start", start),
    CALL_MEMBER("_track", track),   {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef call_getset[] = {
    {"_native", call_native, NULL, PyDoc_STR("Always True: a traced function is an async def."),
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asynctrace._speedups.CallSpan",
    .tp_basicsize = sizeof(CallObject),
    .tp_dealloc = (destructor)call_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PyDoc_STR("_coro.CallSpan in C: made by enter(), closed by leave()."),
    .tp_traverse = (traverseproc)call_traverse,
    .tp_clear = (inquiry)call_clear,
    .tp_methods = call_methods,
    .tp_members = call_members,
    .tp_getset = call_getset,
    .tp_new = PyType_GenericNew,
};

/* root.<name> (new reference): the member of a C root, else getattr. */
static PyObject *
root_get(PyObject *root, int is_c, PyObject *member, PyObject *name, int index)
{
    if (is_c) {
        PyObject *v = field((RootObject *)root, member, index);
        Py_XINCREF(v);
        return v;
    }
    return PyObject_GetAttr(root, name);
}

/* root.<name> = value (value borrowed); ``slot`` is the member of a C root, else NULL. */
static inline int
root_set(PyObject *root, PyObject **slot, PyObject *name, PyObject *value)
{
    if (slot != NULL) {
        Py_INCREF(value);
        Py_XSETREF(*slot, value);
        return 0;
    }
    return PyObject_SetAttr(root, name, value);
}
#define ROOT_SET(root, is_c, member, name, value) \
    root_set((root), (is_c) ? &((RootObject *)(root))->member : NULL, (name), (value))

/* enter(coro, info): open the span of a traced call that starts now (see _decorator._wrap).
 * The C form of _decorator._wrap_python's body between ``fn(...)`` and ``await coro``, with
 * the same reads of next_id and the clock, in the same order. */
static PyObject *
enter_call(PyObject *coro, PyObject *info)
{
    if (g_append == NULL || c_k_coro == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "asynctrace._speedups is not set up; call constants() and configure() "
                        "first (asynctrace._core._coro does on import)");
        return NULL;
    }
    PyObject *root;
    if (PyContextVar_Get(c_current_root, Py_None, &root) < 0) {
        return NULL;
    }
    CallObject *span = PyObject_GC_New(CallObject, &CallType);
    if (span == NULL) {
        Py_DECREF(root);
        return NULL;
    }
    memset(&span->coro, 0, sizeof(PyObject *) * N_CALL_FIELDS);
    span->frame_of = NULL;
    span->ended = 0;
    PyObject_GC_Track(span);
    Py_INCREF(coro);
    span->coro = coro;
    Py_INCREF(info);
    span->info = info;
    span->root = root; /* steals the reference */
    if (root == Py_None) {
        span->sid = next_seq();
        if (span->sid == NULL) {
            goto error;
        }
        PyObject *gather;
        if (PyContextVar_Get(c_current_gather, NULL, &gather) < 0) {
            goto error;
        }
        int truth = PyObject_IsTrue(gather);
        if (truth < 0) {
            Py_DECREF(gather);
            goto error;
        }
        if (truth) {
            span->parent = gather;
        }
        else {
            Py_DECREF(gather);
            Py_INCREF(g_run_sid);
            span->parent = g_run_sid;
        }
        Py_INCREF(g_run_sid);
        span->track = g_run_sid;
    }
    else {
        RootObject *r = (RootObject *)root;
        int is_c = PyObject_TypeCheck(root, &RootType);
        PyObject *outer = root_get(root, is_c, is_c ? r->top : NULL, s_top, I_TOP);
        if (outer == NULL) {
            goto error;
        }
        span->outer = outer;
        span->track = root_get(root, is_c, is_c ? r->track : NULL, s_track, 5);
        if (span->track == NULL) {
            goto error;
        }
        int merged = 0;
        if (outer == root) {
            /* outer is root and root._native and root._coro.cr_frame is this call's frame:
             * this call is the task's own coroutine, and the task span takes its name. */
            PyObject *native = root_get(root, is_c, is_c ? r->native : NULL, s_native, I_NATIVE);
            if (native == NULL) {
                goto error;
            }
            int truth = PyObject_IsTrue(native);
            Py_DECREF(native);
            if (truth < 0) {
                goto error;
            }
            if (truth) {
                PyObject *task_coro =
                    root_get(root, is_c, is_c ? r->coro : NULL, s_coro, I_CORO);
                if (task_coro == NULL) {
                    goto error;
                }
                PyObject *frame = coro_attr(task_coro, coro_get_frame, s_cr_frame);
                Py_DECREF(task_coro);
                if (frame == NULL) {
                    goto error;
                }
                merged = frame == (PyObject *)PyEval_GetFrame();
                Py_DECREF(frame);
            }
        }
        if (merged) {
            span->sid = root_get(root, is_c, is_c ? r->sid : NULL, s_sid, I_SID);
            if (span->sid == NULL || ROOT_SET(root, is_c, info, s_info, info) < 0 ||
                ROOT_SET(root, is_c, shown, s_shown, coro) < 0) {
                goto error;
            }
        }
        else {
            span->sid = next_seq();
            if (span->sid == NULL) {
                goto error;
            }
            span->parent = Py_IS_TYPE(outer, &CallType) ? ((CallObject *)outer)->sid
                           : outer == root && is_c     ? r->sid
                                                       : NULL;
            if (span->parent != NULL) {
                Py_INCREF(span->parent);
            }
            else {
                span->parent = PyObject_GetAttr(outer, s_sid);
                if (span->parent == NULL) {
                    goto error;
                }
            }
        }
        if (ROOT_SET(root, is_c, top, s_top, (PyObject *)span) < 0) {
            goto error;
        }
    }
    span->start = read_clock();
    if (span->start == NULL) {
        goto error;
    }
    return (PyObject *)span;
error:
    Py_DECREF(span);
    return NULL;
}

static PyObject *
call_enter(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "enter() takes 2 arguments (coro, info), got %zd", nargs);
        return NULL;
    }
    return enter_call(args[0], args[1]);
}

/* The traced call of ``span`` (a CallSpan) ends now; ``status`` is None or (status, type,
 * message).  The C form of _decorator._end. */
static PyObject *
leave_call(PyObject *call, PyObject *status)
{
    CallObject *span = (CallObject *)call;
    PyObject *root = span->root;
    if (root == NULL || span->sid == NULL || span->track == NULL || span->start == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "leave() got a CallSpan that enter() did not make");
        return NULL;
    }
    /* No await of this call reads its frame again.  Kept, the frame (whose locals hold this
     * span when a traced body made it) would outlive the coroutine with everything it held,
     * in a cycle only the garbage collector frees. */
    Py_CLEAR(span->frame);
    span->frame_of = NULL;
    if (root != Py_None) {
        int is_c = PyObject_TypeCheck(root, &RootType);
        if (span->outer == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "leave() got a CallSpan without _outer");
            return NULL;
        }
        if (ROOT_SET(root, is_c, top, s_top, span->outer) < 0) {
            return NULL;
        }
        PyObject *root_sid =
            root_get(root, is_c, is_c ? ((RootObject *)root)->sid : NULL, s_sid, I_SID);
        if (root_sid == NULL) {
            return NULL;
        }
        int same = PyObject_RichCompareBool(span->sid, root_sid, Py_EQ);
        Py_DECREF(root_sid);
        if (same < 0) {
            return NULL;
        }
        if (same) {
            Py_RETURN_NONE;
        }
    }
    if (span->parent == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "leave() got a CallSpan without _parent");
        return NULL;
    }
    PyObject *t = read_clock();
    if (t == NULL) {
        return NULL;
    }
    PyObject *seq = next_seq();
    if (seq == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    /* (K_CORO, sid, parent, track, start, end, end_seq, info, None, 0, status, None) */
    if (g_append_buf != NULL) { /* no tuple: the record's fields, in C */
        int r = _asynctrace_records_append_fields(g_append_buf, c_k_coro, span->sid,
                                                  span->parent, span->track, span->start, t,
                                                  seq, span->info, c_zero, status, Py_None, 1);
        Py_DECREF(t);
        Py_DECREF(seq);
        if (r < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *rec = PyTuple_New(12);
    if (rec == NULL) {
        Py_DECREF(t);
        Py_DECREF(seq);
        return NULL;
    }
    PyObject *items[12] = {c_k_coro, span->sid, span->parent, span->track, span->start, t,
                           seq, span->info, Py_None, c_zero, status, Py_None};
    for (int i = 0; i < 12; i++) {
        if (i != 5 && i != 6) {
            Py_INCREF(items[i]);
        }
        PyTuple_SET_ITEM(rec, i, items[i]); /* steals t and seq */
    }
    /* Untracked, so that collections while the program runs do not walk the records (on the
     * deep benchmark that is a tenth of the tracer's cost).  Safe: untracking only hides the
     * tuple's references from the collector, which then keeps what it holds; the only thing
     * here that can refer to other objects is the FnInfo, which lives as long as the traced
     * function, and a cycle through the record would need a user attribute of @trace that
     * refers to the recorder's list. */
    PyObject_GC_UnTrack(rec);
    int r = append_record(rec);
    Py_DECREF(rec);
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* leave(span, status): the traced call ends now (see leave_call). */
static PyObject *
call_leave(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !Py_IS_TYPE(args[0], &CallType)) {
        PyErr_SetString(PyExc_TypeError, "leave() takes 2 arguments: (a CallSpan, status)");
        return NULL;
    }
    return leave_call(args[0], args[1]);
}

/* ---- a task's start (_instrument._start_task) ---- */

/* Set by task_constants(): what start_task needs of _coro and _instrument. */
static PyObject *t_task_root;       /* _coro.TaskRoot */
static PyObject *t_python_start;    /* _instrument._start_task: the form with the OTel hook */
static PyObject *t_eager_task_name; /* _instrument._eager_task_name */
static PyObject *t_eager_ended;     /* _instrument.eager_ended */
static PyObject *t_instrument_globals; /* _instrument's __dict__: task_made, set by OTel */
static PyObject *t_partial;         /* functools.partial */
static unsigned long t_main_thread; /* _coro.MAIN_THREAD: a task started elsewhere is noted */

/* (parent span id, track) for a span starting now: _coro.current_parent().  New references
 * in *parent and *track, or -1. */
static int
current_parent(PyObject **parent, PyObject **track)
{
    PyObject *gather, *root;
    if (PyContextVar_Get(c_current_gather, NULL, &gather) < 0) {
        return -1;
    }
    if (PyContextVar_Get(c_current_root, Py_None, &root) < 0) {
        Py_DECREF(gather);
        return -1;
    }
    int gathering = PyObject_IsTrue(gather);
    if (gathering < 0) {
        goto error;
    }
    if (root == Py_None) {
        *parent = gathering ? Py_NewRef(gather) : Py_NewRef(g_run_sid);
        *track = Py_NewRef(g_run_sid);
    }
    else {
        int is_c = PyObject_TypeCheck(root, &RootType);
        *track = root_get(root, is_c, is_c ? ((RootObject *)root)->track : NULL, s_track, 5);
        if (*track == NULL) {
            goto error;
        }
        if (gathering) {
            *parent = Py_NewRef(gather);
        }
        else {
            PyObject *top =
                root_get(root, is_c, is_c ? ((RootObject *)root)->top : NULL, s_top, I_TOP);
            *parent = top == NULL                     ? NULL
                      : Py_IS_TYPE(top, &CallType) && ((CallObject *)top)->sid != NULL
                          ? Py_NewRef(((CallObject *)top)->sid)
                          : PyObject_GetAttr(top, s_sid);
            Py_XDECREF(top);
            if (*parent == NULL) {
                Py_CLEAR(*track);
                goto error;
            }
        }
    }
    Py_DECREF(gather);
    Py_DECREF(root);
    return 0;
error:
    Py_DECREF(gather);
    Py_DECREF(root);
    return -1;
}

/* In ``context``: current_root set to ``root``, current_gather to 0 if it is set (the
 * task's context MUST carry its own root and no gather).  What _start_task's
 * ``context.run(...)`` calls do, in one entering of the context. */
static int
set_task_context(PyObject *context, PyObject *root)
{
    if (PyContext_Enter(context) < 0) {
        return -1;
    }
    PyObject *token = PyContextVar_Set(c_current_root, root);
    int r = token == NULL ? -1 : 0;
    Py_XDECREF(token);
    if (r == 0) {
        PyObject *gather;
        r = PyContextVar_Get(c_current_gather, NULL, &gather);
        int truth = r < 0 ? -1 : PyObject_IsTrue(gather);
        Py_XDECREF(gather);
        if (truth > 0) {
            token = PyContextVar_Set(c_current_gather, c_zero);
            r = token == NULL ? -1 : 0;
            Py_XDECREF(token);
        }
        else {
            r = truth;
        }
    }
    if (PyContext_Exit(context) < 0) {
        return -1;
    }
    return r;
}

/* _coro.<name>(root), looked up at each call (a recorder rebinds it): 0, or -1 and an error. */
static int
call_coro_hook(PyObject *name, PyObject *root)
{
    PyObject *hook = PyDict_GetItemWithError(t_coro_globals, name);
    if (hook == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_RuntimeError, "asynctrace._core._coro has no %U", name);
        }
        return -1;
    }
    PyObject *result = PyObject_CallOneArg(hook, root);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* start_task(coro, kwargs, create, *leading): _instrument._start_task in C, the same reads of
 * next_id and the clock in the same order; with the OpenTelemetry hook on (task_made), that
 * Python form runs instead. */
static PyObject *
start_task(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 3 || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError,
                        "start_task() takes (coro, kwargs dict, create, *leading arguments)");
        return NULL;
    }
    if (t_task_root == NULL || c_current_root == NULL || g_run_sid == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "asynctrace._speedups is not set up; call constants(), configure() and "
                        "task_constants() first (asynctrace._core._instrument does on import)");
        return NULL;
    }
    PyObject *task_made = PyDict_GetItemWithError(t_instrument_globals, s_task_made);
    if (task_made == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (task_made != NULL && task_made != Py_None) {
        return PyObject_Vectorcall(t_python_start, args, nargs, NULL);
    }
    PyObject *coro = args[0], *kwargs = args[1], *create = args[2];
    PyObject *parent, *track;
    if (current_parent(&parent, &track) < 0) {
        return NULL;
    }
    Py_DECREF(track);
    PyObject *root_args[2] = {coro, parent};
    PyObject *root = PyObject_Vectorcall(t_task_root, root_args, 2, NULL);
    Py_DECREF(parent);
    if (root == NULL) {
        return NULL;
    }
    if (!PyObject_TypeCheck(root, &RootType)) {
        PyErr_Format(PyExc_TypeError, "task_constants() got task_root=%R; pass _coro.TaskRoot",
                     t_task_root);
        goto error;
    }
    RootObject *r = (RootObject *)root;
    if (call_coro_hook(s_track_root, root) < 0
        || (PyThread_get_thread_ident() != t_main_thread
            && call_coro_hook(s_note_thread, root) < 0)) {
        goto error;
    }
    /* An eager task (Python 3.12+) may end inside its creation: see _start_task. */
    PyObject *name = PyDict_GetItemWithError(kwargs, s_name);
    if (name == NULL && PyErr_Occurred()) {
        goto error;
    }
    PyObject *task_name = name == NULL || name == Py_None
                              ? Py_NewRef(t_eager_task_name)
                              : PyObject_CallFunctionObjArgs(t_partial, &PyUnicode_Type, name,
                                                             NULL);
    if (task_name == NULL) {
        goto error;
    }
    SET(r, task_name, task_name);
    PyObject *context = PyDict_GetItemWithError(kwargs, s_context);
    if (context == NULL && PyErr_Occurred()) {
        goto error;
    }
    if (context == NULL || context == Py_None) {
        context = PyContext_CopyCurrent();
        if (context == NULL) {
            goto error;
        }
        int stored = PyDict_SetItem(kwargs, s_context, context);
        Py_DECREF(context); /* kwargs holds it */
        if (stored < 0) {
            goto error;
        }
    }
    if (!PyContext_CheckExact(context)) {
        /* As _start_task's context.run(...): no such method, or (what has one) a TypeError */
        PyObject *run = PyObject_GetAttrString(context, "run");
        if (run != NULL) {
            Py_DECREF(run);
            PyErr_Format(PyExc_TypeError, "an instance of Context was expected, got %R",
                         context);
        }
        goto error;
    }
    Py_INCREF(context);
    int set = set_task_context(context, root);
    Py_DECREF(context);
    if (set < 0) {
        goto error;
    }
    /* task = create(*leading, root, **kwargs) */
    Py_ssize_t n_leading = nargs - 3;
    PyObject *small[8];
    PyObject **call_args = small;
    if (n_leading + 1 > 8) {
        call_args = PyMem_New(PyObject *, n_leading + 1);
        if (call_args == NULL) {
            PyErr_NoMemory();
            goto error;
        }
    }
    for (Py_ssize_t i = 0; i < n_leading; i++) {
        call_args[i] = args[3 + i];
    }
    call_args[n_leading] = root;
    PyObject *task = PyObject_VectorcallDict(create, call_args, n_leading + 1, kwargs);
    if (call_args != small) {
        PyMem_Free(call_args);
    }
    if (task == NULL) {
        goto error;
    }
    int failed;
    if (r->task_name != NULL && r->task_name != Py_None) { /* root._task_name = task.get_name */
        Py_INCREF(Py_None);
        SET(r, task_name, Py_None);
        Py_INCREF(task);
        Py_XSETREF(r->task, task);
        failed = 0;
    }
    else { /* it ended eagerly, its record written; a done task may forget its coroutine */
        failed = r->sid == NULL || PyObject_SetItem(t_eager_ended, task, r->sid) < 0;
    }
    Py_DECREF(root);
    if (failed) {
        Py_DECREF(task);
        return NULL;
    }
    return task;
error:
    Py_DECREF(root);
    return NULL;
}

static PyObject *
task_constants(PyObject *module, PyObject *args)
{
    PyObject *task_root, *python_start, *eager_task_name, *eager_ended, *coro_globals,
        *instrument_globals;
    if (!PyArg_UnpackTuple(args, "task_constants", 6, 6, &task_root, &python_start,
                           &eager_task_name, &eager_ended, &coro_globals, &instrument_globals)) {
        return NULL;
    }
    if (!PyType_Check(task_root) || !PyType_IsSubtype((PyTypeObject *)task_root, &RootType) ||
        !PyDict_Check(coro_globals) || !PyDict_Check(instrument_globals)) {
        PyErr_Format(PyExc_TypeError,
                     "task_constants() got task_root=%R and module globals of types %s, %s; "
                     "pass _coro.TaskRoot, vars(_coro) and vars(_instrument)",
                     task_root, Py_TYPE(coro_globals)->tp_name,
                     Py_TYPE(instrument_globals)->tp_name);
        return NULL;
    }
    if (t_partial == NULL) {
        PyObject *functools = PyImport_ImportModule("functools");
        t_partial = functools == NULL ? NULL : PyObject_GetAttrString(functools, "partial");
        Py_XDECREF(functools);
        if (t_partial == NULL) {
            return NULL;
        }
    }
    /* A subclass does not inherit am_send (up to Python 3.11 at least): TaskRoot gets it
     * here, so that its Task's steps take it. */
    PyTypeObject *root_type = (PyTypeObject *)task_root;
    if (root_type->tp_as_async != NULL && root_type->tp_as_async->am_send == NULL) {
        root_type->tp_as_async->am_send = (sendfunc)root_am_send;
        PyType_Modified(root_type);
    }
#define KEEP(var, value) \
    Py_INCREF(value);    \
    Py_XSETREF(var, value)
    KEEP(t_task_root, task_root);
    KEEP(t_python_start, python_start);
    KEEP(t_eager_task_name, eager_task_name);
    KEEP(t_eager_ended, eager_ended);
    KEEP(t_coro_globals, coro_globals);
    KEEP(t_instrument_globals, instrument_globals);
    PyObject *main_thread = PyDict_GetItemString(coro_globals, "MAIN_THREAD"); /* borrowed */
    if (main_thread == NULL || !PyLong_Check(main_thread)) {
        PyErr_SetString(PyExc_TypeError, "vars(_coro) MUST hold MAIN_THREAD, an int");
        return NULL;
    }
    t_main_thread = PyLong_AsUnsignedLong(main_thread);
    if (t_main_thread == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
#undef KEEP
    Py_RETURN_NONE;
}

/* ---- module functions ---- */

static int
is_list_append(PyObject *fn)
{
    return PyCFunction_Check(fn) && PyList_CheckExact(PyCFunction_GET_SELF(fn)) &&
           PyCFunction_GET_FUNCTION(fn) == list_append_meth;
}

/* The C reading of perf_counter agrees with time.perf_counter on this machine. */
static int
native_clock_agrees(void)
{
#if PY_VERSION_HEX >= 0x030D0000 || defined(__linux__)
    for (int attempt = 0; attempt < 3; attempt++) {
        PyObject *a = PyObject_CallNoArgs(perf_counter);
        g_clock_native = 1;
        PyObject *b = read_clock();
        g_clock_native = 0;
        PyObject *c = PyObject_CallNoArgs(perf_counter);
        int ok = a != NULL && b != NULL && c != NULL && PyFloat_Check(a) &&
                 PyFloat_Check(b) && PyFloat_Check(c) &&
                 PyFloat_AS_DOUBLE(a) <= PyFloat_AS_DOUBLE(b) &&
                 PyFloat_AS_DOUBLE(b) <= PyFloat_AS_DOUBLE(c);
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_XDECREF(c);
        if (PyErr_Occurred()) {
            return -1;
        }
        if (ok) {
            return 1;
        }
    }
#endif
    return 0;
}

/* The itertools.count whose bound __next__ ``fn`` is (new reference), else NULL. */
static PyObject *
counter_of(PyObject *fn)
{
    PyObject *owner = PyObject_GetAttrString(fn, "__self__");
    if (owner == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (!PyObject_TypeCheck(owner, count_type) || Py_TYPE(owner)->tp_iternext == NULL) {
        Py_DECREF(owner);
        return NULL;
    }
    PyObject *bound = PyObject_GetAttrString(owner, "__next__");
    int same = bound != NULL && Py_TYPE(bound) == Py_TYPE(fn) &&
               PyObject_RichCompareBool(bound, fn, Py_EQ) == 1;
    Py_XDECREF(bound);
    PyErr_Clear();
    if (!same) {
        Py_DECREF(owner);
        return NULL;
    }
    return owner;
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *append, *clock, *next_id, *threshold, *record_awaits, *run_sid;
    if (!PyArg_UnpackTuple(args, "configure", 6, 6, &append, &clock, &next_id, &threshold,
                           &record_awaits, &run_sid)) {
        return NULL;
    }
    double threshold_d = PyFloat_AsDouble(threshold);
    if (threshold_d == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    int record = PyObject_IsTrue(record_awaits);
    if (record < 0) {
        return NULL;
    }
    int native = 0;
    if (clock == perf_counter) {
        native = native_clock_agrees();
        if (native < 0) {
            return NULL;
        }
    }
    Py_INCREF(append);
    Py_XSETREF(g_append, append);
    PyObject *list = is_list_append(append) ? PyCFunction_GET_SELF(append) : NULL;
    Py_XINCREF(list);
    Py_XSETREF(g_append_list, list);
    PyObject *buf = _asynctrace_records_of_append(append);
    Py_XINCREF(buf);
    Py_XSETREF(g_append_buf, buf);
    Py_INCREF(clock);
    Py_XSETREF(g_clock, clock);
    g_clock_native = native;
    Py_INCREF(next_id);
    Py_XSETREF(g_next_id, next_id);
    Py_XSETREF(g_counter, counter_of(next_id));
    Py_INCREF(threshold);
    Py_XSETREF(g_threshold, threshold);
    g_threshold_d = threshold_d;
    g_threshold_is_float = PyFloat_CheckExact(threshold);
    g_record_awaits = record;
    Py_INCREF(run_sid);
    Py_XSETREF(g_run_sid, run_sid);
    Py_RETURN_NONE;
}

static PyObject *
constants(PyObject *module, PyObject *args)
{
    PyObject *sleep_code, *aenter_code, *not_started, *reduce_awaited, *k_await, *coro_type;
    PyObject *current_root, *current_gather, *k_coro, *k_task;
    if (!PyArg_UnpackTuple(args, "constants", 10, 10, &sleep_code, &aenter_code, &not_started,
                           &reduce_awaited, &k_await, &coro_type, &current_root,
                           &current_gather, &k_coro, &k_task)) {
        return NULL;
    }
    if (!PyContextVar_CheckExact(current_root) || !PyContextVar_CheckExact(current_gather)) {
        PyErr_Format(PyExc_TypeError,
                     "constants() got current_root=%R, current_gather=%R; pass the "
                     "contextvars.ContextVar objects of asynctrace._core._coro",
                     current_root, current_gather);
        return NULL;
    }
    if (!PyType_Check(coro_type)) {
        PyErr_Format(PyExc_TypeError,
                     "constants() got coroutine_type=%R; pass types.CoroutineType", coro_type);
        return NULL;
    }
#define KEEP(var, value) \
    Py_INCREF(value);    \
    Py_XSETREF(var, value)
    KEEP(c_sleep_code, sleep_code);
    KEEP(c_aenter_code, aenter_code);
    KEEP(c_not_started, not_started);
    KEEP(c_reduce_awaited, reduce_awaited);
    KEEP(c_k_await, k_await);
    KEEP(c_coroutine_type, coro_type);
    KEEP(c_current_root, current_root);
    KEEP(c_current_gather, current_gather);
    KEEP(c_k_coro, k_coro);
    KEEP(c_k_task, k_task);
#undef KEEP
    Py_RETURN_NONE;
}

static PyObject *
state(PyObject *module, PyObject *unused)
{
    /* What configure() left, for tests: (append, clock, native clock?, list fast path?, count fast path?). */
    return Py_BuildValue("(OOiii)", g_append ? g_append : Py_None, g_clock ? g_clock : Py_None,
                         g_clock_native, g_append_list != NULL, g_counter != NULL);
}

static PyObject *
native_clock(PyObject *module, PyObject *unused)
{
    /* The clock as send reads it when configured with time.perf_counter (for tests). */
    int saved = g_clock_native;
    PyObject *saved_clock = g_clock;
    g_clock_native = 1;
    g_clock = perf_counter;
    PyObject *r = read_clock();
    g_clock_native = saved;
    g_clock = saved_clock;
    return r;
}

static PyMethodDef module_methods[] = {
    {"configure_spans", _asynctrace_configure_spans, METH_VARARGS,
     PyDoc_STR("configure_spans(span_type, kinds): once, before link_spans (_cbuild.c).")},
    {"configure_build", _asynctrace_configure_build, METH_VARARGS,
     PyDoc_STR("configure_build(fn_info_type): once, before build_spans.")},
    {"build_spans", (PyCFunction)(void (*)(void))_asynctrace_build_spans, METH_FASTCALL,
     PyDoc_STR("build_spans(records, origin, codes, fallback, function_of, await_name_of, "
               "functions, await_names, spans): see _cbuild.c.")},
    {"link_spans", _asynctrace_link_spans, METH_O,
     PyDoc_STR("link_spans(spans) -> (ordered, by_id, forest) or None: Trace's links.")},
    {"critical_walk", _asynctrace_critical_walk, METH_VARARGS,
     PyDoc_STR("critical_walk(span, by_id, tasks, max_depth) -> path: see _ccritical.c.")},
    {"configure", configure, METH_VARARGS,
     PyDoc_STR("configure(append, clock, next_id, blocked_threshold, record_awaits): mirror "
               "the _coro globals; call whenever they are rebound.")},
    {"constants", constants, METH_VARARGS,
     PyDoc_STR("constants(sleep_code, aenter_code, not_started, reduce_awaited, k_await, "
               "coroutine_type): the _coro constants; call once at import.")},
    {"enter", (PyCFunction)(void (*)(void))call_enter, METH_FASTCALL,
     PyDoc_STR("enter(coro, info): the CallSpan of a traced call starting now.")},
    {"leave", (PyCFunction)(void (*)(void))call_leave, METH_FASTCALL,
     PyDoc_STR("leave(span, status): the traced call ends now; status None or a tuple.")},
    {"start_task", (PyCFunction)(void (*)(void))start_task, METH_FASTCALL,
     PyDoc_STR("start_task(coro, kwargs, create, *leading): _instrument._start_task in C.")},
    {"task_constants", task_constants, METH_VARARGS,
     PyDoc_STR("task_constants(task_root, python_start, eager_task_name, eager_ended, "
               "coro_globals, instrument_globals): once, before start_task.")},
    {"_state", state, METH_NOARGS, NULL},
    {"_native_clock", native_clock, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "asynctrace._speedups",
    PyDoc_STR("TaskRoot.send and the traced call's bookkeeping in C (optional accelerator of "
              "asynctrace._core._coro and asynctrace._core._decorator)."),
    -1,
    module_methods,
};

static int
intern_all(void)
{
    struct {
        PyObject **var;
        const char *text;
    } names[] = {
        {&s_blocked, "_blocked"}, {&s_finish, "_finish"},   {&s_coro, "_coro"},
        {&s_sid, "_sid"},         {&s_native, "_native"},   {&s_send, "send"},
        {&s_cr_frame, "cr_frame"}, {&s_cr_await, "cr_await"}, {&s_cr_code, "cr_code"},
        {&s_f_lasti, "f_lasti"},  {&s_f_locals, "f_locals"}, {&s_delay, "delay"},
        {&s_top, "_top"},         {&s_track, "_track"},     {&s_info, "_info"},
        {&s_shown, "_shown"},     {&s_qualname, "__qualname__"},
        {&s_track_root, "track_root"}, {&s_note_thread, "note_thread"},
        {&s_task_made, "task_made"}, {&s_name, "name"},
        {&s_context, "context"},  {&s_get_name, "get_name"},
        {&s_active, "active"},    {&s_call_status, "call_status"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].var = PyUnicode_InternFromString(names[i].text);
        if (*names[i].var == NULL) {
            return -1;
        }
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (intern_all() < 0 || PyType_Ready(&RootType) < 0 || PyType_Ready(&CallType) < 0 ||
        PyType_Ready(&EndedType) < 0 ||
        PyType_Ready(&_asynctrace_RecordsType) < 0 || PyType_Ready(&_asynctrace_RootsType) < 0 ||
        PyType_Ready(&_asynctrace_TracedBodyType) < 0) {
        return NULL;
    }
    _asynctrace_root_type = &RootType;
    _asynctrace_root_link_offset = offsetof(RootObject, link);
    coro_get_frame = coro_getter("cr_frame");
    coro_get_await = coro_getter("cr_await");
    coro_get_code = coro_getter("cr_code");
    coro_code_member = coro_get_code == NULL ? coro_member("cr_code") : NULL;
    c_zero = PyLong_FromLong(0);
    c_empty = PyUnicode_FromString("");
    if (c_zero == NULL || c_empty == NULL) {
        return NULL;
    }
    PyObject *time = PyImport_ImportModule("time");
    if (time == NULL) {
        return NULL;
    }
    perf_counter = PyObject_GetAttrString(time, "perf_counter");
    Py_DECREF(time);
    if (perf_counter == NULL) {
        return NULL;
    }
    PyObject *itertools = PyImport_ImportModule("itertools");
    if (itertools == NULL) {
        return NULL;
    }
    count_type = (PyTypeObject *)PyObject_GetAttrString(itertools, "count");
    Py_DECREF(itertools);
    if (count_type == NULL) {
        return NULL;
    }
    if (!PyType_Check(count_type)) {
        PyErr_SetString(PyExc_TypeError, "itertools.count is not a type");
        return NULL;
    }
    /* list.append's C function, to call PyList_Append for a bound list.append. */
    PyObject *list = PyList_New(0);
    PyObject *bound = list ? PyObject_GetAttrString(list, "append") : NULL;
    Py_XDECREF(list);
    if (bound == NULL) {
        return NULL;
    }
    list_append_meth = PyCFunction_GET_FUNCTION(bound);
    Py_DECREF(bound);
    CallObject *closed = PyObject_GC_New(CallObject, &CallType);
    if (closed == NULL) {
        return NULL;
    }
    memset(&closed->coro, 0, sizeof(PyObject *) * N_CALL_FIELDS);
    closed->frame_of = NULL;
    closed->ended = 1;
    closed_span = (PyObject *)closed;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    struct {
        const char *name;
        PyTypeObject *type;
    } types[] = {
        {"TaskRootBase", &RootType},
        {"CallSpan", &CallType},
        {"EndedTask", &EndedType},
        {"Records", &_asynctrace_RecordsType},
        {"Roots", &_asynctrace_RootsType},
        {"TracedBody", &_asynctrace_TracedBodyType},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        Py_INCREF(types[i].type);
        if (PyModule_AddObject(module, types[i].name, (PyObject *)types[i].type) < 0) {
            Py_DECREF(types[i].type);
            Py_DECREF(module);
            return NULL;
        }
    }
    return module;
}
