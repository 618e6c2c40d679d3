/* asynctrace._ctimeline: the timeline's derived passes in C (optional; _timeline.py has the
 * same in Python, which is the reference).
 *
 * Problem: the JSON timeline and the terminal timeline both ask, once per trace, where each
 * kind of span is, which awaits are joins or idle waits, what each await awaited, and how many
 * tasks run and wait over time: passes over all 22,000 spans of a run that took 20 to 30 ms in
 * Python, as much as writing the JSON file itself.
 *
 * Solution: each pass here does what its Python twin in _timeline.py does, in the same order,
 * reading a Span's slots straight from the object (configure(span_type) learns where they are,
 * once, at import), so both give the same lists of the same objects and bit-identical floats:
 *
 *   kind_positions(spans) -> {kind: [position, ...]}      (_kind_positions_python)
 *   spans_at(spans, positions) -> [span, ...]              (_spans_at_python)
 *   joins(tasks, awaits) -> [await, ...]                   (_joins_python)
 *   await_keys(awaits) -> [(span id, awaited, file, line)] (_await_keys_python)
 *   idle_waits(joins, awaits, keys, idle_names, idle_prefixes) -> [await, ...]
 *                                                          (_idle_waits_python)
 *   activity(tasks, joins) -> [(time, running, waiting)]   (_activity_python)
 *
 * Only what gives the same answer with no Python code run is taken: exact Spans (not a
 * subclass), exact lists, dicts and strs, float times that are not NaN, int ids.  Anything
 * else (a hand-made trace's odd values) is a TypeError or ValueError, and the caller then runs
 * the Python version, which answers (or fails) as it always did.
 *
 * One file past 700 lines: the six passes share how a span is read and what is refused, which
 * separate files would each repeat.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* The Span's slots, learned here (this extension is not _speedups). */
#define ASYNCTRACE_OWN_SPAN_OFFSETS
#include "_spanslots.h"
static Py_ssize_t offsets[N_FIELDS];
static PyTypeObject *span_type; /* NULL until configure(): every span is then refused */
static PyObject *s_task_name, *s_awaited, *s_awaited_span, *s_file, *s_line, *s_gather,
    *s_gather_call;

#define SLOT(span, f) SPAN_SLOT(offsets, span, f)
#define KINDS_KEPT 16 /* kinds recognized by address in kind_positions (there are 9) */

static PyObject *
refuse(const char *what)
{
    PyErr_Format(PyExc_TypeError, "_ctimeline does not take %s (the Python version does)", what);
    return NULL;
}

/* A borrowed field of an exact Span; NULL with a TypeError for anything else. */
static PyObject *
field(PyObject *span, int f)
{
    if (Py_TYPE(span) != span_type) {
        return refuse("an object that is not exactly a Span");
    }
    PyObject *value = SLOT(span, f);
    return value != NULL ? value : refuse("a Span with a field unset");
}

/* A borrowed field that is an exact str or dict (by check), NULL with a TypeError otherwise. */
static PyObject *
str_field(PyObject *span, int f)
{
    PyObject *value = field(span, f);
    return value == NULL || PyUnicode_CheckExact(value) ? value : refuse("a name not a str");
}

static PyObject *
dict_field(PyObject *span, int f)
{
    PyObject *value = field(span, f);
    return value == NULL || PyDict_CheckExact(value) ? value : refuse("attributes not a dict");
}

/* A float time that compares as Python's does (not NaN), into *out; -1 with a ValueError. */
static int
time_field(PyObject *span, int f, double *out)
{
    PyObject *value = field(span, f);
    if (value == NULL) {
        return -1;
    }
    if (!PyFloat_CheckExact(value) || isnan(PyFloat_AS_DOUBLE(value))) {
        PyErr_SetString(PyExc_ValueError, "_ctimeline takes float times that are not NaN");
        return -1;
    }
    *out = PyFloat_AS_DOUBLE(value);
    return 0;
}

