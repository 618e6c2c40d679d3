/* asynctrace._cbars: the cells of a terminal timeline's rows (optional; _bars.py has the same
 * in Python, which is the reference).
 *
 * Problem: drawing a grouped row paints every one of its spans cell by cell, each with the
 * awaits and blocked steps of its track; in Python a 22,000-span run spent longer gathering
 * those marks by track and painting than building its trace.
 *
 * Solution: paint_rows(rows, awaits, blocked, t0, step, cols) does exactly what
 * _bars.paint_rows_python does, with the same double arithmetic in the same order (setup.py
 * builds it with -ffp-contract=off: no fused multiply-add), so both give the same cells: the
 * marks of the drawn tracks, each track's sorted by start and searched by bisection as
 * _bars.Marks.overlapping does, then each row's levels as bytes, one per cell: 0 empty,
 * 1 waiting, 2 running, 3 blocked; a cell shows the highest level of the row's spans.  A time
 * that is not a finite float, or a step that is not positive, is a ValueError or TypeError
 * (the caller then runs the Python version, which fails or not exactly as before).
 *
 * call_depths(calls, owner, walk) does what _terminal_rows.call_depths_python does: how deep
 * each of a task's calls is drawn under it (20,000 nested calls make 20,000 rows to choose
 * from); by_key(keys, values), what _terminal_rows.by_key_python does: values grouped by key,
 * for the rows of repeated calls and the wait profile's groups; row_bounds(rows), what
 * _bars.row_bounds_python does: where the drawn rows begin and end, for the axis and numbers.
 * running_lengths(tasks, awaits, lo, hi) does what _waits.running_lengths_python does: the
 * time some task was running, for the wait profile's "no task running" (see below).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* The Span's slots, learned here by configure(span_type) (this extension is not _speedups):
 * an exact Span's fields are read in place, anything else's by getattr. */
#define ASYNCTRACE_OWN_SPAN_OFFSETS
#include "_spanslots.h"
static Py_ssize_t offsets[N_FIELDS];
static PyTypeObject *span_type; /* NULL until configure() */
static PyObject *field_names[N_FIELDS]; /* interned, for the fields read here */

/* obj.<field>, a new reference; NULL with an exception set. */
static PyObject *
attr(PyObject *obj, int field)
{
    if (Py_TYPE(obj) == span_type) {
        PyObject *value = SPAN_SLOT(offsets, obj, field);
        if (value != NULL) {
            return Py_NewRef(value);
        }
    }
    return PyObject_GetAttr(obj, field_names[field]);
}

enum { EMPTY = 0, WAITING = 1, RUNNING = 2, BLOCKED = 3 };

typedef struct {
    double t0, step;
    Py_ssize_t cols;
} Axis;

/* _bars.cell_range: first and last cells [a, b] touches; returns 0 when none. */
static int
cell_range(const Axis *ax, double a, double b, Py_ssize_t *first, Py_ssize_t *last)
{
    double right = ax->t0 + (double)ax->cols * ax->step;
    if (a < ax->t0) {
        a = ax->t0;
    }
    if (b > right) {
        b = right;
    }
    if (b < a) {
        return 0;
    }
    double x = (a - ax->t0) / ax->step;
    double y = (b - ax->t0) / ax->step;
    Py_ssize_t top = ax->cols - 1;
    /* max(0, min(cols - 1, int(x))): int() truncates toward zero */
    Py_ssize_t f = x >= (double)top ? top : (x <= 0.0 ? 0 : (Py_ssize_t)x);
    /* max(0, min(cols - 1, ceil(y) - 1)) */
    Py_ssize_t l = y > (double)top ? top : (y <= 1.0 ? 0 : (Py_ssize_t)ceil(y) - 1);
    *first = f;
    *last = l > f ? l : f;
    return 1;
}

static void
paint(const Axis *ax, double *cells, Py_ssize_t base, Py_ssize_t top, double a, double b)
{
    Py_ssize_t first, last;
    if (!cell_range(ax, a, b, &first, &last)) {
        return;
    }
    if (first < base) {
        first = base;
    }
    if (last > top) {
        last = top;
    }
    for (Py_ssize_t i = first; i <= last; i++) {
        double lo = ax->t0 + (double)i * ax->step;
        double hi = ax->t0 + (double)(i + 1) * ax->step;
        double width = (b < hi ? b : hi) - (a > lo ? a : lo);
        cells[i - base] += width > 1e-12 ? width : 1e-12;
    }
}

