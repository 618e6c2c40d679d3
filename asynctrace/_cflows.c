/* asynctrace._cflows: the JSON timeline's arrows, task counter and row names in C (optional;
 * _chrome_around.py's _flows_python, _counter_python and _row_labels_python are the
 * reference, and what runs without C).
 *
 * Problem: the arrows between tasks (a spawn and a join per task), the "tasks" counter and the
 * rows' names were made in Python, task by task and point by point: about 6 ms for fanout's
 * 2,000 tasks, and over half a second for the 100,000 tasks of the 1.1-million-span run, a
 * fifth of writing its file.
 *
 * Solution: the same loops here, in the same order, giving the same objects: the flow tuples
 * (ph, tid, ts, id, cat, enclosing) that _cjson and _chrome_text write, the markers made by the
 * Python callbacks given (once per moment a creator spawns in and per join, not per task), the
 * counter's event dicts.  Times follow _chrome._ns and _chrome._us exactly: round half to
 * even, an int of microseconds when whole, else the correctly rounded float (so only times
 * under 2**53 ns).
 *
 *   flows(spawned, join_spans, by_id, tids, rows, after, spawn_marker, join_marker) -> tail
 *   counter_events(points, max_points) -> [event, ...]
 *   row_labels(tracks, by_id, row_label) -> [label, ...]
 *
 * Only what gives the same answer with no Python code of the trace run is taken: exact Spans,
 * float times that are not NaN, exact dicts of attributes, ints of 64 bits.  Anything else (a
 * hand-made trace's odd values) is a TypeError or ValueError, raised where it is met (each
 * span is read once: checking them all first was a second pass of cache misses on a big
 * trace); the caller then empties ``rows`` and ``after`` and runs the Python version, which
 * answers (or fails) as it always did.  (row_labels leaves every row but a plain task's to the row_label given.)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define ASYNCTRACE_OWN_SPAN_OFFSETS
#include "_spanslots.h"
static Py_ssize_t offsets[N_FIELDS];
static PyTypeObject *span_type; /* NULL until configure(): every span is then refused */
static long long origin_ns;     /* _chrome.ORIGIN_NS: trace time 0 in the file */
static Py_ssize_t max_chars;    /* _sanitize.MAX_CHARS: a longer name is cut by Python */
static PyObject *s_gather, *s_task_name, *s_task_thread, *s_awaited, *s_after, *s_tid, *s_event,
    *s_name, *s_tasks, *s_s, *s_f, *s_c, *s_spawn, *s_join, *one, *zero;

#define SLOT(span, f) SPAN_SLOT(offsets, span, f)
#define EXACT_NS 9007199254740992.0 /* 2**53: below it, ns / 1000 is Python's true division */

static int
refuse(PyObject *type, const char *what)
{
    PyErr_Format(type, "_cflows does not take %s (the Python version does)", what);
    return -1;
}

/* A borrowed field of an exact Span; NULL with a TypeError for anything else. */
static PyObject *
field(PyObject *span, int f)
{
    if (Py_TYPE(span) != span_type || SLOT(span, f) == NULL) {
        refuse(PyExc_TypeError, "an object that is not exactly a Span with its fields set");
        return NULL;
    }
    return SLOT(span, f);
}

/* A float time that is not NaN; -1 with a TypeError or ValueError. */
static int
seconds_of(PyObject *span, int f, double *out)
{
    PyObject *value = field(span, f);
    if (value == NULL) {
        return -1;
    }
    if (!PyFloat_CheckExact(value) || isnan(PyFloat_AS_DOUBLE(value))) {
        return refuse(PyExc_ValueError, "a time that is not a float, or NaN");
    }
    *out = PyFloat_AS_DOUBLE(value);
    return 0;
}

/* _chrome._ns: round(seconds * 1e9) + ORIGIN_NS, for a time whose microseconds are exact. */
static int
ns_of(double seconds, long long *out)
{
    double ns = nearbyint(seconds * 1e9);
    if (!(fabs(ns) < EXACT_NS / 2)) {
        return refuse(PyExc_ValueError, "a time past 2**52 ns");
    }
    *out = (long long)ns + origin_ns;
    return 0;
}

static int
span_ns(PyObject *span, int f, long long *out)
{
    double seconds;
    return seconds_of(span, f, &seconds) < 0 ? -1 : ns_of(seconds, out);
}