/* 1 when a function given nargs arguments takes them; 0 with a TypeError. */
static int
takes(const char *function, Py_ssize_t nargs, Py_ssize_t wanted)
{
    if (nargs != wanted) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", function, wanted,
                     nargs);
        return 0;
    }
    return 1;
}

/* Equal exact strs: the same object, or the same characters. */
static int
same_text(PyObject *a, PyObject *b)
{
    if (a == b) {
        return 1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);
    return n == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b)
        && memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
}

static PyObject *
configure(PyObject *module, PyObject *type)
{
    return keep_span_type(type, offsets, &span_type);
}

static PyObject *
kind_positions(PyObject *module, PyObject *spans)
{
    if (!PyList_CheckExact(spans)) {
        return refuse("spans not in a list");
    }
    PyObject *out = PyDict_New();
    if (out == NULL) {
        return NULL;
    }
    /* Borrowed (the spans hold the kinds, out the lists); no Python code runs in this loop. */
    PyObject *kept_kind[KINDS_KEPT], *kept_list[KINDS_KEPT];
    int n_kept = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(spans); i++) {
        PyObject *kind = str_field(PyList_GET_ITEM(spans, i), F_KIND);
        if (kind == NULL) {
            goto fail;
        }
        PyObject *same = NULL;
        for (int k = 0; k < n_kept; k++) {
            if (kept_kind[k] == kind) {
                same = kept_list[k];
                break;
            }
        }
        if (same == NULL) {
            same = PyDict_GetItemWithError(out, kind); /* an equal kind, another object */
            if (same == NULL) {
                if (PyErr_Occurred() || (same = PyList_New(0)) == NULL) {
                    goto fail;
                }
                int stored = PyDict_SetItem(out, kind, same);
                Py_DECREF(same);
                if (stored < 0) {
                    goto fail;
                }
            }
            if (n_kept < KINDS_KEPT) {
                kept_kind[n_kept] = kind;
                kept_list[n_kept++] = same;
            }
        }
        PyObject *position = PyLong_FromSsize_t(i);
        if (position == NULL || PyList_Append(same, position) < 0) {
            Py_XDECREF(position);
            goto fail;
        }
        Py_DECREF(position);
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
spans_at(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!takes("spans_at", nargs, 2)) {
        return NULL;
    }
    PyObject *spans = args[0], *positions = args[1];
    if (!PyList_CheckExact(spans) || !PyList_CheckExact(positions)) {
        return refuse("spans or positions not in a list");
    }
    Py_ssize_t n = PyList_GET_SIZE(positions), size = PyList_GET_SIZE(spans);
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *position = PyList_GET_ITEM(positions, j);
        Py_ssize_t i = PyLong_CheckExact(position) ? PyLong_AsSsize_t(position) : -1;
        if (i < 0 || i >= size) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "_ctimeline: a position outside the spans");
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, j, Py_NewRef(PyList_GET_ITEM(spans, i)));
    }
    return out;
}

/* "{task name} ({name})" of each task with a task name: what an await on it is named. */
static PyObject *
task_await_names(PyObject *tasks)
{
    PyObject *names = PySet_New(NULL);
    if (names == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(tasks); i++) {
        PyObject *task = PyList_GET_ITEM(tasks, i);
        PyObject *attributes = dict_field(task, F_ATTRIBUTES);
        if (attributes == NULL) {
            goto fail;
        }
        PyObject *task_name = PyDict_GetItemWithError(attributes, s_task_name);
        if (task_name == NULL) {
            if (PyErr_Occurred()) {
                goto fail;
            }
            continue;
        }
        if (task_name == Py_None) {
            continue;
        }
        if (!PyUnicode_CheckExact(task_name)) {
            refuse("a task name not a str");
            goto fail;
        }
        if (PyUnicode_GET_LENGTH(task_name) == 0) {
            continue;
        }
        PyObject *name = str_field(task, F_NAME);
        if (name == NULL) {
            goto fail;
        }
        PyObject *await_name = PyUnicode_FromFormat("%U (%U)", task_name, name);
        if (await_name == NULL || PySet_Add(names, await_name) < 0) {
            Py_XDECREF(await_name);
            goto fail;
        }
        Py_DECREF(await_name);
    }
    return names;
fail:
    Py_DECREF(names);
    return NULL;
}

/* The verdict on the last name looked up: a trace awaits the same few things thousands of
 * times, often under one str object (borrowed: the awaits hold it). */
typedef struct {
    PyObject *name;
    int verdict;
} Memo;

/* 1 when an await of ``name`` (an exact str) is a join by its name: on a gather, or on a
 * task by the name an await on it has (see task_await_names); 0 if not, -1 with an error. */
static int
is_join_name(PyObject *name, PyObject *names, int gather_prefix, Memo *memo)
{
    if (name == memo->name) {
        return memo->verdict;
    }
    int verdict = gather_prefix
        ? (int)PyUnicode_Tailmatch(name, s_gather_call, 0, PY_SSIZE_T_MAX, -1) : 0;
    if (verdict == 0) {
        verdict = PySet_Contains(names, name);
    }
    if (verdict >= 0) {
        memo->name = name;
        memo->verdict = verdict;
    }
    return verdict;
}

/* 1 when the await is a join: on a gather, or on a task by its name or what it awaited. */
static int
is_join(PyObject *span, PyObject *names, Memo *by_name, Memo *by_awaited)
{
    PyObject *attributes = dict_field(span, F_ATTRIBUTES);
    PyObject *name = str_field(span, F_NAME);
    PyObject *parent = field(span, F_PARENT);
    if (attributes == NULL || name == NULL || parent == NULL) {
        return -1;
    }
    if (parent != Py_None) {
        PyObject *parent_kind = str_field(parent, F_KIND);
        if (parent_kind == NULL) {
            return -1;
        }
        if (same_text(parent_kind, s_gather)) {
            return 1;
        }
    }
    int found = is_join_name(name, names, 1, by_name);
    if (found != 0) {
        return found;
    }
    PyObject *awaited = PyDict_GetItemWithError(attributes, s_awaited);
    if (awaited == NULL || !PyUnicode_Check(awaited)) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (!PyUnicode_CheckExact(awaited)) {
        refuse("an awaited name of a str subclass");
        return -1;
    }
    return is_join_name(awaited, names, 0, by_awaited);
}

static PyObject *
joins(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!takes("joins", nargs, 2)) {
        return NULL;
    }
    PyObject *tasks = args[0], *awaits = args[1];
    if (!PyList_CheckExact(tasks) || !PyList_CheckExact(awaits)) {
        return refuse("spans not in a list");
    }
    PyObject *names = task_await_names(tasks);
    if (names == NULL) {
        return NULL;
    }
    PyObject *found = PyList_New(0);
    if (found == NULL) {
        goto fail;
    }
    Memo by_name = {NULL, 0}, by_awaited = {NULL, 0};
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(awaits); i++) {
        PyObject *span = PyList_GET_ITEM(awaits, i);
        int join = is_join(span, names, &by_name, &by_awaited);
        if (join < 0 || (join && PyList_Append(found, span) < 0)) {
            goto fail;
        }
    }
    Py_DECREF(names);
    return found;
fail:
    Py_XDECREF(found);
    Py_DECREF(names);
    return NULL;
}

/* The attributes an await's key holds, in its order (see _timeline.await_keys). */
enum { N_KEY_VALUES = 4 };
static PyObject **key_attributes[N_KEY_VALUES] = {&s_awaited_span, &s_awaited, &s_file, &s_line};

/* The values of the key's attributes (borrowed) into ``values``, each left as it is when the
 * attribute is absent (as dict.get's default); -1 with an exception. */
