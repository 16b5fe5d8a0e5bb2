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

PyObject *
apimon_json_plain(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
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

