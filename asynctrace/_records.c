/* asynctrace._speedups.Records: the recorder's record list, with await records kept as C
 * structs; and Roots, its task roots held without a reference (below).  Compiled into the _speedups
 * extension; see _speedups.c for the hot path.
 *
 * Problem: an await record as a 12-tuple costs an object allocation on every await, and each
 * GC-tracked allocation counts toward the next collection even when the tuple is untracked at
 * once: on a fanout of 2,000 tasks the records alone triple the collections.
 *
 * Solution: a list-like object whose entries are structs.  An await record and a task's end
 * record appended by the C send, and a traced call's record appended by the C leave(), is
 * stored by its fields (ids as
 * C integers, times as C doubles): no object is made.  Any other record (and one whose fields
 * are not exact ints and floats, e.g. under a test's integer clock) is stored as the tuple it
 * is.  Reading (index, slice, iteration) turns an
 * entry into the same tuple the Python path appends, equal field for field.  The readers use
 * only len(), indexing, slices, iteration, append and ``del`` of a slice, which this type
 * gives with a list's meaning.
 *
 * Threads: the loop thread appends while the flusher thread reads and deletes (and the loop
 * thread may read a snapshot of the trace meanwhile).  Every method is one run of C under the
 * GIL, except that making a tuple may run a collection (and with it a finalizer's Python
 * code, which may let another thread run): readers first copy the entries they read, holding
 * their objects, and ``del`` detaches what it drops before releasing it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_records.h"

PyTypeObject _asynctrace_RecordsType;

static int
push(RecordsObject *self, const Entry *entry)
{
    if (self->len == self->cap) {
        Py_ssize_t cap = self->cap < 1024 ? 1024 : self->cap + (self->cap >> 1);
        if ((size_t)cap > PY_SSIZE_T_MAX / sizeof(Entry)) {
            PyErr_NoMemory();
            return -1;
        }
        Entry *items = PyMem_Realloc(self->items, (size_t)cap * sizeof(Entry));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->items = items;
        self->cap = cap;
    }
    self->items[self->len++] = *entry;
    return 0;
}

/* Append ``rec`` (any record) as it is. */
int
_asynctrace_records_append(PyObject *self, PyObject *rec)
{
    Entry entry = {rec, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0.0, 0.0, 0};
    if (push((RecordsObject *)self, &entry) < 0) {
        return -1;
    }
    Py_INCREF(rec);
    return 0;
}

/* An exact int that fits a long long: 1 with *out set, else 0. */
static int
as_id(PyObject *v, long long *out)
{
    if (!PyLong_CheckExact(v)) {
        return 0;
    }
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(v, &overflow);
    return !overflow && !(*out == -1 && PyErr_Occurred());
}

/* (kind, sid, parent, track, start, end, end_seq, what, None, lasti, status, extra), the shape
 * of an await, a traced call and a task's end: as fields when the ids are exact ints and the times exact
 * floats, else as that tuple.  ``untrack``: the tuple, when made, is untracked by the garbage
 * collector (see _speedups.c).  The arguments are borrowed. */
int
_asynctrace_records_append_fields(PyObject *self, PyObject *kind, PyObject *sid,
                                  PyObject *parent, PyObject *track, PyObject *start,
                                  PyObject *end, PyObject *end_seq, PyObject *what,
                                  PyObject *lasti, PyObject *status, PyObject *extra,
                                  int untrack)
{
    Entry e;
    e.rec = NULL;
    e.untrack = untrack;
    if (PyFloat_CheckExact(start) && PyFloat_CheckExact(end) && as_id(sid, &e.sid) &&
        as_id(parent, &e.parent) && as_id(track, &e.track) && as_id(end_seq, &e.end_seq)) {
        e.start = PyFloat_AS_DOUBLE(start);
        e.end = PyFloat_AS_DOUBLE(end);
        e.kind = kind;
        e.what = what;
        e.lasti = lasti;
        e.status = status;
        e.extra = extra;
        if (push((RecordsObject *)self, &e) < 0) {
            return -1;
        }
        Py_INCREF(kind);
        Py_INCREF(what);
        Py_INCREF(lasti);
        Py_INCREF(status);
        Py_INCREF(extra);
        return 0;
    }
    PyObject *rec = PyTuple_Pack(12, kind, sid, parent, track, start, end, end_seq, what,
                                 Py_None, lasti, status, extra);
    if (rec == NULL) {
        return -1;
    }
    if (untrack) {
        PyObject_GC_UnTrack(rec);
    }
    int r = _asynctrace_records_append(self, rec);
    Py_DECREF(rec);
    return r;
}

