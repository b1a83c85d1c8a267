/*
 * The C side of libmlscam (compiled by coupler/build_libmlscam.py into the cffi
 * embedding module).  Every public function of mlscam.h is defined here:
 *
 *  - mlscam_version and mlscam_last_error are pure C (they work even when Python
 *    cannot start);
 *  - every other function checks its handle, starts the embedded interpreter
 *    itself (mlscam_python_start: Py_InitializeFromConfig with the program name
 *    baked in at build time, so a failure is a status, never an exit), then calls
 *    its Python side (an extern "Python" function defined in
 *    coupler/embedded_init.py, which forwards to mlscam/coupler/capi.py).
 *
 * The "Python really ran" guard: every Python side takes `int *ran` and sets it
 * to 1 first.  If cffi's start-up failed, cffi returns 0 from an extern "Python"
 * function WITHOUT running it; `ran` then stays 0 and the wrapper returns
 * MLSCAM_ERR_PYTHON instead of a false success.
 *
 * The build defines MLSCAM_BUILD_PYTHON (the python that built the library) and
 * MLSCAM_VERSION_STRING.
 */
#include <dlfcn.h> /* dladdr: Python.h (included first by cffi) defines _GNU_SOURCE */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlscam.h"

#define MLSCAM_EXPORT __attribute__((visibility("default")))

#ifndef MLSCAM_BUILD_PYTHON
#error "MLSCAM_BUILD_PYTHON must be defined by the build"
#endif
#ifndef MLSCAM_VERSION_STRING
#error "MLSCAM_VERSION_STRING must be defined by the build"
#endif

/* ------------------------------------------------------------------ errors */

static char mlscam_error_buffer[16384] = "";

/* Called from Python (lib._mlscam_error_set) and from C. */
void _mlscam_error_set(const char *message)
{
    if (message == NULL) {
        mlscam_error_buffer[0] = '\0';
        return;
    }
    snprintf(mlscam_error_buffer, sizeof mlscam_error_buffer, "%s", message);
}

static void mlscam_error_format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mlscam_error_buffer, sizeof mlscam_error_buffer, fmt, ap);
    va_end(ap);
}

static int mlscam_copy_out(const char *text, char *buf, int buflen)
{
    if (buf == NULL || buflen < 1)
        return MLSCAM_ERR_ARGUMENT;
    snprintf(buf, (size_t)buflen, "%s", text);
    return MLSCAM_OK;
}

MLSCAM_EXPORT int mlscam_version(char *buf, int buflen)
{
    return mlscam_copy_out(MLSCAM_VERSION_STRING, buf, buflen);
}

MLSCAM_EXPORT int mlscam_last_error(char *buf, int buflen)
{
    return mlscam_copy_out(mlscam_error_buffer, buf, buflen);
}

/* Called from Python: the path of this shared library (to find the package it belongs to). */
const char *_mlscam_library_path(void)
{
    static char path[4096] = "";
    Dl_info info;
    if (path[0] == '\0' && dladdr((void *)&mlscam_version, &info) && info.dli_fname != NULL)
        snprintf(path, sizeof path, "%s", info.dli_fname);
    return path;
}

/* ------------------------------------------------------ interpreter start */

static const char *mlscam_python_program(void)
{
    const char *exe = getenv("MLSCAM_PYTHON");
    return (exe != NULL && exe[0] != '\0') ? exe : MLSCAM_BUILD_PYTHON;
}

/* Start the embedded interpreter unless it runs already (a Python host, or an
 * earlier call).  Returns MLSCAM_OK or MLSCAM_ERR_PYTHON with the message set. */
static int mlscam_python_start(const char *func)
{
    PyStatus status;
    PyConfig config;
    const char *exe;

    if (Py_IsInitialized())
        return MLSCAM_OK;
    exe = mlscam_python_program();
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0; /* leave SIGINT & co. to the host */
    config.parse_argv = 0;
    status = PyConfig_SetBytesString(&config, &config.program_name, exe);
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        mlscam_error_format(
            "%s: the embedded Python interpreter failed to start: %s%s%s (program name '%s', "
            "PYTHONHOME='%s', PYTHONPATH='%s'). Fix: make '%s' the python of the environment where "
            "mlscam is installed (set MLSCAM_PYTHON=/path/to/that/bin/python), and unset or correct "
            "PYTHONHOME/PYTHONPATH.",
            func, status.func ? status.func : "", status.func ? ": " : "",
            status.err_msg ? status.err_msg : "unknown error", exe,
            getenv("PYTHONHOME") ? getenv("PYTHONHOME") : "", getenv("PYTHONPATH") ? getenv("PYTHONPATH") : "",
            exe);
        return MLSCAM_ERR_PYTHON;
    }
    PyEval_SaveThread(); /* release the GIL: cffi takes it per call */
    return MLSCAM_OK;
}

