/* The critical path's walk in C: _critical.py's _walk, step for step, without a Python call
 * per span.
 *
 * critical_walk(span, by_id, tasks, max_depth) -> list: the path from ``span`` as
 * _critical._path makes it.  ``by_id`` is the trace's spans by id, ``tasks`` a
 * _critical._TaskLabels: its get(label) is asked for the task an await names, when the label
 * could be one (the task spans by label are made on the first such ask).
 *
 * Only what the Python walk would read the same way is walked here: spans of the configured
 * Span class (configure_spans, _cbuild.c) with float times that are not NaN, int sequence
 * numbers that fit in 64 bits, str kinds, dict attributes and list children.  Anything else
 * raises TypeError (ValueError for a NaN), and the caller walks the trace in Python: a sort of
 * NaN times, a subclass's comparisons, are Python's to decide.
 *
 * The spans seen are kept in a hash set of their addresses (the walk holds no references: the
 * trace does, and nothing here runs Python code that could free a span).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_spanslots.h"

static PyObject *s_await, *s_gather, *s_task, *s_thread, *s_awaited, *s_awaited_span,
    *s_sleep, *s_get, *s_open, *s_close;

typedef struct {
    PyObject *span;
    double start, end;
    long long start_seq, end_seq;
    Py_ssize_t index; /* in the children: the sort is stable */
} Step;

typedef struct {
    void **slots; /* open addressing, NULL: empty */
    size_t mask, used;
} Seen;

typedef struct {
    PyObject *by_id, *tasks, *path;
    Seen seen;
    int max_depth;
} Walk;

static size_t
seen_slot(const Seen *seen, const void *span)
{
    size_t h = ((size_t)span >> 4) * (size_t)0x9E3779B97F4A7C15ULL;
    size_t i = h & seen->mask;
    while (seen->slots[i] != NULL && seen->slots[i] != span) {
        i = (i + 1) & seen->mask;
    }
    return i;
}

static int
seen_has(const Seen *seen, const void *span)
{
    return seen->slots[seen_slot(seen, span)] != NULL;
}

static int
seen_add(Seen *seen, void *span)
{
    if ((seen->used + 1) * 2 > seen->mask + 1) {
        size_t size = (seen->mask + 1) * 2;
        void **old = seen->slots;
        size_t old_size = seen->mask + 1;
        seen->slots = PyMem_Calloc(size, sizeof(void *));
        if (seen->slots == NULL) {
            seen->slots = old;
            PyErr_NoMemory();
            return -1;
        }
        seen->mask = size - 1;
        for (size_t i = 0; i < old_size; i++) {
            if (old[i] != NULL) {
                seen->slots[seen_slot(seen, old[i])] = old[i];
            }
        }
        PyMem_Free(old);
    }
    seen->slots[seen_slot(seen, span)] = span;
    seen->used++;
    return 0;
}

/* ``s`` is the str ``interned`` (its kind names are interned: nearly always the same object). */
static int
is(PyObject *s, PyObject *interned)
{
    return s == interned || (PyUnicode_GET_LENGTH(s) == PyUnicode_GET_LENGTH(interned) &&
                             PyUnicode_Compare(s, interned) == 0);
}

/* The span's times, sequence numbers and kind, checked; -1 with TypeError/ValueError. */
static int
read_step(PyObject *span, Step *step)
{
    if (Py_TYPE(span) != _asynctrace_span_type) {
        PyErr_SetString(PyExc_TypeError, "not a Span");
        return -1;
    }
    PyObject *start = SLOT(span, F_START), *end = SLOT(span, F_END);
    PyObject *start_seq = SLOT(span, F_START_SEQ), *end_seq = SLOT(span, F_END_SEQ);
    PyObject *kind = SLOT(span, F_KIND), *attributes = SLOT(span, F_ATTRIBUTES);
    if (start == NULL || end == NULL || start_seq == NULL || end_seq == NULL || kind == NULL ||
        attributes == NULL || !PyFloat_CheckExact(start) || !PyFloat_CheckExact(end) ||
        !PyLong_CheckExact(start_seq) || !PyLong_CheckExact(end_seq) ||
        !PyUnicode_CheckExact(kind) || !PyDict_CheckExact(attributes)) {
        PyErr_SetString(PyExc_TypeError, "a span the C walk does not read");
        return -1;
    }
    step->span = span;
    step->start = PyFloat_AS_DOUBLE(start);
    step->end = PyFloat_AS_DOUBLE(end);
    if (Py_IS_NAN(step->start) || Py_IS_NAN(step->end)) {
        PyErr_SetString(PyExc_ValueError, "a NaN time");
        return -1;
    }
    int overflow_start = 0, overflow_end = 0;
    step->start_seq = PyLong_AsLongLongAndOverflow(start_seq, &overflow_start);
    step->end_seq = PyLong_AsLongLongAndOverflow(end_seq, &overflow_end);
    if (overflow_start || overflow_end) {
        PyErr_SetString(PyExc_TypeError, "a sequence number beyond 64 bits");
        return -1;
    }
    return 0;
}

