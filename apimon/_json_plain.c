/* apimon._speedups, part two: json_plain, one pass over a JSON body (see apimon/bodies.py).
 * The reference is the Python path of apimon.bodies.classify: parse, redact, keep the app's bytes
 * when nothing was redacted. */
#include <stdint.h>
#include <string.h>

#include "_speedups.h"

/* Is a JSON body safe to ship as the app's own bytes? True only when ``data`` is JSON that
 * orjson.loads accepts and no object key, lower-cased, is one of the redacted field names: then the event carries the body verbatim (orjson.Fragment) instead
 * of parsing it and encoding it again. The check is stricter than orjson wherever that is simpler
 * (escapes or non-ASCII in keys, \u escapes of surrogates, exponents of three digits, numbers of
 * over 200 digits, nesting over 128): False sends such a body down the Python path, which parses
 * it and decides the same way, so either path gives the same event. */

#define PLAIN_MAX_DEPTH 128
#define PLAIN_MAX_DIGITS 200

/* The redacted names of one configuration, compiled once (field_table(frozenset)) and passed to
 * every json_plain call: nothing is shared between calls, so a call from a finalizer, another
 * thread or another configuration cannot change the names a scan compares with. */
typedef struct {
    PyObject_HEAD
    char **names; /* the ASCII names (only ASCII can equal an ASCII key lower-cased) */
    Py_ssize_t *lens;
    Py_ssize_t count;
} FieldTable;

static void
free_names(char **names, Py_ssize_t *lens, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++)
        PyMem_Free(names[i]);
    PyMem_Free(names);
    PyMem_Free(lens);
}

static void
field_table_dealloc(PyObject *self)
{
    FieldTable *table = (FieldTable *)self;
    PyTypeObject *type = Py_TYPE(self);
    free_names(table->names, table->lens, table->count);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyType_Slot field_table_slots[] = {
    {Py_tp_dealloc, field_table_dealloc},
    {Py_tp_doc, "The redacted field names compiled for json_plain; made by field_table(frozenset)."},
    {0, NULL},
};

static PyType_Spec field_table_spec = {
    .name = "apimon._speedups.FieldTable",
    .basicsize = sizeof(FieldTable),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = field_table_slots,
};

PyTypeObject *
apimon_field_table_type(PyObject *module)
{
    return (PyTypeObject *)PyType_FromModuleAndSpec(module, &field_table_spec, NULL);
}

PyObject *
apimon_field_table(PyObject *module, PyObject *fields)
{
    if (!PyFrozenSet_CheckExact(fields)) {
        PyErr_SetString(PyExc_TypeError, "field_table(fields): fields must be a frozenset");
        return NULL;
    }
    /* The names are copied into locals first; nothing here runs Python code (a frozenset's
     * entries are read in place), and the table is published only once complete. */
    Py_ssize_t size = PySet_GET_SIZE(fields), count = 0;
    char **names = PyMem_Calloc((size_t)size + 1, sizeof(char *));
    Py_ssize_t *lens = PyMem_Calloc((size_t)size + 1, sizeof(Py_ssize_t));
    if (names == NULL || lens == NULL)
        goto nomemory;
    Py_ssize_t pos = 0;
    PyObject *item;
    Py_hash_t hash;
    while (_PySet_NextEntry(fields, &pos, &item, &hash) && count < size) {
        if (!PyUnicode_Check(item) || !PyUnicode_IS_ASCII(item))
            continue;
        Py_ssize_t len = PyUnicode_GET_LENGTH(item);
        char *copy = PyMem_Malloc((size_t)len + 1);
        if (copy == NULL)
            goto nomemory;
        memcpy(copy, PyUnicode_1BYTE_DATA(item), (size_t)len + 1);
        names[count] = copy;
        lens[count] = len;
        count++;
    }
    PyTypeObject *type = speedups_state(module)->field_table_type;
    FieldTable *table = PyObject_New(FieldTable, type);
    if (table == NULL) {
        free_names(names, lens, count);
        return NULL;
    }
    table->names = names;
    table->lens = lens;
    table->count = count;
    return (PyObject *)table;
nomemory:
    free_names(names, lens, count);
    return PyErr_NoMemory();
}

typedef struct {
    const unsigned char *p, *end;
    int depth;
    const FieldTable *fields;
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
            const FieldTable *fields = s->fields;
            for (Py_ssize_t i = 0; i < fields->count; i++) {
                if (fields->lens[i] != len)
                    continue;
                const char *name = fields->names[i];
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

PyObject *
apimon_json_plain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_CheckExact(args[0]) ||
        !Py_IS_TYPE(args[1], speedups_state(module)->field_table_type)) {
        PyErr_SetString(PyExc_TypeError, "json_plain(data: bytes, table: FieldTable)");
        return NULL;
    }
    /* The bytes and the table are the caller's arguments, held for the call; the scan runs no
     * Python code. */
    Scan s = {(const unsigned char *)PyBytes_AS_STRING(args[0]),
              (const unsigned char *)PyBytes_AS_STRING(args[0]) + PyBytes_GET_SIZE(args[0]), 0,
              (const FieldTable *)args[1]};
    skip_ws(&s);
    int plain = scan_value(&s);
    skip_ws(&s);
    return PyBool_FromLong(plain && s.p == s.end);
}