/* The status of a Python side, or MLSCAM_ERR_PYTHON when it did not run. */
static int mlscam_checked(const char *func, int ran, int status)
{
    if (!ran) {
        mlscam_error_format(
            "%s: the Python side of libmlscam did not run: the cffi start-up code failed inside the "
            "embedded interpreter (program name '%s'); its traceback was printed on stderr. Fix: check "
            "that '%s -c \"import _cffi_backend, mlscam\"' works, set MLSCAM_PYTHON to the python of the "
            "environment where mlscam is installed, and unset or correct PYTHONHOME/PYTHONPATH.",
            func, mlscam_python_program(), mlscam_python_program());
        return MLSCAM_ERR_PYTHON;
    }
    return status;
}

static int mlscam_null_handle(const char *func)
{
    mlscam_error_format("%s: the handle is NULL: call mlscam_init first and check that it returned 0", func);
    return MLSCAM_ERR_HANDLE;
}

#define MLSCAM_PY_CALL(func, call)                            \
    do {                                                      \
        int ran_ = 0, status_;                                \
        if ((status_ = mlscam_python_start(func)) != 0)       \
            return status_;                                   \
        status_ = call;                                       \
        return mlscam_checked(func, ran_, status_);           \
    } while (0)

#define MLSCAM_ID(h) ((intptr_t)(h))

/* --------------------------------------------------------- the entry points */

MLSCAM_EXPORT int mlscam_init(const char *namelist_path, int fcomm, int nlon, int nlat, int nlev,
                              int lon_start, int lon_end, int lat_start, int lat_end,
                              double coupling_interval_seconds, mlscam_t *handle)
{
    intptr_t id;
    int ran = 0, status;
    if (handle == NULL) {
        mlscam_error_format("mlscam_init: the handle argument is NULL: pass the address of an mlscam_t");
        return MLSCAM_ERR_ARGUMENT;
    }
    /* The Python side reads the handle's current value: a live instance there is refused
     * (MLSCAM_ERR_HANDLE, collectively) and written back unchanged; otherwise it writes the new id or 0. */
    id = (intptr_t)*handle;
    if (namelist_path == NULL) { /* *handle untouched: it may hold a live instance */
        mlscam_error_format("mlscam_init: namelist_path is NULL: pass a NUL-terminated path");
        return MLSCAM_ERR_ARGUMENT;
    }
    if ((status = mlscam_python_start("mlscam_init")) != 0) {
        *handle = NULL; /* no interpreter: no instance can be live */
        return status;
    }
    status = _mlscam_py_init(&ran, namelist_path, fcomm, nlon, nlat, nlev, lon_start, lon_end, lat_start,
                             lat_end, coupling_interval_seconds, &id);
    status = mlscam_checked("mlscam_init", ran, status);
    if (!ran)
        id = 0;
    *handle = (mlscam_t)(status == MLSCAM_OK || id > 0 ? id : 0);
    if (status == MLSCAM_OK) {
        if (id <= 0) {
            mlscam_error_format("mlscam_init: internal error: the Python side returned handle id %ld",
                                (long)id);
            *handle = NULL;
            return MLSCAM_ERR_FAILED;
        }
    }
    return status;
}

MLSCAM_EXPORT int mlscam_info_get(mlscam_t h, int *nlev, int *n_state, int *n_variables, double *dt_seconds)
{
    if (h == NULL)
        return mlscam_null_handle("mlscam_info_get");
    MLSCAM_PY_CALL("mlscam_info_get", _mlscam_py_info(&ran_, MLSCAM_ID(h), nlev, n_state, n_variables, dt_seconds));
}

MLSCAM_EXPORT int mlscam_variable_get(mlscam_t h, int index, char *name, int namelen, int *nlev_of_variable)
{
    if (h == NULL)
        return mlscam_null_handle("mlscam_variable_get");
    MLSCAM_PY_CALL("mlscam_variable_get",
                   _mlscam_py_variable(&ran_, MLSCAM_ID(h), index, name, namelen, nlev_of_variable));
}

