/* Span's slots as C reads them, learned once from the Span class of _spans.py: by
 * configure_spans() (_cbuild.c) for the C parts of _speedups that read or fill spans, and by
 * _ctimeline's configure() for its own copy (a file that defines ASYNCTRACE_OWN_SPAN_OFFSETS
 * keeps its offsets itself). */
#ifndef ASYNCTRACE_SPANSLOTS_H
#define ASYNCTRACE_SPANSLOTS_H

#include <Python.h>
#include <structmember.h>

/* Span's slots, in its field order. */
enum {
    F_SPAN_ID, F_PARENT_ID, F_KIND, F_NAME, F_START, F_END, F_TRACK, F_STATUS, F_ERROR,
    F_ATTRIBUTES, F_START_SEQ, F_END_SEQ, F_PARENT, F_CHILDREN, N_FIELDS
};

/* Fill ``offsets`` with the byte offset of each slot of ``type``, all or none: -1 with a
 * TypeError when one is not an object slot. */
static inline int
learn_span_offsets(PyTypeObject *type, Py_ssize_t offsets[N_FIELDS])
{
    static const char *const names[N_FIELDS] = {
        "span_id", "parent_id", "kind", "name", "start", "end", "track", "status", "error",
        "attributes", "start_seq", "end_seq", "parent", "children",
    };
    Py_ssize_t learned[N_FIELDS];
    for (int i = 0; i < N_FIELDS; i++) {
        PyObject *descr = PyDict_GetItemString(type->tp_dict, names[i]);
        if (descr == NULL || Py_TYPE(descr) != &PyMemberDescr_Type) {
            PyErr_Format(PyExc_TypeError, "%s has no slot %s", type->tp_name, names[i]);
            return -1;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || member->offset <= 0) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", type->tp_name,
                         names[i]);
            return -1;
        }
        learned[i] = member->offset;
    }
    memcpy(offsets, learned, sizeof(learned));
    return 0;
}

/* configure(span_type) of an extension that keeps its own offsets: learn them (all or none)
 * and keep the class in *kept.  None, or NULL with a TypeError. */
static inline PyObject *
keep_span_type(PyObject *type, Py_ssize_t offsets[N_FIELDS], PyTypeObject **kept)
{
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "configure(span_type): span_type MUST be a class");
        return NULL;
    }
    if (learn_span_offsets((PyTypeObject *)type, offsets) < 0) {
        return NULL;
    }
    Py_INCREF(type);
    Py_XSETREF(*kept, (PyTypeObject *)type);
    Py_RETURN_NONE;
}

/* A slot of a span, by the offsets learned (borrowed; NULL when unset). */
#define SPAN_SLOT(offsets, span, field) (*(PyObject **)((char *)(span) + (offsets)[field]))

#ifndef ASYNCTRACE_OWN_SPAN_OFFSETS
/* _speedups' offsets and Span class (NULL before configure_spans), and its spans' slots. */
extern Py_ssize_t _asynctrace_span_offsets[N_FIELDS];
extern PyTypeObject *_asynctrace_span_type;
#define SLOT(span, field) SPAN_SLOT(_asynctrace_span_offsets, span, field)
#endif

#endif
