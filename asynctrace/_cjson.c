/* asynctrace._cjson: compact UTF-8 JSON for the timelines asynctrace writes (optional; _json.py
 * and _chrome.py fall back to Python, which gives the same meaning).
 *
 * Problem: without orjson, the standard json module spent about 4.5 us per span encoding a
 * timeline, more than the rest of the export together; orjson is not a dependency.  And with
 * either, making a dict per span event (and one for its args) cost more than encoding them.
 *
 * Solution, in two parts.
 *
 * dumps(value): one encoder for exactly what asynctrace's documents hold: dicts with str keys,
 * lists and tuples, str, int, float, bool and None; anything else is written as its str(), as
 * json's default=str does.  Strings are written as UTF-8 with only '"', '\\' and control
 * characters escaped (json's ensure_ascii=False).  Floats are written as repr() writes them;
 * a NaN or an infinity, which JSON cannot hold, as null (as orjson does).  What it refuses, it
 * refuses with an exception, and _json.py then encodes the document with the json module: a
 * str with a lone surrogate (UnicodeEncodeError: _json.py writes U+FFFD in its place), a dict
 * key that is not a str (TypeError), nesting deeper than MAX_DEPTH (ValueError).
 *
 * timeline_events(placed, full, fallback): the events of a JSON timeline, each span's slice
 * written straight from the Span (its slots), as _chrome._event and _chrome._args would make
 * it: the same keys in the same order, the same values left out.  It takes only the common
 * spans: exact str/int/float/bool/None attribute values, no key that _args renames, nothing
 * longer than _sanitize.MAX_CHARS, not a blocked step; for any other span it asks
 * fallback(item) for the event dict.  configure_slices() tells it, once, what _args leaves out.
 *
 * Flow events (arrow ends) come as _chrome._Flow tuples and are written as _chrome._flow_event
 * makes their dicts.
 *
 * place_rows(rows, after, full, fallback, sink): the rows of a whole timeline, each sorted and clamped
 * as _chrome._place does and its slices written as above, straight from the spans: no Python
 * object per span.  What spans share is written once per call and its text kept: each
 * attribute key's, each (name, kind, status)'s name and cat, the last parent's file.  (Its
 * twin in pure Python, _chrome_text.place_rows, writes the same bytes.)  group_rows(spans, kinds): the spans of each row, in one pass.  (One file
 * past the house's 700 lines: they share the buffer and the value writers, and apart they
 * would need a header of their own.)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <structmember.h> /* T_OBJECT_EX */

#define MAX_DEPTH 64

/* An attribute key's ',"key":' text, kept for the rest of a call (see put_key_text). */
typedef struct {
    PyObject *key;  /* a strong reference (no other object can take its address), or NULL */
    PyObject *text; /* bytes */
} KeyText;

#define KEY_SLOTS 512
#define KEY_PROBES 16

/* A slice's ',"name":"...","cat":"..."' text for a (name, kind, status) of str objects, kept
 * for the rest of a call (see put_name_text). */
typedef struct {
    PyObject *name, *kind, *status; /* strong references, or NULL */
    PyObject *text;                 /* bytes */
} NameText;

#define NAME_SLOTS 256
#define NAME_PROBES 8

/* The output, written straight into the bytes object that is returned: grown in place (a
 * realloc, which the allocator does without copying for a big block) and cut to its length at
 * the end, instead of a buffer copied into a new bytes object (a file's worth of page faults
 * and copying more). */
typedef struct {
    PyObject *bytes; /* NULL until the first reserve(), and after each spill() */
    char *data;
    Py_ssize_t len, cap;
    /* place_rows' sink (borrowed; NULL: everything is returned): given each CHUNK_BYTES
     * written, as a bytes object, so that a file is written as it is encoded */
    PyObject *sink;
    KeyText *keys; /* KEY_SLOTS of them, NULL until an attribute key is written */
    NameText *names; /* NAME_SLOTS of them, NULL until a slice is written */
    /* the last parent whose file was looked up, and that file (NULL: it has none) */
    PyObject *parent, *parent_file;
} Buffer;

/* Frees what the buffer holds (after an error, or once its bytes are taken). */
static void
drop(Buffer *buf)
{
    Py_CLEAR(buf->bytes);
    if (buf->keys != NULL) {
        for (int i = 0; i < KEY_SLOTS; i++) {
            Py_XDECREF(buf->keys[i].key);
            Py_XDECREF(buf->keys[i].text);
        }
        PyMem_Free(buf->keys);
        buf->keys = NULL;
    }
    if (buf->names != NULL) {
        for (int i = 0; i < NAME_SLOTS; i++) {
            Py_XDECREF(buf->names[i].name);
            Py_XDECREF(buf->names[i].kind);
            Py_XDECREF(buf->names[i].status);
            Py_XDECREF(buf->names[i].text);
        }
        PyMem_Free(buf->names);
        buf->names = NULL;
    }
    Py_CLEAR(buf->parent);
    Py_CLEAR(buf->parent_file);
}

/* What a sink is given at a time: big enough that a call per chunk costs nothing, small
 * enough to stay in the cache while it is written (a 280 MB file is not made in memory). */
#define CHUNK_BYTES (1 << 20)

static int
grow(Buffer *buf, Py_ssize_t more)
{
    Py_ssize_t cap = buf->cap * 2;
    if (buf->sink != NULL && cap < CHUNK_BYTES + CHUNK_BYTES / 4) {
        cap = CHUNK_BYTES + CHUNK_BYTES / 4; /* a chunk and the event that passes its end */
    }
    if (cap < buf->len + more) {
        cap = buf->len + more;
    }
    if (buf->bytes == NULL) {
        buf->bytes = PyBytes_FromStringAndSize(NULL, cap);
    }
    else if (_PyBytes_Resize(&buf->bytes, cap) < 0) {
        return -1; /* buf->bytes is freed and NULL */
    }
    if (buf->bytes == NULL) {
        return -1;
    }
    buf->data = PyBytes_AS_STRING(buf->bytes);
    buf->cap = cap;
    return 0;
}

/* Room for ``more`` bytes: inline, since nearly every call finds it (writes are small). */
static inline int
reserve(Buffer *buf, Py_ssize_t more)
{
    return buf->len + more <= buf->cap ? 0 : grow(buf, more);
}

/* The bytes written (a new reference), NULL with an exception; the buffer is dropped. */
static PyObject *
finish(Buffer *buf)
{
    if (buf->bytes == NULL) {
        drop(buf);
        return PyBytes_FromStringAndSize("", 0);
    }
    PyObject *out = buf->bytes;
    buf->bytes = NULL;
    drop(buf);
    if (_PyBytes_Resize(&out, buf->len) < 0) {
        return NULL;
    }
    return out;
}

/* With a sink and a chunk written: the chunk to the sink, and the buffer empty again (its
 * next reserve() makes a new bytes object: the sink may keep the one it was given).  0, or -1
 * with an exception. */
