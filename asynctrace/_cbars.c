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

static PyMethodDef module_methods[] = {
    {"row_levels", (PyCFunction)(void (*)(void))row_levels, METH_FASTCALL,
     PyDoc_STR("row_levels(items, t0, step, cols) -> bytes: each cell's level (see _bars.py).")},
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
    if (s_marks == NULL || s_starts == NULL || s_ends_so_far == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
