/**
 * @file mlscam.h
 * @brief The C API of mlscam: the ML-SCAM emulator as a component of a host model.
 *
 * This header is the single source of truth of the C API: the cffi embedding
 * build (coupler/build_libmlscam.py) reads the declarations between the
 * "BEGIN/END DECLARATIONS" markers below, and libmlscam.so implements them.
 * The Fortran module (template coupler/mlscam_mod.f90.in) binds the same functions;
 * its constants are generated from the enums below by coupler/fortran_module.py.
 *
 * @section lifecycle Lifecycle
 *   mlscam_init -> mlscam_state_set (every variable) or mlscam_state_set_all
 *   -> mlscam_step -> mlscam_state_get / mlscam_tendency_get -> ... -> mlscam_finalize
 *
 * The first call that needs Python (mlscam_init) starts an embedded Python
 * interpreter: the one libmlscam was built with (its path is baked in; the
 * environment variable MLSCAM_PYTHON overrides it).  A Python program must not
 * call these functions through ctypes: it uses mlscam.coupler.Component.  The host owns MPI: it
 * calls MPI_Init before mlscam_init and MPI_Finalize after mlscam_finalize.
 * The emulator works on a duplicate of the host's communicator.
 *
 * @section instances Several instances
 * Several instances may run at once; they are independent (each its own
 * handle, checkpoint, communicator duplicate and state).  One handle variable
 * holds one instance: mlscam_init on a handle that already holds a live
 * instance is refused with MLSCAM_ERR_HANDLE and leaves that instance in the
 * handle (call mlscam_finalize on it first, or pass another handle variable).
 * A handle that is NULL or was finalized may be passed to mlscam_init again.
 * In C, initialise a handle variable to NULL before its first mlscam_init.
 *
 * @section status Status and errors
 * Every function returns an int status: 0 (MLSCAM_OK) on success, non-zero on
 * failure (one of enum mlscam_status).  After a failure, mlscam_last_error()
 * copies this rank's message into a caller buffer.  No function exits the
 * process and no Python exception crosses the boundary.  If the embedded
 * Python side did not run at all, the status is MLSCAM_ERR_PYTHON, never 0.
 *
 * @section collective Collective calls
 * mlscam_init and every function that takes a handle (except the local queries
 * mlscam_info_get, mlscam_variable_get and mlscam_tile_get) are collective over the
 * emulator's communicator: all ranks call it, and all ranks return the same
 * status (a failure on one rank, e.g. a NaN in its tile only, is reported on
 * every rank, with a message naming the failing rank).  Exceptions: a NULL or
 * finalized handle is detected locally, without communication.
 *
 * @section threads Threads
 * Call the API from one thread per rank (the thread that called mlscam_init);
 * it is not thread-safe.  The last-error message is per process.
 *
 * @section order Array order
 * Arrays are passed as contiguous Fortran-order (column-major) blocks with
 * explicit extents (nlon, nlat, nlev) of THIS RANK'S TILE: element
 * field(i, j, k) (1-based, i = longitude, j = latitude, k = level) is at
 * offset (i-1) + nlon*((j-1) + nlat*(k-1)).  In C, declare it as
 * double a[nlev][nlat][nlon] and use a[k][j][i] (0-based).  Longitude runs
 * from 0 eastwards, latitude from south to north, levels in the checkpoint's
 * order.  The emulator's own layout is [lat, lon, lev]; mlscam maps between
 * the two without copying the host array on input (a strided view).
 * 2-D (surface) variables are passed with nlev = 1.
 */
#ifndef MLSCAM_H
#define MLSCAM_H

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------- BEGIN DECLARATIONS (parsed by the cffi build) ---------------- */

