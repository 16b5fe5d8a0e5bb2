/* What the two C files of apimon._speedups share. */
#ifndef APIMON_SPEEDUPS_H
#define APIMON_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Everything a module object holds: one per interpreter that imports apimon (PEP 489 / 573), so a
 * sub-interpreter's configuration never reaches the main interpreter's calls. */
typedef struct {
    PyObject *known_names;      /* dict: header name as given -> canonical str (headers._KNOWN) */
    PyObject *canonical_func;   /* headers.canonical(name) */
    PyObject *merge_fallback;   /* headers.merge_py(pairs) */
    PyObject *environ_fallback; /* environ.environ_headers_py(environ) */
    PyObject *redact_fallback;  /* redact.redact_json_py(value, fields) */
    PyObject *redacted;         /* "[REDACTED]" */
    PyObject *comma;            /* "," */
    PyObject *lower_name;       /* "lower" */
    PyTypeObject *field_table_type;
} SpeedupsState;

static inline SpeedupsState *
speedups_state(PyObject *module)
{
    return (SpeedupsState *)PyModule_GetState(module);
}

/* _json_plain.c: the FieldTable type, made per module, and json_plain(data, table) -> bool. */
PyTypeObject *apimon_field_table_type(PyObject *module);
PyObject *apimon_field_table(PyObject *module, PyObject *fields);
PyObject *apimon_json_plain(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif
