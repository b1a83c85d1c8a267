!> Fortran 2008 binding of the mlscam C API (coupler/mlscam.h).
!>
!> * type(mlscam_t) wraps the opaque C handle (a c_ptr; c_null_ptr before init).
!> * Every procedure is a function returning an integer(c_int) status: 0 (MLSCAM_OK)
!>   on success; on failure call mlscam_last_error(message). Nothing stops the program.
!> * bind(c) interfaces carry a _c suffix; strings go to C as trim(s)//c_null_char.
!> * Arrays are this rank's tile in Fortran order field(lon, lat, lev) (2-D variables:
!>   field(lon, lat)); real(c_float) and real(c_double) arrays both work (generic names).
!> * The communicator is an integer, so this module needs no MPI module:
!>     use mpi     : status = mlscam_init(h, 'host.nml', MPI_COMM_WORLD, ...)
!>     use mpi_f08 : status = mlscam_init(h, 'host.nml', comm%MPI_VAL, ...)
!> * Every call is collective over the communicator given to mlscam_init and returns
!>   the same status on every rank. The host calls MPI_Init before mlscam_init and
!>   MPI_Finalize after mlscam_finalize.
module mlscam_mod
  use, intrinsic :: iso_c_binding, only: c_ptr, c_null_ptr, c_int, c_double, c_float, c_char, &
                                         c_null_char, c_loc, c_associated
  implicit none
  private

  ! Status codes (enum mlscam_status of mlscam.h)
  integer(c_int), parameter, public :: MLSCAM_OK = 0, MLSCAM_ERR_FAILED = 1, MLSCAM_ERR_ARGUMENT = 2, &
    MLSCAM_ERR_VALUE = 3, MLSCAM_ERR_NO_STATE = 4, MLSCAM_ERR_FILE = 5, MLSCAM_ERR_CHECKPOINT = 6, &
    MLSCAM_ERR_INTERVAL = 7, MLSCAM_ERR_DECOMPOSITION = 8, MLSCAM_ERR_HANDLE = 9, MLSCAM_ERR_CONFIG = 10, &
    MLSCAM_ERR_MPI = 11, MLSCAM_ERR_ENVIRONMENT = 12, MLSCAM_ERR_PYTHON = 13
  ! Element types (enum mlscam_dtype)
  integer(c_int), parameter, public :: MLSCAM_FLOAT32 = 4, MLSCAM_FLOAT64 = 8

  !> One emulator instance.
  type, public :: mlscam_t
    type(c_ptr) :: handle = c_null_ptr
  end type mlscam_t

  public :: mlscam_version, mlscam_last_error, mlscam_init, mlscam_info_get, mlscam_variable_get, &
            mlscam_tile_get, mlscam_state_set, mlscam_state_set_all, mlscam_step, mlscam_state_get, &
            mlscam_state_get_all, mlscam_tendency_get, mlscam_tendency_get_all, mlscam_finalize, &
            mlscam_is_initialized

  interface
    function mlscam_version_c(buf, buflen) bind(c, name="mlscam_version") result(status)
      import :: c_char, c_int
      character(kind=c_char), dimension(*), intent(out) :: buf
      integer(c_int), value :: buflen
      integer(c_int) :: status
    end function
    function mlscam_last_error_c(buf, buflen) bind(c, name="mlscam_last_error") result(status)
      import :: c_char, c_int
      character(kind=c_char), dimension(*), intent(out) :: buf
      integer(c_int), value :: buflen
      integer(c_int) :: status
    end function
    function mlscam_init_c(path, fcomm, nlon, nlat, nlev, lon_start, lon_end, lat_start, lat_end, &
                           interval, handle) bind(c, name="mlscam_init") result(status)
      import :: c_char, c_int, c_double, c_ptr
      character(kind=c_char), dimension(*), intent(in) :: path
      integer(c_int), value :: fcomm, nlon, nlat, nlev, lon_start, lon_end, lat_start, lat_end
      real(c_double), value :: interval
      type(c_ptr), intent(out) :: handle
      integer(c_int) :: status
    end function
    function mlscam_info_get_c(handle, nlev, n_state, n_variables, dt) bind(c, name="mlscam_info_get") &
        result(status)
      import :: c_ptr, c_int, c_double
      type(c_ptr), value :: handle
      integer(c_int), intent(out) :: nlev, n_state, n_variables
      real(c_double), intent(out) :: dt
      integer(c_int) :: status
    end function
    function mlscam_variable_get_c(handle, idx, name, namelen, nlev) bind(c, name="mlscam_variable_get") &
        result(status)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: handle
      integer(c_int), value :: idx, namelen
      character(kind=c_char), dimension(*), intent(out) :: name
      integer(c_int), intent(out) :: nlev
      integer(c_int) :: status
    end function
    function mlscam_tile_get_c(handle, lon_start, lon_end, lat_start, lat_end) bind(c, name="mlscam_tile_get") &
        result(status)
      import :: c_ptr, c_int
      type(c_ptr), value :: handle
      integer(c_int), intent(out) :: lon_start, lon_end, lat_start, lat_end
      integer(c_int) :: status
    end function
    function mlscam_state_set_c(handle, name, data, dtype, nlon, nlat, nlev) bind(c, name="mlscam_state_set") &
        result(status)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: handle, data
      character(kind=c_char), dimension(*), intent(in) :: name
      integer(c_int), value :: dtype, nlon, nlat, nlev
      integer(c_int) :: status
    end function
    function mlscam_state_set_all_c(handle, data, dtype, nlon, nlat, n_state) &
        bind(c, name="mlscam_state_set_all") result(status)
      import :: c_ptr, c_int
      type(c_ptr), value :: handle, data
      integer(c_int), value :: dtype, nlon, nlat, n_state
      integer(c_int) :: status
    end function
    function mlscam_step_c(handle, n) bind(c, name="mlscam_step") result(status)
      import :: c_ptr, c_int
      type(c_ptr), value :: handle
      integer(c_int), value :: n
      integer(c_int) :: status
    end function
    function mlscam_state_get_c(handle, name, data, dtype, nlon, nlat, nlev) bind(c, name="mlscam_state_get") &
        result(status)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: handle, data
      character(kind=c_char), dimension(*), intent(in) :: name
      integer(c_int), value :: dtype, nlon, nlat, nlev
      integer(c_int) :: status
    end function
    function mlscam_state_get_all_c(handle, data, dtype, nlon, nlat, n_state) &
        bind(c, name="mlscam_state_get_all") result(status)
      import :: c_ptr, c_int
      type(c_ptr), value :: handle, data
      integer(c_int), value :: dtype, nlon, nlat, n_state
      integer(c_int) :: status
    end function
    function mlscam_tendency_get_c(handle, name, data, dtype, nlon, nlat, nlev) &
        bind(c, name="mlscam_tendency_get") result(status)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: handle, data
      character(kind=c_char), dimension(*), intent(in) :: name
      integer(c_int), value :: dtype, nlon, nlat, nlev
      integer(c_int) :: status
    end function
    function mlscam_tendency_get_all_c(handle, data, dtype, nlon, nlat, n_state) &
        bind(c, name="mlscam_tendency_get_all") result(status)
      import :: c_ptr, c_int
      type(c_ptr), value :: handle, data
      integer(c_int), value :: dtype, nlon, nlat, n_state
      integer(c_int) :: status
    end function
    function mlscam_finalize_c(handle) bind(c, name="mlscam_finalize") result(status)
      import :: c_ptr, c_int
      type(c_ptr), value :: handle
      integer(c_int) :: status
    end function
  end interface

  !> status = mlscam_state_set(em, name, field): field(lon, lat, lev) or field(lon, lat), real32 or real64
  interface mlscam_state_set
    module procedure state_set_3d_r8, state_set_3d_r4, state_set_2d_r8, state_set_2d_r4
  end interface
  !> status = mlscam_state_get(em, name, field): decoded values written into field
  interface mlscam_state_get
    module procedure state_get_3d_r8, state_get_3d_r4, state_get_2d_r8, state_get_2d_r4
  end interface
  !> status = mlscam_tendency_get(em, name, field): tendencies per second written into field
  interface mlscam_tendency_get
    module procedure tend_get_3d_r8, tend_get_3d_r4, tend_get_2d_r8, tend_get_2d_r4
  end interface
  !> status = mlscam_state_set_all(em, x): x(lon, lat, n_state)
  interface mlscam_state_set_all
    module procedure state_set_all_r8, state_set_all_r4
  end interface
  interface mlscam_state_get_all
    module procedure state_get_all_r8, state_get_all_r4
  end interface
  interface mlscam_tendency_get_all
    module procedure tend_get_all_r8, tend_get_all_r4
  end interface

