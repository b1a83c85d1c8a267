/*
 * A toy C host model that calls the mlscam emulator.
 *
 *  - owns MPI (MPI_Init / MPI_Finalize);
 *  - adopts the EMULATOR'S DEFAULT decomposition: it passes tile bounds 0,0,0,0 to
 *    mlscam_init and asks for its tile with mlscam_tile_get;
 *  - reads its own settings (&c_host) and the emulator's from ONE namelist file
 *    (mlscam skips &c_host because &mlscam host_groups declares it);
 *  - fills its initial state from a formula in float32 and sets it all at once
 *    (mlscam_state_set_all), runs nsteps steps, prints a diagnostic per step and a
 *    final success line;
 *  - optionally writes, per rank, its tile bounds, input and output state
 *    (output_prefix), the same file format as 01_fortran_host.
 *
 * Arrays are Fortran order (lon, lat, lev): in C, x[k][j][i] with i fastest.
 * Usage: mpirun -n 2 ./c_host host.nml
 */
#include <ctype.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlscam.h"

typedef struct {
    int nsteps, nlon, nlat, nlev;
    double coupling_interval_seconds;
    char output_prefix[512];
} settings_t;

static int rank = 0;

/* Read `key = value` lines of the group &c_host (one key per line; '!' comments). */
static int read_settings(const char *path, settings_t *s)
{
    char line[1024];
    int in_group = 0, found = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = line, *eq, *key, *val, *bang = strchr(line, '!');
        if (bang != NULL)
            *bang = '\0';
        while (isspace((unsigned char)*p))
            p++;
        if (!in_group) {
            if (strncmp(p, "&c_host", 7) == 0)
                in_group = found = 1;
            continue;
        }
        if (*p == '/')
            break;
        if ((eq = strchr(p, '=')) == NULL)
            continue;
        *eq = '\0';
        key = strtok(p, " \t");
        val = eq + 1;
        while (isspace((unsigned char)*val) || *val == '\'' || *val == '"')
            val++;
        val[strcspn(val, "'\"\r\n")] = '\0';
        if (key == NULL)
            continue;
        if (strcmp(key, "nsteps") == 0) s->nsteps = atoi(val);
        else if (strcmp(key, "nlon") == 0) s->nlon = atoi(val);
        else if (strcmp(key, "nlat") == 0) s->nlat = atoi(val);
        else if (strcmp(key, "nlev") == 0) s->nlev = atoi(val);
        else if (strcmp(key, "coupling_interval_seconds") == 0) s->coupling_interval_seconds = atof(val);
        else if (strcmp(key, "output_prefix") == 0) snprintf(s->output_prefix, sizeof s->output_prefix, "%s", val);
        else fprintf(stderr, "c_host: unknown key '%s' in &c_host ignored\n", key);
    }
    fclose(f);
    return found ? 0 : -1;
}

/* On a failure every rank has the same status: all stop cleanly here. */
static void check(int status, const char *what)
{
    char message[4096];
    if (status == MLSCAM_OK)
        return;
    mlscam_last_error(message, (int)sizeof message);
    fprintf(stderr, "c_host: rank %d: %s failed (status %d): %s\n", rank, what, status, message);
    MPI_Finalize();
    exit(1);
}

static double initial_value(const char *name, int i, int j, int k, int nlon, int nlat)
{
    const double pi = 3.14159265358979323846;
    double lat = (-90.0 + 180.0 * (j - 0.5) / nlat) * pi / 180.0, lon = 2.0 * pi * (i - 1) / nlon;
    if (strcmp(name, "temperature") == 0)
        return 220.0 + 60.0 * cos(lat) + 10.0 * k;
    if (strcmp(name, "surface_pressure") == 0)
        return 1e5 + 1e3 * sin(lon) * cos(lat);
    return 15.0 * cos(lat) * sin(lon + k) + k;
}