/* _chrome._us: an int of microseconds when whole, else a float (a new reference). */
static PyObject *
us(long long ns)
{
    if (ns % 1000 == 0) {
        return PyLong_FromLongLong(ns / 1000);
    }
    return PyFloat_FromDouble((double)ns / 1000.0);
}

/* A flow tuple (ph, tid, us(ns), id, cat, enclosing), appended to ``list``. */
static int
add_flow(PyObject *list, PyObject *ph, PyObject *tid, long long ns, long long id, PyObject *cat,
         int enclosing)
{
    PyObject *flow = Py_BuildValue("(OONLOO)", ph, tid, us(ns), id, cat,
                                   enclosing ? Py_True : Py_False);
    int rc = flow == NULL ? -1 : PyList_Append(list, flow);
    Py_XDECREF(flow);
    return rc;
}

/* ``mapping[key]`` (borrowed), NULL with a KeyError as Python's indexing raises it. */
static PyObject *
item(PyObject *mapping, PyObject *key)
{
    PyObject *value = PyDict_GetItemWithError(mapping, key);
    if (value == NULL && !PyErr_Occurred()) {
        PyErr_SetObject(PyExc_KeyError, key);
    }
    return value;
}

/* What flows() reads of a span it is given (a spawned one, an await on others), checked before
 * it is read. */
static int
check_span(PyObject *span)
{
    static const int wanted[] = {F_SPAN_ID, F_KIND, F_NAME, F_TRACK, F_ATTRIBUTES, F_START_SEQ,
                                 F_PARENT};
    double seconds;
    for (size_t w = 0; w < sizeof wanted / sizeof wanted[0]; w++) {
        if (field(span, wanted[w]) == NULL) {
            return -1;
        }
    }
    if (seconds_of(span, F_START, &seconds) < 0 || seconds_of(span, F_END, &seconds) < 0) {
        return -1;
    }
    if (!PyUnicode_CheckExact(SLOT(span, F_KIND)) || !PyDict_CheckExact(SLOT(span, F_ATTRIBUTES))) {
        return refuse(PyExc_TypeError, "a kind not a str, or attributes not a dict");
    }
    PyObject *parent = SLOT(span, F_PARENT);
    if (parent != Py_None && (field(parent, F_TRACK) == NULL || field(parent, F_KIND) == NULL
                              || field(parent, F_NAME) == NULL || field(parent, F_SPAN_ID) == NULL)) {
        return -1;
    }
    if (parent != Py_None && !PyUnicode_CheckExact(SLOT(parent, F_KIND))) {
        return refuse(PyExc_TypeError, "a kind not a str");
    }
    return 0;
}

/* _chrome_around._waiter: the await on the creator's row (``joins``, its starts ascending) that
 * waited for ``child``, borrowed; NULL and no error when none did. */
