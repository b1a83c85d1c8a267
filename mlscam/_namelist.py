"""Helpers of ``mlscam.config``: the group base class, value types, f90nml reading,
path resolution, Fortran formatting and the reference text.

Nothing here lists the mlscam groups; ``mlscam.config`` defines them and passes them in.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import math
import os
import typing
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import ClassVar, Iterable

from mlscam.assets import check_asset_name, is_asset, resolve_asset

__all__ = ["ConfigError", "Group", "Kind", "kind_of", "coerce", "parse_text", "fortran", "read_groups",
           "closest", "resolve_path", "render_reference", "REFERENCE_INTRO"]


class ConfigError(ValueError):
    """A namelist problem; the message names the group, the key, the bad value and what is allowed."""


ConfigError.__module__ = "mlscam.config"

_BASE_NAMES = {int: "an integer", float: "a real number", bool: "a logical (.true. or .false.)",
               str: "a quoted string"}
_BASE_SHORT = {int: "integer", float: "real", bool: "logical", str: "string"}


@dataclass(frozen=True)
class Kind:
    """The type of one field: a scalar ``base`` or a tuple of ``base`` (``is_tuple``)."""

    base: type
    is_tuple: bool

    def describe(self) -> str:
        """Human words for the reference: 'integer', 'list of strings', ..."""
        return f"list of {_BASE_SHORT[self.base]}s" if self.is_tuple else _BASE_SHORT[self.base]


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


def kind_of(cls: type, name: str) -> Kind:
    """The ``Kind`` of field ``name`` of dataclass ``cls`` (annotations int, float, bool, str, tuple[X, ...])."""
    hint = _hints(cls)[name]
    if typing.get_origin(hint) is tuple:
        return Kind(typing.get_args(hint)[0], True)
    return Kind(hint, False)


def fortran(value) -> str:
    """``value`` written in namelist syntax: 'text', .true., 3, 0.5, or a comma-separated list."""
    if isinstance(value, (tuple, list)):
        return ", ".join(fortran(v) for v in value) if value else "''"
    if isinstance(value, bool):
        return ".true." if value else ".false."
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".enai") else text + ".0"
    return repr(value)


def _shown(value) -> str:
    """A bad value as the user wrote it (namelist syntax where possible)."""
    if isinstance(value, (tuple, list, bool, str, int, float)):
        return fortran(value)
    if value is None:
        return "(empty)"
    return repr(value)


def _coerce_scalar(where: str, value, base: type, shown) -> object:
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{where} = {shown}: must be a finite real number")
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{where} = {shown}: expected {_BASE_NAMES[base]}")
    return value


def coerce(where: str, value, kind: Kind):
    """Check ``value`` against ``kind`` and return it in canonical form.

    Ints are accepted for reals; a scalar or a list is accepted for a tuple field
    (f90nml returns a one-element array as a scalar) and becomes a tuple; ``''``
    or an empty value give an empty tuple. ``where`` ("group.key") starts every error.
    """
    shown = _shown(value)
    if not kind.is_tuple:
        if isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {shown}: expected one value, {_BASE_NAMES[kind.base]}, not a list")
        return _coerce_scalar(where, value, kind.base, shown)
    if value is None or (isinstance(value, str) and value == "") or (isinstance(value, (list, tuple)) and not value):
        return ()
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    out = []
    for n, item in enumerate(items, start=1):
        if item is None or (isinstance(item, str) and item == ""):
            raise ConfigError(f"{where} = {shown}: entry {n} is empty; expected a list of "
                              f"{_BASE_SHORT[kind.base]}s separated by commas")
        try:
            out.append(_coerce_scalar(where, item, kind.base, shown))
        except ConfigError:
            raise ConfigError(f"{where} = {shown}: entry {n} ({_shown(item)}) is not "
                              f"{_BASE_NAMES[kind.base]}; expected a list of {_BASE_SHORT[kind.base]}s") from None
    return tuple(out)


_TRUE = {"true", ".true.", "t", ".t."}
_FALSE = {"false", ".false.", "f", ".f."}


def _parse_scalar(where: str, text: str, base: type, original: str):
    text = text.strip()
    if base is str:
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return text[1:-1]
        return text
    if base is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
    elif base is int:
        try:
            return int(text)
        except ValueError:
            pass
    else:
        try:
            return float(text.replace("d", "e").replace("D", "e"))
        except ValueError:
            pass
    allowed = "true/false/.true./.false./t/f" if base is bool else _BASE_NAMES[base]
    raise ConfigError(f"{where} = {original}: expected {allowed}")


def parse_text(where: str, text: str, kind: Kind):
    """Parse a command-line value (``--set group.key=TEXT``) by the field's kind.

    Lists are comma-separated (``a,b,c``; empty text = empty list); logicals accept
    true/false/.true./.false./t/f in any case; strings may be quoted.
    """
    if not kind.is_tuple:
        return _parse_scalar(where, text, kind.base, text)
    if text.strip() in ("", "''", '""'):
        return ()
    return tuple(_parse_scalar(where, part, kind.base, text) for part in text.split(","))


class Group:
    """Base of the group dataclasses of ``mlscam.config``: coerces and checks every field when built.

    Lists become tuples (configs stay hashable), ints become floats for real fields;
    a wrong type raises ConfigError. Subclasses add value checks in ``_validate``.
    """

    GROUP: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            where = f"{self.GROUP}.{f.name}"
            value = coerce(where, getattr(self, f.name), kind_of(type(self), f.name))
            object.__setattr__(self, f.name, value)
            for path in value if isinstance(value, tuple) else (value,):
                if f.metadata.get("path") == "input" and is_asset(path):
                    try:
                        check_asset_name(path)
                    except ValueError as exc:
                        raise ConfigError(f"{where} = {exc}") from None
                elif f.metadata.get("path") == "output" and is_asset(path):
                    raise ConfigError(f"{where} = {fortran(path)}: package assets are read-only; "
                                      f"give a path (relative paths go under output.directory)")
        self._validate()

    def _validate(self) -> None:
        """Value checks of the group (override in subclasses)."""

    def _bad(self, key: str, allowed: str) -> typing.NoReturn:
        raise ConfigError(f"{self.GROUP}.{key} = {fortran(getattr(self, key))}: {allowed}")

    def _require(self, ok: bool, key: str, allowed: str) -> None:
        if not ok:
            self._bad(key, allowed)

    def _at_least(self, minimum, *keys: str) -> None:
        for key in keys:
            self._require(getattr(self, key) >= minimum, key, f"must be >= {minimum}")

    def _positive(self, *keys: str) -> None:
        for key in keys:
            self._require(getattr(self, key) > 0, key, "must be > 0")

    def _choice(self, key: str, options: Iterable[str]) -> None:
        options = tuple(options)
        self._require(getattr(self, key) in options, key,
                      "must be one of " + ", ".join(fortran(o) for o in options))

    def _names(self, key: str) -> None:
        values = getattr(self, key)
        dupes = sorted({v for v in values if values.count(v) > 1})
        self._require(not dupes, key, f"names must be unique; repeated: {', '.join(dupes)}")


def resolve_path(path: str, base: str) -> str:
    """An absolute path string: '' stays '', ``mlscam:REL`` is the package asset, relative joins ``base``."""
    if path == "":
        return ""
    if is_asset(path):
        return str(resolve_asset(path))
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))


def read_groups(path: str) -> list[tuple[str, dict]]:
    """The groups of a namelist file in file order as ``[(group, {key: value})]``, names lower-cased.

    Raises ConfigError for an unreadable file, a syntax error, an indexed or derived-type
    assignment, or a group given twice.
    """
    import f90nml

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            nml = f90nml.read(path)
    except OSError as exc:
        raise ConfigError(f"cannot read the namelist file: {exc.strerror or exc}") from None
    except Exception as exc:  # f90nml raises ValueError, AssertionError, ... on bad syntax
        detail = str(exc) or type(exc).__name__
        raise ConfigError(f"not a valid Fortran namelist ({detail}); groups are written "
                          f"&group key = value, ... /") from None
    groups: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for name, body in nml.items():
        name = name.lower()
        if name in seen:
            raise ConfigError(f"group &{name} appears more than once; merge its keys into one &{name} ... / group")
        seen.add(name)
        start_index = getattr(body, "start_index", {}) or {}
        values = {}
        for key, value in body.items():
            key = key.lower()
            if key in start_index:
                raise ConfigError(f"{name}.{key}: indexed assignment ({key}(i) = ...) is not supported; "
                                  f"give the whole list: {key} = a, b, ...")
            if isinstance(value, dict):
                raise ConfigError(f"{name}.{key}: derived-type assignment ({key}%...) is not supported")
            values[key] = value
        groups.append((name, values))
    return groups


def closest(name: str, options) -> str | None:
    """The option closest to ``name`` (difflib), or None if nothing is close."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return match[0] if match else None