static int
key_values(PyObject *attributes, PyObject *values[N_KEY_VALUES])
{
    for (int k = 0; k < N_KEY_VALUES; k++) {
        PyObject *value = PyDict_GetItemWithError(attributes, *key_attributes[k]);
        if (value == NULL && PyErr_Occurred()) {
            return -1;
        }
        values[k] = value != NULL ? value : values[k];
    }
    return 0;
}

/* 1 when ``key`` holds these very objects: a loop awaits the same thing from the same line
 * thousands of times, and one tuple for all of them saves making each. */
static int
same_values(PyObject *key, PyObject *values[N_KEY_VALUES])
{
    for (int k = 0; k < N_KEY_VALUES; k++) {
        if (PyTuple_GET_ITEM(key, k) != values[k]) {
            return 0;
        }
    }
    return 1;
}

static PyObject *
await_keys(PyObject *module, PyObject *awaits)
{
    if (!PyList_CheckExact(awaits)) {
        return refuse("spans not in a list");
    }
    Py_ssize_t n = PyList_GET_SIZE(awaits);
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        return NULL;
    }
    PyObject *last = NULL; /* the last key made (out holds it) */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *span = PyList_GET_ITEM(awaits, i);
        PyObject *attributes = dict_field(span, F_ATTRIBUTES);
        PyObject *name = attributes == NULL ? NULL : field(span, F_NAME);
        if (name == NULL) {
            goto fail;
        }
        PyObject *values[N_KEY_VALUES] = {Py_None, name, Py_None, Py_None}; /* the defaults */
        if (key_values(attributes, values) < 0) {
            goto fail;
        }
        if (last != NULL && same_values(last, values)) { /* a tuple is a value: shared */
            PyList_SET_ITEM(out, i, Py_NewRef(last));
            continue;
        }
        PyObject *key = PyTuple_New(N_KEY_VALUES);
        if (key == NULL) {
            goto fail;
        }
        for (int k = 0; k < N_KEY_VALUES; k++) {
            PyTuple_SET_ITEM(key, k, Py_NewRef(values[k]));
        }
        PyList_SET_ITEM(out, i, key);
        last = key;
    }
    return out;
fail:
    Py_DECREF(out); /* its unset items are NULL, which a list's dealloc skips */
    return NULL;
}

static int
by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(PyObject *const *)a, y = (uintptr_t)*(PyObject *const *)b;
    return (x > y) - (x < y);
}

/* 1 when an await named ``name`` is an idle wait (see _timeline._IDLE_NAMES), memoized in
 * ``memo`` by name: a trace awaits the same few things thousands of times. */