/* The record of ``e`` as a tuple (new reference); ``e`` holds references of its own. */
PyObject *
_asynctrace_entry_tuple(const Entry *e)
{
    if (e->rec != NULL) {
        Py_INCREF(e->rec);
        return e->rec;
    }
    PyObject *rec = PyTuple_New(12);
    if (rec == NULL) {
        return NULL;
    }
    PyObject *fields[12] = {
        e->kind,
        PyLong_FromLongLong(e->sid),
        PyLong_FromLongLong(e->parent),
        PyLong_FromLongLong(e->track),
        PyFloat_FromDouble(e->start),
        PyFloat_FromDouble(e->end),
        PyLong_FromLongLong(e->end_seq),
        e->what,
        Py_None,
        e->lasti,
        e->status,
        e->extra,
    };
    int failed = 0;
    for (int i = 0; i < 12; i++) {
        if (fields[i] == NULL) {
            failed = 1;
            continue;
        }
        if (i == 0 || i >= 7) { /* the objects, and None */
            Py_INCREF(fields[i]);
        }
        PyTuple_SET_ITEM(rec, i, fields[i]);
    }
    if (failed) {
        Py_DECREF(rec);
        return NULL;
    }
    if (e->untrack) {
        PyObject_GC_UnTrack(rec);
    }
    return rec;
}

void
_asynctrace_entries_release(Entry *entries, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(entries[i].rec);
        Py_XDECREF(entries[i].kind);
        Py_XDECREF(entries[i].what);
        Py_XDECREF(entries[i].lasti);
        Py_XDECREF(entries[i].status);
        Py_XDECREF(entries[i].extra);
    }
}

/* Copy entries [start, start + n * step) and hold their objects: a snapshot that no other
 * thread's append or del can change, taken without allocating a Python object (so without a
 * collection, and without a switch of threads).  NULL on failure. */
Entry *
_asynctrace_records_snapshot(RecordsObject *self, Py_ssize_t start, Py_ssize_t n,
                             Py_ssize_t step)
{
    Entry *copy = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(Entry));
    if (copy == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        Entry *e = &copy[k];
        *e = self->items[start + k * step];
        Py_XINCREF(e->rec);
        Py_XINCREF(e->kind);
        Py_XINCREF(e->what);
        Py_XINCREF(e->lasti);
        Py_XINCREF(e->status);
        Py_XINCREF(e->extra);
    }
    return copy;
}

/* Entries [start, start + n * step) as a list of tuples (the threads note above). */
static PyObject *
records_list(RecordsObject *self, Py_ssize_t start, Py_ssize_t n, Py_ssize_t step)
{
    Entry *copy = _asynctrace_records_snapshot(self, start, n, step);
    if (copy == NULL) {
        return NULL;
    }
    PyObject *list = PyList_New(n);
    for (Py_ssize_t k = 0; list != NULL && k < n; k++) {
        PyObject *rec = _asynctrace_entry_tuple(&copy[k]);
        if (rec == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, k, rec);
    }
    _asynctrace_entries_release(copy, n);
    PyMem_Free(copy);
    return list;
}

static Py_ssize_t
records_length(RecordsObject *self)
{
    return self->len;
}

static PyObject *
records_subscript(RecordsObject *self, PyObject *key)
{
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (i < 0) {
            i += self->len;
        }
        if (i < 0 || i >= self->len) {
            PyErr_SetString(PyExc_IndexError, "record index out of range");
            return NULL;
        }
        PyObject *one = records_list(self, i, 1, 1);
        PyObject *rec = one == NULL ? NULL : Py_NewRef(PyList_GET_ITEM(one, 0));
        Py_XDECREF(one);
        return rec;
    }
    if (!PySlice_Check(key)) {
        PyErr_Format(PyExc_TypeError, "record indices must be integers or slices, not %.100s",
                     Py_TYPE(key)->tp_name);
        return NULL;
    }
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0) {
        return NULL;
    }
    Py_ssize_t n = PySlice_AdjustIndices(self->len, &start, &stop, step);
    return records_list(self, start, n, step);
}

