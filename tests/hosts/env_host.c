/* Calls mlscam_init once and reports the status and message (tests/test_capi_errors.py).
 * Usage: env_host NAMELIST.  Prints "env_host: init status=S" and "env_host: message=...",
 * then shows the host keeps running ("env_host: still running") and finalizes MPI. */
#include <mpi.h>
#include <stdio.h>

#ifdef WITH_NETCDF
#include <netcdf.h>
#endif

#include "mlscam.h"

int main(int argc, char **argv)
{
    char message[16384], version[32];
    mlscam_t em = NULL;
    int status;
#ifndef NO_MPI_INIT /* -DNO_MPI_INIT: a host that forgot MPI_Init */
    MPI_Init(&argc, &argv);
#endif
#ifdef WITH_NETCDF
    printf("env_host: the host links libnetcdf %.5s\n", nc_inq_libvers()); /* like a netcdf-fortran host */
#endif
    mlscam_version(version, (int)sizeof version);
#ifdef NO_MPI_INIT
    int fcomm = 0; /* MPI_Comm_c2f itself must not be called before MPI_Init */
#else
    int fcomm = (int)MPI_Comm_c2f(MPI_COMM_WORLD);
#endif
    status = mlscam_init(argc > 1 ? argv[1] : "host.nml", fcomm, 12, 6, 2, 0, 0, 0, 0, 0.0, &em);
    mlscam_last_error(message, (int)sizeof message);
    printf("env_host: version=%s\nenv_host: init status=%d handle_null=%d\nenv_host: message=%s\n", version, status,
           em == NULL, message);
    if (status == MLSCAM_OK)
        mlscam_finalize(em);
    status = mlscam_step(NULL, 1);
    printf("env_host: still running (step on a NULL handle: status=%d)\n", status);
    fflush(stdout);
#ifndef NO_MPI_INIT
    MPI_Finalize();
#endif
    return 0;
}