static int
spill(Buffer *buf)
{
    if (buf->sink == NULL || buf->len < CHUNK_BYTES) {
        return 0;
    }
    PyObject *chunk = buf->bytes;
    buf->bytes = NULL;
    buf->data = NULL;
    buf->cap = 0;
    Py_ssize_t len = buf->len;
    buf->len = 0;
    if (_PyBytes_Resize(&chunk, len) < 0) {
        return -1;
    }
    PyObject *done = PyObject_CallOneArg(buf->sink, chunk);
    Py_DECREF(chunk);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

static inline int
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

/* The characters of a str, escaped, without quotes. */
static int
put_str_body(Buffer *buf, PyObject *text)
{
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    if (utf8 == NULL) {
        return -1; /* a lone surrogate: UnicodeEncodeError */
    }
    /* at most 6 bytes per byte (\u00XX) */
    if (reserve(buf, n * 6) < 0) {
        return -1;
    }
    char *out = buf->data + buf->len;
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
    buf->len = out - buf->data;
    return 0;
}

static int
put_str(Buffer *buf, PyObject *text)
{
    if (put(buf, "\"", 1) < 0 || put_str_body(buf, text) < 0) {
        return -1;
    }
    return put(buf, "\"", 1);
}

/* The decimal digits of ``v`` (with ``sign``), written without printf: a timeline writes
 * several numbers per span, and snprintf was a fifth of the time of writing one. */
static int
put_digits(Buffer *buf, const char *sign, unsigned long long v)
{
    static const char pairs[201] = "0001020304050607080910111213141516171819"
                                   "2021222324252627282930313233343536373839"
                                   "4041424344454647484950515253545556575859"
                                   "6061626364656667686970717273747576777879"
                                   "8081828384858687888990919293949596979899";
    char text[24];
    char *end = text + sizeof text, *p = end;
    while (v >= 100) { /* two digits per division */
        unsigned long long pair = v % 100;
        v /= 100;
        p -= 2;
        memcpy(p, pairs + 2 * pair, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, pairs + 2 * v, 2);
    }
    else {
        *--p = (char)('0' + v);
    }
    if (*sign) {
        *--p = '-';
    }
    return put(buf, p, end - p);
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
        return put_digits(buf, v < 0 ? "-" : "", v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
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

/* Nanoseconds as microseconds, as _chrome._us gives them: whole, or with up to three
 * decimals (the exact decimal of ns / 1000, which reads back as the same double). */
static int
put_us(Buffer *buf, long long ns)
{
    unsigned long long magnitude = ns < 0 ? 0ULL - (unsigned long long)ns : (unsigned long long)ns;
    unsigned long long whole = magnitude / 1000, part = magnitude % 1000;
    if (put_digits(buf, ns < 0 ? "-" : "", whole) < 0) {
        return -1;
    }
    if (part == 0) {
        return 0;
    }
    char text[4] = {'.', (char)('0' + part / 100), (char)('0' + part / 10 % 10),
                    (char)('0' + part % 10)};
    int n = part % 100 == 0 ? 2 : part % 10 == 0 ? 3 : 4; /* no trailing zeros */
    return put(buf, text, n);
}

static int
put_float(Buffer *buf, PyObject *value)
{
    double d = PyFloat_AS_DOUBLE(value);
    if (!isfinite(d)) {
        return put(buf, "null", 4);
    }
    /* A time in microseconds from whole nanoseconds (_chrome._us: ts, the counter's points):
     * the double nearest a multiple of 0.001, written as that decimal without dtoa.  Below
     * 2**42 the doubles are less than 0.0005 apart, so no shorter decimal reads back as d:
     * it is what repr() writes.  Zero keeps repr's sign. */
    if (d != 0.0 && d > -4.0e12 && d < 4.0e12) {
        long long ns = llround(d * 1000.0);
        if ((double)ns / 1000.0 == d) {
            if (put_us(buf, ns) < 0) {
                return -1;
            }
            return ns % 1000 == 0 ? put(buf, ".0", 2) : 0;
        }
    }
    char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) {
        return -1;
    }
    int rc = put(buf, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
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
    Buffer buf = {0};
    if (reserve(&buf, 4096) < 0 || put_value(&buf, value, 0) < 0) {
        drop(&buf);
        return NULL;
    }
    return finish(&buf);
}

/* ---- slice events of the JSON timeline (_chrome.chrome_json) ---- */

/* What _chrome._args leaves out or renames, set once by configure_slices(). */
static PyObject *c_reserved;   /* frozenset of attribute keys that _args renames */
static Py_ssize_t c_max_chars; /* longer strings are capped by _args: not taken here */
static PyObject *c_defaults;   /* dict: kind -> the attribute that repeats the name */
static PyObject *last_kind, *last_default; /* see default_key_of() */
static PyObject *c_file_key;   /* "code.file.path": left out when the parent's is the same */
static PyObject *c_unclamped;  /* "unclamped_end" */
static PyObject *s_kind, *s_name, *s_status, *s_error, *s_attributes, *s_span_id, *s_parent_id,
    *s_start_seq, *s_end_seq, *s_track, *s_parent, *s_ok, *s_await, *s_blocked, *s_task,
    *s_coroutine, *s_thread;

static PyObject *s_item_span, *s_item_tid, *s_item_start, *s_item_end, *s_item_unclamped;

/* Span's fields, read straight from their slots when the object is exactly _spans.Span (a
 * slots dataclass; the generic attribute lookup was a fifth of the time of writing a slice). */
enum { F_KIND, F_NAME, F_STATUS, F_ERROR, F_ATTRIBUTES, F_SPAN_ID, F_PARENT_ID, F_START_SEQ,
       F_END_SEQ, F_TRACK, F_PARENT, F_START, F_END, N_FIELDS };
static PyObject **field_names[N_FIELDS] = {&s_kind, &s_name, &s_status, &s_error, &s_attributes,
    &s_span_id, &s_parent_id, &s_start_seq, &s_end_seq, &s_track, &s_parent, &s_item_start,
    &s_item_end};
static PyTypeObject *c_span_type;
static Py_ssize_t c_offsets[N_FIELDS]; /* 0: read through getattr */

/* A borrowed reference to a field of ``span`` (the span holds it), NULL with an exception. */
static PyObject *
span_field(PyObject *span, int field)
{
    if (Py_TYPE(span) == c_span_type && c_offsets[field] > 0) {
        PyObject *value = *(PyObject **)((char *)span + c_offsets[field]);
        if (value != NULL) {
            return value;
        }
    }
    PyObject *value = PyObject_GetAttr(span, *field_names[field]);
    if (value != NULL) {
        Py_DECREF(value); /* stored on the span, which keeps it alive */
    }
    return value;
}

/* Where each field's slot is in a Span, from its member descriptors (0 when it is not one). */
static int
learn_offsets(PyObject *span_type)
{
    if (!PyType_Check(span_type)) {
        PyErr_SetString(PyExc_TypeError, "span_type: a class");
        return -1;
    }
    for (int i = 0; i < N_FIELDS; i++) {
        c_offsets[i] = 0;
        PyObject *descr = PyObject_GetAttr(span_type, *field_names[i]);
        if (descr == NULL) {
            PyErr_Clear();
            continue;
        }
        if (Py_TYPE(descr) == &PyMemberDescr_Type) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            if (member->type == T_OBJECT_EX && member->offset > 0) {
                c_offsets[i] = member->offset;
            }
        }
        Py_DECREF(descr);
    }
    Py_INCREF(span_type);
    Py_XSETREF(c_span_type, (PyTypeObject *)span_type);
    return 0;
}

/* Equal strs (both exact strs, ready): the same object, or the same characters. */
static int
is(PyObject *a, PyObject *b)
{
    if (a == b) {
        return 1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);
    return n == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b)
        && memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
}

/* ,"key": for an attribute key the fast path takes (an exact str no longer than c_max_chars,
 * not one that _args renames): 1 written, 0 not taken, -1 with an exception (UnicodeEncodeError
 * for a lone surrogate).  Each key object is checked and escaped once per call and its text
 * kept in buf->keys: a trace repeats a few keys on every span, and doing it on each was a
 * tenth of the time of a slice.  A key that finds no free slot near its own is written
 * without being kept. */
static int
put_key_text(Buffer *buf, PyObject *key)
{
    if (buf->keys == NULL) {
        buf->keys = PyMem_Calloc(KEY_SLOTS, sizeof(KeyText));
        if (buf->keys == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    size_t home = ((uintptr_t)key >> 4) % KEY_SLOTS;
    KeyText *free_slot = NULL;
    for (int probe = 0; probe < KEY_PROBES; probe++) {
        KeyText *slot = &buf->keys[(home + probe) % KEY_SLOTS];
        if (slot->key == key) {
            return put(buf, PyBytes_AS_STRING(slot->text), PyBytes_GET_SIZE(slot->text)) < 0 ? -1 : 1;
        }
        if (slot->key == NULL) {
            free_slot = slot;
            break;
        }
    }
    if (!PyUnicode_CheckExact(key) || PyUnicode_GET_LENGTH(key) > c_max_chars) {
        return 0;
    }
    int clash = PySet_Contains(c_reserved, key);
    if (clash != 0) {
        return clash < 0 ? -1 : 0;
    }
    if (is(key, c_unclamped)) {
        return 0;
    }
    Py_ssize_t mark = buf->len;
    if (put(buf, ",", 1) < 0 || put_str(buf, key) < 0 || put(buf, ":", 1) < 0) {
        return -1;
    }
    if (free_slot != NULL) {
        PyObject *text = PyBytes_FromStringAndSize(buf->data + mark, buf->len - mark);
        if (text == NULL) {
            return -1;
        }
        free_slot->key = Py_NewRef(key);
        free_slot->text = text;
    }
    return 1;
}

static PyObject *
configure_slices(PyObject *module, PyObject *args)
{
    PyObject *reserved, *defaults, *file_key, *unclamped, *span_type;
    Py_ssize_t max_chars;
    if (!PyArg_ParseTuple(args, "O!nO!UUO", &PyFrozenSet_Type, &reserved, &max_chars,
                          &PyDict_Type, &defaults, &file_key, &unclamped, &span_type)) {
        return NULL;
    }
    if (learn_offsets(span_type) < 0) {
        return NULL;
    }
    Py_CLEAR(last_kind); /* the defaults may have changed */
    Py_INCREF(reserved);
    Py_XSETREF(c_reserved, reserved);
    c_max_chars = max_chars;
    Py_INCREF(defaults);
    Py_XSETREF(c_defaults, defaults);
    Py_INCREF(file_key);
    Py_XSETREF(c_file_key, file_key);
    Py_INCREF(unclamped);
    Py_XSETREF(c_unclamped, unclamped);
    Py_RETURN_NONE;
}

/* A JSON scalar that every encoder writes alike: None, bool, exact int, exact float, or an
 * exact str no longer than c_max_chars.  Anything else goes the Python way. */
static int
plain(PyObject *v)
{
    if (v == Py_None || PyBool_Check(v) || PyLong_CheckExact(v) || PyFloat_CheckExact(v)) {
        return 1;
    }
    return PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v) <= c_max_chars;
}

static inline int
put_key(Buffer *buf, const char *key)
{
    return put(buf, key, (Py_ssize_t)strlen(key));
}

/* ,"key":value for an attribute key (a str). */
static int
put_item(Buffer *buf, PyObject *key, PyObject *value)
{
    if (put(buf, ",", 1) < 0 || put_str(buf, key) < 0 || put(buf, ":", 1) < 0) {
        return -1;
    }
    return put_value(buf, value, 1);
}

/* Borrowed attributes of a span, NULL (no error) when one is not what the fast path takes. */
typedef struct {
    PyObject *kind, *name, *status, *error, *attributes, *span_id, *parent_id, *start_seq,
        *end_seq, *track, *parent;
} SpanFields;

static int
read_span(PyObject *span, SpanFields *f, int full)
{
    PyObject **slots[] = {&f->kind, &f->name, &f->status, &f->error, &f->attributes,
                          &f->span_id, &f->parent_id, &f->start_seq, &f->end_seq, &f->track,
                          &f->parent};
    for (int i = 0; i < 11; i++) { /* F_KIND .. F_PARENT, in this order */
        PyObject *value = span_field(span, i);
        if (value == NULL) {
            return -1;
        }
        *slots[i] = value;
    }
    if (!PyUnicode_CheckExact(f->kind) || !PyUnicode_CheckExact(f->name)
        || PyUnicode_GET_LENGTH(f->name) > c_max_chars || !PyUnicode_CheckExact(f->status)
        || !PyDict_CheckExact(f->attributes) || !PyLong_CheckExact(f->span_id)
        || !(f->parent_id == Py_None || PyLong_CheckExact(f->parent_id))
        || !PyLong_CheckExact(f->start_seq) || !PyLong_CheckExact(f->end_seq)
        || (full && !PyLong_CheckExact(f->track))) {
        return 0;
    }
    if (f->error != Py_None
        && !(PyUnicode_CheckExact(f->error) && PyUnicode_GET_LENGTH(f->error) <= c_max_chars)) {
        return 0;
    }
    return 1;
}

/* c_defaults[kind] into *out (borrowed; NULL when the kind has none), remembered for the last
 * kind object (held, so no other object takes its address): a row's spans share a few kind
 * strs.  0, or -1 with an exception. */
static int
default_key_of(PyObject *kind, PyObject **out)
{
    if (kind != last_kind) {
        PyObject *found = PyDict_GetItemWithError(c_defaults, kind);
        if (found == NULL && PyErr_Occurred()) {
            return -1;
        }
        Py_XSETREF(last_kind, Py_NewRef(kind));
        last_default = found;
    }
    *out = last_default;
    return 0;
}

/* The slice name, as _timeline.display_name gives it (not for blocked steps). */
static int
put_display_name(Buffer *buf, SpanFields *f)
{
    int kind_await = is(f->kind, s_await);
    int call = is(f->kind, s_task) || is(f->kind, s_coroutine) || is(f->kind, s_thread);
    if (put(buf, "\"", 1) < 0 || (kind_await && put_key(buf, "await ") < 0)
        || put_str_body(buf, f->name) < 0 || (call && put_key(buf, "()") < 0)) {
        return -1;
    }
    if (!kind_await && !is(f->status, s_ok)) { /* an await's name has no status mark */
        if (put_key(buf, " [") < 0 || put_str_body(buf, f->status) < 0 || put_key(buf, "]") < 0) {
            return -1;
        }
    }
    return put(buf, "\"", 1);
}

/* ,"name":"<display name>","cat":"<kind>" for the span: each (name, kind, status) of objects
 * is written once per call and its text kept in buf->names, since a trace repeats a few of
 * them on every span (the name of the await, of the coroutine).  0, or -1 with an exception. */
static int
put_name_text(Buffer *buf, SpanFields *f)
{
    if (buf->names == NULL) {
        buf->names = PyMem_Calloc(NAME_SLOTS, sizeof(NameText));
        if (buf->names == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    size_t home = (((uintptr_t)f->name >> 4) ^ ((uintptr_t)f->kind >> 6)
                   ^ ((uintptr_t)f->status >> 8)) % NAME_SLOTS;
    NameText *free_slot = NULL;
    for (int probe = 0; probe < NAME_PROBES; probe++) {
        NameText *slot = &buf->names[(home + probe) % NAME_SLOTS];
        if (slot->name == f->name && slot->kind == f->kind && slot->status == f->status) {
            return put(buf, PyBytes_AS_STRING(slot->text), PyBytes_GET_SIZE(slot->text));
        }
        if (slot->name == NULL) {
            free_slot = slot;
            break;
        }
    }
    Py_ssize_t mark = buf->len;
    if (put_key(buf, ",\"name\":") < 0 || put_display_name(buf, f) < 0
        || put_key(buf, ",\"cat\":") < 0 || put_str(buf, f->kind) < 0) {
        return -1;
    }
    if (free_slot != NULL) {
        PyObject *text = PyBytes_FromStringAndSize(buf->data + mark, buf->len - mark);
        if (text == NULL) {
            return -1;
        }
        free_slot->name = Py_NewRef(f->name);
        free_slot->kind = Py_NewRef(f->kind);
        free_slot->status = Py_NewRef(f->status);
        free_slot->text = text;
    }
    return 0;
}

/* The file of the span's parent (borrowed into *out; NULL when the parent has none), for the
 * last parent asked about kept in buf: a row's spans share a few parents.  0, or -1. */
static int
parent_file_of(Buffer *buf, PyObject *parent, PyObject **out)
{
    if (parent != buf->parent) {
        PyObject *parent_attributes = span_field(parent, F_ATTRIBUTES);
        if (parent_attributes == NULL) {
            return -1;
        }
        PyObject *found = NULL;
        if (PyDict_Check(parent_attributes)) {
            found = PyDict_GetItemWithError(parent_attributes, c_file_key);
            if (found == NULL && PyErr_Occurred()) {
                return -1;
            }
        }
        Py_XSETREF(buf->parent, Py_NewRef(parent));
        Py_XSETREF(buf->parent_file, Py_XNewRef(found));
    }
    *out = buf->parent_file;
    return 0;
}

/* The slice's args: 1 written, 0 not taken (an attribute the fast path does not write as
 * _args would: the caller takes back what was written), -1 error. */
static int
put_args(Buffer *buf, SpanFields *f, const long long *unclamped_ns, int full)
{
    int ok = is(f->status, s_ok);
    if (put_key(buf, "{\"span_id\":") < 0 || put_long(buf, f->span_id) < 0
        || put_key(buf, ",\"parent_id\":") < 0 || put_value(buf, f->parent_id, 1) < 0) {
        return -1;
    }
    if (full) {
        if (put_key(buf, ",\"kind\":") < 0 || put_str(buf, f->kind) < 0
            || put_key(buf, ",\"track\":") < 0 || put_value(buf, f->track, 1) < 0
            || put_key(buf, ",\"status\":") < 0 || put_str(buf, f->status) < 0
            || put_key(buf, ",\"name\":") < 0 || put_str(buf, f->name) < 0) {
            return -1;
        }
    }
    if (put_key(buf, ",\"start_seq\":") < 0 || put_long(buf, f->start_seq) < 0
        || put_key(buf, ",\"end_seq\":") < 0 || put_long(buf, f->end_seq) < 0) {
        return -1;
    }
    if (!full && !ok && (put_key(buf, ",\"status\":") < 0 || put_str(buf, f->status) < 0)) {
        return -1;
    }
    if (f->error != Py_None && (put_key(buf, ",\"error\":") < 0 || put_str(buf, f->error) < 0)) {
        return -1;
    }
    PyObject *default_key;
    if (default_key_of(f->kind, &default_key) < 0) {
        return -1;
    }
    PyObject *parent_file = NULL; /* the parent's file, when the parent has the key */
    if (f->parent != Py_None && parent_file_of(buf, f->parent, &parent_file) < 0) {
        return -1;
    }
    int has_default = 0, has_file = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(f->attributes, &pos, &key, &value)) {
        Py_ssize_t mark = buf->len; /* taken back when the attribute is left out */
        int taken = plain(value) ? put_key_text(buf, key) : 0;
        if (taken <= 0) {
            return taken;
        }
        if (default_key != NULL && is(key, default_key)) {
            has_default = 1;
            int same = full ? 0 : PyObject_RichCompareBool(value, f->name, Py_EQ);
            if (same < 0) {
                return -1;
            }
            if (same) {
                buf->len = mark;
                continue; /* it repeats the name */
            }
        }
        if (parent_file != NULL && is(key, c_file_key)) {
            has_file = 1;
            int same = full ? 0 : PyObject_RichCompareBool(value, parent_file, Py_EQ);
            if (same < 0) {
                return -1;
            }
            if (same) {
                buf->len = mark;
                continue; /* the parent's file: said once per row */
            }
        }
        if (put_value(buf, value, 1) < 0) {
            return -1;
        }
    }
    if (default_key != NULL && !has_default && put_item(buf, default_key, Py_None) < 0) {
        return -1;
    }
    if (parent_file != NULL && !has_file && put_item(buf, c_file_key, Py_None) < 0) {
        return -1;
    }
    if (unclamped_ns != NULL) {
        if (put(buf, ",", 1) < 0 || put_str(buf, c_unclamped) < 0 || put(buf, ":", 1) < 0
            || put_us(buf, *unclamped_ns) < 0) {
            return -1;
        }
    }
    return put(buf, "}", 1) < 0 ? -1 : 1;
}

/* One span's slice event into buf: 1 written, 0 not taken (buf unchanged: the Python way),
 * -1 error.  Times are whole nanoseconds (ints), written as microseconds. */
static int put_slice_ns(Buffer *buf, PyObject *span, PyObject *tid, long long start_ns,
                        long long dur_ns, const long long *unclamped_ns, int full);

static int
put_slice(Buffer *buf, PyObject *span, PyObject *tid, PyObject *start, PyObject *dur,
          PyObject *unclamped, int full)
{
    if (!PyLong_CheckExact(tid) || !PyLong_CheckExact(start) || !PyLong_CheckExact(dur)
        || !(unclamped == Py_None || PyLong_CheckExact(unclamped))) {
        return 0;
    }
    int overflow = 0, more;
    long long start_ns = PyLong_AsLongLongAndOverflow(start, &more);
    overflow |= more;
    long long dur_ns = PyLong_AsLongLongAndOverflow(dur, &more);
    overflow |= more;
    long long unclamped_ns = 0;
    if (unclamped != Py_None) {
        unclamped_ns = PyLong_AsLongLongAndOverflow(unclamped, &more);
        overflow |= more;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    if (overflow) {
        return 0; /* past 64 bits */
    }
    return put_slice_ns(buf, span, tid, start_ns, dur_ns,
                        unclamped == Py_None ? NULL : &unclamped_ns, full);
}

/* The slice of ``span`` at [start_ns, start_ns + dur_ns) on row ``tid`` (an exact int);
 * ``unclamped_ns``: the end it had before it was clamped, or NULL.  1 written, 0 not taken
 * (nothing written), -1 error. */
static int
put_slice_ns(Buffer *buf, PyObject *span, PyObject *tid, long long start_ns, long long dur_ns,
             const long long *unclamped_ns, int full)
{
    SpanFields f;
    int taken = read_span(span, &f, full);
    if (taken <= 0) {
        return taken;
    }
    if (is(f.kind, s_blocked)) {
        return 0; /* its name carries its duration, formatted in Python */
    }
    Py_ssize_t mark = buf->len;
    int rc = put_key(buf, "{\"ph\":\"X\",\"pid\":1,\"tid\":") < 0 || put_value(buf, tid, 1) < 0
                     || put_name_text(buf, &f) < 0 || put_key(buf, ",\"args\":") < 0
                 ? -1
                 : put_args(buf, &f, unclamped_ns, full);
    if (rc > 0 && (put_key(buf, ",\"ts\":") < 0 || put_us(buf, start_ns) < 0
                   || put_key(buf, ",\"dur\":") < 0 || put_us(buf, dur_ns) < 0
                   || put_key(buf, "}") < 0)) {
        rc = -1;
    }
    if (rc <= 0) {
        buf->len = mark;
        if (rc < 0 && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear(); /* a lone surrogate: the Python way writes U+FFFD */
            return 0;
        }
        return rc;
    }
    return 1;
}


/* A flow event from _chrome's tuple (ph, tid, ts, id, cat, enclosing), as _chrome._flow_event
 * makes its dict: no dict per arrow end. */
static int
put_flow(Buffer *buf, PyObject *flow)
{
    if (!PyTuple_CheckExact(flow) || PyTuple_GET_SIZE(flow) != 6) {
        PyErr_SetString(PyExc_TypeError, "a flow: (ph, tid, ts, id, cat, enclosing)");
        return -1;
    }
    int enclosing = PyObject_IsTrue(PyTuple_GET_ITEM(flow, 5));
    if (enclosing < 0 || put_key(buf, "{\"ph\":") < 0 || put_value(buf, PyTuple_GET_ITEM(flow, 0), 1) < 0
        || put_key(buf, ",\"pid\":1,\"tid\":") < 0 || put_value(buf, PyTuple_GET_ITEM(flow, 1), 1) < 0
        || put_key(buf, ",\"ts\":") < 0 || put_value(buf, PyTuple_GET_ITEM(flow, 2), 1) < 0
        || put_key(buf, ",\"id\":") < 0 || put_value(buf, PyTuple_GET_ITEM(flow, 3), 1) < 0
        || put_key(buf, ",\"cat\":") < 0 || put_value(buf, PyTuple_GET_ITEM(flow, 4), 1) < 0
        || (enclosing && put_key(buf, ",\"bp\":\"e\"") < 0)) {
        return -1;
    }
    return put(buf, "}", 1);
}

/* A placed span item's slice (see _chrome._Item), or the Python way's event for it. */
static int
put_item_slice(Buffer *buf, PyObject *item, int full, PyObject *fallback)
{
    PyObject *span = PyObject_GetAttr(item, s_item_span);
    PyObject *tid = span ? PyObject_GetAttr(item, s_item_tid) : NULL;
    PyObject *start = tid ? PyObject_GetAttr(item, s_item_start) : NULL;
    PyObject *end = start ? PyObject_GetAttr(item, s_item_end) : NULL;
    PyObject *unclamped = end ? PyObject_GetAttr(item, s_item_unclamped) : NULL;
    PyObject *dur = unclamped ? PyNumber_Subtract(end, start) : NULL;
    int rc = dur ? put_slice(buf, span, tid, start, dur, unclamped, full) : -1;
    Py_XDECREF(span);
    Py_XDECREF(tid);
    Py_XDECREF(start);
    Py_XDECREF(end);
    Py_XDECREF(unclamped);
    Py_XDECREF(dur);
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }
    PyObject *event = PyObject_CallOneArg(fallback, item);
    if (event == NULL) {
        return -1;
    }
    rc = put_value(buf, event, 0);
    Py_DECREF(event);
    return rc;
}

/* timeline_events(placed, full, fallback, separator) -> bytes: the events of a JSON timeline,
 * joined by separator (b"," in a whole file, b",\n" in a stream).  placed: _chrome._document's list of event dicts and span items; fallback(item)
 * gives the event dict of a span this does not take.  Any error (a lone surrogate in another
 * event, say) is raised: the caller then encodes the whole document the Python way. */
static PyObject *
timeline_events(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "timeline_events(placed, full, fallback, separator)");
        return NULL;
    }
    const char *separator = PyBytes_AS_STRING(args[3]);
    Py_ssize_t separator_len = PyBytes_GET_SIZE(args[3]);
    if (c_reserved == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_slices() MUST be called first");
        return NULL;
    }
    int full = PyObject_IsTrue(args[1]);
    if (full < 0) {
        return NULL;
    }
    PyObject *placed = PySequence_Fast(args[0], "placed is a list");
    if (placed == NULL) {
        return NULL;
    }
    Buffer buf = {0};
    Py_ssize_t n = PySequence_Fast_GET_SIZE(placed);
    PyObject **entries = PySequence_Fast_ITEMS(placed);
    int rc = reserve(&buf, 256 * (n + 1));
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        if (i) {
            rc = put(&buf, separator, separator_len);
        }
        if (rc == 0) {
            rc = PyDict_Check(entries[i])    ? put_value(&buf, entries[i], 0)
                 : PyTuple_Check(entries[i]) ? put_flow(&buf, entries[i])
                                             : put_item_slice(&buf, entries[i], full, args[2]);
        }
    }
    Py_DECREF(placed);
    if (rc < 0) {
        drop(&buf);
        return NULL;
    }
    return finish(&buf);
}

