/* The recorder's record list as C sees it (_records.c), shared with the span builder
 * (_cbuild.c): both are compiled into the _speedups extension. */
#ifndef ASYNCTRACE_RECORDS_H
#define ASYNCTRACE_RECORDS_H

#include <Python.h>

typedef struct {
    PyObject *rec; /* a whole record, or NULL: a record stored by its fields */
    PyObject *kind, *what, *lasti, *status, *extra;
    long long sid, parent, track, end_seq;
    double start, end;
    int untrack; /* its tuple is made untracked, as the hot path made it */
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *items;
    Py_ssize_t len, cap;
} RecordsObject;

extern PyTypeObject _asynctrace_RecordsType;

/* Entries [start, start + n * step), copied with their objects held (see _records.c). */
Entry *_asynctrace_records_snapshot(RecordsObject *self, Py_ssize_t start, Py_ssize_t n,
                                    Py_ssize_t step);
/* Let go of the objects of a snapshot's ``n`` entries (not of the array). */
void _asynctrace_entries_release(Entry *entries, Py_ssize_t n);
/* The record of an entry as the tuple the Python path appends (new reference). */
PyObject *_asynctrace_entry_tuple(const Entry *e);

/* A task root's place in a Roots (see _records.c): each C TaskRoot has one, at the offset
 * _speedups gives; ``roots`` is NULL while it is in none. */
typedef struct {
    PyObject *roots; /* borrowed: a Roots forgets its roots when it is freed */
    Py_ssize_t index;
} RootsLink;

extern PyTypeObject _asynctrace_RootsType;
/* Set by _speedups when its types are ready: the task root type and where its link is. */
extern PyTypeObject *_asynctrace_root_type;
extern Py_ssize_t _asynctrace_root_link_offset;
/* Take a root out of the Roots it is in (when it is cleared or freed). */
void _asynctrace_roots_unlink(RootsLink *link);

#endif
