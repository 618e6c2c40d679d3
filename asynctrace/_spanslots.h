/* Span's slots as C reads them: learned once by configure_spans() (_cbuild.c) from the Span
 * class of _spans.py, shared by the C parts of _speedups that read or fill spans. */
#ifndef ASYNCTRACE_SPANSLOTS_H
#define ASYNCTRACE_SPANSLOTS_H

#include <Python.h>

/* Span's slots, in its field order. */
enum {
    F_SPAN_ID, F_PARENT_ID, F_KIND, F_NAME, F_START, F_END, F_TRACK, F_STATUS, F_ERROR,
    F_ATTRIBUTES, F_START_SEQ, F_END_SEQ, F_PARENT, F_CHILDREN, N_FIELDS
};

/* Byte offsets of the slots in a Span, and the Span class (NULL before configure_spans). */
extern Py_ssize_t _asynctrace_span_offsets[N_FIELDS];
extern PyTypeObject *_asynctrace_span_type;

/* A slot of a Span (borrowed; NULL when unset). */
#define SLOT(span, field) (*(PyObject **)((char *)(span) + _asynctrace_span_offsets[field]))

#endif