int main(int argc, char **argv)
{
    settings_t s = {4, 12, 6, 2, 21600.0, ""};
    const char *nml = argc > 1 ? argv[1] : "host.nml";
    char version[64], vname[128];
    int nranks, nlev, nstate, nvars, lon0, lon1, lat0, lat1, tnlon, tnlat, off = 0;
    double dt;
    mlscam_t em = NULL;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (read_settings(nml, &s) != 0) {
        fprintf(stderr, "c_host: cannot read &c_host from %s\n", nml);
        MPI_Finalize();
        return 2;
    }
    mlscam_version(version, (int)sizeof version);
    if (rank == 0)
        printf("c_host: libmlscam %s on %d ranks\n", version, nranks);

    /* The host communicator as a Fortran integer; bounds 0,0,0,0 = the emulator's layout. */
    check(mlscam_init(nml, (int)MPI_Comm_c2f(MPI_COMM_WORLD), s.nlon, s.nlat, s.nlev, 0, 0, 0, 0,
                      s.coupling_interval_seconds, &em), "mlscam_init");
    check(mlscam_tile_get(em, &lon0, &lon1, &lat0, &lat1), "mlscam_tile_get");
    check(mlscam_info_get(em, &nlev, &nstate, &nvars, &dt), "mlscam_info_get");
    printf("c_host: rank %d tile lon %d:%d lat %d:%d\n", rank, lon0, lon1, lat0, lat1);
    fflush(stdout);
    tnlon = lon1 - lon0 + 1;
    tnlat = lat1 - lat0 + 1;
    size_t plane = (size_t)tnlon * tnlat, n = plane * nstate;
    float *x0 = malloc(n * sizeof *x0);
    double *x = malloc(n * sizeof *x), *tend = malloc(plane * nlev * sizeof *tend);

    /* x0(i, j, c) at x0[(c * tnlat + j) * tnlon + i], channel c in the layout's state order */
    for (int v = 1; v <= nvars; v++) {
        int vlev;
        check(mlscam_variable_get(em, v, vname, (int)sizeof vname, &vlev), "mlscam_variable_get");
        for (int k = 0; k < vlev; k++)
            for (int j = 0; j < tnlat; j++)
                for (int i = 0; i < tnlon; i++)
                    x0[((size_t)(off + k) * tnlat + j) * tnlon + i] =
                        (float)initial_value(vname, lon0 + i, lat0 + j, k + 1, s.nlon, s.nlat);
        off += vlev;
    }
    check(mlscam_state_set_all(em, x0, MLSCAM_FLOAT32, tnlon, tnlat, nstate), "mlscam_state_set_all");

    for (int step = 1; step <= s.nsteps; step++) {
        double local[2] = {0.0, (double)plane}, total[2];
        check(mlscam_step(em, 1), "mlscam_step");
        check(mlscam_state_get_all(em, x, MLSCAM_FLOAT64, tnlon, tnlat, nstate), "mlscam_state_get_all");
        for (size_t p = 0; p < plane; p++)
            local[0] += x[p]; /* channel 1 */
        MPI_Allreduce(local, total, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (rank == 0)
            printf("c_host: step %d global mean of state channel 1 = %.8e\n", step, total[0] / total[1]);
    }
    check(mlscam_variable_get(em, 1, vname, (int)sizeof vname, &nlev), "mlscam_variable_get");
    check(mlscam_tendency_get(em, vname, tend, MLSCAM_FLOAT64, tnlon, tnlat, nlev), "mlscam_tendency_get");
    if (rank == 0)
        printf("c_host: tendency of %s at the first point = %.4e per second\n", vname, tend[0]);

    if (s.output_prefix[0] != '\0') {
        char path[600];
        int32_t head[5] = {lon0, lon1, lat0, lat1, nstate};
        double *x0d = malloc(n * sizeof *x0d);
        for (size_t p = 0; p < n; p++)
            x0d[p] = x0[p];
        snprintf(path, sizeof path, "%s_rank%d.bin", s.output_prefix, rank);
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(head, sizeof head, 1, f) != 1 || fwrite(x0d, sizeof *x0d, n, f) != n ||
            fwrite(x, sizeof *x, n, f) != n) {
            fprintf(stderr, "c_host: rank %d cannot write %s\n", rank, path);
        }
        if (f != NULL)
            fclose(f);
        free(x0d);
    }
    check(mlscam_finalize(em), "mlscam_finalize");
    free(x0);
    free(x);
    free(tend);
    if (rank == 0)
        printf("c_host: OK (%d steps on %d ranks)\n", s.nsteps, nranks);
    MPI_Finalize();
    return 0;
}
