/* asynctrace._cjson: compact UTF-8 JSON for the timelines asynctrace writes (optional; _json.py
 * falls back to the standard json module, which gives the same meaning).
 *
 * Problem: without orjson, the standard json module spent about 4.5 us per span encoding a
 * timeline, more than the rest of the export together; orjson is not a dependency.
 *
 * Solution: one encoder for exactly what asynctrace's documents hold: dicts with str keys,
 * lists and tuples, str, int, float, bool and None; anything else is written as its str(), as
 * json's default=str does.  Strings are written as UTF-8 with only '"', '\\' and control
 * characters escaped (json's ensure_ascii=False).  Floats are written as repr() writes them;
 * a NaN or an infinity, which JSON cannot hold, as null (as orjson does).
 *
 * What it refuses, it refuses with an exception, and _json.py then encodes the document with
 * the json module: a str with a lone surrogate (UnicodeEncodeError: _json.py writes U+FFFD in
 * its place), a dict key that is not a str (TypeError), nesting deeper than MAX_DEPTH
 * (ValueError).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define MAX_DEPTH 64

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buffer;

static int
reserve(Buffer *buf, Py_ssize_t more)
{
    if (buf->len + more <= buf->cap) {
        return 0;
    }
    Py_ssize_t cap = buf->cap * 2;
    if (cap < buf->len + more) {
        cap = buf->len + more;
    }
    char *data = PyMem_Realloc(buf->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buf->data = data;
    buf->cap = cap;
    return 0;
}

static int
put(Buffer *buf, const char *text, Py_ssize_t n)
{
    if (reserve(buf, n) < 0) {
        return -1;
    }
    memcpy(buf->data + buf->len, text, (size_t)n);
    buf->len += n;
    return 0;
}

static const char hex_digits[] = "0123456789abcdef";

static int
put_str(Buffer *buf, PyObject *text)
{
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    if (utf8 == NULL) {
        return -1; /* a lone surrogate: UnicodeEncodeError */
    }
    /* at most 6 bytes per byte (\u00XX) and the quotes */
    if (reserve(buf, n * 6 + 2) < 0) {
        return -1;
    }
    char *out = buf->data + buf->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)utf8[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        case '\b': *out++ = 'b'; break;
        case '\f': *out++ = 'f'; break;
        default:
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = hex_digits[c >> 4];
            *out++ = hex_digits[c & 0xf];
        }
    }
    *out++ = '"';
    buf->len = out - buf->data;
    return 0;
}

static int
put_float(Buffer *buf, PyObject *value)
{
    double d = PyFloat_AS_DOUBLE(value);
    if (!isfinite(d)) {
        return put(buf, "null", 4);
    }
    char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) {
        return -1;
    }
    int rc = put(buf, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return rc;
}

static int
put_long(Buffer *buf, PyObject *value)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow == 0) {
        char text[24];
        int n = snprintf(text, sizeof text, "%lld", v);
        return put(buf, text, n);
    }
    PyObject *digits = PyLong_Type.tp_repr(value); /* int.__repr__ even for a subclass */
    if (digits == NULL) {
        return -1;
    }
    Py_ssize_t n;
    const char *text = PyUnicode_AsUTF8AndSize(digits, &n);
    int rc = text == NULL ? -1 : put(buf, text, n);
    Py_DECREF(digits);
    return rc;
}

static int put_value(Buffer *buf, PyObject *value, int depth);

static int
put_items(Buffer *buf, PyObject *seq, int depth)
{
    PyObject *fast = PySequence_Fast(seq, "a list");
    if (fast == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    int rc = put(buf, "[", 1);
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        if (i) {
            rc = put(buf, ",", 1);
        }
        if (rc == 0) {
            rc = put_value(buf, items[i], depth + 1);
        }
    }
    Py_DECREF(fast);
    return rc < 0 ? -1 : put(buf, "]", 1);
}

static int
put_dict(Buffer *buf, PyObject *dict, int depth)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int first = 1;
    if (put(buf, "{", 1) < 0) {
        return -1;
    }
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "a dict key that is not a str");
            return -1;
        }
        if (!first && put(buf, ",", 1) < 0) {
            return -1;
        }
        first = 0;
        /* the dict may change under a str() of a value; keep what is being written alive */
        Py_INCREF(key);
        Py_INCREF(value);
        int rc = put_str(buf, key);
        if (rc == 0) {
            rc = put(buf, ":", 1);
        }
        if (rc == 0) {
            rc = put_value(buf, value, depth + 1);
        }
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            return -1;
        }
    }
    return put(buf, "}", 1);
}

static int
put_value(Buffer *buf, PyObject *value, int depth)
{
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "nested too deeply for the fast encoder");
        return -1;
    }
    if (PyUnicode_Check(value)) {
        return put_str(buf, value);
    }
    if (value == Py_None) {
        return put(buf, "null", 4);
    }
    if (value == Py_True) {
        return put(buf, "true", 4);
    }
    if (value == Py_False) {
        return put(buf, "false", 5);
    }
    if (PyLong_Check(value)) {
        return put_long(buf, value);
    }
    if (PyFloat_Check(value)) {
        return put_float(buf, value);
    }
    if (PyDict_Check(value)) {
        return put_dict(buf, value, depth);
    }
    if (PyList_Check(value) || PyTuple_Check(value)) {
        return put_items(buf, value, depth);
    }
    PyObject *text = PyObject_Str(value); /* json's default=str */
    if (text == NULL) {
        return -1;
    }
    int rc = put_str(buf, text);
    Py_DECREF(text);
    return rc;
}

static PyObject *
dumps(PyObject *module, PyObject *value)
{
    Buffer buf = {NULL, 0, 0};
    if (reserve(&buf, 4096) < 0 || put_value(&buf, value, 0) < 0) {
        PyMem_Free(buf.data);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(buf.data, buf.len);
    PyMem_Free(buf.data);
    return out;
}

static PyMethodDef module_methods[] = {
    {"dumps", dumps, METH_O, PyDoc_STR("dumps(value) -> bytes: compact UTF-8 JSON.")},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "asynctrace._cjson",
    PyDoc_STR("Compact UTF-8 JSON for asynctrace's timelines (see _json.py)."), -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__cjson(void)
{
    return PyModule_Create(&module_def);
}