static PyObject *
waiter_of(PyObject *child, PyObject *joins)
{
    double end = PyFloat_AS_DOUBLE(SLOT(child, F_END));
    Py_ssize_t lo = 0, hi = joins == NULL ? 0 : PyList_GET_SIZE(joins);
    while (lo < hi) { /* bisect.bisect_right, as it compares */
        Py_ssize_t mid = (lo + hi) / 2;
        if (end < PyFloat_AS_DOUBLE(SLOT(PyList_GET_ITEM(joins, mid), F_START))) {
            hi = mid;
        }
        else {
            lo = mid + 1;
        }
    }
    if (lo == 0) {
        return NULL;
    }
    PyObject *waiter = PyList_GET_ITEM(joins, lo - 1);
    if (PyFloat_AS_DOUBLE(SLOT(waiter, F_END)) < end) {
        return NULL;
    }
    PyObject *parent = SLOT(child, F_PARENT);
    if (parent != Py_None && PyUnicode_Compare(SLOT(parent, F_KIND), s_gather) == 0) {
        if (SLOT(waiter, F_PARENT) == parent) {
            return waiter;
        }
        int same = PyObject_RichCompareBool(SLOT(waiter, F_NAME), SLOT(parent, F_NAME), Py_EQ);
        return same > 0 ? waiter : NULL;
    }
    PyObject *task_name = PyDict_GetItemWithError(SLOT(child, F_ATTRIBUTES), s_task_name);
    if (task_name == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *empty = PyUnicode_New(0, 0);
    PyObject *name_text = empty ? PyObject_Format(task_name ? task_name : Py_None, empty) : NULL;
    PyObject *child_text = name_text ? PyObject_Format(SLOT(child, F_NAME), empty) : NULL;
    PyObject *wanted = child_text ? PyUnicode_FromFormat("%U (%U)", name_text, child_text) : NULL;
    Py_XDECREF(empty);
    Py_XDECREF(name_text);
    Py_XDECREF(child_text);
    if (wanted == NULL) {
        return NULL;
    }
    int found = PyObject_RichCompareBool(SLOT(waiter, F_NAME), wanted, Py_EQ);
    if (found == 0) {
        PyObject *awaited = PyDict_GetItemWithError(SLOT(waiter, F_ATTRIBUTES), s_awaited);
        found = awaited != NULL ? PyObject_RichCompareBool(awaited, wanted, Py_EQ)
                                : (PyErr_Occurred() ? -1 : PyObject_RichCompareBool(Py_None, wanted, Py_EQ));
    }
    Py_DECREF(wanted);
    return found > 0 ? waiter : NULL;
}

/* A marker made by ``make(tid, ns, span)``, filed in ``markers`` under ``key`` as
 * (marker, its after list, its tid, its time in ns) and appended to ``row``; borrowed. */
static PyObject *
new_marker(PyObject *markers, PyObject *key, PyObject *make, PyObject *tid, long long ns,
           PyObject *span, PyObject *row)
{
    PyObject *at = PyLong_FromLongLong(ns);
    PyObject *marker = at ? PyObject_CallFunctionObjArgs(make, tid, at, span, NULL) : NULL;
    Py_XDECREF(at);
    PyObject *after = marker ? PyObject_GetAttr(marker, s_after) : NULL;
    PyObject *marker_tid = after ? PyObject_GetAttr(marker, s_tid) : NULL;
    PyObject *entry = NULL;
    if (marker_tid != NULL && !PyList_Check(after)) {
        PyErr_SetString(PyExc_TypeError, "a marker's after MUST be a list");
    }
    else if (marker_tid != NULL) {
        entry = Py_BuildValue("(OOOL)", marker, after, marker_tid, ns);
    }
    Py_XDECREF(marker);
    Py_XDECREF(after);
    Py_XDECREF(marker_tid);
    if (entry == NULL || PyDict_SetItem(markers, key, entry) < 0
        || PyList_Append(row, PyTuple_GET_ITEM(entry, 0)) < 0) {
        Py_XDECREF(entry);
        return NULL;
    }
    Py_DECREF(entry); /* markers holds it */
    return entry;
}

/* The spawn markers (their entries, as new_marker files them) that start more than one arrow
 * are named for how many. */
static int
name_spawn_markers(PyObject *entries)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(entries); i++) {
        PyObject *entry = PyList_GET_ITEM(entries, i);
        Py_ssize_t n = PyList_GET_SIZE(PyTuple_GET_ITEM(entry, 1));
        if (n <= 1) {
            continue;
        }
        PyObject *event = PyObject_GetAttr(PyTuple_GET_ITEM(entry, 0), s_event);
        if (event == NULL) {
            return -1;
        }
        int rc = 0;
        if (event != Py_None) { /* a marker always has its event */
            PyObject *name = PyUnicode_FromFormat("start %zd tasks", n);
            rc = name == NULL ? -1 : PyObject_SetItem(event, s_name, name);
            Py_XDECREF(name);
        }
        Py_DECREF(event);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* What flows() keeps across the spawned spans (see _chrome_around._flows_python): each
 * creator's marker of the moment it spawns in, every spawn marker's entry, how far into each
 * creator's children the spawned ones have been found. */
typedef struct {
    PyObject *by_id, *tids, *rows, *after, *spawn_marker, *join_marker;
    PyObject *spawn_markers, *markers, *seen, *join_markers, *by_track, *tail;
    long long flow_id;
} Flows;

/* _chrome_around._stepped: 1 when ``parent`` took a step (a child of it that is no task or
 * thread job began) since the spawned child before ``child``, 0 when not, -1 with an
 * exception. */
static int
stepped(Flows *st, PyObject *parent, PyObject *child)
{
    PyObject *children = field(parent, F_CHILDREN);
    if (children == NULL) {
        return -1;
    }
    if (!PyList_CheckExact(children)) {
        return refuse(PyExc_TypeError, "children that are not a list");
    }
    PyObject *key = SLOT(parent, F_SPAN_ID);
    PyObject *seen = PyDict_GetItemWithError(st->seen, key);
    Py_ssize_t i = 0;
    if (seen != NULL) {
        i = PyLong_AsSsize_t(seen);
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    int found = 0;
    for (; i < PyList_GET_SIZE(children) && PyList_GET_ITEM(children, i) != child; i++) {
        if (found) {
            continue; /* Python reads no more kinds once it found a step */
        }
        PyObject *kind = field(PyList_GET_ITEM(children, i), F_KIND);
        if (kind == NULL) {
            return -1;
        }
        if (!PyUnicode_CheckExact(kind)) {
            return refuse(PyExc_TypeError, "a kind not a str");
        }
        found = PyUnicode_CompareWithASCIIString(kind, "task") != 0
                && PyUnicode_CompareWithASCIIString(kind, "thread") != 0;
    }
    PyObject *next = PyLong_FromSsize_t(i + 1);
    int rc = next == NULL ? -1 : PyDict_SetItem(st->seen, key, next);
    Py_XDECREF(next);
    return rc < 0 ? -1 : found;
}

/* One spawned span's arrows. */
static int
span_flows(Flows *st, PyObject *span)
{
    PyObject *parent = SLOT(span, F_PARENT);
    if (parent == Py_None) {
        return 0;
    }
    int same_row = PyObject_RichCompareBool(SLOT(parent, F_TRACK), SLOT(span, F_TRACK), Py_EQ);
    if (same_row != 0) {
        return same_row < 0 ? -1 : 0;
    }
    st->flow_id += 1;
    PyObject *task = item(st->by_id, SLOT(span, F_SPAN_ID));
    long long start, end;
    if (task == NULL || span_ns(task, F_START, &start) < 0 || span_ns(task, F_END, &end) < 0) {
        return -1;
    }
    end = end > start ? end : start;
    int step = stepped(st, parent, span);
    if (step < 0) {
        return -1;
    }
    PyObject *spawn = PyDict_GetItemWithError(st->spawn_markers, SLOT(parent, F_SPAN_ID));
    if (spawn == NULL || step) {
        PyObject *tid = PyErr_Occurred() ? NULL : item(st->tids, SLOT(parent, F_TRACK));
        PyObject *row = tid ? item(st->rows, SLOT(parent, F_TRACK)) : NULL;
        /* 2 ns before the first child of the moment (see _flows_python) */
        spawn = row ? new_marker(st->spawn_markers, SLOT(parent, F_SPAN_ID), st->spawn_marker,
                                 tid, start - 2, span, row)
                    : NULL;
        if (spawn == NULL || PyList_Append(st->markers, spawn) < 0) {
            return -1;
        }
    }
    long long at = PyLong_AsLongLong(PyTuple_GET_ITEM(spawn, 3));
    if (add_flow(PyTuple_GET_ITEM(spawn, 1), s_s, PyTuple_GET_ITEM(spawn, 2), at, st->flow_id,
                 s_spawn, 0) < 0) {
        return -1;
    }
    PyObject *tid = item(st->tids, SLOT(span, F_TRACK));
    PyObject *bound = tid ? PyDict_GetItemWithError(st->after, SLOT(span, F_SPAN_ID)) : NULL;
    if (bound == NULL && tid != NULL && !PyErr_Occurred()) {
        PyObject *fresh = PyList_New(0);
        if (fresh == NULL || PyDict_SetItem(st->after, SLOT(span, F_SPAN_ID), fresh) < 0) {
            Py_XDECREF(fresh);
            return -1;
        }
        Py_DECREF(fresh); /* after holds it */
        bound = fresh;
    }
    if (bound == NULL || add_flow(bound, s_f, tid, start - 1, st->flow_id, s_spawn, 0) < 0) {
        return -1;
    }
    PyObject *joins = PyDict_GetItemWithError(st->by_track, SLOT(parent, F_TRACK));
    PyObject *waiter = joins == NULL && PyErr_Occurred() ? NULL : waiter_of(span, joins);
    if (waiter == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *join = PyDict_GetItemWithError(st->join_markers, SLOT(waiter, F_SPAN_ID));
    if (join == NULL) {
        PyObject *awaiting = PyErr_Occurred() ? NULL : item(st->by_id, SLOT(waiter, F_SPAN_ID));
        long long awaiting_start, awaiting_end;
        if (awaiting == NULL || span_ns(awaiting, F_START, &awaiting_start) < 0
            || span_ns(awaiting, F_END, &awaiting_end) < 0) {
            return -1;
        }
        awaiting_end -= 1;
        PyObject *waiter_tid = item(st->tids, SLOT(waiter, F_TRACK));
        PyObject *row = waiter_tid ? item(st->rows, SLOT(waiter, F_TRACK)) : NULL;
        join = row ? new_marker(st->join_markers, SLOT(waiter, F_SPAN_ID), st->join_marker,
                                waiter_tid,
                                awaiting_end > awaiting_start ? awaiting_end : awaiting_start,
                                waiter, row)
                   : NULL;
        if (join == NULL) {
            return -1;
        }
    }
    st->flow_id += 1;
    /* strictly before the "f" (at the waiter's end - 1 ns): equal times are not ordered */
    if (add_flow(st->tail, s_s, tid, end - 2 > start ? end - 2 : start, st->flow_id, s_join, 0) < 0) {
        return -1;
    }
    at = PyLong_AsLongLong(PyTuple_GET_ITEM(join, 3));
    return add_flow(PyTuple_GET_ITEM(join, 1), s_f, PyTuple_GET_ITEM(join, 2), at, st->flow_id,
                    s_join, 1);
}

static PyObject *
flows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1])
        || !PyDict_CheckExact(args[2]) || !PyDict_CheckExact(args[3])
        || !PyDict_CheckExact(args[4]) || !PyDict_CheckExact(args[5])) {
        PyErr_SetString(PyExc_TypeError, "flows(spawned: list, join_spans: list, by_id: dict, "
                                         "tids: dict, rows: dict, after: dict, spawn_marker, "
                                         "join_marker)");
        return NULL;
    }
    if (span_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() MUST be called first");
        return NULL;
    }
    Flows st = {.by_id = args[2], .tids = args[3], .rows = args[4], .after = args[5],
                .spawn_marker = args[6], .join_marker = args[7]};
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(args[1]); i++) {
        if (check_span(PyList_GET_ITEM(args[1], i)) < 0) { /* any of them may be read */
            return NULL;
        }
    }
    st.spawn_markers = PyDict_New();
    st.markers = PyList_New(0);
    st.seen = PyDict_New();
    st.join_markers = PyDict_New();
    st.by_track = PyDict_New();
    st.tail = PyList_New(0);
    int made = st.spawn_markers && st.markers && st.seen && st.join_markers && st.by_track
               && st.tail;
    int rc = made ? 0 : -1;
    /* in start order, and a task awaits one thing at a time */
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(args[1]); i++) {
        PyObject *span = PyList_GET_ITEM(args[1], i);
        PyObject *joins = PyDict_GetItemWithError(st.by_track, SLOT(span, F_TRACK));
        if (joins == NULL && !PyErr_Occurred()) {
            joins = PyList_New(0);
            rc = joins == NULL || PyDict_SetItem(st.by_track, SLOT(span, F_TRACK), joins) < 0 ? -1 : 0;
            Py_XDECREF(joins); /* by_track holds it */
        }
        rc = rc < 0 || joins == NULL || PyList_Append(joins, span) < 0 ? -1 : 0;
    }
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(args[0]); i++) {
        PyObject *span = PyList_GET_ITEM(args[0], i);
        rc = check_span(span) < 0 ? -1 : span_flows(&st, span);
    }
    rc = rc < 0 ? -1 : name_spawn_markers(st.markers);
    Py_XDECREF(st.spawn_markers);
    Py_XDECREF(st.markers);
    Py_XDECREF(st.seen);
    Py_XDECREF(st.join_markers);
    Py_XDECREF(st.by_track);
    if (rc < 0) {
        Py_XDECREF(st.tail);
        return NULL;
    }
    return st.tail;
}

