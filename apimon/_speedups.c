/* apimon._speedups: the event builder's per-header and per-key loops, compiled.
 *
 * Each function here has a pure-Python reference that stays the specification and the fallback
 * (apimon/headers.py, apimon/environ.py, apimon/redact.py; APIMON_PURE_PYTHON=1 forces them).
 * The compiled code takes only the common shapes (exact str and bytes, exact dicts and tuples);
 * on anything else it hands the whole input to the Python reference, so both give the same result
 * by construction, and tests/core/test_speedups.py checks it with hypothesis.
 *
 * configure_headers() and configure_environ() hand over what the loops share with Python: the
 * header-name cache dict, the canonical() function that fills it, the redaction marker, and the
 * reference functions to fall back to.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

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

/* ---- json_plain: is a JSON body safe to ship as the app's own bytes? ----
 *
 * True only when ``data`` is JSON that orjson.loads accepts and no object key, lower-cased, is one
 * of the redacted field names: then the event carries the body verbatim (orjson.Fragment) instead
 * of parsing it and encoding it again. The check is stricter than orjson wherever that is simpler
 * (escapes or non-ASCII in keys, \u escapes of surrogates, exponents of three digits, numbers of
 * over 200 digits, nesting over 128): False sends such a body down the Python path, which parses
 * it and decides the same way, so either path gives the same event. */

#define PLAIN_MAX_DEPTH 128
#define PLAIN_MAX_DIGITS 200

/* The ASCII names of the last field set seen (an app has one): compared without a Python call. */
static PyObject *plain_fields;
static char **plain_names;
static Py_ssize_t *plain_lens;
static Py_ssize_t plain_count;

static void
forget_fields(void)
{
    for (Py_ssize_t i = 0; i < plain_count; i++)
        PyMem_Free(plain_names[i]);
    PyMem_Free(plain_names);
    PyMem_Free(plain_lens);
    plain_names = NULL;
    plain_lens = NULL;
    plain_count = 0;
    Py_CLEAR(plain_fields);
}

static int
learn_fields(PyObject *fields)
{
    if (fields == plain_fields)
        return 0;
    forget_fields();
    PyObject *iterator = PyObject_GetIter(fields);
    if (iterator == NULL)
        return -1;
    Py_ssize_t size = PyObject_Length(fields);
    if (size < 0) {
        Py_DECREF(iterator);
        return -1;
    }
    plain_names = PyMem_Calloc((size_t)size + 1, sizeof(char *));
    plain_lens = PyMem_Calloc((size_t)size + 1, sizeof(Py_ssize_t));
    if (plain_names == NULL || plain_lens == NULL) {
        Py_DECREF(iterator);
        forget_fields();
        PyErr_NoMemory();
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        /* An ASCII key lower-cased is ASCII: only ASCII names can equal one. */
        if (PyUnicode_Check(item) && PyUnicode_IS_ASCII(item) && plain_count < size) {
            Py_ssize_t len = PyUnicode_GET_LENGTH(item);
            char *copy = PyMem_Malloc((size_t)len + 1);
            if (copy == NULL) {
                Py_DECREF(item);
                Py_DECREF(iterator);
                forget_fields();
                PyErr_NoMemory();
                return -1;
            }
            memcpy(copy, PyUnicode_1BYTE_DATA(item), (size_t)len + 1);
            plain_names[plain_count] = copy;
            plain_lens[plain_count] = len;
            plain_count++;
        }
        Py_DECREF(item);
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        forget_fields();
        return -1;
    }
    plain_fields = Py_NewRef(fields);
    return 0;
}

typedef struct {
    const unsigned char *p, *end;
    int depth;
} Scan;