/** Status codes returned by every function. */
enum mlscam_status {
    MLSCAM_OK = 0,                /**< success */
    MLSCAM_ERR_FAILED = 1,        /**< a failure not listed below (see mlscam_last_error) */
    MLSCAM_ERR_ARGUMENT = 2,      /**< a bad argument: extents, dtype, bounds, a NULL pointer, an unknown name */
    MLSCAM_ERR_VALUE = 3,         /**< NaN or Inf in an input array (or in a decoded state) */
    MLSCAM_ERR_NO_STATE = 4,      /**< step or get before every variable of the state was set */
    MLSCAM_ERR_FILE = 5,          /**< a missing or unreadable file (namelist, checkpoint: not found, no permission) */
    MLSCAM_ERR_CHECKPOINT = 6,    /**< the checkpoint file exists but is not a usable checkpoint (truncated or
                                       corrupt, another format) or does not fit (grid, levels) */
    MLSCAM_ERR_INTERVAL = 7,      /**< the coupling interval differs from the checkpoint's step */
    MLSCAM_ERR_DECOMPOSITION = 8, /**< tile bounds that do not cover the grid exactly once */
    MLSCAM_ERR_HANDLE = 9,        /**< a call before mlscam_init (NULL handle) or after mlscam_finalize; mlscam_init
                                       on a handle that holds a live instance */
    MLSCAM_ERR_CONFIG = 10,       /**< a bad namelist (unknown group or key, bad value) */
    MLSCAM_ERR_MPI = 11,          /**< MPI not initialized, already finalized, or a bad communicator */
    MLSCAM_ERR_ENVIRONMENT = 12,  /**< the embedded Python cannot import its packages (numpy, mpi4py, torch, mlscam) */
    MLSCAM_ERR_PYTHON = 13        /**< the embedded Python interpreter did not start, or the Python side did not run */
};

/** Element types of host arrays (the value is the size in bytes). */
enum mlscam_dtype {
    MLSCAM_FLOAT32 = 4,          /**< float  / real(c_float)  */
    MLSCAM_FLOAT64 = 8           /**< double / real(c_double) */
};

/** Opaque handle of one emulator instance (NULL before mlscam_init). */
typedef struct mlscam_instance *mlscam_t;

/**
 * @brief The version of libmlscam, e.g. "0.1.0".  Does not start Python.
 * @param buf     caller buffer, receives a NUL-terminated string (truncated to buflen-1 chars)
 * @param buflen  size of buf in bytes (> 0)
 * @return MLSCAM_OK, or MLSCAM_ERR_ARGUMENT if buf is NULL or buflen < 1
 */
int mlscam_version(char *buf, int buflen);

/**
 * @brief Copy the message of the last failure on this rank into buf.
 *
 * The message stays until the next failing call; it is "" if no call failed.
 * Does not start Python and never fails on a valid buffer.
 * @param buf     caller buffer, receives a NUL-terminated string (truncated to buflen-1 chars)
 * @param buflen  size of buf in bytes (> 0)
 * @return MLSCAM_OK, or MLSCAM_ERR_ARGUMENT if buf is NULL or buflen < 1
 */
int mlscam_last_error(char *buf, int buflen);

/**
 * @brief Start the emulator on this rank's tile.  Collective over fcomm.
 *
 * Reads the namelist (mlscam ignores the groups named in &mlscam host_groups,
 * so one file configures host and emulator), loads the checkpoint named by
 * &rollout checkpoint_path, duplicates the communicator, builds the halo plan.
 *
 * @param namelist_path  NUL-terminated path of the namelist file
 * @param fcomm          the host communicator as a Fortran integer handle
 *                       (MPI_Comm_c2f(comm) in C; comm in `use mpi`; comm%MPI_VAL in `use mpi_f08`)
 * @param nlon, nlat, nlev  the global grid: must equal the checkpoint's
 * @param lon_start, lon_end, lat_start, lat_end  this rank's tile, 1-based inclusive
 *                       global indices (longitude from 0 east, latitude south to north);
 *                       the tiles of all ranks must cover the grid exactly once.
 *                       All four 0 on every rank: the emulator's default decomposition
 *                       (query it with mlscam_tile_get).
 * @param coupling_interval_seconds  the host's coupling interval; must equal the
 *                       checkpoint's data step (0 = take the checkpoint's)
 * @param handle         in: NULL, a finalized handle, or (refused) a live one; out: the new handle.
 *                       On failure it is set to NULL, except a handle that holds a live instance:
 *                       that call fails with MLSCAM_ERR_HANDLE and leaves the handle unchanged
 *                       (see @ref instances).
 * @return MLSCAM_OK or an error status (the same on every rank)
 */
int mlscam_init(const char *namelist_path, int fcomm, int nlon, int nlat, int nlev,
                int lon_start, int lon_end, int lat_start, int lat_end,
                double coupling_interval_seconds, mlscam_t *handle);