/* ---- every row of a whole JSON timeline, placed (_chrome._place) and written ---- */

typedef struct {
    long long start, end, seq, sub; /* _Item.key: (start, -end, (seq, sub)) */
    Py_ssize_t index;               /* ties: the order they came in (Python's sort is stable) */
    PyObject *obj;                  /* a Span, or a marker _Item (borrowed from the row) */
    int is_span, clamped;
    long long unclamped;
} Entry;

static int
entry_order(const void *pa, const void *pb)
{
    const Entry *a = pa, *b = pb;
    if (a->start != b->start) {
        return a->start < b->start ? -1 : 1;
    }
    if (a->end != b->end) {
        return a->end > b->end ? -1 : 1; /* the longer first */
    }
    if (a->seq != b->seq) {
        return a->seq < b->seq ? -1 : 1;
    }
    if (a->sub != b->sub) {
        return a->sub < b->sub ? -1 : 1;
    }
    return a->index < b->index ? -1 : (a->index > b->index);
}

/* An attribute that MUST be an int fitting 64 bits: 0 with *out set, -1 with an exception
 * (ValueError for an odd value: the caller writes the file the Python way). */
static int
int_ll(PyObject *value, long long *out)
{
    int overflow = 0;
    *out = PyLong_Check(value) ? PyLong_AsLongLongAndOverflow(value, &overflow) : -1;
    if (!PyLong_Check(value) || overflow) {
        PyErr_SetString(PyExc_ValueError, "not an int of 64 bits");
        return -1;
    }
    return PyErr_Occurred() ? -1 : 0;
}