MLSCAM_EXPORT int mlscam_tile_get(mlscam_t h, int *lon_start, int *lon_end, int *lat_start, int *lat_end)
{
    if (h == NULL)
        return mlscam_null_handle("mlscam_tile_get");
    MLSCAM_PY_CALL("mlscam_tile_get", _mlscam_py_tile(&ran_, MLSCAM_ID(h), lon_start, lon_end, lat_start, lat_end));
}

/* op codes of _mlscam_py_array (mirrored in mlscam/coupler/capi.py) */
#define MLSCAM_OP_STATE_SET 1
#define MLSCAM_OP_STATE_SET_ALL 2
#define MLSCAM_OP_STATE_GET 3
#define MLSCAM_OP_STATE_GET_ALL 4
#define MLSCAM_OP_TENDENCY_GET 5
#define MLSCAM_OP_TENDENCY_GET_ALL 6

MLSCAM_EXPORT int mlscam_state_set(mlscam_t h, const char *name, const void *data, int dtype, int nlon, int nlat,
                                   int nlev)
{
    if (h == NULL)
        return mlscam_null_handle("mlscam_state_set");
    MLSCAM_PY_CALL("mlscam_state_set", _mlscam_py_array(&ran_, MLSCAM_ID(h), MLSCAM_OP_STATE_SET, name,
                                                        (void *)data, dtype, nlon, nlat, nlev));
}

MLSCAM_EXPORT int mlscam_state_set_all(mlscam_t h, const void *data, int dtype, int nlon, int nlat, int n_state)
{
    if (h == NULL)
        return mlscam_null_handle("mlscam_state_set_all");
    MLSCAM_PY_CALL("mlscam_state_set_all", _mlscam_py_array(&ran_, MLSCAM_ID(h), MLSCAM_OP_STATE_SET_ALL, NULL,
                                                            (void *)data, dtype, nlon, nlat, n_state));
}

MLSCAM_EXPORT int mlscam_step(mlscam_t h, int n)
{
    if (h == NULL)
        return mlscam_null_handle("mlscam_step");
    MLSCAM_PY_CALL("mlscam_step", _mlscam_py_step(&ran_, MLSCAM_ID(h), n));
}

MLSCAM_EXPORT int mlscam_state_get(mlscam_t h, const char *name, void *data, int dtype, int nlon, int nlat, int nlev)
{
    if (h == NULL)
        return mlscam_null_handle("mlscam_state_get");
    MLSCAM_PY_CALL("mlscam_state_get", _mlscam_py_array(&ran_, MLSCAM_ID(h), MLSCAM_OP_STATE_GET, name, data, dtype,
                                                        nlon, nlat, nlev));
}

MLSCAM_EXPORT int mlscam_state_get_all(mlscam_t h, void *data, int dtype, int nlon, int nlat, int n_state)
{
    if (h == NULL)
        return mlscam_null_handle("mlscam_state_get_all");
    MLSCAM_PY_CALL("mlscam_state_get_all", _mlscam_py_array(&ran_, MLSCAM_ID(h), MLSCAM_OP_STATE_GET_ALL, NULL,
                                                            data, dtype, nlon, nlat, n_state));
}

MLSCAM_EXPORT int mlscam_tendency_get(mlscam_t h, const char *name, void *data, int dtype, int nlon, int nlat,
                                      int nlev)
{
    if (h == NULL)
        return mlscam_null_handle("mlscam_tendency_get");
    MLSCAM_PY_CALL("mlscam_tendency_get", _mlscam_py_array(&ran_, MLSCAM_ID(h), MLSCAM_OP_TENDENCY_GET, name, data,
                                                           dtype, nlon, nlat, nlev));
}

MLSCAM_EXPORT int mlscam_tendency_get_all(mlscam_t h, void *data, int dtype, int nlon, int nlat, int n_state)
{
    if (h == NULL)
        return mlscam_null_handle("mlscam_tendency_get_all");
    MLSCAM_PY_CALL("mlscam_tendency_get_all", _mlscam_py_array(&ran_, MLSCAM_ID(h), MLSCAM_OP_TENDENCY_GET_ALL,
                                                               NULL, data, dtype, nlon, nlat, n_state));
}

MLSCAM_EXPORT int mlscam_finalize(mlscam_t h)
{
    if (h == NULL)
        return mlscam_null_handle("mlscam_finalize");
    MLSCAM_PY_CALL("mlscam_finalize", _mlscam_py_finalize(&ran_, MLSCAM_ID(h)));
}