/* A float from a number, or -1 with ValueError/TypeError set when it is not finite. */
static int
as_finite(PyObject *value, double *out)
{
    double d = PyFloat_AsDouble(value);
    if (d == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (!isfinite(d)) {
        PyErr_SetString(PyExc_ValueError, "a time that is not finite");
        return -1;
    }
    *out = d;
    return 0;
}

/* An attribute that MUST be a float (an int would compare exactly in Python): TypeError. */
static int
float_attr(PyObject *obj, int field, double *out)
{
    PyObject *value = attr(obj, field);
    if (value == NULL) {
        return -1;
    }
    if (!PyFloat_Check(value)) {
        Py_DECREF(value);
        PyErr_SetString(PyExc_TypeError, "a time that is not a float");
        return -1;
    }
    *out = PyFloat_AS_DOUBLE(value);
    Py_DECREF(value);
    return 0;
}

/* float_attr, and the float MUST be finite: ValueError. */
static int
finite_attr(PyObject *obj, int field, double *out)
{
    if (float_attr(obj, field, out) < 0) {
        return -1;
    }
    if (!isfinite(*out)) {
        PyErr_SetString(PyExc_ValueError, "a time that is not finite");
        return -1;
    }
    return 0;
}

/* The group (index in 0..) of a key in groups; -1 for a key not there when add is 0; -2 with
 * an exception set. */
static Py_ssize_t
group_of(PyObject *groups, PyObject *key, int add)
{
    PyObject *found = PyDict_GetItemWithError(groups, key);
    if (found != NULL) {
        return PyLong_AsSsize_t(found);
    }
    if (PyErr_Occurred()) {
        return -2;
    }
    if (!add) {
        return -1;
    }
    PyObject *number = PyLong_FromSsize_t(PyDict_GET_SIZE(groups));
    if (number == NULL || PyDict_SetItem(groups, key, number) < 0) {
        Py_XDECREF(number);
        return -2;
    }
    Py_ssize_t group = PyDict_GET_SIZE(groups) - 1;
    Py_DECREF(number);
    return group;
}

/* The group of obj's track (added when new, if add), or -1 / -2 as group_of. */
static Py_ssize_t
track_group(PyObject *groups, PyObject *obj, int add)
{
    PyObject *track = attr(obj, F_TRACK);
    if (track == NULL) {
        return -2;
    }
    Py_ssize_t group = group_of(groups, track, add);
    Py_DECREF(track);
    return group;
}

/* A mark: an await (blocked = 0) or a blocked step, and its place in the lists given (the
 * awaits, then the blocked steps): ties of start keep that order, as Python's stable sort. */
typedef struct {
    double a, b;
    int blocked;
    Py_ssize_t order;
} Mark;

static int
by_start_then_order(const void *x, const void *y)
{
    const Mark *p = x, *q = y;
    if (p->a != q->a) {
        return p->a < q->a ? -1 : 1;
    }
    return p->order < q->order ? -1 : (p->order > q->order ? 1 : 0);
}

/* _bars.Marks of one track: marks[0..n) sorted by start; ends_so_far[i] the latest end of the
 * first i + 1. */
typedef struct {
    const Mark *marks;
    const double *ends_so_far;
    Py_ssize_t n;
} TrackMarks;

/* _bars._span_levels: the cells one span of a row paints, raised into levels. */
static void
span_levels(const Axis *ax, double start, double end, const TrackMarks *tm,
            unsigned char *levels, double *scratch)
{
    Py_ssize_t base, top;
    if (!cell_range(ax, start, end, &base, &top)) {
        return;
    }
    Py_ssize_t n = top - base + 1; /* at most cols: a range lies within the bar */
    double *alive = scratch, *waiting = scratch + ax->cols, *blocked = scratch + 2 * ax->cols;
    for (Py_ssize_t i = 0; i < n; i++) {
        alive[i] = waiting[i] = blocked[i] = 0.0;
    }
    paint(ax, alive, base, top, start, end);
    /* Marks.overlapping: bisect_left(ends_so_far, start), bisect_right(starts, end) */
    Py_ssize_t first = 0, hi = tm->n;
    while (first < hi) {
        Py_ssize_t mid = first + (hi - first) / 2;
        if (tm->ends_so_far[mid] < start) {
            first = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    Py_ssize_t last = 0;
    hi = tm->n;
    while (last < hi) {
        Py_ssize_t mid = last + (hi - last) / 2;
        if (end < tm->marks[mid].a) {
            hi = mid;
        }
        else {
            last = mid + 1;
        }
    }
    for (Py_ssize_t k = first; k < last; k++) {
        const Mark *m = &tm->marks[k];
        if (!(m->b >= start)) {
            continue; /* ended before the span: Marks.overlapping leaves it out */
        }
        double a = m->a > start ? m->a : start;
        double b = m->b < end ? m->b : end;
        if (b >= a) {
            paint(ax, m->blocked ? blocked : waiting, base, top, a, b);
        }
    }

    /* shown: filled at least half; else the fullest cell (the first of equals) if any */
    double half = ax->step / 2;
    int any_shown = 0;
    Py_ssize_t fullest = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (alive[i] >= half) {
            any_shown = 1;
        }
        if (alive[i] != 0.0 && (fullest < 0 || alive[i] > alive[fullest])) {
            fullest = i;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int shown = any_shown ? alive[i] >= half : i == fullest;
        if (!shown) {
            continue;
        }
        unsigned char level;
        if (blocked[i] > 0) {
            level = BLOCKED;
        }
        else if (waiting[i] * 2 >= alive[i]) {
            level = WAITING;
        }
        else {
            level = RUNNING;
        }
        if (level > levels[base + i]) {
            levels[base + i] = level;
        }
    }
}

/* paint_rows(rows, awaits, blocked, t0, step, cols): _bars.paint_rows_python in C.  The
 * marks of the drawn tracks only are gathered (a counting sort by track, then each track's
 * sorted by start), and every row's spans painted from them. */
static PyObject *
paint_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "paint_rows(rows, awaits, blocked, t0, step, cols)");
        return NULL;
    }
    Axis ax;
    if (as_finite(args[3], &ax.t0) < 0 || as_finite(args[4], &ax.step) < 0) {
        return NULL;
    }
    ax.cols = PyLong_AsSsize_t(args[5]);
    if (ax.cols == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!(ax.step > 0) || ax.cols < 1) {
        PyErr_SetString(PyExc_ValueError, "step MUST be positive and cols at least 1");
        return NULL;
    }
    PyObject *rows = PySequence_Fast(args[0], "rows is a sequence of sequences of spans");
    if (rows == NULL) {
        return NULL;
    }
    Py_ssize_t n_rows = PySequence_Fast_GET_SIZE(rows);
    PyObject *lists[2] = {NULL, NULL}; /* the awaits, the blocked steps */
    PyObject **row_spans = PyMem_Calloc((size_t)n_rows + 1, sizeof(PyObject *));
    PyObject *groups = PyDict_New();
    PyObject *out = NULL;
    double *times = NULL, *scratch = NULL, *ends_so_far = NULL;
    Py_ssize_t *span_group = NULL, *first = NULL, *mark_group = NULL;
    Mark *marks = NULL;
    if (row_spans == NULL || groups == NULL) {
        if (row_spans == NULL) {
            PyErr_NoMemory();
        }
        goto done;
    }
    /* each drawn span's start, end and track group */
    Py_ssize_t n_spans = 0;
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        row_spans[r] = PySequence_Fast(PySequence_Fast_GET_ITEM(rows, r), "a row is spans");
        if (row_spans[r] == NULL) {
            goto done;
        }
        n_spans += PySequence_Fast_GET_SIZE(row_spans[r]);
    }
    times = PyMem_Malloc(sizeof(double) * 2 * ((size_t)n_spans + 1));
    span_group = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n_spans + 1));
    if (times == NULL || span_group == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(row_spans[r]);
        PyObject **spans = PySequence_Fast_ITEMS(row_spans[r]);
        for (Py_ssize_t i = 0; i < n; i++, at++) {
            if (finite_attr(spans[i], F_START, &times[2 * at]) < 0
                || finite_attr(spans[i], F_END, &times[2 * at + 1]) < 0) {
                goto done;
            }
            span_group[at] = track_group(groups, spans[i], 1);
            if (span_group[at] < 0) {
                goto done;
            }
        }
    }
    /* the marks of those tracks, counted by track, then placed in the order given */
    Py_ssize_t n_groups = PyDict_GET_SIZE(groups);
    Py_ssize_t n_given = 0;
    for (int k = 0; k < 2; k++) {
        lists[k] = PySequence_Fast(args[1 + k], "awaits and blocked are sequences of spans");
        if (lists[k] == NULL) {
            goto done;
        }
        n_given += PySequence_Fast_GET_SIZE(lists[k]);
    }
    first = PyMem_Calloc((size_t)n_groups + 2, sizeof(Py_ssize_t));
    mark_group = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n_given + 1));
    if (first == NULL || mark_group == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t given = 0;
    for (int k = 0; k < 2; k++) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(lists[k]);
        PyObject **spans = PySequence_Fast_ITEMS(lists[k]);
        for (Py_ssize_t i = 0; i < n; i++, given++) {
            mark_group[given] = track_group(groups, spans[i], 0);
            if (mark_group[given] < -1) {
                goto done;
            }
            if (mark_group[given] >= 0) {
                first[mark_group[given] + 1]++;
            }
        }
    }
    for (Py_ssize_t g = 0; g < n_groups; g++) {
        first[g + 1] += first[g];
    }
    Py_ssize_t n_marks = first[n_groups];
    marks = PyMem_Malloc(sizeof(Mark) * ((size_t)n_marks + 1));
    ends_so_far = PyMem_Malloc(sizeof(double) * ((size_t)n_marks + 1));
    if (marks == NULL || ends_so_far == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    given = 0;
    for (int k = 0; k < 2; k++) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(lists[k]);
        PyObject **spans = PySequence_Fast_ITEMS(lists[k]);
        for (Py_ssize_t i = 0; i < n; i++, given++) {
            Py_ssize_t g = mark_group[given];
            if (g < 0) {
                continue;
            }
            Mark *m = &marks[first[g]++];
            m->blocked = k;
            m->order = given;
            if (finite_attr(spans[i], F_START, &m->a) < 0
                || finite_attr(spans[i], F_END, &m->b) < 0) {
                goto done;
            }
        }
    }
    /* first[g] is now the end of group g's marks, and its start first[g - 1] (or 0) */
    for (Py_ssize_t g = 0; g < n_groups; g++) {
        Py_ssize_t lo = g > 0 ? first[g - 1] : 0, hi = first[g];
        int sorted = 1;
        for (Py_ssize_t i = lo + 1; i < hi && sorted; i++) {
            sorted = marks[i - 1].a <= marks[i].a;
        }
        if (!sorted) {
            qsort(marks + lo, (size_t)(hi - lo), sizeof(Mark), by_start_then_order);
        }
        for (Py_ssize_t i = lo; i < hi; i++) {
            ends_so_far[i] = i > lo && !(marks[i].b > ends_so_far[i - 1]) ? ends_so_far[i - 1]
                                                                            : marks[i].b;
        }
    }
    scratch = PyMem_Malloc(sizeof(double) * 3 * (size_t)ax.cols);
    out = scratch != NULL ? PyList_New(n_rows) : NULL;
    if (out == NULL) {
        if (scratch == NULL) {
            PyErr_NoMemory();
        }
        goto done;
    }
    at = 0;
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        PyObject *levels = PyBytes_FromStringAndSize(NULL, ax.cols);
        if (levels == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        unsigned char *cells = (unsigned char *)PyBytes_AS_STRING(levels);
        memset(cells, EMPTY, (size_t)ax.cols);
        Py_ssize_t n = PySequence_Fast_GET_SIZE(row_spans[r]);
        for (Py_ssize_t i = 0; i < n; i++, at++) {
            Py_ssize_t g = span_group[at];
            Py_ssize_t lo = g > 0 ? first[g - 1] : 0;
            TrackMarks tm = {marks + lo, ends_so_far + lo, first[g] - lo};
            span_levels(&ax, times[2 * at], times[2 * at + 1], &tm, cells, scratch);
        }
        PyList_SET_ITEM(out, r, levels);
    }