static int
attr_ll(PyObject *obj, PyObject *name, long long *out)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) {
        return -1;
    }
    int rc = int_ll(value, out);
    Py_DECREF(value);
    return rc;
}

/* round(seconds * 1e9) + ORIGIN_NS, as _chrome._span_item computes it (round half to even). */
static int
span_ns(PyObject *span, int field, long long *out)
{
    PyObject *value = span_field(span, field);
    if (value == NULL) {
        return -1;
    }
    double seconds = PyFloat_AsDouble(value);
    if (seconds == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    double ns = nearbyint(seconds * 1e9);
    if (!(ns > -9.0e18 && ns < 9.0e18)) { /* NaN, infinities, past 64 bits */
        PyErr_SetString(PyExc_ValueError, "a span time out of range");
        return -1;
    }
    *out = (long long)ns + 1000;
    return 0;
}

/* ns as _chrome._us gives it: an int of microseconds when whole, else a float. */
static PyObject *
us_object(long long ns)
{
    if (ns % 1000 == 0) {
        return PyLong_FromLongLong(ns / 1000);
    }
    return PyFloat_FromDouble((double)ns / 1000.0);
}

static int
put_flows(Buffer *buf, PyObject *flows, int *first)
{
    if (flows == NULL) {
        return 0;
    }
    if (!PyList_Check(flows)) {
        PyErr_SetString(PyExc_TypeError, "after: a list of flows");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(flows); i++) {
        if ((!*first && put(buf, ",", 1) < 0) || put_flow(buf, PyList_GET_ITEM(flows, i)) < 0) {
            return -1;
        }
        *first = 0;
    }
    return 0;
}

static PyObject *s_key, *s_event, *s_after, *s_ts, *s_dur;

/* One row: its entries sorted, each clamped into the one that encloses it, then written. */
static int
place_row(Buffer *buf, PyObject *tid, PyObject *spans, PyObject *markers, PyObject *after,
          int full, PyObject *fallback, int *first)
{
    Py_ssize_t n_spans = PyList_GET_SIZE(spans), n = n_spans + PyList_GET_SIZE(markers);
    if (n == 0) {
        return 0;
    }
    Entry *entries = PyMem_Calloc((size_t)n, sizeof(Entry));
    Entry **stack = PyMem_Calloc((size_t)n, sizeof(Entry *));
    int rc = (entries == NULL || stack == NULL) ? -1 : 0;
    if (rc < 0) {
        PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        Entry *e = &entries[i];
        e->index = i;
        if (i < n_spans) {
            e->obj = PyList_GET_ITEM(spans, i);
            e->is_span = 1;
            PyObject *seq = span_ns(e->obj, F_START, &e->start) < 0
                                    || span_ns(e->obj, F_END, &e->end) < 0
                                ? NULL
                                : span_field(e->obj, F_START_SEQ);
            rc = seq == NULL || int_ll(seq, &e->seq) < 0 ? -1 : 0;
            if (e->end < e->start) {
                e->end = e->start;
            }
            continue;
        }
        e->obj = PyList_GET_ITEM(markers, i - n_spans);
        PyObject *key = PyObject_GetAttr(e->obj, s_key);
        if (key == NULL) {
            rc = -1;
            break;
        }
        PyObject *order = PyTuple_Check(key) && PyTuple_GET_SIZE(key) == 3 ? PyTuple_GET_ITEM(key, 2) : NULL;
        if (order == NULL || !PyTuple_Check(order) || PyTuple_GET_SIZE(order) != 2) {
            PyErr_SetString(PyExc_TypeError, "a marker's key");
            Py_DECREF(key);
            rc = -1;
            break;
        }
        int overflow = 0, more = 0;
        e->seq = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(order, 0), &more);
        overflow |= more;
        e->sub = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(order, 1), &more);
        overflow |= more;
        Py_DECREF(key);
        if (overflow && !PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "a marker's order past 64 bits");
        }
        rc = (PyErr_Occurred() || attr_ll(e->obj, s_item_start, &e->start) < 0
              || attr_ll(e->obj, s_item_end, &e->end) < 0) ? -1 : 0;
    }
    int sorted = 1; /* nearly always, on a row without markers: spans come in start order */
    for (Py_ssize_t i = 1; rc == 0 && sorted && i < n; i++) {
        sorted = entry_order(&entries[i - 1], &entries[i]) < 0;
    }
    if (rc == 0 && !sorted) {
        qsort(entries, (size_t)n, sizeof(Entry), entry_order);
    }
    Py_ssize_t depth = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        Entry *e = &entries[i];
        while (depth && stack[depth - 1]->end <= e->start) { /* half-open: over at its end */
            depth--;
        }
        if (depth && e->end > stack[depth - 1]->end) {
            if (e->is_span) {
                e->clamped = 1;
                e->unclamped = e->end;
            }
            e->end = stack[depth - 1]->end;
        }
        stack[depth++] = e;
        if (!*first && put(buf, ",", 1) < 0) {
            rc = -1;
            break;
        }
        *first = 0;
        if (e->is_span) {
            int taken = put_slice_ns(buf, e->obj, tid, e->start, e->end - e->start,
                                     e->clamped ? &e->unclamped : NULL, full);
            if (taken == 0) {
                PyObject *start = PyLong_FromLongLong(e->start);
                PyObject *end = start ? PyLong_FromLongLong(e->end) : NULL;
                PyObject *unclamped = end ? (e->clamped ? PyLong_FromLongLong(e->unclamped) : Py_NewRef(Py_None)) : NULL;
                PyObject *event = unclamped ? PyObject_CallFunctionObjArgs(fallback, e->obj, tid, start, end, unclamped, NULL) : NULL;
                taken = event ? put_value(buf, event, 0) : -1;
                Py_XDECREF(start);
                Py_XDECREF(end);
                Py_XDECREF(unclamped);
                Py_XDECREF(event);
            }
            if (taken < 0) {
                rc = -1;
                break;
            }
            PyObject *span_id = span_field(e->obj, F_SPAN_ID);
            PyObject *bound = span_id ? PyDict_GetItemWithError(after, span_id) : NULL;
            if (span_id == NULL || (bound == NULL && PyErr_Occurred()) || put_flows(buf, bound, first) < 0
                || spill(buf) < 0) {
                rc = -1;
            }
            continue;
        }
        PyObject *event = PyObject_GetAttr(e->obj, s_event);
        PyObject *ts = event ? us_object(e->start) : NULL;
        PyObject *dur = ts ? us_object(e->end - e->start) : NULL;
        if (dur == NULL || !PyDict_Check(event) || PyDict_SetItem(event, s_ts, ts) < 0
            || PyDict_SetItem(event, s_dur, dur) < 0 || put_value(buf, event, 0) < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "a marker's event");
            }
            rc = -1;
        }
        Py_XDECREF(event);
        Py_XDECREF(ts);
        Py_XDECREF(dur);
        if (rc == 0) {
            PyObject *bound = PyObject_GetAttr(e->obj, s_after);
            rc = bound == NULL || put_flows(buf, bound, first) < 0 ? -1 : 0;
            Py_XDECREF(bound);
        }
    }
    PyMem_Free(entries);
    PyMem_Free(stack);
    return rc;
}