/* ``attributes.get(key, default)``, borrowed; NULL with an error set on failure. */
static PyObject *
get(PyObject *attributes, PyObject *key, PyObject *default_value)
{
    PyObject *value = PyDict_GetItemWithError(attributes, key);
    if (value == NULL && !PyErr_Occurred()) {
        return default_value;
    }
    return value;
}

/* _critical._could_be_task_label: a str with " (" that ends with ")" (0 with an error set on
 * a failed search). */
static int
could_be_task_label(PyObject *label)
{
    if (!PyUnicode_Check(label) || PyUnicode_Tailmatch(label, s_close, 0, PY_SSIZE_T_MAX, 1) != 1) {
        return 0;
    }
    return PyUnicode_Find(label, s_open, 0, PY_SSIZE_T_MAX, 1) >= 0;
}

/* What an await on a task, a gather or a thread job waited on (_critical._awaited): a
 * borrowed span, Py_None for none, NULL on error. */
static PyObject *
awaited(Walk *walk, PyObject *span)
{
    PyObject *attributes = SLOT(span, F_ATTRIBUTES);
    PyObject *target_id = get(attributes, s_awaited_span, Py_None);
    if (target_id == NULL) {
        return NULL;
    }
    PyObject *found;
    if (PyLong_Check(target_id)) {
        found = PyDict_GetItemWithError(walk->by_id, target_id);
    }
    else {
        PyObject *name = SLOT(span, F_NAME);
        PyObject *label = get(attributes, s_awaited, name != NULL ? name : Py_None);
        if (label == NULL) {
            return NULL;
        }
        if (!could_be_task_label(label)) {
            return PyErr_Occurred() ? NULL : Py_None;
        }
        found = PyObject_CallMethodOneArg(walk->tasks, s_get, label);
        if (found == NULL) {
            return NULL;
        }
        Py_DECREF(found); /* a span of the trace, which holds it */
        return found;
    }
    if (found == NULL) {
        return PyErr_Occurred() ? NULL : Py_None;
    }
    return found;
}

/* For an await on a bare future: the child task that ended last while it waited
 * (_critical._ended_during); ``steps[: below + 1]`` end no later than it.  Index, -1: none,
 * -2: error. */
static Py_ssize_t
ended_during(const Step *await_step, const Step *steps, Py_ssize_t below)
{
    PyObject *attributes = SLOT(await_step->span, F_ATTRIBUTES);
    int has = PyDict_Contains(attributes, s_awaited_span);
    if (has != 0) {
        return has < 0 ? -2 : -1;
    }
    PyObject *name = SLOT(await_step->span, F_NAME);
    PyObject *label = get(attributes, s_awaited, name != NULL ? name : Py_None);
    if (label == NULL) {
        return -2;
    }
    if (PyUnicode_Check(label)) {
        Py_ssize_t sleep = PyUnicode_Tailmatch(label, s_sleep, 0, PY_SSIZE_T_MAX, -1);
        if (sleep != 0) {
            return sleep < 0 ? -2 : -1;
        }
    }
    for (Py_ssize_t j = below; j >= 0; j--) {
        if (steps[j].end < await_step->start) {
            return -1;
        }
        PyObject *kind = SLOT(steps[j].span, F_KIND);
        if (is(kind, s_task) || is(kind, s_thread)) {
            return j;
        }
    }
    return -1;
}

static int
by_end(const void *a, const void *b)
{
    const Step *x = a, *y = b;
    if (x->end != y->end) {
        return x->end < y->end ? -1 : 1;
    }
    if (x->end_seq != y->end_seq) {
        return x->end_seq < y->end_seq ? -1 : 1;
    }
    return x->index < y->index ? -1 : (x->index > y->index);
}

static int walk_span(Walk *walk, PyObject *span, int depth);

enum { FEW = 8 }; /* children walked without allocating (the walk recurses at most 200 deep) */

