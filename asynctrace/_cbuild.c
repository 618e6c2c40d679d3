/* The span builder's loop in C: the recorder's C records (_records.c) to Span objects, with
 * no tuple made per record.  Compiled into the _speedups extension; _build.py's SpanBuilder
 * calls it, and keeps the pure-Python loop that gives the same spans (SpanBuilder._span).
 *
 * Problem: building a span in Python costs about 2 us (the record read as a 12-tuple, a
 * dict of attributes, a dataclass __init__ with 12 arguments, the await's name and line
 * looked up in Python dicts): 22,000 spans took 60 ms, more than the whole run they describe.
 *
 * Solution: for the records that make nearly every span (an await of a float delay or of a
 * coroutine's code, a task's end, a traced call's end, each with no error) the span is
 * allocated and its slots are filled here; its line comes from PyCode_Addr2Line, its name
 * and its function's attributes from caches that Python fills on a miss (the callbacks
 * below).  Every other record (an error or a cancellation, a gather, a thread job, an
 * await of a task or a future, a record stored as a tuple) goes to ``fallback``,
 * the Python builder of one record, in record order.
 *
 * build_spans(records, origin, codes, fallback, function_of, await_name_of, functions,
 *             await_names, spans)
 *   records: a _speedups.Records (the builder's own copy); origin: subtracted from times;
 *   codes: span id -> code object (read, and filled with the code of every task and call);
 *   fallback(record): builds one record's span in Python and files it itself;
 *   function_of(what) -> (name, attributes): a task's or call's name and attributes;
 *   await_name_of(what) -> str | None: the name of an await of a float delay or a code
 *       object; None: Python builds that await (to_thread, wait_for: named from others);
 *   functions, await_names: the caches of those two (dicts, kept by the caller);
 *   spans: span id -> Span, filled in record order.
 * configure_spans(span_type, kinds) and configure_build(fn_info_type) once, first (_spans.py
 * and _build.py, at import).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_records.h"
#include "_spanslots.h"

enum { K_TASK = 1, K_CORO = 2, K_AWAIT = 4 };

Py_ssize_t _asynctrace_span_offsets[N_FIELDS];
PyTypeObject *_asynctrace_span_type;
static PyObject *kinds;           /* KINDS: the kind's name by its number */
static PyObject *fn_info_type;    /* _coro.FnInfo: its .code is a call's code */
static PyObject *s_ok, *s_code, *s_file, *s_line, *s_awaited, *s_task_name;

PyObject *
_asynctrace_configure_spans(PyObject *module, PyObject *args)
{
    PyObject *type, *kinds_arg;
    if (!PyArg_ParseTuple(args, "O!O!:configure_spans", &PyType_Type, &type, &PyTuple_Type,
                          &kinds_arg)) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(kinds_arg) <= K_AWAIT) {
        PyErr_SetString(PyExc_ValueError, "configure_spans: too few kinds");
        return NULL;
    }
    if (learn_span_offsets((PyTypeObject *)type, _asynctrace_span_offsets) < 0) {
        return NULL;
    }
    if (s_ok == NULL) {
        s_ok = PyUnicode_InternFromString("ok");
        s_code = PyUnicode_InternFromString("code");
        s_file = PyUnicode_InternFromString("code.file.path");
        s_line = PyUnicode_InternFromString("code.line.number");
        s_awaited = PyUnicode_InternFromString("asynctrace.awaited");
        s_task_name = PyUnicode_InternFromString("asynctrace.task.name");
        if (!s_ok || !s_code || !s_file || !s_line || !s_awaited || !s_task_name) {
            return NULL;
        }
    }
    Py_INCREF(type);
    Py_XSETREF(_asynctrace_span_type, (PyTypeObject *)type);
    Py_INCREF(kinds_arg);
    Py_XSETREF(kinds, kinds_arg);
    Py_RETURN_NONE;
}

PyObject *
_asynctrace_configure_build(PyObject *module, PyObject *args)
{
    PyObject *fn_info;
    if (!PyArg_ParseTuple(args, "O:configure_build", &fn_info)) {
        return NULL;
    }
    Py_INCREF(fn_info);
    Py_XSETREF(fn_info_type, fn_info);
    Py_RETURN_NONE;
}