/**
 * @brief Shape facts of the running emulator.  Local (no communication).
 * @param nlev          levels of each 3-D variable
 * @param n_state       length of a column's state vector (all levels of every 3-D
 *                      variable, variable-major, then each 2-D variable)
 * @param n_variables   number of variables (3-D first, then 2-D)
 * @param dt_seconds    the emulator's step (= the coupling interval)
 */
int mlscam_info_get(mlscam_t handle, int *nlev, int *n_state, int *n_variables, double *dt_seconds);

/**
 * @brief Name and level count of variable `index` (1-based, 1..n_variables).  Local.
 * @param nlev_of_variable  receives nlev for a 3-D variable, 1 for a 2-D variable
 */
int mlscam_variable_get(mlscam_t handle, int index, char *name, int namelen, int *nlev_of_variable);

/**
 * @brief This rank's tile, 1-based inclusive global indices.  Local.
 */
int mlscam_tile_get(mlscam_t handle, int *lon_start, int *lon_end, int *lat_start, int *lat_end);

/**
 * @brief Set one variable of this rank's tile from a host array.  Collective.
 *
 * When every variable has been set, the state is encoded (on the next call that
 * needs it) and replaces the latent state (a lossy re-encode; stepping before every
 * variable is set is an error, MLSCAM_ERR_NO_STATE).  Setting a variable again before
 * that replaces its values.  A refused call (bad extents, dtype, name, a NaN, on any
 * rank) changes nothing: the variables accepted before it stay set, so setting the
 * refused variable again (or every variable again, in any order) completes the state.
 * @param name   NUL-terminated variable name (as in the checkpoint's layout)
 * @param data   host array, Fortran order (nlon, nlat, nlev), dtype elements
 * @param dtype  MLSCAM_FLOAT32 or MLSCAM_FLOAT64
 * @param nlon, nlat  this rank's tile extents; nlev: the variable's levels (1 for a 2-D variable)
 * @return MLSCAM_ERR_ARGUMENT for wrong extents/dtype/name, MLSCAM_ERR_VALUE for NaN/Inf
 */
int mlscam_state_set(mlscam_t handle, const char *name, const void *data, int dtype,
                     int nlon, int nlat, int nlev);

/**
 * @brief Set the whole state of this rank's tile at once.  Collective.
 * @param data     host array, Fortran order (nlon, nlat, n_state), the third index in
 *                 the layout's state order (see mlscam_info_get / mlscam_variable_get)
 */
int mlscam_state_set_all(mlscam_t handle, const void *data, int dtype, int nlon, int nlat, int n_state);

/**
 * @brief Advance the latent state n steps (n >= 0) of dt_seconds each.  Collective.
 */
int mlscam_step(mlscam_t handle, int n);

/**
 * @brief Decode one variable of this rank's tile into a host array.  Collective.
 *
 * Never changes the latent state.  Same arguments as mlscam_state_set; data is written.
 */
int mlscam_state_get(mlscam_t handle, const char *name, void *data, int dtype,
                     int nlon, int nlat, int nlev);

/**
 * @brief Decode the whole state of this rank's tile, Fortran order (nlon, nlat, n_state).  Collective.
 */
int mlscam_state_get_all(mlscam_t handle, void *data, int dtype, int nlon, int nlat, int n_state);

/**
 * @brief Tendency of one variable over the step just taken, (decode(z[t]) - decode(z[t-1])) / dt
 * in SI units per second, where z[t] is the current latent state.  Collective.
 *
 * Never changes the latent state.  Needs at least one mlscam_step since the state was set
 * (else MLSCAM_ERR_NO_STATE).  Same arguments as mlscam_state_get.
 */
int mlscam_tendency_get(mlscam_t handle, const char *name, void *data, int dtype,
                        int nlon, int nlat, int nlev);

/**
 * @brief Tendencies of the whole state over the step just taken, Fortran order (nlon, nlat, n_state),
 * per second.  Collective.
 */
int mlscam_tendency_get_all(mlscam_t handle, void *data, int dtype, int nlon, int nlat, int n_state);

/**
 * @brief Release the emulator and free its duplicate communicator.  Collective.
 *
 * Call before the host's MPI_Finalize.  The handle stays invalid afterwards:
 * any further call with it returns MLSCAM_ERR_HANDLE.
 */
int mlscam_finalize(mlscam_t handle);

/* ----------------- END DECLARATIONS (parsed by the cffi build) ----------------- */

#ifdef __cplusplus
}
#endif

#endif /* MLSCAM_H */