/* A counter point (t, running, waiting) read into C; -1 with a TypeError or ValueError. */
static int
read_point(PyObject *point, double *t, long long *running, long long *waiting)
{
    if (!PyTuple_CheckExact(point) || PyTuple_GET_SIZE(point) != 3
        || !PyFloat_CheckExact(PyTuple_GET_ITEM(point, 0))
        || !PyLong_CheckExact(PyTuple_GET_ITEM(point, 1))
        || !PyLong_CheckExact(PyTuple_GET_ITEM(point, 2))) {
        return refuse(PyExc_TypeError, "a point that is not (float, int, int)");
    }
    int overflow = 0, more = 0;
    *t = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(point, 0));
    *running = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(point, 1), &more);
    overflow |= more;
    *waiting = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(point, 2), &more);
    overflow |= more;
    if (overflow || !isfinite(*t)) {
        return refuse(PyExc_ValueError, "a count past 64 bits, or a time not finite");
    }
    return 0;
}

typedef struct {
    double t;
    long long running, waiting;
} Point;

/* counter_events(points, max_points) -> the "tasks" counter's events, as _counter_python
 * makes them: more than max_points points keep each bucket's peaks. */
static PyObject *
counter_events(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t most = nargs == 2 ? PyLong_AsSsize_t(args[1]) : -1;
    if (nargs != 2 || !PyList_CheckExact(args[0]) || most < 2) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "counter_events(points: list, max_points: int >= 2)");
        }
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(args[0]), kept = 0;
    Point *points = PyMem_Malloc(sizeof(Point) * (size_t)(n ? n : 1));
    if (points == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Point *p = &points[i];
        if (read_point(PyList_GET_ITEM(args[0], i), &p->t, &p->running, &p->waiting) < 0) {
            PyMem_Free(points);
            return NULL;
        }
    }
    kept = n;
    if (n > most) {
        double t0 = points[0].t, t1 = points[n - 1].t;
        double step = (t1 - t0) / (double)(most - 1);
        step = step != 0.0 ? step : 1.0;
        long long last = most - 1, bucket = -1;
        kept = 0;
        for (Py_ssize_t i = 0; i < n; i++) { /* in time order: each bucket's points in a run */
            double q = (points[i].t - t0) / step;
            if (!(q > -9.0e18 && q < 9.0e18)) {
                PyMem_Free(points);
                PyErr_SetString(PyExc_ValueError, "_cflows does not take a counter step this odd");
                return NULL;
            }
            long long b = (long long)q; /* int(): toward zero */
            b = b < last ? b : last;
            if (b != bucket) {
                bucket = b;
                points[kept++] = (Point){t0 + (double)b * step, points[i].running, points[i].waiting};
            }
            else {
                Point *peak = &points[kept - 1];
                peak->running = points[i].running > peak->running ? points[i].running : peak->running;
                peak->waiting = points[i].waiting > peak->waiting ? points[i].waiting : peak->waiting;
            }
        }
        points[kept - 1].t = t1;
    }
    PyObject *events = PyList_New(kept);
    for (Py_ssize_t i = 0; events != NULL && i < kept; i++) {
        long long ns;
        PyObject *event = NULL;
        if (ns_of(points[i].t, &ns) == 0) {
            event = Py_BuildValue("{sOsOsOsNsOs{sLsL}}", "ph", s_c, "pid", one, "tid", zero, "ts",
                                  us(ns), "name", s_tasks, "args", "running", points[i].running,
                                  "waiting", points[i].waiting);
        }
        if (event == NULL) {
            Py_CLEAR(events);
            break;
        }
        PyList_SET_ITEM(events, i, event);
    }
    PyMem_Free(points);
    return events;
}