static int
is_idle_name(PyObject *name, PyObject *idle_names, PyObject *idle_prefixes, PyObject *memo)
{
    PyObject *known = PyDict_GetItemWithError(memo, name);
    if (known != NULL) {
        return known == Py_True;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    int idle = PySet_Contains(idle_names, name);
    for (Py_ssize_t k = 0; idle == 0 && k < PyTuple_GET_SIZE(idle_prefixes); k++) {
        idle = (int)PyUnicode_Tailmatch(name, PyTuple_GET_ITEM(idle_prefixes, k), 0,
                                        PY_SSIZE_T_MAX, -1);
    }
    if (idle < 0 || PyDict_SetItem(memo, name, idle ? Py_True : Py_False) < 0) {
        return -1;
    }
    return idle;
}

static PyObject *
idle_waits(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!takes("idle_waits", nargs, 5)) {
        return NULL;
    }
    PyObject *join_spans = args[0], *awaits = args[1], *keys = args[2];
    PyObject *idle_names = args[3], *idle_prefixes = args[4];
    if (!PyList_CheckExact(join_spans) || !PyList_CheckExact(awaits) || !PyList_CheckExact(keys)
        || PyList_GET_SIZE(keys) != PyList_GET_SIZE(awaits) || !PyAnySet_Check(idle_names)
        || !PyTuple_CheckExact(idle_prefixes)) {
        return refuse("these arguments");
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(idle_prefixes); k++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(idle_prefixes, k))) {
            return refuse("a prefix not a str");
        }
    }
    Py_ssize_t n_joins = PyList_GET_SIZE(join_spans);
    PyObject **seen = PyMem_New(PyObject *, n_joins + 1);
    PyObject *memo = PyDict_New();
    PyObject *found = PyList_GetSlice(join_spans, 0, n_joins);
    if (seen == NULL || memo == NULL || found == NULL) {
        if (seen == NULL) {
            PyErr_NoMemory();
        }
        goto fail;
    }
    memcpy(seen, PySequence_Fast_ITEMS(join_spans), (size_t)n_joins * sizeof(PyObject *));
    qsort(seen, (size_t)n_joins, sizeof(PyObject *), by_address);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(awaits); i++) {
        PyObject *span = PyList_GET_ITEM(awaits, i);
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 4) {
            refuse("an await key not a 4-tuple");
            goto fail;
        }
        PyObject *awaited = PyTuple_GET_ITEM(key, 1);
        PyObject *name = PyUnicode_Check(awaited) ? awaited : field(span, F_NAME);
        if (name == NULL) {
            goto fail;
        }
        if (!PyUnicode_CheckExact(name)) {
            refuse("a name not a str");
            goto fail;
        }
        int idle = is_idle_name(name, idle_names, idle_prefixes, memo);
        if (idle < 0) {
            goto fail;
        }
        if (idle && bsearch(&span, seen, (size_t)n_joins, sizeof(PyObject *), by_address) == NULL
            && PyList_Append(found, span) < 0) {
            goto fail;
        }
    }
    PyMem_Free(seen);
    Py_DECREF(memo);
    return found;
fail:
    PyMem_Free(seen);
    Py_XDECREF(memo);
    Py_XDECREF(found);
    return NULL;
}

/* A task's wait (a join on its row): sorted by task, then as _merge sorts (start, end) pairs,
 * then in the order given (Python's sort is stable). */
typedef struct {
    Py_ssize_t task;
    double a, b;
    Py_ssize_t order;
} Wait;

static int
by_task_then_interval(const void *x, const void *y)
{
    const Wait *p = x, *q = y;
    if (p->task != q->task) {
        return p->task < q->task ? -1 : 1;
    }
    if (p->a != q->a) {
        return p->a < q->a ? -1 : 1;
    }
    if (p->b != q->b) {
        return p->b < q->b ? -1 : 1;
    }
    return (p->order > q->order) - (p->order < q->order);
}

/* A change of the counts at t, in the order activity() adds them: of equal times (0.0 and
 * -0.0 are equal), Python's dict keeps the first one added as the key. */
typedef struct {
    double t;
    long running, waiting;
} Change;

/* Sorts ``changes`` by time, keeping the order they were added in among equal times (a merge
 * sort, stable; qsort's calls to a comparator were most of activity's time); -1 out of
 * memory. */
static int
sort_by_time(Change *changes, Py_ssize_t n)
{
    Change *spare = PyMem_New(Change, n + 1);
    if (spare == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Change *from = changes, *to = spare;
    for (Py_ssize_t width = 1; width < n; width *= 2) {
        for (Py_ssize_t lo = 0; lo < n; lo += 2 * width) {
            Py_ssize_t mid = lo + width < n ? lo + width : n;
            Py_ssize_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            Py_ssize_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                to[k++] = from[j].t < from[i].t ? from[j++] : from[i++];
            }
            while (i < mid) {
                to[k++] = from[i++];
            }
            while (j < hi) {
                to[k++] = from[j++];
            }
        }
        Change *merged = to;
        to = from;
        from = merged;
    }
    if (from != changes) {
        memcpy(changes, from, (size_t)n * sizeof(Change));
    }
    PyMem_Free(spare);
    return 0;
}

static void
add_change(Change *changes, Py_ssize_t *n, double t, long running, long waiting)
{
    changes[*n] = (Change){t, running, waiting};
    (*n)++;
}