/* ``del self[lo:hi]``: the entries are detached first, released after. */
static int
delete_range(RecordsObject *self, Py_ssize_t lo, Py_ssize_t hi)
{
    Py_ssize_t n = hi - lo;
    if (n <= 0) {
        return 0;
    }
    Entry *dropped = PyMem_Malloc((size_t)n * sizeof(Entry));
    if (dropped == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(dropped, self->items + lo, (size_t)n * sizeof(Entry));
    memmove(self->items + lo, self->items + hi, (size_t)(self->len - hi) * sizeof(Entry));
    self->len -= n;
    _asynctrace_entries_release(dropped, n);
    PyMem_Free(dropped);
    return 0;
}

static int
records_ass_subscript(RecordsObject *self, PyObject *key, PyObject *value)
{
    if (value != NULL) {
        PyErr_SetString(PyExc_TypeError, "records are only appended and deleted");
        return -1;
    }
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (i < 0) {
            i += self->len;
        }
        if (i < 0 || i >= self->len) {
            PyErr_SetString(PyExc_IndexError, "record assignment index out of range");
            return -1;
        }
        return delete_range(self, i, i + 1);
    }
    Py_ssize_t start, stop, step;
    if (!PySlice_Check(key) || PySlice_Unpack(key, &start, &stop, &step) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "record indices must be integers or slices, not %.100s",
                         Py_TYPE(key)->tp_name);
        }
        return -1;
    }
    if (step != 1) {
        PyErr_SetString(PyExc_ValueError, "records are deleted by slices of step 1 only");
        return -1;
    }
    PySlice_AdjustIndices(self->len, &start, &stop, step);
    return delete_range(self, start, stop);
}

static PyObject *
records_iter(RecordsObject *self)
{
    /* A copy: iterating while the loop thread appends sees the records of this moment. */
    PyObject *slice = PySlice_New(NULL, NULL, NULL);
    if (slice == NULL) {
        return NULL;
    }
    PyObject *list = records_subscript(self, slice);
    Py_DECREF(slice);
    if (list == NULL) {
        return NULL;
    }
    PyObject *it = PyObject_GetIter(list);
    Py_DECREF(list);
    return it;
}

