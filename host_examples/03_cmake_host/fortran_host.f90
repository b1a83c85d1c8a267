!> A toy Fortran host model that calls the mlscam emulator (use mpi_f08).
!>
!> * owns MPI (MPI_Init / MPI_Finalize) and its own decomposition: LATITUDE bands,
!>   the remainder rows going to the LAST ranks (the emulator's default would be
!>   a Cartesian layout with remainders first: longitude bands on this grid);
!> * reads its own settings (&fortran_host) and the emulator's from ONE namelist
!>   file: mlscam skips &fortran_host because &mlscam host_groups declares it;
!> * fills its initial state from a formula, sets it variable by variable,
!>   runs nsteps steps, prints a diagnostic per step and a final success line;
!> * optionally writes, per rank, its tile bounds, input and output state
!>   (output_prefix) so a test can compare with the Python component.
!>
!> Usage: mpirun -n 2 ./fortran_host host.nml
program fortran_host_main
  use mpi_f08
  use, intrinsic :: iso_c_binding, only: c_double
  use, intrinsic :: iso_fortran_env, only: output_unit, error_unit
  use mlscam_mod
  implicit none

  integer :: nsteps = 4, nlon = 12, nlat = 6, nlev = 2
  real(c_double) :: coupling_interval_seconds = 21600d0
  character(len=512) :: output_prefix = ''
  namelist /fortran_host/ nsteps, nlon, nlat, nlev, coupling_interval_seconds, output_prefix

  type(mlscam_t) :: em
  character(len=512) :: nml_path
  character(len=4096) :: message
  character(len=64) :: vname, version
  integer :: rank, nranks, unit, ios, status, step, v, nvars, vlev, nstate, lev_em
  integer :: lat_start, lat_end, lon_start, lon_end, tnlon, tnlat, i, j, k, off
  real(c_double) :: dt, local(2), total(2), pi
  real(c_double), allocatable :: field(:, :, :), x0(:, :, :), x(:, :, :), tend(:, :, :)

  call MPI_Init()
  call MPI_Comm_rank(MPI_COMM_WORLD, rank)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks)
  pi = 4d0 * atan(1d0)

  nml_path = 'host.nml'
  if (command_argument_count() >= 1) call get_command_argument(1, nml_path)
  open(newunit=unit, file=trim(nml_path), status='old', action='read', iostat=ios)
  if (ios == 0) read(unit, nml=fortran_host, iostat=ios)
  if (ios /= 0) then
    write(error_unit, '(a)') 'fortran_host: cannot read &fortran_host from ' // trim(nml_path)
    call MPI_Finalize()
    error stop 2
  end if
  close(unit)

  ! The host's decomposition: latitude bands, the remainder rows to the last ranks.
  lat_start = rank * (nlat / nranks) + max(0, rank - (nranks - mod(nlat, nranks))) + 1
  lat_end = lat_start + nlat / nranks - 1
  if (rank >= nranks - mod(nlat, nranks)) lat_end = lat_end + 1
  lon_start = 1
  lon_end = nlon
  tnlon = lon_end - lon_start + 1
  tnlat = lat_end - lat_start + 1

  status = mlscam_version(version)
  if (rank == 0) write(output_unit, '(a,a,a,i0,a)') 'fortran_host: libmlscam ', trim(version), ' on ', nranks, ' ranks'
  write(output_unit, '(a,i0,a,i0,a,i0,a,i0,a,i0)') 'fortran_host: rank ', rank, ' tile lon ', lon_start, ':', &
    lon_end, ' lat ', lat_start, ':', lat_end
  flush(output_unit)

  ! use mpi_f08: pass comm%MPI_VAL (use mpi: pass the integer communicator itself)
  status = mlscam_init(em, trim(nml_path), MPI_COMM_WORLD%MPI_VAL, nlon, nlat, nlev, &
                       lon_start, lon_end, lat_start, lat_end, coupling_interval_seconds)
  call check(status, 'mlscam_init')
  call check(mlscam_info_get(em, lev_em, nstate, nvars, dt), 'mlscam_info_get')

  ! Initial state, variable by variable, from a formula of the global indices.
  allocate(x0(tnlon, tnlat, nstate), x(tnlon, tnlat, nstate), tend(tnlon, tnlat, nstate))
  off = 0
  do v = 1, nvars
    call check(mlscam_variable_get(em, v, vname, vlev), 'mlscam_variable_get')
    allocate(field(tnlon, tnlat, vlev))
    do k = 1, vlev
      do j = 1, tnlat
        do i = 1, tnlon
          field(i, j, k) = initial_value(vname, lon_start + i - 1, lat_start + j - 1, k)
        end do
      end do
    end do
    if (vlev == 1) then  ! a 2-D (surface) variable: field(lon, lat)
      call check(mlscam_state_set(em, trim(vname), field(:, :, 1)), 'mlscam_state_set (2-D)')
    else
      call check(mlscam_state_set(em, trim(vname), field), 'mlscam_state_set')
    end if
    x0(:, :, off + 1:off + vlev) = field
    off = off + vlev
    deallocate(field)
  end do

  do step = 1, nsteps
    call check(mlscam_step(em, 1), 'mlscam_step')
    call check(mlscam_state_get_all(em, x), 'mlscam_state_get_all')
    local = [sum(x(:, :, 1)), real(size(x(:, :, 1)), c_double)]
    call MPI_Allreduce(local, total, 2, MPI_DOUBLE_PRECISION, MPI_SUM, MPI_COMM_WORLD)
    if (rank == 0) write(output_unit, '(a,i0,a,es16.8)') 'fortran_host: step ', step, &
      ' global mean of state channel 1 = ', total(1) / total(2)
  end do
  call check(mlscam_tendency_get_all(em, tend), 'mlscam_tendency_get_all')
  local = [maxval(abs(tend)), 0d0]
  call MPI_Allreduce(local, total, 2, MPI_DOUBLE_PRECISION, MPI_MAX, MPI_COMM_WORLD)
  if (rank == 0) write(output_unit, '(a,es12.4,a)') 'fortran_host: max |tendency| = ', total(1), ' per second'

  if (len_trim(output_prefix) > 0) call write_tile()
  call check(mlscam_finalize(em), 'mlscam_finalize')
  if (rank == 0) write(output_unit, '(a,i0,a,i0,a)') 'fortran_host: OK (', nsteps, ' steps on ', nranks, ' ranks)'
  call MPI_Finalize()

