/* asynctrace._cbars: the cells of a terminal timeline row (optional; _bars.py has the same in
 * Python, which is the reference).
 *
 * Problem: drawing a grouped row paints every one of its spans cell by cell; in Python a
 * 22,000-span run spent longer drawing its timeline than building its trace.
 *
 * Solution: row_levels(items, t0, step, cols) does exactly what _bars.row_levels_python does,
 * with the same double arithmetic in the same order (setup.py builds it with
 * -ffp-contract=off: no fused multiply-add), so both give the same cells.  items: a sequence
 * of (start, end, marks), marks a _bars.Marks: its lists marks ((start, end, is_blocked),
 * sorted by start), starts and ends_so_far, searched here by bisection as
 * Marks.overlapping does.  Returns bytes, one level per cell: 0 empty, 1 waiting, 2 running,
 * 3 blocked; a cell shows the highest level of the row's items.  A time that is not a finite
 * float, or a step that is not positive, is a ValueError (the caller then runs the Python
 * version, which fails or not exactly as before).
 *
 * running_lengths(tasks, awaits, lo, hi) does what _waits.running_lengths_python does: the
 * time some task was running, for the wait profile's "no task running" (see below).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

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

/* A _bars.Marks' three lists (new references), checked to be lists of equal length. */
static PyObject *s_marks, *s_starts, *s_ends_so_far;

static int
marks_lists(PyObject *obj, PyObject **marks, PyObject **starts, PyObject **ends_so_far)
{
    *marks = PyObject_GetAttr(obj, s_marks);
    *starts = *marks ? PyObject_GetAttr(obj, s_starts) : NULL;
    *ends_so_far = *starts ? PyObject_GetAttr(obj, s_ends_so_far) : NULL;
    if (*ends_so_far == NULL) {
        return -1;
    }
    if (!PyList_Check(*marks) || !PyList_Check(*starts) || !PyList_Check(*ends_so_far)
        || PyList_GET_SIZE(*starts) != PyList_GET_SIZE(*marks)
        || PyList_GET_SIZE(*ends_so_far) != PyList_GET_SIZE(*marks)) {
        PyErr_SetString(PyExc_TypeError, "marks MUST be a _bars.Marks");
        return -1;
    }
    return 0;
}

/* bisect.bisect_left (right = 0) or bisect_right (right = 1) of x in a list of numbers. */
static int
bisect(PyObject *values, double x, int right, Py_ssize_t *at)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(values);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        double v;
        if (as_finite(PyList_GET_ITEM(values, mid), &v) < 0) {
            return -1;
        }
        if (right ? x < v : !(v < x)) {
            hi = mid;
        }
        else {
            lo = mid + 1;
        }
    }
    *at = lo;
    return 0;
}

static int
span_levels(const Axis *ax, PyObject *item, unsigned char *levels, double *scratch,
            Py_ssize_t scratch_len)
{
    double start, end;
    PyObject *fast = PySequence_Fast(item, "an item is (start, end, marks)");
    if (fast == NULL) {
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(fast) != 3) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_TypeError, "an item is (start, end, marks)");
        return -1;
    }
    PyObject **parts = PySequence_Fast_ITEMS(fast);
    if (as_finite(parts[0], &start) < 0 || as_finite(parts[1], &end) < 0) {
        Py_DECREF(fast);
        return -1;
    }
    Py_ssize_t base, top;
    if (!cell_range(ax, start, end, &base, &top)) {
        Py_DECREF(fast);
        return 0;
    }
    Py_ssize_t n = top - base + 1; /* at most cols = scratch_len: a range lies within the bar */
    double *alive = scratch, *waiting = scratch + scratch_len, *blocked = scratch + 2 * scratch_len;
    for (Py_ssize_t i = 0; i < n; i++) {
        alive[i] = waiting[i] = blocked[i] = 0.0;
    }
    paint(ax, alive, base, top, start, end);
    PyObject *marks = NULL, *starts = NULL, *ends_so_far = NULL;
    Py_ssize_t first = 0, last = 0;
    if (marks_lists(parts[2], &marks, &starts, &ends_so_far) < 0
        || bisect(ends_so_far, start, 0, &first) < 0
        || bisect(starts, end, 1, &last) < 0) {
        Py_XDECREF(marks);
        Py_XDECREF(starts);
        Py_XDECREF(ends_so_far);
        Py_DECREF(fast);
        return -1;
    }
    Py_DECREF(starts);
    Py_DECREF(ends_so_far);
    for (Py_ssize_t k = first; k < last; k++) {
        PyObject *mark = PyList_GET_ITEM(marks, k);
        if (!PyTuple_Check(mark) || PyTuple_GET_SIZE(mark) != 3) {
            PyErr_SetString(PyExc_TypeError, "a mark is (start, end, is_blocked)");
            goto fail;
        }
        double m_start, m_end;
        if (as_finite(PyTuple_GET_ITEM(mark, 0), &m_start) < 0
            || as_finite(PyTuple_GET_ITEM(mark, 1), &m_end) < 0) {
            goto fail;
        }
        int is_blocked = PyObject_IsTrue(PyTuple_GET_ITEM(mark, 2));
        if (is_blocked < 0) {
            goto fail;
        }
        if (!(m_end >= start)) {
            continue; /* ended before the span: Marks.overlapping leaves it out */
        }
        double a = m_start > start ? m_start : start;
        double b = m_end < end ? m_end : end;
        if (b >= a) {
            paint(ax, is_blocked ? blocked : waiting, base, top, a, b);
        }
    }
    Py_DECREF(marks);
    Py_DECREF(fast);

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
    return 0;
