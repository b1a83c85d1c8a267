"""Build libmlscam for this install: ``python -m mlscam.coupler.build [--force] [--quiet]``.

The library, the header, the Fortran module and a pkg-config file go to
:data:`NATIVE_DIR` (``mlscam/coupler/_native/`` of this install, git-ignored);
``python -m mlscam.coupler.config`` prints the flags to compile and link
against them.  ``pip install -e .`` runs the same build (see setup.py); this
command rebuilds by hand, e.g. after editing ``coupler/`` or for a checkout
that was never pip-installed.  The build sources live in ``coupler/`` of the
checkout (or ``_native/src`` of a wheel install).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

__all__ = ["NATIVE_DIR", "source_dir", "build_info", "is_stale", "ensure_built", "build", "main"]

NATIVE_DIR = Path(__file__).resolve().parent / "_native"


def source_dir() -> Path:
    """The directory of ``build_libmlscam.py`` and the sources it builds."""
    for cand in (Path(__file__).resolve().parents[2] / "coupler", NATIVE_DIR / "src"):
        if (cand / "build_libmlscam.py").is_file():
            return cand
    raise FileNotFoundError(
        f"the C/Fortran interface sources (coupler/build_libmlscam.py) are neither in the checkout "
        f"({Path(__file__).resolve().parents[2] / 'coupler'}) nor in {NATIVE_DIR / 'src'}; "
        "reinstall mlscam (pip install -e . from a checkout)")


def _builder():
    path = source_dir() / "build_libmlscam.py"
    spec = importlib.util.spec_from_file_location("mlscam_build_libmlscam", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_info(outdir: Path = NATIVE_DIR) -> dict | None:
    """The build_info.json of the current build, or None when there is none."""
    try:
        return json.loads((outdir / "build_info.json").read_text())
    except (OSError, ValueError):
        return None


def is_stale(outdir: Path = NATIVE_DIR) -> str:
    """Why the library must be (re)built, or '' when it is up to date."""
    info = build_info(outdir)
    if info is None or not (outdir / "lib" / "libmlscam.so").is_file():
        return f"libmlscam is not built in {outdir}"
    try:
        current = _builder().source_hash(source_dir())
    except FileNotFoundError:
        return ""  # an install without sources: use what is there
    if info.get("source_hash") != current:
        return "the sources in coupler/ changed since the last build"
    built_for = info.get("python") or ""
    if built_for != sys.executable and os.path.realpath(built_for) != os.path.realpath(sys.executable):
        return f"it was built for {info.get('python')}, this python is {sys.executable}"
    return ""


def build(outdir: Path = NATIVE_DIR, verbose: bool = False) -> dict:
    """Build into ``outdir`` (default: this install's native directory)."""
    return _builder().build(outdir, python=sys.executable, verbose=verbose)


def ensure_built(outdir: Path = NATIVE_DIR, quiet: bool = False) -> dict:
    """Build unless an up-to-date build exists; returns the build info."""
    reason = is_stale(outdir)
    if reason:
        if not quiet:
            print(f"mlscam: building libmlscam ({reason}) ...", file=sys.stderr, flush=True)
        return build(outdir)
    return build_info(outdir) or {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlscam.coupler.build", description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the build is up to date")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--outdir", default=os.fspath(NATIVE_DIR), help="where to build (default: %(default)s)")
    args = parser.parse_args(argv)
    outdir = Path(args.outdir).resolve()
    info = build(outdir) if args.force else ensure_built(outdir, quiet=args.quiet)
    if not args.quiet:
        print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