done:
    for (Py_ssize_t r = 0; row_spans != NULL && r < n_rows; r++) {
        Py_XDECREF(row_spans[r]);
    }
    PyMem_Free(row_spans);
    PyMem_Free(times);
    PyMem_Free(span_group);
    PyMem_Free(first);
    PyMem_Free(mark_group);
    PyMem_Free(marks);
    PyMem_Free(ends_so_far);
    PyMem_Free(scratch);
    Py_XDECREF(lists[0]);
    Py_XDECREF(lists[1]);
    Py_XDECREF(groups);
    Py_DECREF(rows);
    return out;
}

/* running_lengths(tasks, awaits, lo, hi): _waits.running_lengths_python in C, the same
 * comparisons on the same doubles.  Each task runs from its start to its end but for its
 * awaits (those whose track is its span_id, in their order); the pieces of all tasks are
 * sorted, cut to [lo, hi) and merged, and the merged intervals' lengths are returned in time
 * order (the caller sums them, as Python's sum() does).  A time that is not a finite float
 * (an int, a NaN) is a ValueError or TypeError: the caller then runs the Python version. */

typedef struct {
    double a, b;
} Piece;

static int
by_start_end(const void *x, const void *y)
{
    const Piece *p = x, *q = y;
    if (p->a != q->a) {
        return p->a < q->a ? -1 : 1;
    }
    return p->b < q->b ? -1 : (p->b > q->b ? 1 : 0);
}

