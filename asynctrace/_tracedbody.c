/* asynctrace._speedups.TracedBody: how a body traced by the import hook opens its span.
 *
 * Problem: a traced call through a wrapper coroutine (_decorator._wrap_c) costs one more
 * coroutine, frame and argument packing per call, and one more level on every step of its
 * task: on the fanout benchmark about a sixth of the tracer's cost inside the loop.
 *
 * Solution: ``asynctrace run`` compiles the program's ``async def`` bodies as
 *
 *     _asynctrace_call = <TracedBody>.enter()
 *     try:
 *         try:
 *             <body>
 *         except:
 *             _asynctrace_call.fail()
 *             raise
 *     finally:
 *         _asynctrace_call.leave()
 *
 * with the TracedBody of the function in the code's constants (see _autotrace.py).  enter()
 * finds the call's coroutine from its caller's frame (PyFrame_GetGenerator) and makes the
 * same CallSpan as _speedups.enter(coro, info) would; fail() and leave() end it once, with the
 * status of the exception being handled or none.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

PyObject *_asynctrace_enter_body(PyObject *info);

typedef struct {
    PyObject_HEAD
    PyObject *info; /* the function's FnInfo */
} TracedBodyObject;

static PyObject *
body_enter(TracedBodyObject *self, PyObject *unused)
{
    return _asynctrace_enter_body(self->info);
}

/* Pickled (a function's code pickled by value, as cloudpickle does), it comes back inert: a
 * TracedBody(None), whose enter() gives a span that is already over.  Its FnInfo stays here:
 * it names this process's code, and holds that code, which holds this TracedBody. */
static PyObject *
body_reduce(TracedBodyObject *self, PyObject *unused)
{
    return Py_BuildValue("(O(O))", (PyObject *)Py_TYPE(self), Py_None);
}

static PyObject *
body_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *info;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "TracedBody() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "TracedBody", 1, 1, &info)) {
        return NULL;
    }
    TracedBodyObject *self = (TracedBodyObject *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->info = Py_NewRef(info);
    }
    return (PyObject *)self;
}

static int
body_traverse(TracedBodyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->info);
    return 0;
}

static int
body_clear(TracedBodyObject *self)
{
    Py_CLEAR(self->info);
    return 0;
}

static void
body_dealloc(TracedBodyObject *self)
{
    PyObject_GC_UnTrack(self);
    body_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef body_methods[] = {
    {"enter", (PyCFunction)body_enter, METH_NOARGS,
     PyDoc_STR("The CallSpan of the call whose body runs now (one that is over while nothing "
               "records, or for TracedBody(None)).")},
    {"__reduce__", (PyCFunction)body_reduce, METH_NOARGS,
     PyDoc_STR("Pickled, an inert TracedBody(None).")},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef body_members[] = {
    {"info", T_OBJECT_EX, offsetof(TracedBodyObject, info), READONLY,
     PyDoc_STR("The traced function's FnInfo.")},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject _asynctrace_TracedBodyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asynctrace._speedups.TracedBody",
    .tp_basicsize = sizeof(TracedBodyObject),
    .tp_dealloc = (destructor)body_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PyDoc_STR("TracedBody(info): opens the span of each call of a traced body."),
    .tp_traverse = (traverseproc)body_traverse,
    .tp_clear = (inquiry)body_clear,
    .tp_methods = body_methods,
    .tp_members = body_members,
    .tp_new = body_new,
};