/* Warming the rows about to be placed.  A row's spans were made in the order things happened,
 * across every task, so they are far apart in memory, and placing a row span by span waits for
 * each of them (and for its attributes dict, its times and ids) in turn: about 1 us per span,
 * most of a slice's cost.  Before a few hundred rows are placed, every object that placing
 * them reads is asked for at once (prefetches do not wait: dozens are fetched side by side),
 * in three rounds (the spans, then what their slots point to, then their dicts' tables);
 * placing them then finds them in the cache.  A row longer than WARM_SPANS is placed cold: its
 * spans follow one another in memory, and the cache could not hold them all. */
#define WARM_SPANS 256

static inline void
warm_slots(PyObject *span)
{
    static const int fields[] = {F_START, F_END, F_START_SEQ, F_SPAN_ID, F_END_SEQ, F_ATTRIBUTES};
    for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
        PyObject *value = *(PyObject **)((char *)span + c_offsets[fields[k]]);
        if (value != NULL) {
            __builtin_prefetch(value);
        }
    }
}

/* The rows [r0, r) to warm next (returns r: at least r0 + 1), each a (tid, spans, markers). */
static Py_ssize_t
warm_rows(PyObject *rows, Py_ssize_t r0)
{
    Py_ssize_t n_rows = PyList_GET_SIZE(rows), r = r0, total = 0;
    for (; r < n_rows; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 3 || !PyList_Check(PyTuple_GET_ITEM(row, 1))) {
            return r == r0 ? r0 + 1 : r; /* place_rows says what is wrong with it */
        }
        Py_ssize_t n = PyList_GET_SIZE(PyTuple_GET_ITEM(row, 1));
        if (total + n > WARM_SPANS) {
            if (r == r0) {
                return r0 + 1; /* a long row: cold */
            }
            break;
        }
        total += n;
    }
    for (int step = 0; step < 3; step++) {
        for (Py_ssize_t i = r0; i < r; i++) {
            PyObject *spans = PyTuple_GET_ITEM(PyList_GET_ITEM(rows, i), 1);
            for (Py_ssize_t k = 0; k < PyList_GET_SIZE(spans); k++) {
                PyObject *span = PyList_GET_ITEM(spans, k);
                if (step == 0) {
                    __builtin_prefetch(span);
                    __builtin_prefetch((char *)span + 64);
                    __builtin_prefetch((char *)span + 128);
                    continue;
                }
                if (Py_TYPE(span) != c_span_type || c_offsets[F_ATTRIBUTES] <= 0
                    || c_offsets[F_START] <= 0 || c_offsets[F_END] <= 0 || c_offsets[F_START_SEQ] <= 0
                    || c_offsets[F_SPAN_ID] <= 0 || c_offsets[F_END_SEQ] <= 0) {
                    continue;
                }
                if (step == 1) {
                    warm_slots(span);
                    continue;
                }
                PyObject *attributes = *(PyObject **)((char *)span + c_offsets[F_ATTRIBUTES]);
                if (attributes != NULL && PyDict_CheckExact(attributes)) {
                    char *keys = (char *)((PyDictObject *)attributes)->ma_keys;
                    __builtin_prefetch(keys);
                    __builtin_prefetch(keys + 64);
                    __builtin_prefetch(keys + 128);
                }
            }
        }
    }
    return r;
}

