/* apimon._speedups: the event builder's per-header and per-key loops, compiled.
 *
 * Each function here has a pure-Python reference that stays the specification and the fallback
 * (apimon/headers.py, apimon/environ.py, apimon/redact.py; APIMON_PURE_PYTHON=1 forces them).
 * json_plain lives in _json_plain.c. The compiled code takes only the common shapes (exact str
 * and bytes, exact dicts and tuples); on anything else it hands the whole input to the Python reference, so both give the same result
 * by construction, and tests/core/test_speedups.py checks it with hypothesis.
 *
 * configure_headers() and configure_environ() hand over what the loops share with Python: the
 * header-name cache dict, the canonical() function that fills it, the redaction marker, and the
 * reference functions to fall back to.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_speedups.h"

static PyObject *known_names;     /* dict: header name as given -> canonical str (headers._KNOWN) */
static PyObject *canonical_func;  /* headers.canonical(name) */
static PyObject *merge_fallback;  /* headers.merge_py(pairs) */
static PyObject *environ_fallback; /* environ.environ_headers_py(environ) */
static PyObject *comma;           /* "," */
static PyObject *redacted;        /* "[REDACTED]" */
static PyObject *lower_name;      /* "lower" */

static PyObject *
configure_headers(PyObject *self, PyObject *args)
{
    PyObject *known, *canon, *merge_py, *marker;
    if (!PyArg_ParseTuple(args, "O!OOU:configure_headers", &PyDict_Type, &known, &canon, &merge_py, &marker))
        return NULL;
    Py_XSETREF(known_names, Py_NewRef(known));
    Py_XSETREF(canonical_func, Py_NewRef(canon));
    Py_XSETREF(merge_fallback, Py_NewRef(merge_py));
    Py_XSETREF(redacted, Py_NewRef(marker));
    Py_RETURN_NONE;
}

static PyObject *
configure_environ(PyObject *self, PyObject *environ_py)
{
    Py_XSETREF(environ_fallback, Py_NewRef(environ_py));
    Py_RETURN_NONE;
}

static int
configured(PyObject *what, const char *by)
{
    if (what == NULL) {
        PyErr_Format(PyExc_RuntimeError, "apimon._speedups.%s() was not called", by);
        return 0;
    }
    return 1;
}

/* merge(pairs) -> dict: canonical names, the values of a repeated name joined by ",".
 * The reference is apimon.headers.merge_py. */
static PyObject *
merge(PyObject *self, PyObject *pairs)
{
    if (!configured(known_names, "configure_headers"))
        return NULL;
    /* Lists and tuples only: any other iterable goes to the reference unconsumed. */
    if (!PyList_CheckExact(pairs) && !PyTuple_CheckExact(pairs))
        return PyObject_CallOneArg(merge_fallback, pairs);
    PyObject *seq = PySequence_Fast(pairs, "header pairs");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *out = PyDict_New();
    if (out == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = items[i];
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            goto fallback;
        PyObject *name = PyTuple_GET_ITEM(pair, 0);
        PyObject *value = PyTuple_GET_ITEM(pair, 1);
        PyObject *text;
        if (PyBytes_CheckExact(value))
            text = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), NULL);
        else if (PyUnicode_CheckExact(value))
            text = Py_NewRef(value);
        else
            goto fallback; /* str subclasses, bytearray, ...: the reference's exact rules */
        if (text == NULL)
            goto error;
        PyObject *key = PyDict_GetItemWithError(known_names, name);
        if (key != NULL && PyUnicode_CheckExact(key) && PyUnicode_GET_LENGTH(key) > 0) {
            Py_INCREF(key);
        }
        else {
            if (PyErr_Occurred()) { /* an unhashable name */
                Py_DECREF(text);
                goto error;
            }
            key = PyObject_CallOneArg(canonical_func, name);
            if (key == NULL) {
                Py_DECREF(text);
                goto error;
            }
        }
        PyObject *seen = PyDict_GetItemWithError(out, key);
        int rc;
        if (seen != NULL) {
            PyObject *joined = PyUnicode_Concat(seen, comma);
            if (joined != NULL)
                PyUnicode_Append(&joined, text);
            rc = joined == NULL ? -1 : PyDict_SetItem(out, key, joined);
            Py_XDECREF(joined);
        }
        else if (PyErr_Occurred()) {
            rc = -1;
        }
        else {
            rc = PyDict_SetItem(out, key, text);
        }
        Py_DECREF(key);
        Py_DECREF(text);
        if (rc < 0)
            goto error;
    }
    Py_DECREF(seq);
    return out;

fallback:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return PyObject_CallOneArg(merge_fallback, pairs);
error:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

/* environ_headers(environ) -> list of (name without "HTTP_", value), in the environ's order.
 * The reference is apimon.environ.environ_headers_py. */
static PyObject *
environ_headers(PyObject *self, PyObject *environ)
{
    if (!configured(environ_fallback, "configure_environ"))
        return NULL;
    if (!PyDict_CheckExact(environ))
        return PyObject_CallOneArg(environ_fallback, environ);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(environ, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            Py_DECREF(out);
            return PyObject_CallOneArg(environ_fallback, environ);
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(key);
        if (len < 5 || PyUnicode_READ_CHAR(key, 0) != 'H')
            continue;
        if (PyUnicode_READ_CHAR(key, 1) != 'T' || PyUnicode_READ_CHAR(key, 2) != 'T' ||
            PyUnicode_READ_CHAR(key, 3) != 'P' || PyUnicode_READ_CHAR(key, 4) != '_')
            continue;
        PyObject *name = PyUnicode_Substring(key, 5, len);
        if (name == NULL)
            goto error;
        PyObject *pair = PyTuple_Pack(2, name, value);
        Py_DECREF(name);
        if (pair == NULL)
            goto error;
        int rc = PyList_Append(out, pair);
        Py_DECREF(pair);
        if (rc < 0)
            goto error;
    }
    return out;
error:
    Py_DECREF(out);
    return NULL;
}