/* A new Span with its slots set; steals the references of ``values`` (NULLs: failure). */
static PyObject *
new_span(PyObject *values[N_FIELDS - 2])
{
    PyObject *span = NULL;
    int failed = 0;
    for (int i = 0; i < N_FIELDS - 2; i++) {
        failed |= values[i] == NULL;
    }
    PyObject *children = failed ? NULL : PyList_New(0);
    if (children != NULL) {
        span = _asynctrace_span_type->tp_alloc(_asynctrace_span_type, 0);
    }
    if (span == NULL) {
        for (int i = 0; i < N_FIELDS - 2; i++) {
            Py_XDECREF(values[i]);
        }
        Py_XDECREF(children);
        return NULL;
    }
    for (int i = 0; i < N_FIELDS - 2; i++) {
        SLOT(span, i) = values[i];
    }
    SLOT(span, F_PARENT) = Py_NewRef(Py_None);
    SLOT(span, F_CHILDREN) = children;
    return span;
}

/* The code of a task's or call's ``what`` (borrowed), or NULL: none (no error set). */
static PyObject *
code_of(PyObject *what, PyObject **owned)
{
    *owned = NULL;
    if (PyCode_Check(what)) {
        return what;
    }
    if ((PyObject *)Py_TYPE(what) == fn_info_type) {
        *owned = PyObject_GetAttr(what, s_code);
        if (*owned == NULL) {
            PyErr_Clear();
            return NULL;
        }
        return PyCode_Check(*owned) ? *owned : NULL;
    }
    return NULL;
}

/* ``cache[key]``, or ``make(key)`` kept in it (a new reference; NULL on error).  An
 * unhashable key is made every time. */
static PyObject *
cached(PyObject *cache, PyObject *key, PyObject *make)
{
    PyObject *found = PyDict_GetItemWithError(cache, key);
    if (found != NULL) {
        return Py_NewRef(found);
    }
    int unhashable = 0;
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
            return NULL;
        }
        PyErr_Clear();
        unhashable = 1;
    }
    PyObject *made = PyObject_CallOneArg(make, key);
    if (made != NULL && !unhashable && PyDict_SetItem(cache, key, made) < 0) {
        Py_CLEAR(made);
    }
    return made;
}

/* The line of byte offset ``lasti`` in ``code``: its first line when the offset has none. */
static PyObject *
line_of(PyObject *code, PyObject *lasti_obj)
{
    PyCodeObject *co = (PyCodeObject *)code;
    long lasti = PyLong_AsLong(lasti_obj);
    if (lasti == -1 && PyErr_Occurred()) {
        return NULL;
    }
    /* Py_SIZE of a code object counts its code units (2 bytes each) from 3.11 on. */
    int line = -1;
    if (lasti >= 0 && lasti < Py_SIZE(co) * 2) {
        line = PyCode_Addr2Line(co, (int)lasti);
    }
    return PyLong_FromLong(line < 0 ? co->co_firstlineno : line);
}

/* Awaits at one place awaiting one thing have equal attributes: each is a copy of the first
 * one's dict, found again by (parent's code, offset, what).  The objects compared by address
 * are held by the records being built, so no address is reused meanwhile. */
#define PLACES 256
typedef struct {
    PyObject *code, *what; /* borrowed: the key, with the offset */
    long lasti;
    PyObject *attrs;               /* owned: code.file.path, code.line.number, awaited */
    PyObject *name;                /* borrowed from attrs */
} Place;

typedef struct {
    double origin;
    PyObject *codes, *fallback, *function_of, *await_name_of, *functions, *await_names;
    PyObject *spans;
    Place places[PLACES];
} Build;

/* The attributes of awaits at ``code``'s ``lasti`` on ``what``, named ``name`` (new). */
static PyObject *
await_attributes(PyObject *code, PyObject *lasti, PyObject *name)
{
    PyObject *line = line_of(code, lasti);
    PyObject *attrs = line == NULL ? NULL : PyDict_New();
    if (attrs != NULL &&
        (PyDict_SetItem(attrs, s_file, ((PyCodeObject *)code)->co_filename) < 0 ||
         PyDict_SetItem(attrs, s_line, line) < 0 || PyDict_SetItem(attrs, s_awaited, name) < 0)) {
        Py_CLEAR(attrs);
    }
    Py_XDECREF(line);
    return attrs;
}