/* _timeline.row_label of a task whose task name and name are short exact strs (nearly every
 * row: "Task-2 work()"), a new reference; NULL and no error for any other owner. */
static PyObject *
task_label(PyObject *owner)
{
    if (Py_TYPE(owner) != span_type || SLOT(owner, F_KIND) == NULL
        || !PyUnicode_CheckExact(SLOT(owner, F_KIND))
        || PyUnicode_CompareWithASCIIString(SLOT(owner, F_KIND), "task") != 0) {
        return NULL;
    }
    PyObject *attributes = SLOT(owner, F_ATTRIBUTES), *name = SLOT(owner, F_NAME);
    if (attributes == NULL || !PyDict_CheckExact(attributes) || name == NULL
        || !PyUnicode_CheckExact(name) || PyUnicode_GET_LENGTH(name) > max_chars) {
        return NULL;
    }
    PyObject *task_name = PyDict_GetItemWithError(attributes, s_task_name);
    if (task_name == NULL || !PyUnicode_CheckExact(task_name)
        || PyUnicode_GET_LENGTH(task_name) == 0 || PyUnicode_GET_LENGTH(task_name) > max_chars) {
        return NULL; /* an error, too, is left to Python's row_label to raise */
    }
    /* a task on another thread's loop: its thread is in its name, which Python writes */
    if (PyDict_GetItemWithError(attributes, s_task_thread) != NULL || PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    return PyUnicode_FromFormat("%U %U()", task_name, name);
}

/* row_labels(tracks, by_id, row_label): each row's name, as
 * _chrome_around._row_labels_python gives it; ``row_label`` names the rows this does not (a thread job's, the run's). */
static PyObject *
row_labels(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "row_labels(tracks: list, by_id: dict, row_label)");
        return NULL;
    }
    if (span_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() MUST be called first");
        return NULL;
    }
    PyObject *tracks = args[0];
    PyObject *labels = PyList_New(PyList_GET_SIZE(tracks));
    for (Py_ssize_t i = 0; labels != NULL && i < PyList_GET_SIZE(tracks); i++) {
        PyObject *track = PyList_GET_ITEM(tracks, i), *label = NULL;
        PyObject *owner = PyDict_GetItemWithError(args[1], track);
        if (owner != NULL) {
            label = task_label(owner);
            if (label == NULL && !PyErr_Occurred()) {
                label = PyObject_CallOneArg(args[2], owner);
            }
        }
        else if (!PyErr_Occurred()) {
            PyObject *empty = PyUnicode_New(0, 0);
            PyObject *text = empty ? PyObject_Format(track, empty) : NULL; /* as an f-string */
            label = text ? PyUnicode_FromFormat("track %U", text) : NULL;
            Py_XDECREF(empty);
            Py_XDECREF(text);
        }
        if (label == NULL) {
            Py_CLEAR(labels);
            break;
        }
        PyList_SET_ITEM(labels, i, label);
    }
    return labels;
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *type;
    long long origin;
    Py_ssize_t max;
    if (!PyArg_ParseTuple(args, "O!Ln:configure", &PyType_Type, &type, &origin, &max)) {
        return NULL;
    }
    if (learn_span_offsets((PyTypeObject *)type, offsets) < 0) { /* all or nothing */
        return NULL;
    }
    origin_ns = origin;
    max_chars = max;
    Py_INCREF(type);
    Py_XSETREF(span_type, (PyTypeObject *)type);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     PyDoc_STR("configure(span_type, origin_ns, max_chars): a Span's slots, ORIGIN_NS and "
               "MAX_CHARS; once, first.")},
    {"row_labels", (PyCFunction)(void (*)(void))row_labels, METH_FASTCALL,
     PyDoc_STR("row_labels(tracks, by_id, row_label) -> [label, ...] (see "
               "_chrome_around._row_labels_python).")},
    {"flows", (PyCFunction)(void (*)(void))flows, METH_FASTCALL,
     PyDoc_STR("flows(spawned, join_spans, by_id, tids, rows, after, spawn_marker, "
               "join_marker) -> tail (see _chrome_around._flows_python).")},
    {"counter_events", (PyCFunction)(void (*)(void))counter_events, METH_FASTCALL,
     PyDoc_STR("counter_events(points, max_points) -> [event, ...] (see "
               "_chrome_around._counter_python).")},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "asynctrace._cflows",
    PyDoc_STR("The JSON timeline's arrows, counter and row names in C (see _chrome_around.py)."),
    -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__cflows(void)
{
    const char *texts[] = {"gather", "asynctrace.task.name", "thread.name", "asynctrace.awaited",
                           "after", "tid", "event", "name", "tasks", "s", "f", "C", "spawn",
                           "join"};
    PyObject **targets[] = {&s_gather, &s_task_name, &s_task_thread, &s_awaited, &s_after,
                            &s_tid, &s_event, &s_name, &s_tasks, &s_s, &s_f, &s_c, &s_spawn,
                            &s_join};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        *targets[i] = PyUnicode_InternFromString(texts[i]);
        if (*targets[i] == NULL) {
            return NULL;
        }
    }
    one = PyLong_FromLong(1);
    zero = PyLong_FromLong(0);
    if (one == NULL || zero == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