/* The points of sorted ``changes``: each distinct time's counts, when they changed. */
static PyObject *
change_points(Change *changes, Py_ssize_t n)
{
    PyObject *points = PyList_New(0);
    if (points == NULL) {
        return NULL;
    }
    long running = 0, waiting = 0, last_running = 0, last_waiting = 0;
    for (Py_ssize_t i = 0; i < n;) {
        double t = changes[i].t;
        for (; i < n && changes[i].t == t; i++) {
            running += changes[i].running;
            waiting += changes[i].waiting;
        }
        if (PyList_GET_SIZE(points) && running == last_running && waiting == last_waiting) {
            continue;
        }
        PyObject *point = PyTuple_New(3);
        if (point == NULL || PyList_Append(points, point) < 0) {
            Py_XDECREF(point);
            Py_DECREF(points);
            return NULL;
        }
        Py_DECREF(point); /* points holds it */
        PyObject *values[3] = {PyFloat_FromDouble(t), PyLong_FromLong(running),
                               PyLong_FromLong(waiting)};
        for (int k = 0; k < 3; k++) {
            if (values[k] == NULL) {
                Py_XDECREF(values[(k + 1) % 3]);
                Py_XDECREF(values[(k + 2) % 3]);
                Py_DECREF(points); /* and the tuple, its unset items NULL */
                return NULL;
            }
        }
        for (int k = 0; k < 3; k++) {
            PyTuple_SET_ITEM(point, k, values[k]);
        }
        last_running = running;
        last_waiting = waiting;
    }
    return points;
}

static PyObject *
activity(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!takes("activity", nargs, 2)) {
        return NULL;
    }
    PyObject *tasks = args[0], *join_spans = args[1];
    if (!PyList_CheckExact(tasks) || !PyList_CheckExact(join_spans)) {
        return refuse("spans not in a list");
    }
    Py_ssize_t n_tasks = PyList_GET_SIZE(tasks), n_joins = PyList_GET_SIZE(join_spans);
    PyObject *task_of_id = PyDict_New();
    double *task_times = PyMem_New(double, 2 * n_tasks + 1);
    Wait *waits = PyMem_New(Wait, n_joins + 1);
    Change *changes = PyMem_New(Change, 2 * n_tasks + 2 * n_joins + 1);
    PyObject *points = NULL;
    if (task_of_id == NULL || task_times == NULL || waits == NULL || changes == NULL) {
        if (task_of_id != NULL) {
            PyErr_NoMemory();
        }
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_tasks; i++) {
        PyObject *task = PyList_GET_ITEM(tasks, i);
        PyObject *span_id = field(task, F_SPAN_ID);
        if (span_id == NULL || time_field(task, F_START, &task_times[2 * i]) < 0
            || time_field(task, F_END, &task_times[2 * i + 1]) < 0) {
            goto done;
        }
        if (!PyLong_CheckExact(span_id)) {
            refuse("a span id not an int");
            goto done;
        }
        PyObject *index = PyLong_FromSsize_t(i);
        PyObject *stored = index == NULL ? NULL : PyDict_SetDefault(task_of_id, span_id, index);
        Py_XDECREF(index);
        if (stored == NULL) {
            goto done;
        }
        if (stored != index) { /* Python's dict keeps the last task of an id, first in order */
            PyErr_SetString(PyExc_ValueError, "_ctimeline: two tasks with one span id");
            goto done;
        }
    }
    Py_ssize_t n_waits = 0;
    for (Py_ssize_t j = 0; j < n_joins; j++) {
        PyObject *span = PyList_GET_ITEM(join_spans, j);
        PyObject *track = field(span, F_TRACK);
        if (track == NULL) {
            goto done;
        }
        if (!PyLong_CheckExact(track)) {
            refuse("a track not an int");
            goto done;
        }
        PyObject *index = PyDict_GetItemWithError(task_of_id, track);
        if (index == NULL) {
            if (PyErr_Occurred()) {
                goto done;
            }
            continue;
        }
        Wait *wait = &waits[n_waits];
        if (time_field(span, F_START, &wait->a) < 0 || time_field(span, F_END, &wait->b) < 0) {
            goto done;
        }
        wait->task = PyLong_AsSsize_t(index);
        wait->order = j;
        n_waits++;
    }
    qsort(waits, (size_t)n_waits, sizeof(Wait), by_task_then_interval);
    Py_ssize_t n_changes = 0, w = 0;
    for (Py_ssize_t i = 0; i < n_tasks; i++) {
        double lo = task_times[2 * i], hi = task_times[2 * i + 1];
        add_change(changes, &n_changes, lo, 1, 0);
        add_change(changes, &n_changes, hi, -1, 0);
        int merged = 0;
        double last_a = 0.0, last_b = 0.0;
        for (; w < n_waits && waits[w].task == i; w++) { /* as _merge, then added in order */
            double a = waits[w].a < lo ? lo : waits[w].a;
            double b = waits[w].b > hi ? hi : waits[w].b;
            if (b <= a) {
                continue;
            }
            if (merged && a <= last_b) {
                if (b > last_b) {
                    last_b = b;
                }
                continue;
            }
            if (merged) {
                add_change(changes, &n_changes, last_a, -1, 1);
                add_change(changes, &n_changes, last_b, 1, -1);
            }
            last_a = a;
            last_b = b;
            merged = 1;
        }
        if (merged) {
            add_change(changes, &n_changes, last_a, -1, 1);
            add_change(changes, &n_changes, last_b, 1, -1);
        }
    }
    if (sort_by_time(changes, n_changes) == 0) {
        points = change_points(changes, n_changes);
    }
