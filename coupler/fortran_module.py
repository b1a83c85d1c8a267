"""Generate the Fortran module ``mlscam_mod.f90`` from ``mlscam_mod.f90.in`` and ``mlscam.h``.

``coupler/build_libmlscam.py`` runs it at build time (``python coupler/fortran_module.py OUT.f90``
writes the module by hand).  Standard library only.  It fills the four markers of the template:

* ``@CONSTANTS@``: every enum of ``mlscam.h`` (status codes, element types) as
  ``integer(c_int)`` parameters, so the header stays the one source of the codes;
* ``@INTERFACES@``: the ``bind(c)`` interface of each array entry point (:data:`INTERFACE`);
* ``@GENERICS@``: one generic interface per array entry point (``mlscam_state_set`` ...);
* ``@WRAPPERS@``: the specific procedures behind them, for ``real(c_float)`` and
  ``real(c_double)`` arrays and, for the entry points by name, 3-D ``(lon, lat, lev)``
  and 2-D ``(lon, lat)`` fields: all instances of the one template :data:`WRAPPER`.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# generic name (= the C function; its interface is <name>_c), intent of the array, by name (else the whole
# state), what it does
ARRAY_CALLS = (
    ("mlscam_state_set", "in", True, "field(lon, lat, lev) or field(lon, lat) of this rank's tile"),
    ("mlscam_state_get", "inout", True, "decoded values written into field"),
    ("mlscam_tendency_get", "inout", True, "tendencies per second written into field"),
    ("mlscam_state_set_all", "in", False, "x(lon, lat, n_state), the whole state"),
    ("mlscam_state_get_all", "inout", False, "the decoded state written into x(lon, lat, n_state)"),
    ("mlscam_tendency_get_all", "inout", False, "tendencies per second written into x(lon, lat, n_state)"),
)
# suffix, Fortran kind, dtype constant of mlscam.h
KINDS = (("r8", "c_double", "MLSCAM_FLOAT64"), ("r4", "c_float", "MLSCAM_FLOAT32"))

INTERFACE = """\
    function {call}_c(handle, {name_arg}data, dtype, nlon, nlat, {third}) &
        bind(c, name="{call}") result(status)
      import :: c_ptr, c_int{char}
      type(c_ptr), value :: handle, data
{name_decl}      integer(c_int), value :: dtype, nlon, nlat, {third}
      integer(c_int) :: status
    end function
"""

WRAPPER = """\
  function {proc}(em, {name_arg}{array}) result(status)
    type(mlscam_t), intent(in) :: em
{name_decl}    real({kind}), intent({intent}), target, contiguous :: {array}({shape})
    integer(c_int) :: status
    status = {call}_c(em%handle, {name_pass}c_loc({array}), {dtype}, &
      int(size({array}, 1), c_int), int(size({array}, 2), c_int), {third})
  end function
"""


def header_enums(header: str) -> dict[str, dict[str, int]]:
    """``{enum name: {constant: value}}`` of every ``enum name { A = 1, ... };`` in the header text."""
    enums = {}
    for name, body in re.findall(r"^enum (\w+) \{(.*?)\};", header, re.S | re.M):
        enums[name] = {k: int(v) for k, v in re.findall(r"^\s*(\w+)\s*=\s*(-?\d+)\s*,?", body, re.M)}
        if not enums[name]:
            raise ValueError(f"enum {name} of mlscam.h has no 'NAME = value' entries")
    if "mlscam_status" not in enums or "mlscam_dtype" not in enums:
        raise ValueError(f"mlscam.h must declare enum mlscam_status and enum mlscam_dtype, found {sorted(enums)}")
    return enums


def _constants(enums: dict[str, dict[str, int]]) -> str:
    out = []
    for name, values in enums.items():
        items = [f"{k} = {v}" for k, v in values.items()]
        lines = [", ".join(items[i:i + 3]) for i in range(0, len(items), 3)]
        out.append(f"  ! enum {name}\n  integer(c_int), parameter, public :: " + ", &\n    ".join(lines))
    return "\n".join(out)


def _instances() -> list[tuple[str, str, dict[str, str]]]:
    """``(generic name, what, template fields)`` of every specific procedure."""
    out = []
    for call, intent, by_name, what in ARRAY_CALLS:
        array = "field" if by_name else "x"
        for rank in ((3, 2) if by_name else (3,)):
            for suffix, kind, dtype in KINDS:
                out.append((call, what, dict(
                    proc=f"{call}_{rank}d_{suffix}", call=call, array=array, kind=kind, intent=intent, dtype=dtype,
                    name_arg="name, " if by_name else "", name_pass="c_str(name), " if by_name else "",
                    name_decl="    character(len=*), intent(in) :: name\n" if by_name else "",
                    shape=", ".join([":"] * rank),
                    third=f"int(size({array}, 3), c_int)" if rank == 3 else "1_c_int")))
    return out


def _interfaces() -> str:
    return "".join(INTERFACE.format(
        call=call, name_arg="name, " if by_name else "", third="nlev" if by_name else "n_state",
        char=", c_char" if by_name else "",
        name_decl="      character(kind=c_char), dimension(*), intent(in) :: name\n" if by_name else "")
        for call, _, by_name, _ in ARRAY_CALLS).rstrip("\n")


def _generics(instances) -> str:
    out = ["  ! Array arguments: real(c_float) or real(c_double), this rank's tile in Fortran order."]
    for call, _, by_name, what in ARRAY_CALLS:
        procs = [f["proc"] for c, _, f in instances if c == call]
        pairs = [", ".join(procs[i:i + 2]) for i in range(0, len(procs), 2)]
        args = "em, name, field" if by_name else "em, x"
        out.append(f"  !> status = {call}({args}): {what}\n  interface {call}\n"
                   "    module procedure " + ", &\n      ".join(pairs) + "\n  end interface")
    return "\n".join(out)


def render(template: str, header: str) -> str:
    """The module source: ``template`` with its four markers filled from ``header``."""
    instances = _instances()
    parts = {"@CONSTANTS@": _constants(header_enums(header)), "@INTERFACES@": _interfaces(),
             "@GENERICS@": _generics(instances),
             "@WRAPPERS@": "\n".join(WRAPPER.format(**fields) for _, _, fields in instances).rstrip("\n")}
    for marker, text in parts.items():
        if template.count(marker) != 1:
            raise ValueError(f"the Fortran template must hold {marker} exactly once, found {template.count(marker)}")
        template = template.replace(marker, text)
    return ("! GENERATED by coupler/fortran_module.py from coupler/mlscam_mod.f90.in and coupler/mlscam.h;\n"
            "! edit those, not this file.\n" + template)


def generate(out: Path, src: Path = HERE) -> Path:
    """Write the module rendered from ``src``'s template and header to ``out``."""
    out = Path(out)
    out.write_text(render((src / "mlscam_mod.f90.in").read_text(), (src / "mlscam.h").read_text()))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT.f90")
    print(generate(Path(sys.argv[1])))