static PyObject *
running_lengths(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "running_lengths(tasks, awaits, lo, hi)");
        return NULL;
    }
    double lo, hi;
    if (as_finite(args[2], &lo) < 0 || as_finite(args[3], &hi) < 0) {
        return NULL;
    }
    PyObject *tasks = PySequence_Fast(args[0], "tasks is a sequence");
    PyObject *awaits = tasks ? PySequence_Fast(args[1], "awaits is a sequence") : NULL;
    PyObject *groups = awaits ? PyDict_New() : NULL;
    PyObject *out = NULL;
    Py_ssize_t n_tasks = tasks ? PySequence_Fast_GET_SIZE(tasks) : 0;
    Py_ssize_t n_awaits = awaits ? PySequence_Fast_GET_SIZE(awaits) : 0;
    Py_ssize_t *task_group = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n_tasks + 1));
    Py_ssize_t *first = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n_tasks + 2));
    Py_ssize_t *wait_group = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n_awaits + 1));
    Piece *waits = PyMem_Malloc(sizeof(Piece) * (size_t)(n_awaits + 1));
    Piece *pieces = NULL;
    if (groups == NULL) {
        goto done;
    }
    if (!task_group || !first || !wait_group || !waits) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject **task_items = PySequence_Fast_ITEMS(tasks);
    PyObject **await_items = PySequence_Fast_ITEMS(awaits);
    for (Py_ssize_t i = 0; i < n_tasks; i++) {
        PyObject *span_id = attr(task_items[i], F_SPAN_ID);
        if (span_id == NULL) {
            goto done;
        }
        task_group[i] = group_of(groups, span_id, 1);
        Py_DECREF(span_id);
        if (task_group[i] < -1) {
            goto done;
        }
    }
    /* the awaits of each group, in their order: counted, then placed (a counting sort) */
    Py_ssize_t n_groups = PyDict_GET_SIZE(groups);
    memset(first, 0, sizeof(Py_ssize_t) * (size_t)(n_groups + 1));
    for (Py_ssize_t i = 0; i < n_awaits; i++) {
        PyObject *track = attr(await_items[i], F_TRACK);
        if (track == NULL) {
            goto done;
        }
        wait_group[i] = group_of(groups, track, 0);
        Py_DECREF(track);
        if (wait_group[i] < -1) {
            goto done;
        }
        if (wait_group[i] >= 0) {
            first[wait_group[i] + 1]++;
        }
    }
    for (Py_ssize_t g = 0; g < n_groups; g++) {
        first[g + 1] += first[g];
    }
    for (Py_ssize_t i = 0; i < n_awaits; i++) {
        Py_ssize_t g = wait_group[i];
        if (g < 0) {
            continue;
        }
        Py_ssize_t slot = first[g]++;
        if (finite_attr(await_items[i], F_START, &waits[slot].a) < 0
            || finite_attr(await_items[i], F_END, &waits[slot].b) < 0) {
            goto done;
        }
    }
    /* first[g] is now the end of group g's awaits, and its start is first[g - 1] (or 0); a
     * task has at most one piece more than its group has awaits (tasks may share an id) */
    Py_ssize_t most = 1;
    for (Py_ssize_t i = 0; i < n_tasks; i++) {
        Py_ssize_t g = task_group[i];
        most += (first[g] - (g > 0 ? first[g - 1] : 0)) + 1;
    }
    pieces = PyMem_Malloc(sizeof(Piece) * (size_t)most);
    if (pieces == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n_pieces = 0;
    for (Py_ssize_t i = 0; i < n_tasks; i++) {
        double t, end;
        if (finite_attr(task_items[i], F_START, &t) < 0
            || finite_attr(task_items[i], F_END, &end) < 0) {
            goto done;
        }
        Py_ssize_t g = task_group[i];
        Py_ssize_t k = g > 0 ? first[g - 1] : 0;
        for (; k < first[g]; k++) {
            double start = waits[k].a;
            if (start > t) {
                pieces[n_pieces].a = t;
                pieces[n_pieces].b = start < end ? start : end;
                n_pieces++;
            }
            if (waits[k].b > t) {
                t = waits[k].b;
            }
        }
        if (t < end) {
            pieces[n_pieces].a = t;
            pieces[n_pieces].b = end;
            n_pieces++;
        }
    }
    qsort(pieces, (size_t)n_pieces, sizeof(Piece), by_start_end);
    out = PyList_New(0);
    if (out == NULL) {
        goto done;
    }
    Py_ssize_t merged = 0;
    double last_a = 0.0, last_b = 0.0;
    for (Py_ssize_t i = 0; i <= n_pieces; i++) {
        double a = 0.0, b = 0.0;
        if (i < n_pieces) {
            a = pieces[i].a < lo ? lo : pieces[i].a;
            b = pieces[i].b > hi ? hi : pieces[i].b;
            if (b <= a) {
                continue;
            }
            if (merged && a <= last_b) {
                if (b > last_b) {
                    last_b = b;
                }
                continue;
            }
        }
        if (merged) {
            PyObject *length = PyFloat_FromDouble(last_b - last_a);
            if (length == NULL || PyList_Append(out, length) < 0) {
                Py_XDECREF(length);
                Py_CLEAR(out);
                goto done;
            }
            Py_DECREF(length);
        }
        last_a = a;
        last_b = b;
        merged = 1;
    }
done:
    PyMem_Free(task_group);
    PyMem_Free(first);
    PyMem_Free(wait_group);
    PyMem_Free(waits);
    PyMem_Free(pieces);
    Py_XDECREF(groups);
    Py_XDECREF(awaits);
    Py_XDECREF(tasks);
    return out;
}