/* place_rows(rows, after, full, fallback, sink) -> bytes: the rows of a whole JSON timeline,
 * each placed as _chrome._place places it and written, joined by ",".  rows: (tid, spans in
 * the trace's order, the row's flow markers as _Items); after: span_id -> the events written
 * right after that span's slice; fallback(span, tid, start_ns, end_ns, unclamped_ns or None)
 * gives the event of a span this does not write; sink: None, or a callable given each
 * CHUNK_BYTES written as they are (bytes), the rest being returned.  A value it cannot take
 * as the Python way does (a time out of range, a sequence past 64 bits) raises ValueError:
 * the caller writes the file the Python way. */
static PyObject *
place_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyList_Check(args[0]) || !PyDict_Check(args[1])
        || !(args[4] == Py_None || PyCallable_Check(args[4]))) {
        PyErr_SetString(PyExc_TypeError, "place_rows(rows, after, full, fallback, sink)");
        return NULL;
    }
    if (c_reserved == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_slices() MUST be called first");
        return NULL;
    }
    int full = PyObject_IsTrue(args[2]);
    if (full < 0) {
        return NULL;
    }
    PyObject *rows = args[0];
    Buffer buf = {0};
    buf.sink = args[4] == Py_None ? NULL : args[4];
    Py_ssize_t total = 0;
    for (Py_ssize_t r = 0; buf.sink == NULL && r < PyList_GET_SIZE(rows); r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (PyTuple_Check(row) && PyTuple_GET_SIZE(row) == 3 && PyList_Check(PyTuple_GET_ITEM(row, 1))) {
            total += PyList_GET_SIZE(PyTuple_GET_ITEM(row, 1));
        }
    }
    int rc = reserve(&buf, 256 * (total + 1)), first = 1;
    Py_ssize_t warmed = 0; /* rows [0, warmed) are warm, or being placed */
    for (Py_ssize_t r = 0; rc == 0 && r < PyList_GET_SIZE(rows); r++) {
        if (r == warmed) {
            warmed = warm_rows(rows, r);
        }
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 3 || !PyLong_CheckExact(PyTuple_GET_ITEM(row, 0))
            || !PyList_Check(PyTuple_GET_ITEM(row, 1)) || !PyList_Check(PyTuple_GET_ITEM(row, 2))) {
            PyErr_SetString(PyExc_TypeError, "a row: (tid, spans, markers)");
            rc = -1;
            break;
        }
        rc = place_row(&buf, PyTuple_GET_ITEM(row, 0), PyTuple_GET_ITEM(row, 1),
                       PyTuple_GET_ITEM(row, 2), args[1], full, args[3], &first);
    }
    if (rc < 0) {
        drop(&buf);
        return NULL;
    }
    return finish(&buf);
}

