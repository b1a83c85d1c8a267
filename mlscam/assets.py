"""Assets shipped inside the package, named in the package form ``mlscam:REL``.

``mlscam:demo/checkpoint.pt`` names the file ``<package dir>/assets/demo/checkpoint.pt``,
so a namelist can point at the demo checkpoint and initial state without knowing
where the package is installed.
"""
from __future__ import annotations

import importlib.resources
import pathlib
import posixpath

__all__ = ["ASSET_PREFIX", "is_asset", "check_asset_name", "resolve_asset", "assets_dir"]

ASSET_PREFIX = "mlscam:"


def is_asset(name: str) -> bool:
    """Whether ``name`` is in the package form ``mlscam:REL``."""
    return name.startswith(ASSET_PREFIX)


def check_asset_name(name: str) -> str:
    """Return the relative part ``REL`` of ``mlscam:REL``; raise ValueError if it is not a clean relative path."""
    if not is_asset(name):
        raise ValueError(f"{name!r}: not a package asset; asset names start with {ASSET_PREFIX!r}, "
                         f"e.g. 'mlscam:demo/checkpoint.pt'")
    rel = name[len(ASSET_PREFIX):]
    if not rel:
        raise ValueError(f"{name!r}: names no file; write {ASSET_PREFIX}<path inside mlscam/assets>, "
                         f"e.g. 'mlscam:demo/checkpoint.pt'")
    if rel.startswith(("/", "\\")) or "\\" in rel or ".." in posixpath.normpath(rel).split("/"):
        raise ValueError(f"{name!r}: the part after {ASSET_PREFIX!r} must be a relative path inside "
                         f"mlscam/assets using '/' and no '..'")
    return rel


def assets_dir() -> pathlib.Path:
    """The directory ``<package dir>/assets`` (it may not exist in a checkout without assets)."""
    return pathlib.Path(str(importlib.resources.files("mlscam"))) / "assets"


def resolve_asset(name: str) -> pathlib.Path:
    """The absolute path of the asset ``mlscam:REL`` (``<package dir>/assets/REL``).

    Globs stay globs: ``mlscam:demo/*.nc`` gives ``<package dir>/assets/demo/*.nc``.
    The file need not exist; whoever opens it reports a missing file.
    """
    rel = check_asset_name(name)
    return assets_dir().joinpath(*rel.split("/"))