/* call_depths(calls, owner, walk): _terminal_rows.call_depths_python in C, the same steps:
 * each call's depth, 1 + that of its parent when the parent is a call of the same track
 * (nearly always, and then already known: calls are in start order), else the walk up of
 * _depth_above.  The depths known are kept by the call's address (Python: by id()). */

typedef struct {
    PyObject **keys;
    Py_ssize_t *values;
    size_t mask;
} Depths;

static Py_ssize_t
depth_of(const Depths *known, PyObject *span)
{
    size_t i = ((size_t)span >> 4) & known->mask;
    while (known->keys[i] != NULL) {
        if (known->keys[i] == span) {
            return known->values[i];
        }
        i = (i + 1) & known->mask;
    }
    return -1;
}

static void
set_depth(Depths *known, PyObject *span, Py_ssize_t depth)
{
    size_t i = ((size_t)span >> 4) & known->mask;
    while (known->keys[i] != NULL && known->keys[i] != span) {
        i = (i + 1) & known->mask;
    }
    known->keys[i] = span;
    known->values[i] = depth;
}

static PyObject *s_coroutine, *s_gather;

/* Whether up is the end of the walk: None, on another track than span's, or the owner;
 * -1 with an exception set. */
static int
walk_ends(PyObject *up, PyObject *track, PyObject *owner)
{
    if (up == Py_None || up == owner) {
        return 1;
    }
    PyObject *up_track = attr(up, F_TRACK);
    if (up_track == NULL) {
        return -1;
    }
    int other = PyObject_RichCompareBool(up_track, track, Py_NE);
    Py_DECREF(up_track);
    return other;
}