fail:
    Py_DECREF(marks);
    Py_DECREF(fast);
    return -1;
}

static PyObject *
row_levels(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "row_levels(items, t0, step, cols)");
        return NULL;
    }
    Axis ax;
    if (as_finite(args[1], &ax.t0) < 0 || as_finite(args[2], &ax.step) < 0) {
        return NULL;
    }
    ax.cols = PyLong_AsSsize_t(args[3]);
    if (ax.cols == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!(ax.step > 0) || ax.cols < 1) {
        PyErr_SetString(PyExc_ValueError, "step MUST be positive and cols at least 1");
        return NULL;
    }
    PyObject *items = PySequence_Fast(args[0], "items is a sequence");
    if (items == NULL) {
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, ax.cols);
    double *scratch = PyMem_Malloc(sizeof(double) * 3 * (size_t)ax.cols);
    if (out == NULL || scratch == NULL) {
        Py_XDECREF(out);
        PyMem_Free(scratch);
        Py_DECREF(items);
        return scratch == NULL ? PyErr_NoMemory() : NULL;
    }
    unsigned char *levels = (unsigned char *)PyBytes_AS_STRING(out);
    memset(levels, EMPTY, (size_t)ax.cols);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    PyObject **each = PySequence_Fast_ITEMS(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (span_levels(&ax, each[i], levels, scratch, ax.cols) < 0) {
            Py_DECREF(out);
            out = NULL;
            break;
        }
    }
    PyMem_Free(scratch);
    Py_DECREF(items);
    return out;
}

/* running_lengths(tasks, awaits, lo, hi): _waits.running_lengths_python in C, the same
 * comparisons on the same doubles.  Each task runs from its start to its end but for its
 * awaits (those whose track is its span_id, in their order); the pieces of all tasks are
 * sorted, cut to [lo, hi) and merged, and the merged intervals' lengths are returned in time
 * order (the caller sums them, as Python's sum() does).  A time that is not a finite float
 * (an int, a NaN) is a ValueError or TypeError: the caller then runs the Python version. */

static PyObject *s_start, *s_end, *s_track, *s_span_id;

/* An attribute that MUST be a finite float (an int would compare exactly in Python). */
static int
float_attr(PyObject *obj, PyObject *name, double *out)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) {
        return -1;
    }
    if (!PyFloat_Check(value)) {
        Py_DECREF(value);
        PyErr_SetString(PyExc_TypeError, "a time that is not a float");
        return -1;
    }
    double d = PyFloat_AS_DOUBLE(value);
    Py_DECREF(value);
    if (!isfinite(d)) {
        PyErr_SetString(PyExc_ValueError, "a time that is not finite");
        return -1;
    }
    *out = d;
    return 0;
}

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

/* The group (index in 0..) of each task's span_id; -1 for an await whose track is none. */
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
        PyObject *span_id = PyObject_GetAttr(task_items[i], s_span_id);
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
        PyObject *track = PyObject_GetAttr(await_items[i], s_track);
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
        if (float_attr(await_items[i], s_start, &waits[slot].a) < 0
            || float_attr(await_items[i], s_end, &waits[slot].b) < 0) {
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
        if (float_attr(task_items[i], s_start, &t) < 0
            || float_attr(task_items[i], s_end, &end) < 0) {
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

static PyMethodDef module_methods[] = {
    {"row_levels", (PyCFunction)(void (*)(void))row_levels, METH_FASTCALL,
     PyDoc_STR("row_levels(items, t0, step, cols) -> bytes: each cell's level (see _bars.py).")},
    {"running_lengths", (PyCFunction)(void (*)(void))running_lengths, METH_FASTCALL,
     PyDoc_STR("running_lengths(tasks, awaits, lo, hi) -> list[float] (see _waits.py).")},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "asynctrace._cbars",
    PyDoc_STR("The cells of a terminal timeline row (see _bars.py)."), -1, module_methods,
};

PyMODINIT_FUNC
PyInit__cbars(void)
{
    s_marks = PyUnicode_InternFromString("marks");
    s_starts = PyUnicode_InternFromString("starts");
    s_ends_so_far = PyUnicode_InternFromString("ends_so_far");
    s_start = PyUnicode_InternFromString("start");
    s_end = PyUnicode_InternFromString("end");
    s_track = PyUnicode_InternFromString("track");
    s_span_id = PyUnicode_InternFromString("span_id");
    if (s_marks == NULL || s_starts == NULL || s_ends_so_far == NULL || s_start == NULL
        || s_end == NULL || s_track == NULL || s_span_id == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