static void
skip_ws(Scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int
is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int
hex_value(unsigned char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static int
continuation(const unsigned char *p, const unsigned char *end, int n)
{
    if (end - p < n)
        return 0;
    for (int i = 0; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return 1;
}

/* A UTF-8 sequence as Rust's str::from_utf8 accepts it (orjson's check); its length, 0 if invalid. */
static int
utf8_length(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF)
        return continuation(p + 1, end, 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (end - p < 3)
            return 0;
        if (c == 0xE0 && p[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && p[1] > 0x9F)
            return 0; /* a surrogate */
        return continuation(p + 1, end, 2) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (end - p < 4)
            return 0;
        if (c == 0xF0 && p[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && p[1] > 0x8F)
            return 0; /* over U+10FFFF */
        return continuation(p + 1, end, 3) ? 4 : 0;
    }
    return 0;
}

/* A string at s->p (its opening quote). 1 when plain; a key must also be ASCII with no escape and
 * not a field name. */
/* Eight bytes at a time while none is a quote, a backslash, a control character or non-ASCII
 * (the bulk of a long string value): a word is tested with a few integer operations. */
static const unsigned char *
skip_plain_run(const unsigned char *p, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
        uint64_t special = ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | (x - ones * 0x20) | x;
        if (special & highs)
            break;
        p += 8;
    }
    return p;
}

static int
scan_string(Scan *s, int key)
{
    const unsigned char *start = ++s->p;
    while (s->p < s->end) {
        s->p = skip_plain_run(s->p, s->end);
        if (s->p >= s->end)
            break;
        unsigned char c = *s->p;
        if (c == '"') {
            Py_ssize_t len = s->p - start;
            s->p++;
            if (!key)
                return 1;
            for (Py_ssize_t i = 0; i < plain_count; i++) {
                if (plain_lens[i] != len)
                    continue;
                const char *name = plain_names[i];
                Py_ssize_t j = 0;
                while (j < len) {
                    unsigned char k = start[j];
                    if (k >= 'A' && k <= 'Z')
                        k += 32;
                    if (k != (unsigned char)name[j])
                        break;
                    j++;
                }
                if (j == len)
                    return 0; /* a field to redact */
            }
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (key || s->end - s->p < 2)
                return 0;
            unsigned char e = s->p[1];
            if (e == 'u') {
                if (s->end - s->p < 6 || !is_hex(s->p[2]) || !is_hex(s->p[3]) || !is_hex(s->p[4]) || !is_hex(s->p[5]))
                    return 0;
                int v = (hex_value(s->p[2]) << 12) | (hex_value(s->p[3]) << 8) | (hex_value(s->p[4]) << 4) |
                        hex_value(s->p[5]);
                if (v >= 0xD800 && v <= 0xDFFF)
                    return 0; /* surrogate pairs: left to orjson */
                s->p += 6;
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't')
                return 0;
            s->p += 2;
            continue;
        }
        if (c >= 0x80) {
            if (key)
                return 0;
            int n = utf8_length(s->p, s->end);
            if (n == 0)
                return 0;
            s->p += n;
            continue;
        }
        s->p++;
    }
    return 0; /* unterminated */
}

static int
scan_digits(Scan *s)
{
    const unsigned char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return (int)(s->p - start > PLAIN_MAX_DIGITS ? -1 : s->p - start);
}

static int
scan_number(Scan *s)
{
    if (*s->p == '-')
        s->p++;
    if (s->p >= s->end)
        return 0;
    int digits;
    if (*s->p == '0') {
        s->p++;
        digits = 1;
    }
    else if (*s->p >= '1' && *s->p <= '9') {
        digits = scan_digits(s);
        if (digits < 0)
            return 0;
    }
    else {
        return 0;
    }
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        int fraction = scan_digits(s);
        if (fraction <= 0 || digits + fraction > PLAIN_MAX_DIGITS)
            return 0;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        int exponent = scan_digits(s);
        if (exponent <= 0 || exponent > 2)
            return 0; /* no overflow to infinity, which orjson refuses */
    }
    return 1;
}

static int
scan_literal(Scan *s, const char *word, Py_ssize_t len)
{
    if (s->end - s->p < len || memcmp(s->p, word, (size_t)len) != 0)
        return 0;
    s->p += len;
    return 1;
}

static int scan_value(Scan *s);

static int
scan_container(Scan *s, unsigned char close)
{
    if (++s->depth > PLAIN_MAX_DEPTH)
        return 0;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 1;
    }
    while (1) {
        if (close == '}') {
            if (s->p >= s->end || *s->p != '"' || !scan_string(s, 1))
                return 0;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return 0;
            s->p++;
            skip_ws(s);
        }
        if (!scan_value(s))
            return 0;
        skip_ws(s);
        if (s->p >= s->end)
            return 0;
        if (*s->p == close) {
            s->p++;
            s->depth--;
            return 1;
        }
        if (*s->p != ',')
            return 0;
        s->p++;
        skip_ws(s);
    }
}

static int
scan_value(Scan *s)
{
    if (s->p >= s->end)
        return 0;
    switch (*s->p) {
    case '{':
        return scan_container(s, '}');
    case '[':
        return scan_container(s, ']');
    case '"':
        return scan_string(s, 0);
    case 't':
        return scan_literal(s, "true", 4);
    case 'f':
        return scan_literal(s, "false", 5);
    case 'n':
        return scan_literal(s, "null", 4);
    default:
        return (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) ? scan_number(s) : 0;
    }
}

static PyObject *
json_plain(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "json_plain(data: bytes, fields)");
        return NULL;
    }
    if (learn_fields(args[1]) < 0)
        return NULL;
    Scan s = {(const unsigned char *)PyBytes_AS_STRING(args[0]),
              (const unsigned char *)PyBytes_AS_STRING(args[0]) + PyBytes_GET_SIZE(args[0]), 0};
    skip_ws(&s);
    int plain = scan_value(&s);
    skip_ws(&s);
    return PyBool_FromLong(plain && s.p == s.end);
}

static PyMethodDef methods[] = {
    {"configure_headers", configure_headers, METH_VARARGS,
     "configure_headers(known, canonical, merge_py, redacted): what merge and redact_json share with Python."},
    {"configure_environ", configure_environ, METH_O,
     "configure_environ(environ_headers_py): the reference environ_headers falls back to."},
    {"merge", merge, METH_O, "merge(pairs) -> dict; see apimon.headers.merge_py."},
    {"environ_headers", environ_headers, METH_O, "environ_headers(environ) -> list; see apimon.environ."},
    {"redact_json", (PyCFunction)(void (*)(void))redact_json, METH_FASTCALL, "redact_json(value, fields) -> int; see apimon.redact."},
    {"json_plain", (PyCFunction)(void (*)(void))json_plain, METH_FASTCALL,
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