/* The attributes and name of an await whose name C can give; 0 when Python builds it. */
static int
await_parts(Build *b, const Entry *e, PyObject *parent_id, PyObject **attrs, PyObject **name)
{
    PyObject *what = e->what;
    if (!(PyFloat_CheckExact(what) || PyCode_Check(what))) {
        return 0;
    }
    if (PyFloat_CheckExact(what) && PyFloat_AS_DOUBLE(what) == 0.0 &&
        copysign(1.0, PyFloat_AS_DOUBLE(what)) < 0) {
        return 0; /* -0.0 is equal to 0.0 as a key, but named "-0" */
    }
    PyObject *code = PyDict_GetItemWithError(b->codes, parent_id);
    if (code == NULL) {
        return PyErr_Occurred() ? -1 : 0; /* no code: under an adoption mark */
    }
    long lasti = PyLong_AsLong(e->lasti);
    if (lasti == -1 && PyErr_Occurred()) {
        return -1;
    }
    size_t slot = (((size_t)code >> 4) ^ (size_t)lasti * 31 ^ ((size_t)what >> 4) * 17) % PLACES;
    Place *place = &b->places[slot];
    if (place->attrs == NULL || place->code != code || place->lasti != lasti ||
        place->what != what) {
        PyObject *found = cached(b->await_names, what, b->await_name_of);
        if (found == NULL) {
            return -1;
        }
        if (found == Py_None) {
            Py_DECREF(found);
            return 0;
        }
        PyObject *made = await_attributes(code, e->lasti, found);
        Py_DECREF(found);
        if (made == NULL) {
            return -1;
        }
        Py_XSETREF(place->attrs, made);
        place->code = code;
        place->lasti = lasti;
        place->what = what;
        place->name = PyDict_GetItemWithError(made, s_awaited);
        if (place->name == NULL) {
            Py_CLEAR(place->attrs);
            return -1;
        }
    }
    *attrs = PyDict_Copy(place->attrs);
    if (*attrs == NULL) {
        return -1;
    }
    *name = Py_NewRef(place->name);
    return 1;
}

/* The attributes and name of a task or a call; 0 when Python builds it. */
static int
function_parts(Build *b, const Entry *e, long kind, PyObject **attrs, PyObject **name)
{
    PyObject *fn = cached(b->functions, e->what, b->function_of);
    if (fn == NULL) {
        return -1;
    }
    if (!PyTuple_CheckExact(fn) || PyTuple_GET_SIZE(fn) != 2 ||
        !PyDict_CheckExact(PyTuple_GET_ITEM(fn, 1))) {
        Py_DECREF(fn);
        PyErr_SetString(PyExc_TypeError, "function_of() MUST return (name, attributes)");
        return -1;
    }
    *name = Py_NewRef(PyTuple_GET_ITEM(fn, 0));
    *attrs = PyDict_Copy(PyTuple_GET_ITEM(fn, 1));
    Py_DECREF(fn);
    if (*attrs == NULL || (kind == K_TASK && PyDict_SetItem(*attrs, s_task_name, e->extra) < 0)) {
        Py_CLEAR(*name);
        Py_CLEAR(*attrs);
        return -1;
    }
    return 1;
}

