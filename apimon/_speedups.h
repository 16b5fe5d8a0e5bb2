/* What the two C files of apimon._speedups share. */
#ifndef APIMON_SPEEDUPS_H
#define APIMON_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* json_plain(data, fields) -> bool (_json_plain.c). */
PyObject *apimon_json_plain(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

#endif
