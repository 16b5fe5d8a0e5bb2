/* apimon._speedups: the event builder's per-header and per-key loops, compiled.
 *
 * Each function here has a pure-Python reference that stays the specification and the fallback
 * (apimon/headers.py, apimon/environ.py, apimon/redact.py; APIMON_PURE_PYTHON=1 forces them).
 * json_plain lives in _json_plain.c.
 *
 * The compiled code takes only exact built-in shapes (str, bytes, tuple, list, dict, frozenset),
 * on which no Python code can run mid-loop (no __hash__, __eq__, lower() or finalizer of the
 * caller's); on anything else it hands the whole input to the Python reference, so both give the
 * same result by construction (tests/core/test_speedups.py checks it with hypothesis, hostile
 * inputs included). No pointer borrowed from a container is held across a call that can run
 * Python code: a list is copied to a tuple first, a replaced value is released after the walk.
 *
 * The module has one state per interpreter (multi-phase init): configure_headers(),
 * configure_environ() and configure_redact() hand over what the loops share with Python in that
 * interpreter.
 */
#include "_speedups.h"

static PyObject *
configure_headers(PyObject *module, PyObject *args)
{
    SpeedupsState *st = speedups_state(module);
    PyObject *known, *canon, *merge_py, *marker;
    if (!PyArg_ParseTuple(args, "O!OOU:configure_headers", &PyDict_Type, &known, &canon, &merge_py, &marker))
        return NULL;
    Py_XSETREF(st->known_names, Py_NewRef(known));
    Py_XSETREF(st->canonical_func, Py_NewRef(canon));
    Py_XSETREF(st->merge_fallback, Py_NewRef(merge_py));
    Py_XSETREF(st->redacted, Py_NewRef(marker));
    Py_RETURN_NONE;
}

static PyObject *
configure_environ(PyObject *module, PyObject *environ_py)
{
    Py_XSETREF(speedups_state(module)->environ_fallback, Py_NewRef(environ_py));
    Py_RETURN_NONE;
}

static PyObject *
configure_redact(PyObject *module, PyObject *redact_py)
{
    Py_XSETREF(speedups_state(module)->redact_fallback, Py_NewRef(redact_py));
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
merge(PyObject *module, PyObject *pairs)
{
    SpeedupsState *st = speedups_state(module);
    if (!configured(st->known_names, "configure_headers"))
        return NULL;
    PyObject *seq;
    /* A list is copied first: the app that owns it (or another thread) may change it, and
     * canonical() runs Python code. Any other iterable goes to the reference unconsumed. */
    if (PyTuple_CheckExact(pairs))
        seq = Py_NewRef(pairs);
    else if (PyList_CheckExact(pairs))
        seq = PyList_AsTuple(pairs);
    else
        return PyObject_CallOneArg(st->merge_fallback, pairs);
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    PyObject *out = PyDict_New();
    if (out == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(seq, i); /* the tuple holds it until the end */
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            goto fallback;
        PyObject *name = PyTuple_GET_ITEM(pair, 0);
        PyObject *value = PyTuple_GET_ITEM(pair, 1);
        /* Exact names only: their hash and equality run no Python code. */
        if (!PyUnicode_CheckExact(name) && !PyBytes_CheckExact(name))
            goto fallback;
        PyObject *text;
        if (PyBytes_CheckExact(value))
            text = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), NULL);
        else if (PyUnicode_CheckExact(value))
            text = Py_NewRef(value);
        else
            goto fallback; /* str subclasses, bytearray, ...: the reference's exact rules */
        if (text == NULL)
            goto error;
        PyObject *key = PyDict_GetItemWithError(st->known_names, name);
        if (key != NULL && PyUnicode_CheckExact(key) && PyUnicode_GET_LENGTH(key) > 0) {
            Py_INCREF(key);
        }
        else {
            if (PyErr_Occurred()) {
                Py_DECREF(text);
                goto error;
            }
            key = PyObject_CallOneArg(st->canonical_func, name);
            if (key == NULL) {
                Py_DECREF(text);
                goto error;
            }
            if (!PyUnicode_CheckExact(key)) {
                Py_DECREF(key);
                Py_DECREF(text);
                goto fallback;
            }
        }
        /* out's keys are exact str: looking one up runs no Python code. */
        PyObject *seen = PyDict_GetItemWithError(out, key);
        int rc;
        if (seen != NULL) {
            PyObject *joined = PyUnicode_Concat(seen, st->comma);
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
    {
        /* The reference reads the snapshot, not a list that may have changed since. */
        PyObject *result = PyObject_CallOneArg(st->merge_fallback, seq);
        Py_DECREF(seq);
        return result;
    }
error:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

/* environ_headers(environ) -> list of (name without "HTTP_", value), in the environ's order.
 * The reference is apimon.environ.environ_headers_py. */
static PyObject *
environ_headers(PyObject *module, PyObject *environ)
{
    SpeedupsState *st = speedups_state(module);
    if (!configured(st->environ_fallback, "configure_environ"))
        return NULL;
    if (!PyDict_CheckExact(environ))
        return PyObject_CallOneArg(st->environ_fallback, environ);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    /* Nothing below runs Python code: the borrowed key and value stay valid for the step. */
    while (PyDict_Next(environ, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            Py_DECREF(out);
            return PyObject_CallOneArg(st->environ_fallback, environ);
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

/* key.lower() in fields, for an exact str key and a frozenset of exact str (see exact_fields):
 * neither the lower-casing nor the lookup runs Python code. */
static int
is_secret(SpeedupsState *st, PyObject *key, PyObject *fields)
{
    PyObject *lowered;
    Py_ssize_t len;
    if (PyUnicode_IS_ASCII(key) && (len = PyUnicode_GET_LENGTH(key)) <= 64) {
        /* ASCII lower-casing is str.lower() for ASCII text. A key already in lower case (most
         * JSON keys) is looked up as it is: no new string. */
        const char *src = (const char *)PyUnicode_1BYTE_DATA(key);
        Py_ssize_t upper = 0;
        while (upper < len && !(src[upper] >= 'A' && src[upper] <= 'Z'))
            upper++;
        if (upper == len)
            return PySet_Contains(fields, key);
        char buf[64];
        for (Py_ssize_t i = 0; i < len; i++) {
            char c = src[i];
            buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        lowered = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, buf, len);
    }
    else {
        lowered = PyObject_CallMethodNoArgs(key, st->lower_name); /* str.lower: C */
    }
    if (lowered == NULL)
        return -1;
    int found = PySet_Contains(fields, lowered);
    Py_DECREF(lowered);
    return found;
}

/* Whether every item of a frozenset is an exact str: then a lookup compares with no Python code. */
static int
exact_fields(PyObject *fields)
{
    if (!PyFrozenSet_CheckExact(fields))
        return 0;
    Py_ssize_t pos = 0;
    PyObject *item;
    Py_hash_t hash;
    while (_PySet_NextEntry(fields, &pos, &item, &hash))
        if (!PyUnicode_CheckExact(item))
            return 0;
    return 1;
}

/* A stack of owned references. */
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
    stack->items = NULL;
    stack->capacity = 0;
}

static int
is_container(PyObject *value)
{
    return PyDict_CheckExact(value) || PyList_CheckExact(value);
}

/* redact_json(value, fields) -> int: every object key in fields gets "[REDACTED]", in place, at
 * any depth (an explicit stack: no recursion); how many were. The reference is
 * apimon.redact.redact_json_py, which takes over for anything not exact: fields that are not a
 * frozenset of exact str, a key that is not an exact str. Handing over mid-walk is safe: the
 * reference redacts again what was redacted (the same marker) and counts every secret key. */
static PyObject *
redact_json(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    SpeedupsState *st = speedups_state(module);
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "redact_json(value, fields)");
        return NULL;
    }
    if (!configured(st->redacted, "configure_headers") || !configured(st->redact_fallback, "configure_redact"))
        return NULL;
    PyObject *value = args[0], *fields = args[1];
    if (!exact_fields(fields))
        return PyObject_Vectorcall(st->redact_fallback, args, 2, NULL);
    if (PySet_GET_SIZE(fields) == 0 || !is_container(value))
        return PyLong_FromLong(0);
    Stack stack = {NULL, 0, 0};
    /* The values replaced: released after the walk, so no finalizer runs while it holds a
     * borrowed key or value. */
    Stack replaced = {NULL, 0, 0};
    Py_ssize_t count = 0;
    int handover = 0;
    if (push(&stack, value) < 0)
        goto error;
    while (stack.size > 0 && !handover) {
        PyObject *item = stack.items[--stack.size]; /* owned */
        int failed = 0;
        if (PyDict_CheckExact(item)) {
            Py_ssize_t pos = 0;
            PyObject *key, *child;
            while (!failed && !handover && PyDict_Next(item, &pos, &key, &child)) {
                if (!PyUnicode_CheckExact(key)) {
                    handover = 1;
                    break;
                }
                int secret = is_secret(st, key, fields);
                if (secret < 0)
                    failed = 1;
                else if (secret) {
                    /* An existing key: the dict does not resize under the iteration. The key is
                     * held across the store (another key's __eq__ may run in its lookup). */
                    Py_INCREF(key);
                    failed = push(&replaced, child) < 0 || PyDict_SetItem(item, key, st->redacted) < 0;
                    Py_DECREF(key);
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
    clear(&replaced);
    if (handover)
        return PyObject_Vectorcall(st->redact_fallback, args, 2, NULL);
    return PyLong_FromSsize_t(count);
error:
    clear(&stack);
    clear(&replaced);
    return NULL;
}

static PyObject *
field_table(PyObject *module, PyObject *fields)
{
    return apimon_field_table(module, fields);
}

static PyMethodDef methods[] = {
    {"configure_headers", configure_headers, METH_VARARGS,
     "configure_headers(known, canonical, merge_py, redacted): what merge and redact_json share with Python."},
    {"configure_environ", configure_environ, METH_O,
     "configure_environ(environ_headers_py): the reference environ_headers falls back to."},
    {"configure_redact", configure_redact, METH_O, "configure_redact(redact_json_py): the reference of redact_json."},
    {"merge", merge, METH_O, "merge(pairs) -> dict; see apimon.headers.merge_py."},
    {"environ_headers", environ_headers, METH_O, "environ_headers(environ) -> list; see apimon.environ."},
    {"redact_json", (PyCFunction)(void (*)(void))redact_json, METH_FASTCALL, "redact_json(value, fields) -> int; see apimon.redact."},
    {"field_table", field_table, METH_O,
     "field_table(fields: frozenset) -> FieldTable: the redacted names, compiled once for json_plain."},
    {"json_plain", (PyCFunction)(void (*)(void))apimon_json_plain, METH_FASTCALL,
     "json_plain(data, table) -> bool: JSON orjson accepts with no key to redact; see apimon.bodies."},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    SpeedupsState *st = speedups_state(module);
    st->comma = PyUnicode_InternFromString(",");
    st->lower_name = PyUnicode_InternFromString("lower");
    if (st->comma == NULL || st->lower_name == NULL)
        return -1;
    st->field_table_type = apimon_field_table_type(module);
    if (st->field_table_type == NULL)
        return -1;
    return PyModule_AddObjectRef(module, "FieldTable", (PyObject *)st->field_table_type);
}

static int
traverse(PyObject *module, visitproc visit, void *arg)
{
    SpeedupsState *st = speedups_state(module);
    if (st == NULL)
        return 0;
    Py_VISIT(st->known_names);
    Py_VISIT(st->canonical_func);
    Py_VISIT(st->merge_fallback);
    Py_VISIT(st->environ_fallback);
    Py_VISIT(st->redact_fallback);
    Py_VISIT(st->redacted);
    Py_VISIT(st->field_table_type);
    return 0;
}

static int
clear_module(PyObject *module)
{
    SpeedupsState *st = speedups_state(module);
    if (st == NULL)
        return 0;
    Py_CLEAR(st->known_names);
    Py_CLEAR(st->canonical_func);
    Py_CLEAR(st->merge_fallback);
    Py_CLEAR(st->environ_fallback);
    Py_CLEAR(st->redact_fallback);
    Py_CLEAR(st->redacted);
    Py_CLEAR(st->comma);
    Py_CLEAR(st->lower_name);
    Py_CLEAR(st->field_table_type);
    return 0;
}

static void
free_module(void *module)
{
    clear_module((PyObject *)module);
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "apimon._speedups",
    .m_doc = "The event builder's hot loops, compiled (see apimon.native).",
    .m_size = sizeof(SpeedupsState),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = traverse,
    .m_clear = clear_module,
    .m_free = free_module,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module_def);
}