/* key.lower() in fields, for a dict key of a JSON body. */
static int
is_secret(PyObject *key, PyObject *fields)
{
    PyObject *lowered;
    Py_ssize_t len;
    if (PyUnicode_CheckExact(key) && PyUnicode_IS_ASCII(key) && (len = PyUnicode_GET_LENGTH(key)) <= 64) {
        /* ASCII lower-casing is str.lower() for ASCII text; no method call. A key already in
         * lower case (most JSON keys) is looked up as it is: no new string. */
        const char *src = (const char *)PyUnicode_1BYTE_DATA(key);
        Py_ssize_t upper = 0;
        while (upper < len && !(src[upper] >= 'A' && src[upper] <= 'Z'))
            upper++;
        if (upper == len)
            return PySequence_Contains(fields, key);
        char buf[64];
        for (Py_ssize_t i = 0; i < len; i++) {
            char c = src[i];
            buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        lowered = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, buf, len);
    }
    else {
        lowered = PyObject_CallMethodNoArgs(key, lower_name);
    }
    if (lowered == NULL)
        return -1;
    int found = PySequence_Contains(fields, lowered);
    Py_DECREF(lowered);
    return found;
}

/* A stack of owned references for the walk of a JSON value. */
typedef struct {
    PyObject **items;
    Py_ssize_t size, capacity;
} Stack;

static int
push(Stack *stack, PyObject *item)
{
    if (stack->size == stack->capacity) {
        Py_ssize_t capacity = stack->capacity ? stack->capacity * 2 : 32;
        PyObject **grown = PyMem_Realloc(stack->items, (size_t)capacity * sizeof(PyObject *));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        stack->items = grown;
        stack->capacity = capacity;
    }
    stack->items[stack->size++] = Py_NewRef(item);
    return 0;
}

static void
clear(Stack *stack)
{
    while (stack->size > 0)
        Py_DECREF(stack->items[--stack->size]);
    PyMem_Free(stack->items);
}

static int
is_container(PyObject *value)
{
    return PyDict_CheckExact(value) || PyList_CheckExact(value);
}

/* redact_json(value, fields) -> int: every object key in fields gets "[REDACTED]", in place, at
 * any depth (an explicit stack: no recursion); how many were. The reference is
 * apimon.redact.redact_json_py. */
static PyObject *
redact_json(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "redact_json(value, fields)");
        return NULL;
    }
    if (!configured(redacted, "configure_headers"))
        return NULL;
    PyObject *value = args[0], *fields = args[1];
    int any = PyObject_IsTrue(fields);
    if (any < 0)
        return NULL;
    if (!any || !is_container(value))
        return PyLong_FromLong(0);
    Stack stack = {NULL, 0, 0};
    Py_ssize_t count = 0;
    if (push(&stack, value) < 0)
        goto error;
    while (stack.size > 0) {
        PyObject *item = stack.items[--stack.size]; /* owned */
        int failed = 0;
        if (PyDict_CheckExact(item)) {
            Py_ssize_t pos = 0;
            PyObject *key, *child;
            while (!failed && PyDict_Next(item, &pos, &key, &child)) {
                int secret = is_secret(key, fields);
                if (secret < 0)
                    failed = 1;
                else if (secret) {
                    /* An existing key: the dict does not resize under the iteration. */
                    failed = PyDict_SetItem(item, key, redacted) < 0;
                    count++;
                }
                else if (is_container(child))
                    failed = push(&stack, child) < 0;
            }
        }
        else {
            for (Py_ssize_t i = 0; !failed && i < PyList_GET_SIZE(item); i++) {
                PyObject *child = PyList_GET_ITEM(item, i);
                if (is_container(child))
                    failed = push(&stack, child) < 0;
            }
        }
        Py_DECREF(item);
        if (failed)
            goto error;
    }
    clear(&stack);
    return PyLong_FromSsize_t(count);
error:
    clear(&stack);
    return NULL;
}

static PyMethodDef methods[] = {
    {"configure_headers", configure_headers, METH_VARARGS,
     "configure_headers(known, canonical, merge_py, redacted): what merge and redact_json share with Python."},
    {"configure_environ", configure_environ, METH_O,
     "configure_environ(environ_headers_py): the reference environ_headers falls back to."},
    {"merge", merge, METH_O, "merge(pairs) -> dict; see apimon.headers.merge_py."},
    {"environ_headers", environ_headers, METH_O, "environ_headers(environ) -> list; see apimon.environ."},
    {"redact_json", (PyCFunction)(void (*)(void))redact_json, METH_FASTCALL, "redact_json(value, fields) -> int; see apimon.redact."},
    {"json_plain", (PyCFunction)(void (*)(void))apimon_json_plain, METH_FASTCALL,
     "json_plain(data, fields) -> bool: JSON orjson accepts with no key to redact; see apimon.bodies."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "apimon._speedups", "The event builder's hot loops, compiled (see apimon.native).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    comma = PyUnicode_InternFromString(",");
    lower_name = PyUnicode_InternFromString("lower");
    if (comma == NULL || lower_name == NULL)
        return NULL;
    return PyModule_Create(&module);
}