/* _terminal_rows._depth_above: walk steps up at most. */
static Py_ssize_t
depth_above(PyObject *span, PyObject *track, PyObject *owner, const Depths *known,
            Py_ssize_t walk)
{
    Py_ssize_t depth = 1;
    PyObject *up = attr(span, F_PARENT);
    for (Py_ssize_t step = 0; up != NULL && step < walk; step++) {
        int ends = walk_ends(up, track, owner);
        if (ends != 0) {
            Py_DECREF(up);
            return ends < 0 ? -1 : depth;
        }
        Py_ssize_t above = depth_of(known, up);
        if (above >= 0) {
            Py_DECREF(up);
            return depth + above;
        }
        PyObject *kind = attr(up, F_KIND);
        int call = kind == NULL ? -1 : PyObject_RichCompareBool(kind, s_coroutine, Py_EQ);
        if (call == 0) {
            call = PyObject_RichCompareBool(kind, s_gather, Py_EQ);
        }
        Py_XDECREF(kind);
        if (call < 0) {
            Py_DECREF(up);
            return -1;
        }
        depth += call;
        PyObject *next = attr(up, F_PARENT);
        Py_DECREF(up);
        up = next;
    }
    if (up == NULL) {
        return -1;
    }
    Py_DECREF(up);
    return depth;
}

