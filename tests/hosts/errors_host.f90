!> Error paths of the C API called from Fortran (tests/test_capi_errors.py), under mpirun -n 2.
!> Usage: errors_host GOOD.nml BAD.nml
!> Every check prints, on every rank: "CHECK <name> rank=<r> status=<s> msg=<last error>".
!> The host keeps running after each failure and ends with "errors_host: DONE".
program errors_host
  use mpi_f08
  use, intrinsic :: iso_c_binding, only: c_double, c_float
  use, intrinsic :: iso_fortran_env, only: output_unit
  use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
  use mlscam_mod
  implicit none
  integer, parameter :: nlon = 12, nlat = 6, nlev = 2
  type(mlscam_t) :: em, never, other
  character(len=512) :: good, bad
  integer :: rank, nranks, lat_start, lat_end, tnlat, status
  real(c_double), allocatable :: t(:, :, :), wrong(:, :, :), ps(:, :)

  call MPI_Init()
  call MPI_Comm_rank(MPI_COMM_WORLD, rank)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks)
  call get_command_argument(1, good)
  call get_command_argument(2, bad)
  tnlat = nlat / nranks
  lat_start = rank * tnlat + 1
  lat_end = lat_start + tnlat - 1

  call report('before_init', mlscam_step(never, 1))
  call report('missing_namelist', mlscam_init(em, 'does_not_exist.nml', MPI_COMM_WORLD%MPI_VAL, nlon, nlat, nlev, &
                                              1, nlon, lat_start, lat_end, 21600d0))
  call report('bad_namelist', mlscam_init(em, trim(bad), MPI_COMM_WORLD%MPI_VAL, nlon, nlat, nlev, &
                                          1, nlon, lat_start, lat_end, 21600d0))
  call report('interval', mlscam_init(em, trim(good), MPI_COMM_WORLD%MPI_VAL, nlon, nlat, nlev, &
                                      1, nlon, lat_start, lat_end, 3600d0))
  call report('bounds', mlscam_init(em, trim(good), MPI_COMM_WORLD%MPI_VAL, nlon, nlat, nlev, &
                                    1, nlon + 1, lat_start, lat_end, 21600d0))
  call report('init', mlscam_init(em, trim(good), MPI_COMM_WORLD%MPI_VAL, nlon, nlat, nlev, &
                                  1, nlon, lat_start, lat_end, 21600d0))
  ! one handle variable holds one instance: a second init on em is refused and em keeps its instance
  call report('init_again', mlscam_init(em, trim(good), MPI_COMM_WORLD%MPI_VAL, nlon, nlat, nlev, &
                                        1, nlon, lat_start, lat_end, 21600d0))
  call report('second_instance', mlscam_init(other, trim(good), MPI_COMM_WORLD%MPI_VAL, nlon, nlat, nlev, &
                                             1, nlon, lat_start, lat_end, 21600d0))
  call report('finalize_other', mlscam_finalize(other))

  allocate(t(nlon, tnlat, nlev), wrong(nlon + 1, tnlat, nlev), ps(nlon, tnlat))
  t = 250d0
  wrong = 250d0
  ps = 1d5
  call report('step_without_state', mlscam_step(em, 1))
  call report('extents', mlscam_state_set(em, 'temperature', wrong))
  call report('unknown_name', mlscam_state_set(em, 'temprature', t))
  call report('extents_2d', mlscam_state_set(em, 'surface_pressure', t))
  if (rank == 1) t(3, 1, 2) = ieee_value(1d0, ieee_quiet_nan)
  call report('nan_on_rank1', mlscam_state_set(em, 'temperature', t))
  t = 250d0
  ! the host keeps running: a complete state, a step and a read still work
  call report('set_u', mlscam_state_set(em, 'u', t - 250d0))
  call report('set_v', mlscam_state_set(em, 'v', t - 250d0))
  call report('set_t', mlscam_state_set(em, 'temperature', t))
  call report('set_ps', mlscam_state_set(em, 'surface_pressure', ps))
  call report('step_ok', mlscam_step(em, 2))
  call report('get_ok', mlscam_state_get(em, 'temperature', t))
  call report('negative_steps', mlscam_step(em, -1))
  call report('finalize', mlscam_finalize(em))
  call report('after_finalize', mlscam_step(em, 1))
  call report('init_after_finalize', mlscam_init(em, trim(good), MPI_COMM_WORLD%MPI_VAL, nlon, nlat, nlev, &
                                                 1, nlon, lat_start, lat_end, 21600d0))
  call report('finalize_again', mlscam_finalize(em))
  call MPI_Barrier(MPI_COMM_WORLD)
  write(output_unit, '(a,i0)') 'errors_host: DONE rank=', rank
  call MPI_Finalize()

contains

  subroutine report(name, st)
    character(len=*), intent(in) :: name
    integer, intent(in) :: st
    character(len=4096) :: message
    integer :: ignored
    message = ''
    if (st /= MLSCAM_OK) ignored = mlscam_last_error(message)
    write(output_unit, '(a,a,a,i0,a,i0,a,a)') 'CHECK ', name, ' rank=', rank, ' status=', st, ' msg=', trim(message)
    flush(output_unit)
  end subroutine

end program errors_host