/* Build the span of one stored-by-fields record: 1 done, 0 for Python, -1 error. */
static int
build_one(Build *b, const Entry *e)
{
    if (e->status != Py_None) {
        return 0;
    }
    long kind = PyLong_AsLong(e->kind);
    if (kind == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (kind != K_AWAIT && kind != K_TASK && kind != K_CORO) {
        return 0;
    }
    PyObject *sid = PyLong_FromLongLong(e->sid);
    PyObject *parent = PyLong_FromLongLong(e->parent);
    if (sid == NULL || parent == NULL) {
        Py_XDECREF(sid);
        Py_XDECREF(parent);
        return -1;
    }
    PyObject *attrs = NULL, *name = NULL;
    int made = kind == K_AWAIT ? await_parts(b, e, parent, &attrs, &name)
                               : function_parts(b, e, kind, &attrs, &name);
    if (made <= 0) {
        Py_DECREF(sid);
        Py_DECREF(parent);
        return made;
    }
    PyObject *values[N_FIELDS - 2] = {
        Py_NewRef(sid),
        parent,
        Py_NewRef(PyTuple_GET_ITEM(kinds, kind)),
        name,
        PyFloat_FromDouble(e->start - b->origin),
        PyFloat_FromDouble(e->end - b->origin),
        /* a task's row is its own; an await's or call's, often its parent's: one object */
        e->track == e->sid      ? Py_NewRef(sid)
        : e->track == e->parent ? Py_NewRef(parent)
                                : PyLong_FromLongLong(e->track),
        Py_NewRef(s_ok),
        Py_NewRef(Py_None),
        attrs,
        Py_NewRef(sid),
        PyLong_FromLongLong(e->end_seq),
    };
    PyObject *span = new_span(values);
    int r = span == NULL ? -1 : PyDict_SetItem(b->spans, sid, span);
    Py_XDECREF(span);
    Py_DECREF(sid);
    return r < 0 ? -1 : 1;
}

/* Fill ``codes`` with the code of every task and call among the entries. */
static int
note_codes(Build *b, const Entry *entries, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        const Entry *e = &entries[i];
        PyObject *kind_obj = e->rec != NULL ? PyTuple_GET_ITEM(e->rec, 0) : e->kind;
        long kind = PyLong_AsLong(kind_obj);
        if (kind == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (kind != K_TASK && kind != K_CORO) {
            continue;
        }
        PyObject *what = e->rec != NULL ? PyTuple_GET_ITEM(e->rec, 7) : e->what;
        PyObject *owned;
        PyObject *code = code_of(what, &owned);
        int r = 0;
        if (code != NULL) {
            PyObject *sid = e->rec != NULL ? Py_NewRef(PyTuple_GET_ITEM(e->rec, 1))
                                           : PyLong_FromLongLong(e->sid);
            r = sid == NULL ? -1 : PyDict_SetItem(b->codes, sid, code);
            Py_XDECREF(sid);
        }
        Py_XDECREF(owned);
        if (r < 0) {
            return -1;
        }
    }
    return 0;
}

PyObject *
_asynctrace_build_spans(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (_asynctrace_span_type == NULL || fn_info_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_spans() and configure_build() first");
        return NULL;
    }
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "build_spans() takes 9 arguments");
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], &_asynctrace_RecordsType) || !PyDict_Check(args[2]) ||
        !PyDict_Check(args[6]) || !PyDict_Check(args[7]) || !PyDict_Check(args[8])) {
        PyErr_SetString(PyExc_TypeError,
                        "build_spans(Records, float, dict, f, f, f, dict, dict, dict)");
        return NULL;
    }
    Build *b = PyMem_Calloc(1, sizeof(Build));
    if (b == NULL) {
        return PyErr_NoMemory();
    }
    b->origin = PyFloat_AsDouble(args[1]);
    b->codes = args[2];
    b->fallback = args[3];
    b->function_of = args[4];
    b->await_name_of = args[5];
    b->functions = args[6];
    b->await_names = args[7];
    b->spans = args[8];
    if (b->origin == -1.0 && PyErr_Occurred()) {
        PyMem_Free(b);
        return NULL;
    }
    RecordsObject *records = (RecordsObject *)args[0];
    Py_ssize_t n = records->len;
    /* A snapshot: a callback's Python code may let another thread change ``records``. */
    Entry *entries = _asynctrace_records_snapshot(records, 0, n, 1);
    if (entries == NULL) {
        PyMem_Free(b);
        return NULL;
    }
    int failed = note_codes(b, entries, n) < 0;
    for (Py_ssize_t i = 0; !failed && i < n; i++) {
        const Entry *e = &entries[i];
        int done = e->rec != NULL ? 0 : build_one(b, e);
        if (done == 0) {
            PyObject *rec = _asynctrace_entry_tuple(e);
            PyObject *result = rec == NULL ? NULL : PyObject_CallOneArg(b->fallback, rec);
            Py_XDECREF(rec);
            done = result == NULL ? -1 : 1;
            Py_XDECREF(result);
        }
        failed = done < 0;
    }
    for (int i = 0; i < PLACES; i++) {
        Py_XDECREF(b->places[i].attrs);
    }
    PyMem_Free(b);
    _asynctrace_entries_release(entries, n);
    PyMem_Free(entries);
    if (failed) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* link_spans(spans) -> (ordered, by_id, forest) or None.
 *
 * What Trace.__init__ does with a list of Span objects, in C: ``ordered`` is the spans sorted
 * by (start, start_seq), stably; ``by_id`` maps span_id to the last span with it; each span's
 * ``children`` are new lists holding its children in that order and its ``parent`` the span
 * of its ``parent_id`` (None when absent).  ``forest`` is True when every span's parent comes
 * before it in the order: no cycle can then exist (else the caller looks for cycles).  None:
 * ``spans`` not a list, a span that is not exactly a Span, a start that is not a float or is NaN, or a start_seq
 * that is not an int: the caller does it in Python. */