static PyObject *
call_depths(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "call_depths(calls, owner, walk)");
        return NULL;
    }
    PyObject *owner = args[1];
    Py_ssize_t walk = PyLong_AsSsize_t(args[2]);
    if (walk == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *calls = PySequence_Fast(args[0], "calls is a sequence of spans");
    if (calls == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(calls);
    PyObject **items = PySequence_Fast_ITEMS(calls);
    size_t size = 16;
    while (size < 2 * (size_t)n) {
        size *= 2;
    }
    Depths known = {PyMem_Calloc(size, sizeof(PyObject *)),
                    PyMem_Malloc(size * sizeof(Py_ssize_t)), size - 1};
    PyObject *out = NULL;
    if (known.keys == NULL || known.values == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *span = items[i];
        PyObject *up = attr(span, F_PARENT);
        PyObject *track = up != NULL ? attr(span, F_TRACK) : NULL;
        int ends = track != NULL ? walk_ends(up, track, owner) : -1;
        Py_ssize_t depth = -1;
        if (ends == 1) {
            depth = 1;
        }
        else if (ends == 0) {
            Py_ssize_t above = depth_of(&known, up);
            depth = above >= 0 ? above + 1 : depth_above(span, track, owner, &known, walk);
        }
        Py_XDECREF(up);
        Py_XDECREF(track);
        PyObject *number = depth >= 0 ? PyLong_FromSsize_t(depth) : NULL;
        if (number == NULL) {
            Py_CLEAR(out);
            break;
        }
        set_depth(&known, span, depth);
        PyList_SET_ITEM(out, i, number);
    }
done:
    PyMem_Free(known.keys);
    PyMem_Free(known.values);
    Py_DECREF(calls);
    return out;
}

/* by_key(keys, values): _terminal_rows.by_key_python in C: a dict of each key (in the order
 * first seen) to the list of its values (in their order). */
static PyObject *
by_key(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "by_key(keys, values)");
        return NULL;
    }
    PyObject *keys = PySequence_Fast(args[0], "keys is a sequence");
    PyObject *values = keys ? PySequence_Fast(args[1], "values is a sequence") : NULL;
    PyObject *groups = values ? PyDict_New() : NULL;
    if (groups == NULL) {
        goto fail;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(keys);
    if (PySequence_Fast_GET_SIZE(values) != n) {
        PyErr_SetString(PyExc_ValueError, "by_key: keys and values MUST be as many");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PySequence_Fast_GET_ITEM(keys, i);
        PyObject *value = PySequence_Fast_GET_ITEM(values, i);
        PyObject *same = PyDict_GetItemWithError(groups, key);
        if (same != NULL) {
            if (PyList_Append(same, value) < 0) {
                goto fail;
            }
            continue;
        }
        if (PyErr_Occurred()) {
            goto fail;
        }
        same = PyList_New(1);
        if (same == NULL) {
            goto fail;
        }
        Py_INCREF(value);
        PyList_SET_ITEM(same, 0, value);
        int set = PyDict_SetItem(groups, key, same);
        Py_DECREF(same);
        if (set < 0) {
            goto fail;
        }
    }
    Py_DECREF(keys);
    Py_DECREF(values);
    return groups;
fail:
    Py_XDECREF(keys);
    Py_XDECREF(values);
    Py_XDECREF(groups);
    return NULL;
}

/* row_bounds(rows): _bars.row_bounds_python in C: each row's first start and last end, and
 * the first start and last end of all rows, found as min() and max() find them (in order, a
 * value replacing the one so far only when it compares less, or greater).  A time that is not
 * a float is a TypeError: the caller then runs the Python version. */