/* The steps of ``span`` (not an await), walked back from its end, then each walked inside. */
static int
walk_children(Walk *walk, PyObject *span, const Step *self, int depth)
{
    PyObject *children = SLOT(span, F_CHILDREN);
    if (children == NULL || !PyList_CheckExact(children)) {
        PyErr_SetString(PyExc_TypeError, "children that are not a list");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(children);
    if (n == 0) {
        return 0;
    }
    /* nearly every span has a few children: their arrays on the stack, no allocation */
    Step few_ordered[FEW];
    PyObject *few_steps[FEW];
    Step *ordered = n <= FEW ? few_ordered : PyMem_Malloc((size_t)n * sizeof(Step));
    PyObject **steps = n <= FEW ? few_steps : PyMem_Malloc((size_t)n * sizeof(PyObject *));
    int result = 0;
    if (ordered == NULL || steps == NULL) {
        PyErr_NoMemory();
        result = -1;
        goto done;
    }
    int held_await = is(SLOT(span, F_KIND), s_gather); /* its result being taken, not work */
    Py_ssize_t count = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        Step *step = &ordered[count];
        if (read_step(PyList_GET_ITEM(children, k), step) < 0) {
            result = -1;
            goto done;
        }
        if (step->end > step->start && !(held_await && is(SLOT(step->span, F_KIND), s_await))) {
            step->index = count++;
        }
    }
    if (count > 1) {
        qsort(ordered, (size_t)count, sizeof(Step), by_end);
    }
    double t = self->end;
    long long t_seq = self->end_seq;
    Py_ssize_t found = 0;
    for (Py_ssize_t i = count - 1; i >= 0;) {
        const Step *step = &ordered[i];
        i--;
        if (step->end > t || (step->end == t && step->end_seq > t_seq) ||
            seen_has(&walk->seen, step->span)) {
            continue;
        }
        if (step->end <= self->start) {
            break;
        }
        PyObject *cause = Py_None;
        Step cause_step;
        if (is(SLOT(step->span, F_KIND), s_await)) {
            Py_ssize_t during = ended_during(step, ordered, i);
            if (during == -2) {
                result = -1;
                goto done;
            }
            if (during >= 0) {
                step = &ordered[during];
            }
            if (is(SLOT(step->span, F_KIND), s_await)) {
                cause = awaited(walk, step->span);
                if (cause == NULL || (cause != Py_None && read_step(cause, &cause_step) < 0)) {
                    result = -1;
                    goto done;
                }
            }
        }
        steps[found++] = step->span;
        t = cause == Py_None || step->start < cause_step.start ? step->start : cause_step.start;
        t_seq = step->start_seq;
        if (t <= self->start) {
            break;
        }
    }
    while (result == 0 && found > 0) {
        result = walk_span(walk, steps[--found], depth + 1);
    }
done:
    if (n > FEW) {
        PyMem_Free(ordered);
        PyMem_Free(steps);
    }
    return result;
}

static int
walk_span(Walk *walk, PyObject *span, int depth)
{
    if (seen_has(&walk->seen, span) || depth > walk->max_depth) {
        return 0;
    }
    Step self;
    if (read_step(span, &self) < 0 || seen_add(&walk->seen, span) < 0 ||
        PyList_Append(walk->path, span) < 0) {
        return -1;
    }
    if (!is(SLOT(span, F_KIND), s_await)) {
        return walk_children(walk, span, &self, depth);
    }
    PyObject *cause = awaited(walk, span);
    if (cause == NULL) {
        return -1;
    }
    return cause == Py_None ? 0 : walk_span(walk, cause, depth + 1);
}

PyObject *
_asynctrace_critical_walk(PyObject *module, PyObject *args)
{
    PyObject *span, *by_id, *tasks;
    int max_depth;
    if (!PyArg_ParseTuple(args, "OO!Oi:critical_walk", &span, &PyDict_Type, &by_id, &tasks,
                          &max_depth)) {
        return NULL;
    }
    if (_asynctrace_span_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_spans() MUST be called first");
        return NULL;
    }
    if (s_await == NULL) {
        s_await = PyUnicode_InternFromString("await");
        s_gather = PyUnicode_InternFromString("gather");
        s_task = PyUnicode_InternFromString("task");
        s_thread = PyUnicode_InternFromString("thread");
        s_awaited = PyUnicode_InternFromString("asynctrace.awaited");
        s_awaited_span = PyUnicode_InternFromString("asynctrace.awaited.span_id");
        s_sleep = PyUnicode_InternFromString("asyncio.sleep");
        s_get = PyUnicode_InternFromString("get");
        s_open = PyUnicode_InternFromString(" (");
        s_close = PyUnicode_InternFromString(")");
        if (!s_await || !s_gather || !s_task || !s_thread || !s_awaited || !s_awaited_span ||
            !s_sleep || !s_get || !s_open || !s_close) {
            return NULL;
        }
    }
    Walk walk = {by_id, tasks, PyList_New(0), {PyMem_Calloc(64, sizeof(void *)), 63, 0},
                 max_depth};
    if (walk.path == NULL || walk.seen.slots == NULL) {
        Py_XDECREF(walk.path);
        PyMem_Free(walk.seen.slots);
        return walk.path == NULL ? NULL : PyErr_NoMemory();
    }
    int failed = walk_span(&walk, span, 0) < 0;
    PyMem_Free(walk.seen.slots);
    if (failed) {
        Py_DECREF(walk.path);
        return NULL;
    }
    return walk.path;
}
