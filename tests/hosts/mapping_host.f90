!> The Fortran-order mapping (tests/test_capi_errors.py), run with tests/hosts/echo_site on PYTHONPATH.
!> Sets field(i, j, k) = 1e6*v + 1e4*k + 100*jg + ig for every variable v (3-D in float64, the 2-D one
!> in float32), reads every variable back by name and all at once, and prints
!> "mapping_host: rank=<r> mismatches=<n>" (0 = every value came back unchanged at its place).
!> Tiles: longitude bands with the remainder to the last rank, so tile extents differ between ranks.
program mapping_host
  use mpi_f08
  use, intrinsic :: iso_c_binding, only: c_double, c_float
  use, intrinsic :: iso_fortran_env, only: output_unit
  use mlscam_mod
  implicit none
  integer, parameter :: nlon = 12, nlat = 6, nlev = 2
  character(len=16), parameter :: names(4) = [character(len=16) :: 'u', 'v', 'temperature', 'surface_pressure']
  type(mlscam_t) :: em
  character(len=512) :: nml
  integer :: rank, nranks, lon_start, lon_end, tnlon, i, j, k, v, bad, st
  real(c_double), allocatable :: f3(:, :, :), g3(:, :, :), xall(:, :, :)
  real(c_float), allocatable :: f2(:, :), g2(:, :)

  call MPI_Init()
  call MPI_Comm_rank(MPI_COMM_WORLD, rank)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks)
  call get_command_argument(1, nml)
  lon_start = rank * (nlon / nranks) + 1
  lon_end = lon_start + nlon / nranks - 1
  if (rank == nranks - 1) lon_end = nlon
  tnlon = lon_end - lon_start + 1
  st = mlscam_init(em, trim(nml), MPI_COMM_WORLD%MPI_VAL, nlon, nlat, nlev, lon_start, lon_end, 1, nlat, 21600d0)
  call must(st, 'init')
  allocate(f3(tnlon, nlat, nlev), g3(tnlon, nlat, nlev), f2(tnlon, nlat), g2(tnlon, nlat), xall(tnlon, nlat, 7))
  bad = 0
  do v = 1, 3
    do k = 1, nlev
      do j = 1, nlat
        do i = 1, tnlon
          f3(i, j, k) = 1d6 * v + 1d4 * k + 100d0 * j + (lon_start + i - 1)
        end do
      end do
    end do
    call must(mlscam_state_set(em, trim(names(v)), f3), 'set 3-D')
    xall(:, :, 2 * v - 1:2 * v) = f3
  end do
  do j = 1, nlat
    do i = 1, tnlon
      f2(i, j) = real(4d6 + 100d0 * j + (lon_start + i - 1), c_float)
    end do
  end do
  call must(mlscam_state_set(em, 'surface_pressure', f2), 'set 2-D')
  xall(:, :, 7) = f2
  do v = 1, 3
    g3 = -1d0
    call must(mlscam_state_get(em, trim(names(v)), g3), 'get 3-D')
    bad = bad + count(g3 /= xall(:, :, 2 * v - 1:2 * v))
  end do
  g2 = -1.0
  call must(mlscam_state_get(em, 'surface_pressure', g2), 'get 2-D')
  bad = bad + count(g2 /= f2)
  f3 = xall(:, :, 1:2)
  xall = -1d0
  call must(mlscam_state_get_all(em, xall), 'get all')
  bad = bad + count(xall(:, :, 1:2) /= f3) + count(xall(:, :, 7) /= f2)
  call must(mlscam_finalize(em), 'finalize')
  write(output_unit, '(a,i0,a,i0)') 'mapping_host: rank=', rank, ' mismatches=', bad
  call MPI_Finalize()

contains

  subroutine must(s, what)
    integer, intent(in) :: s
    character(len=*), intent(in) :: what
    character(len=4096) :: message
    integer :: ignored
    if (s == MLSCAM_OK) return
    ignored = mlscam_last_error(message)
    write(output_unit, '(a,a,a,i0,a,a)') 'mapping_host: FAILED ', what, ' status=', s, ' ', trim(message)
    call MPI_Finalize()
    stop 1
  end subroutine

end program mapping_host