REFERENCE_INTRO = """\
# Namelist reference

Generated from the dataclasses in `mlscam/config.py` by
`python -m mlscam.config reference > docs/namelist.md`; do not edit by hand.

## Rules

* A namelist file holds groups `&group key = value, ... /`. Keys and group names
  are case-insensitive. Lists are comma-separated (`variables_3d = 'u', 'v'`); a
  single value is a one-element list; `''` is an empty list. Logicals are
  `.true.`/`.false.`; integers are accepted for reals, quoted strings are not
  accepted for numbers.
* Reading is strict: an unknown group or key, a wrong type or an out-of-range
  value is an error that names `group.key`, shows the value and says what is
  allowed. Groups that belong to a host model (one file may configure a host model
  and mlscam together) are declared with `&mlscam host_groups = 'name', ... /` and
  ignored by mlscam.
* Groups and keys that are left out take the defaults below; a group may appear
  only once in a file.
* **Paths.** An *input path* that is relative resolves against the directory of
  the namelist file (so a run works from any working directory); `mlscam:REL`
  names a file shipped in the package, `<package dir>/assets/REL` (e.g.
  `mlscam:demo/checkpoint.pt`). An *output path* that is relative resolves against
  `output.directory`; `output.directory` itself, if relative, resolves against the
  current working directory. Globs in `data.files` stay globs (resolved directory +
  pattern). Absolute paths and `~` are used as given. `''` means unset. Files are
  not required to exist when a namelist is validated; the program that opens a
  file reports a missing one. The resolved configuration holds absolute paths.
* **Overrides.** Every driver takes `NAMELIST [--set group.key=value ...]`; the
  value is parsed by the key's type (lists comma-separated, logicals
  `true`/`false`/`.true.`/`.false.`/`t`/`f`). A relative input path given with
  `--set` resolves against the working directory (where you typed it). The overrides
  are checked together, after all are applied, so their order does not matter; a
  later `--set` of the same key wins.
* `python -m mlscam.config validate FILE.nml [--set ...]` checks a file and prints
  the resolved configuration.
"""


def render_reference(groups: list[tuple[str, type]], intro: str) -> str:
    """Markdown reference of every group and key: type, default, meaning (from ``metadata['doc']``)."""
    lines = [intro.rstrip(), ""]
    for name, cls in groups:
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        doc = doc.split(":", 1)[1].strip() if doc.startswith("``&") and ":" in doc else doc
        doc = doc[:1].upper() + doc[1:]
        lines += [f"## `&{name}`", "", doc, "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            kind = kind_of(cls, f.name)
            typ = kind.describe()
            if f.metadata.get("path"):
                typ += f", {f.metadata['path']} path"
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            meaning = f.metadata["doc"].replace("|", "\\|")
            shown = "(empty)" if default in ((), "") else f"`{fortran(default)}`"
            lines.append(f"| `{f.name}` | {typ} | {shown} | {meaning} |")
        lines.append("")
    return "\n".join(lines)