done:
    Py_XDECREF(task_of_id);
    PyMem_Free(task_times);
    PyMem_Free(waits);
    PyMem_Free(changes);
    return points;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_O,
     PyDoc_STR("configure(span_type): learn where a Span's slots are; once, first.")},
    {"kind_positions", kind_positions, METH_O,
     PyDoc_STR("kind_positions(spans) -> {kind: [position, ...]} (see _timeline.py).")},
    {"spans_at", (PyCFunction)(void (*)(void))spans_at, METH_FASTCALL,
     PyDoc_STR("spans_at(spans, positions) -> [spans[i] for i in positions].")},
    {"joins", (PyCFunction)(void (*)(void))joins, METH_FASTCALL,
     PyDoc_STR("joins(tasks, awaits) -> the awaits that are joins (see _timeline.py).")},
    {"await_keys", await_keys, METH_O,
     PyDoc_STR("await_keys(awaits) -> [(span id, awaited, file, line), ...].")},
    {"idle_waits", (PyCFunction)(void (*)(void))idle_waits, METH_FASTCALL,
     PyDoc_STR("idle_waits(joins, awaits, keys, idle_names, idle_prefixes) -> [span, ...].")},
    {"activity", (PyCFunction)(void (*)(void))activity, METH_FASTCALL,
     PyDoc_STR("activity(tasks, joins) -> [(time, running, waiting), ...].")},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "asynctrace._ctimeline",
    PyDoc_STR("The timeline's derived passes (see _timeline.py)."), -1, module_methods,
};

PyMODINIT_FUNC
PyInit__ctimeline(void)
{
    s_task_name = PyUnicode_InternFromString("asynctrace.task.name");
    s_awaited = PyUnicode_InternFromString("asynctrace.awaited");
    s_awaited_span = PyUnicode_InternFromString("asynctrace.awaited.span_id");
    s_file = PyUnicode_InternFromString("code.file.path");
    s_line = PyUnicode_InternFromString("code.line.number");
    s_gather = PyUnicode_InternFromString("gather");
    s_gather_call = PyUnicode_InternFromString("gather(");
    if (s_task_name == NULL || s_awaited == NULL || s_awaited_span == NULL || s_file == NULL
        || s_line == NULL || s_gather == NULL || s_gather_call == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