/* row_names(labels, tracks) -> bytes: each row's "thread_name" and "thread_sort_index"
 * metadata events, as _chrome._row_events makes their dicts, joined by ",": row i (tid i + 1)
 * is named labels[i] (a str) and owned by tracks[i].  What it refuses (a label that is not a
 * str, a lone surrogate) raises: the caller encodes the dicts. */
static PyObject *
row_names(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyList_Check(args[1])
        || PyList_GET_SIZE(args[0]) != PyList_GET_SIZE(args[1])) {
        PyErr_SetString(PyExc_TypeError, "row_names(labels: list, tracks: list of as many)");
        return NULL;
    }
    PyObject *labels = args[0], *tracks = args[1];
    Py_ssize_t n = PyList_GET_SIZE(labels);
    Buffer buf = {0};
    int rc = reserve(&buf, 160 * (n + 1));
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        PyObject *label = PyList_GET_ITEM(labels, i);
        if (!PyUnicode_Check(label)) {
            PyErr_SetString(PyExc_TypeError, "a row's label that is not a str");
            rc = -1;
            break;
        }
        unsigned long long tid = (unsigned long long)i + 1;
        rc = (i && put(&buf, ",", 1) < 0) || put_key(&buf, "{\"ph\":\"M\",\"pid\":1,\"tid\":") < 0
                     || put_digits(&buf, "", tid) < 0
                     || put_key(&buf, ",\"name\":\"thread_name\",\"args\":{\"name\":") < 0
                     || put_str(&buf, label) < 0 || put_key(&buf, ",\"track\":") < 0
                     || put_value(&buf, PyList_GET_ITEM(tracks, i), 2) < 0
                     || put_key(&buf, "}},{\"ph\":\"M\",\"pid\":1,\"tid\":") < 0
                     || put_digits(&buf, "", tid) < 0
                     || put_key(&buf, ",\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":") < 0
                     || put_digits(&buf, "", tid) < 0 || put_key(&buf, "}}") < 0
                 ? -1
                 : 0;
    }
    if (rc < 0) {
        drop(&buf);
        return NULL;
    }
    return finish(&buf);
}

