"""Namelist configuration: one frozen dataclass per namelist group, read strictly with f90nml.

Every field carries ``metadata={"doc": ...}`` (``docs/namelist.md`` is generated
from it) and, for paths, ``metadata={"path": "input" | "output"}``.

* ``load_config(path, overrides=())`` reads a namelist file: unknown groups and
  keys, wrong types and out-of-range values raise ``ConfigError`` (a ValueError)
  naming ``group.key``, the value and what is allowed. Groups listed in
  ``&mlscam host_groups = ... /`` belong to a host model and are ignored.
* Paths: input paths resolve against the namelist file's directory (those given
  with ``--set``: against the working directory); ``mlscam:REL`` names the package
  asset ``<package dir>/assets/REL``; output paths resolve against
  ``output.directory``, which resolves against the working directory. ``''`` = unset.
* ``add_config_arguments`` / ``config_from_args`` give every driver
  ``NAMELIST [--set group.key=value ...]``.
* ``config_to_dict`` / ``config_from_dict`` (checkpoints), ``config_to_namelist``.
* The group classes are declared in ``mlscam._groups`` and re-exported here (this
  is their public home). Groups build what they describe: ``ModelConfig.build(layout)``
  -> the ``LatentModel``, ``LossConfig.build()`` -> the ``LossComputer``; config is
  the layer above model and losses and imports them only inside those methods, so
  this module stays torch-free.
* ``python -m mlscam.config validate FILE.nml [--set ...]`` and
  ``python -m mlscam.config reference`` (writes the text of docs/namelist.md).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields, replace
from typing import Any, Iterable

from mlscam._groups import (DEFAULT_CHUNK_SIZE, GROUPS, LEVEL_SOURCES, Config, CouplerConfig, DataConfig, LossConfig,
                            MetaConfig, ModelConfig, OutputConfig, ParallelConfig, RolloutConfig, TrainConfig)
from mlscam._namelist import (REFERENCE_INTRO, ConfigError, closest, fortran, kind_of, parse_text, read_groups,
                              render_reference, resolve_path)

__all__ = [
    "ConfigError",
    "DEFAULT_CHUNK_SIZE",
    "LEVEL_SOURCES",
    "MetaConfig",
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "TrainConfig",
    "RolloutConfig",
    "ParallelConfig",
    "CouplerConfig",
    "OutputConfig",
    "Config",
    "GROUPS",
    "load_config",
    "apply_overrides",
    "add_config_arguments",
    "config_from_args",
    "config_to_dict",
    "config_from_dict",
    "config_to_namelist",
    "reference_markdown",
    "main",
]


# --------------------------------------------------------------------------- building

def _group_of(name: str, source: str, host_groups: tuple[str, ...] = ()) -> type:
    if name in GROUPS:
        return GROUPS[name]
    guess = closest(name, GROUPS)
    hint = f"; did you mean &{guess}?" if guess else "."
    declared = ", ".join(f"'{g}'" for g in (*host_groups, name))
    raise ConfigError(f"{source}unknown group &{name}{hint} Valid mlscam groups: "
                      f"{', '.join('&' + g for g in GROUPS)}. If &{name} belongs to a host model, "
                      f"declare it: &mlscam host_groups = {declared} /")


def _check_key(group: str, key: str, source: str = "") -> None:
    cls = GROUPS[group]
    valid = [f.name for f in fields(cls)]
    if key not in valid:
        guess = closest(key, valid)
        hint = f"; did you mean '{guess}'?" if guess else "."
        raise ConfigError(f"{source}unknown key '{key}' in &{group}{hint} Valid keys of &{group}: {', '.join(valid)}")


def _build(groups: dict[str, dict]) -> Config:
    """A Config from ``{group: {key: value}}``; groups named in ``mlscam.host_groups`` are skipped,
    other unknown groups and unknown keys are errors."""
    for name, values in groups.items():
        if not isinstance(values, dict):
            raise ConfigError(f"group &{name} must map keys to values, got {values!r}")
    host_groups = ()
    if "mlscam" in groups:
        for key in groups["mlscam"]:
            _check_key("mlscam", key)
        host_groups = MetaConfig(**groups["mlscam"]).host_groups
    built = {}
    for name, values in groups.items():
        if name in host_groups:
            continue
        cls = _group_of(name, "", host_groups)
        for key in values:
            _check_key(name, key)
        built[name] = cls(**values)
    return Config(**built)


# --------------------------------------------------------------------------- paths

def _resolve(cfg: Config, input_dir: str, from_cwd: frozenset = frozenset()) -> Config:
    """Resolve every path field: inputs against ``input_dir`` (or the working directory for
    the keys in ``from_cwd``, given as overrides), outputs against ``output.directory``."""
    cwd = os.getcwd()
    out_dir = resolve_path(cfg.output.directory, cwd)
    changed = {"output": replace(cfg.output, directory=out_dir)}
    for name in GROUPS:
        group = changed.get(name, getattr(cfg, name))
        updates = {}
        for f in fields(group):
            kind = f.metadata.get("path")
            if kind is None:
                continue
            base = out_dir if kind == "output" else (cwd if (name, f.name) in from_cwd else input_dir)
            value = getattr(group, f.name)
            if isinstance(value, tuple):
                updates[f.name] = tuple(resolve_path(v, base) for v in value)
            else:
                updates[f.name] = resolve_path(value, base)
        if updates:
            changed[name] = replace(group, **updates)
    return replace(cfg, **changed)


# --------------------------------------------------------------------------- public API

def apply_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """``cfg`` with ``group.key=value`` overrides applied in order (no path resolution).

    The value text is parsed by the field's type: lists comma-separated, logicals
    true/false/.true./.false./t/f. Unknown groups/keys and bad values raise ConfigError.
    A group's overrides are checked together, so their order does not matter (``--set
    train.pushforward_steps=24 --set train.mode=global_rollout`` is valid); a later value of
    the same key wins.
    """
    updates: dict[str, dict[str, Any]] = {}
    items: dict[str, list[str]] = {}
    for item in overrides:
        source = f"--set {item}: "
        target, sep, text = item.partition("=")
        group, dot, key = target.strip().lower().partition(".")
        if not sep or not dot or not group or not key:
            raise ConfigError(f"{source}expected --set group.key=value, e.g. --set model.latent_dim=64")
        if group in cfg.mlscam.host_groups:
            raise ConfigError(f"{source}&{group} is a host-model group; mlscam does not read it, set it in the namelist")
        _group_of(group, source, cfg.mlscam.host_groups)
        _check_key(group, key, source)
        try:
            updates.setdefault(group, {})[key] = parse_text(f"{group}.{key}", text, kind_of(GROUPS[group], key))
        except ConfigError as exc:
            raise ConfigError(f"{source}{exc}") from None
        items.setdefault(group, []).append(item)
    groups = {}
    for group, values in updates.items():
        try:
            groups[group] = replace(getattr(cfg, group), **values)
        except ConfigError as exc:
            raise ConfigError(f"--set {' --set '.join(items[group])}: {exc}") from None
    try:  # checks across groups see every override at once
        return replace(cfg, **groups)
    except ConfigError as exc:
        raise ConfigError(f"--set {' --set '.join(i for g in items.values() for i in g)}: {exc}") from None


def _override_keys(overrides: Iterable[str]) -> frozenset:
    keys = set()
    for item in overrides:
        group, _, key = item.partition("=")[0].strip().lower().partition(".")
        keys.add((group, key))
    return frozenset(keys)


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> Config:
    """Read, check and resolve the namelist file ``path``, then apply ``--set`` style overrides.

    Returns a Config whose paths are absolute strings (see the module docstring for
    the rules). Raises ConfigError whose message starts with the file name.
    File existence is not checked: the drivers that open files report missing ones.
    """
    path = os.fspath(path)
    overrides = tuple(overrides)
    try:
        groups = read_groups(path)
        if not groups:
            raise ConfigError("no namelist group found; write groups as &group key = value, ... / "
                              "(an empty '&mlscam /' takes every default)")
        cfg = _build(dict(groups))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    cfg = apply_overrides(cfg, overrides)
    return _resolve(cfg, os.path.dirname(os.path.abspath(path)), _override_keys(overrides))


def add_config_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the positional ``namelist`` argument and the repeatable ``--set group.key=value``."""
    parser.add_argument("namelist", help="namelist file (.nml); relative input paths in it resolve "
                                         "against its directory")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="GROUP.KEY=VALUE",
                        help="override one namelist value, e.g. --set model.latent_dim=64 "
                             "(lists comma-separated; repeatable)")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config of parsed arguments from a parser set up by ``add_config_arguments``."""
    return load_config(args.namelist, args.overrides or ())


def config_to_dict(cfg: Config) -> dict:
    """``{group: {key: value}}`` of plain JSON types (tuples become lists), e.g. for checkpoints."""
    return {name: {f.name: (list(v) if isinstance(v := getattr(getattr(cfg, name), f.name), tuple) else v)
                   for f in fields(GROUPS[name])}
            for name in GROUPS}


def config_from_dict(d: dict) -> Config:
    """Inverse of ``config_to_dict`` (strict: unknown groups or keys and bad values raise ConfigError).

    Missing groups and keys take their defaults; paths are taken as they are (no resolution).
    """
    if not isinstance(d, dict):
        raise ConfigError(f"a configuration dict maps group names to dicts, got {type(d).__name__}")
    return _build({str(k).lower(): v for k, v in d.items()})


def config_to_namelist(cfg: Config) -> str:
    """The configuration as namelist text (every group, every key); ``load_config`` reads it back."""
    lines = []
    for name in GROUPS:
        group = getattr(cfg, name)
        lines.append(f"&{name}")
        width = max(len(f.name) for f in fields(group))
        lines += [f"    {f.name:<{width}} = {fortran(getattr(group, f.name))}" for f in fields(group)]
        lines += ["/", ""]
    return "\n".join(lines)


def reference_markdown() -> str:
    """The markdown reference of every group and key (the content of docs/namelist.md)."""
    return render_reference(list(GROUPS.items()), REFERENCE_INTRO)


def main(argv: list[str] | None = None) -> int:
    """``python -m mlscam.config validate FILE.nml [--set ...]`` or ``... reference``."""
    parser = argparse.ArgumentParser(prog="python -m mlscam.config", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_config_arguments(sub.add_parser("validate", help="check a namelist and print the resolved configuration"))
    sub.add_parser("reference", help="print the markdown reference of every group and key")
    args = parser.parse_args(argv)
    if args.command == "reference":
        sys.stdout.write(reference_markdown())
        return 0
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(config_to_namelist(cfg))
    return 0


if __name__ == "__main__":
    from mlscam.config import main as _main  # the package's module, not a second copy of the classes

    sys.exit(_main())