contains

  !> A smooth initial value of variable name at global (lon index i, lat index j, level k).
  real(c_double) function initial_value(name, i, j, k)
    character(len=*), intent(in) :: name
    integer, intent(in) :: i, j, k
    real(c_double) :: lat, lon
    lat = (-90d0 + 180d0 * (j - 0.5d0) / nlat) * pi / 180d0
    lon = 2d0 * pi * (i - 1) / nlon
    select case (trim(name))
    case ('temperature')
      initial_value = 220d0 + 60d0 * cos(lat) + 10d0 * k
    case ('surface_pressure')
      initial_value = 1d5 + 1d3 * sin(lon) * cos(lat)
    case default
      initial_value = 15d0 * cos(lat) * sin(lon + k) + k
    end select
  end function

  !> Stop cleanly on a failure (every rank has the same status, so all stop here).
  subroutine check(st, what)
    integer, intent(in) :: st
    character(len=*), intent(in) :: what
    integer :: ignored
    if (st == MLSCAM_OK) return
    ignored = mlscam_last_error(message)
    write(error_unit, '(a,i0,a,a,a,i0,a,a)') 'fortran_host: rank ', rank, ': ', what, ' failed (status ', st, &
      '): ', trim(message)
    call MPI_Finalize()
    error stop 1
  end subroutine

  !> Stream file per rank: 5 int32 (lon_start, lon_end, lat_start, lat_end, n_state), then x0 and x (float64).
  subroutine write_tile()
    character(len=600) :: path
    integer :: u
    write(path, '(a,a,i0,a)') trim(output_prefix), '_rank', rank, '.bin'
    open(newunit=u, file=trim(path), access='stream', form='unformatted', status='replace', action='write')
    write(u) lon_start, lon_end, lat_start, lat_end, nstate
    write(u) x0, x
    close(u)
  end subroutine

end program fortran_host_main