/* group_rows(spans, spawned_kinds) -> (rows, spawned): the spans of each track (a dict from
 * track to its spans, in the order given: the rows in the order their first span comes) and the
 * spans of those kinds, as the loop in _chrome._group_rows makes them. */
static PyObject *
group_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyAnySet_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "group_rows(spans: list, spawned_kinds: frozenset)");
        return NULL;
    }
    PyObject *spans = args[0];
    PyObject *rows = PyDict_New();
    PyObject *spawned = rows ? PyList_New(0) : NULL;
    for (Py_ssize_t i = 0; spawned != NULL && i < PyList_GET_SIZE(spans); i++) {
        PyObject *span = PyList_GET_ITEM(spans, i);
        PyObject *track = span_field(span, F_TRACK);
        PyObject *kind = track ? span_field(span, F_KIND) : NULL;
        PyObject *row = kind ? PyDict_GetItemWithError(rows, track) : NULL;
        int rc = kind == NULL || (row == NULL && PyErr_Occurred()) ? -1 : 0;
        if (rc == 0 && row == NULL) {
            row = PyList_New(0);
            rc = row == NULL || PyDict_SetItem(rows, track, row) < 0 ? -1 : 0;
            Py_XDECREF(row); /* the dict holds it */
        }
        if (rc == 0) {
            rc = PyList_Append(row, span);
        }
        int wanted = rc == 0 ? PySet_Contains(args[1], kind) : -1;
        if (wanted < 0 || (wanted && PyList_Append(spawned, span) < 0)) {
            Py_CLEAR(spawned);
        }
    }
    if (spawned == NULL) {
        Py_XDECREF(rows);
        return NULL;
    }
    return Py_BuildValue("(NN)", rows, spawned);
}

static PyMethodDef module_methods[] = {
    {"dumps", dumps, METH_O, PyDoc_STR("dumps(value) -> bytes: compact UTF-8 JSON.")},
    {"configure_slices", configure_slices, METH_VARARGS,
     PyDoc_STR("configure_slices(reserved, max_chars, defaults, file_key, unclamped_key)")},
    {"timeline_events", (PyCFunction)(void (*)(void))timeline_events, METH_FASTCALL,
     PyDoc_STR("timeline_events(placed, full, fallback, separator) -> bytes")},
    {"place_rows", (PyCFunction)(void (*)(void))place_rows, METH_FASTCALL,
     PyDoc_STR("place_rows(rows, after, full, fallback, sink) -> bytes")},
    {"row_names", (PyCFunction)(void (*)(void))row_names, METH_FASTCALL,
     PyDoc_STR("row_names(labels, tracks) -> bytes")},
    {"group_rows", (PyCFunction)(void (*)(void))group_rows, METH_FASTCALL,
     PyDoc_STR("group_rows(spans, spawned_kinds) -> (rows, spawned)")},
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
    const char *texts[] = {"kind", "name", "status", "error", "attributes", "span_id",
                           "parent_id", "start_seq", "end_seq", "track", "parent", "ok",
                           "await", "blocked", "task", "coroutine", "thread", "span", "tid",
                           "start", "end", "unclamped", "key", "event", "after", "ts", "dur"};
    PyObject **targets[] = {&s_kind, &s_name, &s_status, &s_error, &s_attributes, &s_span_id,
                            &s_parent_id, &s_start_seq, &s_end_seq, &s_track, &s_parent, &s_ok,
                            &s_await, &s_blocked, &s_task, &s_coroutine, &s_thread,
                            &s_item_span, &s_item_tid, &s_item_start, &s_item_end,
                            &s_item_unclamped, &s_key, &s_event, &s_after, &s_ts, &s_dur};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        *targets[i] = PyUnicode_InternFromString(texts[i]);
        if (*targets[i] == NULL) {
            return NULL;
        }
    }
    return PyModule_Create(&module_def);
}