static PyObject *
row_bounds(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "row_bounds(rows)");
        return NULL;
    }
    PyObject *rows = PySequence_Fast(args[0], "rows is a sequence of sequences of spans");
    if (rows == NULL) {
        return NULL;
    }
    Py_ssize_t n_rows = PySequence_Fast_GET_SIZE(rows);
    PyObject *each = PyList_New(n_rows);
    PyObject *out = NULL;
    double first = 0.0, last = 0.0;
    int any = 0;
    for (Py_ssize_t r = 0; each != NULL && r < n_rows; r++) {
        PyObject *row = PySequence_Fast(PySequence_Fast_GET_ITEM(rows, r), "a row is spans");
        if (row == NULL) {
            goto fail;
        }
        Py_ssize_t n = PySequence_Fast_GET_SIZE(row);
        PyObject **spans = PySequence_Fast_ITEMS(row);
        if (n == 0) {
            Py_DECREF(row);
            PyErr_SetString(PyExc_ValueError, "a row without spans");
            goto fail;
        }
        double row_first = 0.0, row_last = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            double start, end;
            if (float_attr(spans[i], F_START, &start) < 0 || float_attr(spans[i], F_END, &end) < 0) {
                Py_DECREF(row);
                goto fail;
            }
            if (i == 0 || start < row_first) {
                row_first = start;
            }
            if (i == 0 || end > row_last) {
                row_last = end;
            }
            if (!any || start < first) {
                first = start;
            }
            if (!any || end > last) {
                last = end;
            }
            any = 1;
        }
        Py_DECREF(row);
        PyObject *bounds = Py_BuildValue("(dd)", row_first, row_last);
        if (bounds == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(each, r, bounds);
    }
    if (each != NULL) {
        out = any ? Py_BuildValue("(ddO)", first, last, each)
                  : Py_BuildValue("(OOO)", Py_None, Py_None, each);
    }
fail:
    Py_XDECREF(each);
    Py_DECREF(rows);
    return out;
}

static PyObject *
configure(PyObject *module, PyObject *type)
{
    return keep_span_type(type, offsets, &span_type);
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_O,
     PyDoc_STR("configure(span_type): learn where a Span's slots are, to read them in place.")},
    {"paint_rows", (PyCFunction)(void (*)(void))paint_rows, METH_FASTCALL,
     PyDoc_STR("paint_rows(rows, awaits, blocked, t0, step, cols) -> list[bytes]: each row's "
               "cells' levels (see _bars.py).")},
    {"by_key", (PyCFunction)(void (*)(void))by_key, METH_FASTCALL,
     PyDoc_STR("by_key(keys, values) -> dict[key, list] (see _terminal_rows.py).")},
    {"call_depths", (PyCFunction)(void (*)(void))call_depths, METH_FASTCALL,
     PyDoc_STR("call_depths(calls, owner, walk) -> list[int] (see _terminal_rows.py).")},
    {"row_bounds", (PyCFunction)(void (*)(void))row_bounds, METH_FASTCALL,
     PyDoc_STR("row_bounds(rows) -> (first start, last end, [(start, end) of each row]) "
               "(see _bars.py).")},
    {"running_lengths", (PyCFunction)(void (*)(void))running_lengths, METH_FASTCALL,
     PyDoc_STR("running_lengths(tasks, awaits, lo, hi) -> list[float] (see _waits.py).")},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "asynctrace._cbars",
    PyDoc_STR("The cells of a terminal timeline's rows (see _bars.py)."), -1, module_methods,
};

PyMODINIT_FUNC
PyInit__cbars(void)
{
    field_names[F_START] = PyUnicode_InternFromString("start");
    field_names[F_END] = PyUnicode_InternFromString("end");
    field_names[F_TRACK] = PyUnicode_InternFromString("track");
    field_names[F_SPAN_ID] = PyUnicode_InternFromString("span_id");
    field_names[F_PARENT] = PyUnicode_InternFromString("parent");
    field_names[F_KIND] = PyUnicode_InternFromString("kind");
    s_coroutine = PyUnicode_InternFromString("coroutine");
    s_gather = PyUnicode_InternFromString("gather");
    if (field_names[F_START] == NULL || field_names[F_END] == NULL
        || field_names[F_TRACK] == NULL || field_names[F_SPAN_ID] == NULL
        || field_names[F_PARENT] == NULL || field_names[F_KIND] == NULL || s_coroutine == NULL
        || s_gather == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