contains

  !> A Fortran string as a NUL-terminated C string.
  pure function c_str(s) result(cs)
    character(len=*), intent(in) :: s
    character(kind=c_char, len=len_trim(s) + 1) :: cs
    cs = trim(s)//c_null_char
  end function

  !> A NUL-terminated C buffer as a Fortran string (blank-padded into out).
  subroutine from_c(buf, out)
    character(kind=c_char), intent(in) :: buf(:)
    character(len=*), intent(out) :: out
    integer :: i
    out = ''
    do i = 1, min(size(buf), len(out))
      if (buf(i) == c_null_char) exit
      out(i:i) = buf(i)
    end do
  end subroutine

  !> The library's version, e.g. "0.1.0".
  function mlscam_version(version) result(status)
    character(len=*), intent(out) :: version
    integer(c_int) :: status
    character(kind=c_char) :: buf(len(version) + 1)
    status = mlscam_version_c(buf, int(size(buf), c_int))
    call from_c(buf, version)
  end function

  !> The message of the last failure on this rank ('' if none); truncated to len(message).
  function mlscam_last_error(message) result(status)
    character(len=*), intent(out) :: message
    integer(c_int) :: status
    character(kind=c_char) :: buf(len(message) + 1)
    status = mlscam_last_error_c(buf, int(size(buf), c_int))
    call from_c(buf, message)
  end function

  !> True between a successful mlscam_init and the end of the program.
  logical function mlscam_is_initialized(em)
    type(mlscam_t), intent(in) :: em
    mlscam_is_initialized = c_associated(em%handle)
  end function

  !> Start the emulator on this rank's tile (collective over comm).
  !> comm: the host communicator as an integer (use mpi: comm; use mpi_f08: comm%MPI_VAL).
  !> Tile bounds are 1-based inclusive global indices; all four 0 = the emulator's default layout.
  function mlscam_init(em, namelist_path, comm, nlon, nlat, nlev, lon_start, lon_end, lat_start, lat_end, &
                       coupling_interval_seconds) result(status)
    type(mlscam_t), intent(out) :: em
    character(len=*), intent(in) :: namelist_path
    integer, intent(in) :: comm, nlon, nlat, nlev, lon_start, lon_end, lat_start, lat_end
    real(c_double), intent(in) :: coupling_interval_seconds
    integer(c_int) :: status
    status = mlscam_init_c(c_str(namelist_path), int(comm, c_int), int(nlon, c_int), int(nlat, c_int), &
                           int(nlev, c_int), int(lon_start, c_int), int(lon_end, c_int), int(lat_start, c_int), &
                           int(lat_end, c_int), coupling_interval_seconds, em%handle)
  end function

  function mlscam_info_get(em, nlev, n_state, n_variables, dt_seconds) result(status)
    type(mlscam_t), intent(in) :: em
    integer, intent(out) :: nlev, n_state, n_variables
    real(c_double), intent(out) :: dt_seconds
    integer(c_int) :: status, a, b, c
    status = mlscam_info_get_c(em%handle, a, b, c, dt_seconds)
    nlev = a; n_state = b; n_variables = c
  end function

  !> Name and levels (1 for a 2-D variable) of variable idx (1-based).
  function mlscam_variable_get(em, idx, name, nlev) result(status)
    type(mlscam_t), intent(in) :: em
    integer, intent(in) :: idx
    character(len=*), intent(out) :: name
    integer, intent(out) :: nlev
    integer(c_int) :: status, n
    character(kind=c_char) :: buf(len(name) + 1)
    status = mlscam_variable_get_c(em%handle, int(idx, c_int), buf, int(size(buf), c_int), n)
    call from_c(buf, name)
    nlev = n
  end function

  !> This rank's tile, 1-based inclusive global indices.
  function mlscam_tile_get(em, lon_start, lon_end, lat_start, lat_end) result(status)
    type(mlscam_t), intent(in) :: em
    integer, intent(out) :: lon_start, lon_end, lat_start, lat_end
    integer(c_int) :: status, a, b, c, d
    status = mlscam_tile_get_c(em%handle, a, b, c, d)
    lon_start = a; lon_end = b; lat_start = c; lat_end = d
  end function

  function mlscam_step(em, n) result(status)
    type(mlscam_t), intent(in) :: em
    integer, intent(in) :: n
    integer(c_int) :: status
    status = mlscam_step_c(em%handle, int(n, c_int))
  end function

  !> Release the emulator and its duplicate communicator (before the host's MPI_Finalize).
  function mlscam_finalize(em) result(status)
    type(mlscam_t), intent(inout) :: em
    integer(c_int) :: status
    status = mlscam_finalize_c(em%handle)
  end function

  ! ---------------------------------------------------------------- set by name
  function state_set_3d_r8(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_double), intent(in), target, contiguous :: field(:, :, :)
    integer(c_int) :: status
    status = mlscam_state_set_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT64, &
                                int(size(field, 1), c_int), int(size(field, 2), c_int), int(size(field, 3), c_int))
  end function
  function state_set_3d_r4(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_float), intent(in), target, contiguous :: field(:, :, :)
    integer(c_int) :: status
    status = mlscam_state_set_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT32, &
                                int(size(field, 1), c_int), int(size(field, 2), c_int), int(size(field, 3), c_int))
  end function
  function state_set_2d_r8(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_double), intent(in), target, contiguous :: field(:, :)
    integer(c_int) :: status
    status = mlscam_state_set_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT64, &
                                int(size(field, 1), c_int), int(size(field, 2), c_int), 1_c_int)
  end function
  function state_set_2d_r4(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_float), intent(in), target, contiguous :: field(:, :)
    integer(c_int) :: status
    status = mlscam_state_set_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT32, &
                                int(size(field, 1), c_int), int(size(field, 2), c_int), 1_c_int)
  end function

  ! ---------------------------------------------------------------- get by name
  function state_get_3d_r8(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target, contiguous :: field(:, :, :)
    integer(c_int) :: status
    status = mlscam_state_get_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT64, &
                                int(size(field, 1), c_int), int(size(field, 2), c_int), int(size(field, 3), c_int))
  end function
  function state_get_3d_r4(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_float), intent(inout), target, contiguous :: field(:, :, :)
    integer(c_int) :: status
    status = mlscam_state_get_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT32, &
                                int(size(field, 1), c_int), int(size(field, 2), c_int), int(size(field, 3), c_int))
  end function
  function state_get_2d_r8(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target, contiguous :: field(:, :)
    integer(c_int) :: status
    status = mlscam_state_get_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT64, &
                                int(size(field, 1), c_int), int(size(field, 2), c_int), 1_c_int)
  end function
  function state_get_2d_r4(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_float), intent(inout), target, contiguous :: field(:, :)
    integer(c_int) :: status
    status = mlscam_state_get_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT32, &
                                int(size(field, 1), c_int), int(size(field, 2), c_int), 1_c_int)
  end function

  ! ----------------------------------------------------------- tendency by name
  function tend_get_3d_r8(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target, contiguous :: field(:, :, :)
    integer(c_int) :: status
    status = mlscam_tendency_get_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT64, &
                                   int(size(field, 1), c_int), int(size(field, 2), c_int), int(size(field, 3), c_int))
  end function
  function tend_get_3d_r4(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_float), intent(inout), target, contiguous :: field(:, :, :)
    integer(c_int) :: status
    status = mlscam_tendency_get_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT32, &
                                   int(size(field, 1), c_int), int(size(field, 2), c_int), int(size(field, 3), c_int))
  end function
  function tend_get_2d_r8(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target, contiguous :: field(:, :)
    integer(c_int) :: status
    status = mlscam_tendency_get_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT64, &
                                   int(size(field, 1), c_int), int(size(field, 2), c_int), 1_c_int)
  end function
  function tend_get_2d_r4(em, name, field) result(status)
    type(mlscam_t), intent(in) :: em
    character(len=*), intent(in) :: name
    real(c_float), intent(inout), target, contiguous :: field(:, :)
    integer(c_int) :: status
    status = mlscam_tendency_get_c(em%handle, c_str(name), c_loc(field), MLSCAM_FLOAT32, &
                                   int(size(field, 1), c_int), int(size(field, 2), c_int), 1_c_int)
  end function

  ! ------------------------------------------------------------ whole state
  function state_set_all_r8(em, x) result(status)
    type(mlscam_t), intent(in) :: em
    real(c_double), intent(in), target, contiguous :: x(:, :, :)
    integer(c_int) :: status
    status = mlscam_state_set_all_c(em%handle, c_loc(x), MLSCAM_FLOAT64, &
                                    int(size(x, 1), c_int), int(size(x, 2), c_int), int(size(x, 3), c_int))
  end function
  function state_set_all_r4(em, x) result(status)
    type(mlscam_t), intent(in) :: em
    real(c_float), intent(in), target, contiguous :: x(:, :, :)
    integer(c_int) :: status
    status = mlscam_state_set_all_c(em%handle, c_loc(x), MLSCAM_FLOAT32, &
                                    int(size(x, 1), c_int), int(size(x, 2), c_int), int(size(x, 3), c_int))
  end function
  function state_get_all_r8(em, x) result(status)
    type(mlscam_t), intent(in) :: em
    real(c_double), intent(inout), target, contiguous :: x(:, :, :)
    integer(c_int) :: status
    status = mlscam_state_get_all_c(em%handle, c_loc(x), MLSCAM_FLOAT64, &
                                    int(size(x, 1), c_int), int(size(x, 2), c_int), int(size(x, 3), c_int))
  end function
  function state_get_all_r4(em, x) result(status)
    type(mlscam_t), intent(in) :: em
    real(c_float), intent(inout), target, contiguous :: x(:, :, :)
    integer(c_int) :: status
    status = mlscam_state_get_all_c(em%handle, c_loc(x), MLSCAM_FLOAT32, &
                                    int(size(x, 1), c_int), int(size(x, 2), c_int), int(size(x, 3), c_int))
  end function
  function tend_get_all_r8(em, x) result(status)
    type(mlscam_t), intent(in) :: em
    real(c_double), intent(inout), target, contiguous :: x(:, :, :)
    integer(c_int) :: status
    status = mlscam_tendency_get_all_c(em%handle, c_loc(x), MLSCAM_FLOAT64, &
                                       int(size(x, 1), c_int), int(size(x, 2), c_int), int(size(x, 3), c_int))
  end function
  function tend_get_all_r4(em, x) result(status)
    type(mlscam_t), intent(in) :: em
    real(c_float), intent(inout), target, contiguous :: x(:, :, :)
    integer(c_int) :: status
    status = mlscam_tendency_get_all_c(em%handle, c_loc(x), MLSCAM_FLOAT32, &
                                       int(size(x, 1), c_int), int(size(x, 2), c_int), int(size(x, 3), c_int))
  end function

end module mlscam_mod