static PyObject *
records_append_method(RecordsObject *self, PyObject *rec)
{
    if (_asynctrace_records_append((PyObject *)self, rec) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ``copy(start=0, stop=len)``: entries [start, stop) as a new Records, no tuple made (the
 * span builder, _cbuild.c, reads the entries themselves). */
static PyObject *
records_copy(RecordsObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t start = 0, stop = self->len;
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "copy() takes at most 2 arguments (start, stop)");
        return NULL;
    }
    if (nargs > 0 && (start = PyNumber_AsSsize_t(args[0], NULL)) == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (nargs > 1 && (stop = PyNumber_AsSsize_t(args[1], NULL)) == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t n = PySlice_AdjustIndices(self->len, &start, &stop, 1);
    RecordsObject *copy =
        (RecordsObject *)_asynctrace_RecordsType.tp_alloc(&_asynctrace_RecordsType, 0);
    if (copy == NULL) {
        return NULL;
    }
    if (n > 0) {
        copy->items = _asynctrace_records_snapshot(self, start, n, 1);
        if (copy->items == NULL) {
            Py_DECREF(copy);
            return NULL;
        }
        copy->len = copy->cap = n;
    }
    return (PyObject *)copy;
}

/* ``extend(records)``: append each record (a tuple) of an iterable, as append() does. */
static PyObject *
records_extend(RecordsObject *self, PyObject *iterable)
{
    PyObject *it = PyObject_GetIter(iterable);
    if (it == NULL) {
        return NULL;
    }
    PyObject *rec;
    while ((rec = PyIter_Next(it)) != NULL) {
        int r = _asynctrace_records_append((PyObject *)self, rec);
        Py_DECREF(rec);
        if (r < 0) {
            Py_DECREF(it);
            return NULL;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
records_sizeof(RecordsObject *self, PyObject *unused)
{
    /* The object and its entries; whole records (tuples) by their own size. */
    size_t total = sizeof(RecordsObject) + (size_t)self->cap * sizeof(Entry);
    for (Py_ssize_t i = 0; i < self->len; i++) {
        PyObject *rec = self->items[i].rec;
        if (rec != NULL) {
            total += (size_t)Py_TYPE(rec)->tp_basicsize +
                     (size_t)Py_SIZE(rec) * (size_t)Py_TYPE(rec)->tp_itemsize;
        }
    }
    return PyLong_FromSize_t(total);
}

/* tp_new of Records and Roots: an empty one, made without arguments. */
static PyObject *
new_empty(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments", type->tp_name);
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static int
records_traverse(RecordsObject *self, visitproc visit, void *arg)
{
    /* What the collector saw of the list of tuples this replaces: the tuples, and what the
     * tracked ones hold.  A record stored as fields whose tuple would be untracked shows
     * nothing: a young collection then costs one test per record. */
    for (Py_ssize_t i = 0; i < self->len; i++) {
        Entry *e = &self->items[i];
        if (e->rec != NULL) {
            Py_VISIT(e->rec);
        }
        else if (!e->untrack) {
            Py_VISIT(e->what);
            Py_VISIT(e->status);
            Py_VISIT(e->extra);
        }
    }
    return 0;
}

static int
records_clear(RecordsObject *self)
{
    Entry *items = self->items;
    Py_ssize_t len = self->len;
    self->items = NULL;
    self->len = self->cap = 0;
    if (items != NULL) {
        _asynctrace_entries_release(items, len);
        PyMem_Free(items);
    }
    return 0;
}

static void
records_dealloc(RecordsObject *self)
{
    PyObject_GC_UnTrack(self);
    records_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMappingMethods records_as_mapping = {
    (lenfunc)records_length,
    (binaryfunc)records_subscript,
    (objobjargproc)records_ass_subscript,
};

static PySequenceMethods records_as_sequence = {
    .sq_length = (lenfunc)records_length,
};

static PyMethodDef records_methods[] = {
    {"append", (PyCFunction)records_append_method, METH_O,
     PyDoc_STR("append(record): add one record (a tuple) at the end.")},
    {"extend", (PyCFunction)records_extend, METH_O,
     PyDoc_STR("extend(records): append each record of an iterable.")},
    {"copy", (PyCFunction)(void (*)(void))records_copy, METH_FASTCALL,
     PyDoc_STR("copy(start=0, stop=len): records [start:stop] as a new Records.")},
    {"__sizeof__", (PyCFunction)records_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

PyTypeObject _asynctrace_RecordsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "asynctrace._speedups.Records",
    .tp_basicsize = sizeof(RecordsObject),
    .tp_dealloc = (destructor)records_dealloc,
    .tp_as_sequence = &records_as_sequence,
    .tp_as_mapping = &records_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PyDoc_STR("The recorder's records: a list of tuples to its readers, await "
                        "records stored as C structs (see _records.c)."),
    .tp_traverse = (traverseproc)records_traverse,
    .tp_clear = (inquiry)records_clear,
    .tp_iter = (getiterfunc)records_iter,
    .tp_methods = records_methods,
    .tp_new = new_empty,
};

/* ``fn`` is the bound ``append`` of a Records: that Records (borrowed), else NULL. */
PyObject *
_asynctrace_records_of_append(PyObject *fn)
{
    if (!PyCFunction_Check(fn) || PyCFunction_GET_FUNCTION(fn) != (PyCFunction)records_append_method) {
        return NULL;
    }
    PyObject *self = PyCFunction_GET_SELF(fn);
    return self != NULL && Py_IS_TYPE(self, &_asynctrace_RecordsType) ? self : NULL;
}

/* ---- Roots: the tasks started while recording, held weakly ----
 *
 * The recorder finds the spans still open (when it builds, and the flusher's row names) in
 * the task roots alive.  A weakref.WeakSet costs two calls of Python code per task (add, and
 * the weak reference's callback when the root dies), and a weak reference is one more
 * object per task for the garbage collector to count and walk.  Instead each root is held
 * by a borrowed pointer and knows its place (a RootsLink in the root): a root that is
 * cleared or freed empties its place itself, and the empty places are dropped when the
 * array is full (amortized, in add).
 */
typedef struct {
    PyObject_HEAD
    PyObject **roots; /* borrowed; NULL: a root that is gone */
    Py_ssize_t len, cap;
} RootsObject;

PyTypeObject *_asynctrace_root_type;
Py_ssize_t _asynctrace_root_link_offset;

static inline RootsLink *
link_of(PyObject *root)
{
    return (RootsLink *)((char *)root + _asynctrace_root_link_offset);
}

void
_asynctrace_roots_unlink(RootsLink *link)
{
    if (link->roots != NULL) {
        ((RootsObject *)link->roots)->roots[link->index] = NULL;
        link->roots = NULL;
    }
}

/* The root at ``i`` while it is alive: not emptied, and not being freed (a weak reference's
 * callback run by its deallocation may read the roots). */
static inline PyObject *
root_at(RootsObject *self, Py_ssize_t i)
{
    PyObject *root = self->roots[i];
    return root != NULL && Py_REFCNT(root) > 0 ? root : NULL;
}

static PyObject *
roots_add(RootsObject *self, PyObject *root)
{
    if (_asynctrace_root_type == NULL || !PyObject_TypeCheck(root, _asynctrace_root_type)) {
        PyErr_Format(PyExc_TypeError, "Roots.add() takes a task root (_coro.TaskRoot), not %R",
                     root);
        return NULL;
    }
    RootsLink *link = link_of(root);
    _asynctrace_roots_unlink(link); /* a root is in one Roots at a time */
    if (self->len == self->cap) {
        Py_ssize_t kept = 0;
        for (Py_ssize_t i = 0; i < self->len; i++) {
            PyObject *alive = self->roots[i];
            if (alive != NULL) {
                link_of(alive)->index = kept;
                self->roots[kept++] = alive;
            }
        }
        self->len = kept;
        if (kept * 2 >= self->cap) { /* more than half alive (or none held yet): grow */
            Py_ssize_t cap = self->cap < 64 ? 64 : self->cap * 2;
            PyObject **roots = PyMem_Realloc(self->roots, (size_t)cap * sizeof(PyObject *));
            if (roots == NULL) {
                return PyErr_NoMemory();
            }
            self->roots = roots;
            self->cap = cap;
        }
    }
    link->roots = (PyObject *)self;
    link->index = self->len;
    self->roots[self->len++] = root;
    Py_RETURN_NONE;
}

static PyObject *
roots_live(RootsObject *self, PyObject *unused)
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->len; i++) {
        PyObject *root = root_at(self, i);
        if (root != NULL && PyList_Append(list, root) < 0) {
            Py_DECREF(list);
            return NULL;
        }
    }
    return list;
}

static Py_ssize_t
roots_length(RootsObject *self)
{
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < self->len; i++) {
        n += root_at(self, i) != NULL;
    }
    return n;
}

static void
roots_dealloc(RootsObject *self)
{
    for (Py_ssize_t i = 0; i < self->len; i++) {
        if (self->roots[i] != NULL) {
            link_of(self->roots[i])->roots = NULL;
        }
    }
    PyMem_Free(self->roots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PySequenceMethods roots_as_sequence = {
    .sq_length = (lenfunc)roots_length,
};

static PyMethodDef roots_methods[] = {
    {"add", (PyCFunction)roots_add, METH_O,
     PyDoc_STR("add(root): hold the task root ``root`` weakly, until it is freed.")},
    {"live", (PyCFunction)roots_live, METH_NOARGS,
     PyDoc_STR("live(): the roots added that still exist, in the order they were added.")},
    {NULL, NULL, 0, NULL},
};

PyTypeObject _asynctrace_RootsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "asynctrace._speedups.Roots",
    .tp_basicsize = sizeof(RootsObject),
    .tp_dealloc = (destructor)roots_dealloc,
    .tp_as_sequence = &roots_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("The task roots started while recording, held weakly (see "
                        "_records.c); len() counts those alive."),
    .tp_methods = roots_methods,
    .tp_new = new_empty,
};