typedef struct {
    double start;
    long long seq;
    Py_ssize_t index;
    PyObject *span;
} Order;

static int
order_cmp(const void *a, const void *b)
{
    const Order *x = a, *y = b;
    if (x->start != y->start) {
        return x->start < y->start ? -1 : 1;
    }
    if (x->seq != y->seq) {
        return x->seq < y->seq ? -1 : 1;
    }
    return x->index < y->index ? -1 : (x->index > y->index);
}

static void
set_slot(PyObject *span, int field, PyObject *value)
{
    PyObject *old = SLOT(span, field);
    SLOT(span, field) = value; /* a new reference */
    Py_XDECREF(old);
}

PyObject *
_asynctrace_link_spans(PyObject *module, PyObject *spans)
{
    if (_asynctrace_span_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_spans() MUST be called first");
        return NULL;
    }
    if (!PyList_Check(spans)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyList_GET_SIZE(spans);
    Order *order = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(Order));
    if (order == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *span = PyList_GET_ITEM(spans, i);
        PyObject *start = Py_TYPE(span) == _asynctrace_span_type ? SLOT(span, F_START) : NULL;
        PyObject *seq = start != NULL ? SLOT(span, F_START_SEQ) : NULL;
        int overflow = 0;
        if (start == NULL || seq == NULL || !PyFloat_CheckExact(start) ||
            Py_IS_NAN(PyFloat_AS_DOUBLE(start)) || !PyLong_CheckExact(seq) ||
            SLOT(span, F_PARENT_ID) == NULL || SLOT(span, F_SPAN_ID) == NULL) {
            PyMem_Free(order);
            Py_RETURN_NONE;
        }
        order[i].seq = PyLong_AsLongLongAndOverflow(seq, &overflow);
        if (overflow) {
            PyMem_Free(order);
            Py_RETURN_NONE;
        }
        order[i].start = PyFloat_AS_DOUBLE(start);
        order[i].index = i;
        order[i].span = span;
    }
    qsort(order, (size_t)n, sizeof(Order), order_cmp);
    PyObject *ordered = PyList_New(n);
    PyObject *by_id = PyDict_New();
    int failed = ordered == NULL || by_id == NULL;
    for (Py_ssize_t i = 0; !failed && i < n; i++) {
        PyObject *span = order[i].span;
        PyList_SET_ITEM(ordered, i, Py_NewRef(span));
        failed = PyDict_SetItem(by_id, SLOT(span, F_SPAN_ID), span) < 0;
        /* New lists of children; an empty exact list (a new span's) is kept as it is. */
        PyObject *children = SLOT(span, F_CHILDREN);
        if (!failed && !(children != NULL && PyList_CheckExact(children) &&
                         PyList_GET_SIZE(children) == 0)) {
            children = PyList_New(0);
            failed = children == NULL;
            if (children != NULL) {
                set_slot(span, F_CHILDREN, children);
            }
        }
    }
    int forest = 1;
    for (Py_ssize_t i = 0; !failed && i < n; i++) {
        PyObject *span = order[i].span;
        PyObject *parent_id = SLOT(span, F_PARENT_ID);
        PyObject *parent = NULL;
        if (parent_id != Py_None) {
            parent = PyDict_GetItemWithError(by_id, parent_id);
            if (parent == NULL && PyErr_Occurred()) {
                failed = 1;
                break;
            }
        }
        set_slot(span, F_PARENT, Py_NewRef(parent != NULL ? parent : Py_None));
        if (parent != NULL) {
            failed = PyList_Append(SLOT(parent, F_CHILDREN), span) < 0;
            /* before its child in the order, strictly by key (a tie: let Python look) */
            double start = PyFloat_AS_DOUBLE(SLOT(parent, F_START));
            long long seq = PyLong_AsLongLong(SLOT(parent, F_START_SEQ));
            forest &= start < order[i].start || (start == order[i].start && seq < order[i].seq);
        }
    }
    PyMem_Free(order);
    if (failed) {
        Py_XDECREF(ordered);
        Py_XDECREF(by_id);
        return NULL;
    }
    PyObject *result = Py_BuildValue("(NNO)", ordered, by_id, forest ? Py_True : Py_False);
    return result;
}
