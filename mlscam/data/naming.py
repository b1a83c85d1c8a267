"""How files name a model's variables and levels: ``&data file_names_3d/2d`` and ``level_source``.

A model's variables have *model names* (``&data variables_3d/2d``, the checkpoint's layout); files may
name them otherwise (a CAM history file: ``U, V, T, PS``) and define levels otherwise (hybrid
coefficients or a level coordinate, :mod:`mlscam.data.levels`).

* :func:`name_maps`: the whole ``{model name: file name}`` maps of one ``&data`` group (file names
  default to the model names), as :func:`mlscam.data.source.open_source` reads with them.
* :class:`Naming`: only what a group says explicitly, so that two can be merged.  A checkpoint keeps
  the ``&data`` group it was trained with (``level_source`` as the reader resolved it), and the
  readers of files for a trained model (the rollout's initial state, the evaluation's truth) use
  ``Naming.of(namelist &data).over(Naming.of(checkpoint &data))``: what the user's namelist sets
  wins, the training's fills in the rest, model names and ``'auto'`` are the last resort.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from mlscam.config import LEVEL_SOURCES, DataConfig
from mlscam.data.errors import DataError
from mlscam.layout import ColumnLayout

__all__ = ["name_maps", "Naming"]


def name_maps(cfg: DataConfig) -> tuple[dict[str, str], dict[str, str]]:
    """``{model name: file name}`` of the 3-D and 2-D variables (file names default to model names)."""
    maps = []
    for model, files, key in ((cfg.variables_3d, cfg.file_names_3d, "3d"), (cfg.variables_2d, cfg.file_names_2d, "2d")):
        files = tuple(files) or tuple(model)
        if len(files) != len(model):
            raise DataError(
                f"data.file_names_{key} has {len(files)} names {list(files)} but data.variables_{key} has "
                f"{len(model)} {list(model)}; give one file name per variable (or none)"
            )
        maps.append(dict(zip(model, files)))
    return maps[0], maps[1]


@dataclass(frozen=True)
class Naming:
    """Explicit file names of model variables and the level source.

    Attributes:
      names: ``((model name, file name), ...)``: only the names some ``&data`` group gave.
      level_source: ``'auto'``, ``'hybrid'`` or ``'coordinate'`` (:mod:`mlscam.data.levels`).
    """

    names: tuple[tuple[str, str], ...] = ()
    level_source: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple((str(m), str(f)) for m, f in self.names))
        if self.level_source not in LEVEL_SOURCES:
            raise DataError(f"level source {self.level_source!r} is none of {list(LEVEL_SOURCES)}")

    @classmethod
    def of(cls, data: DataConfig) -> "Naming":
        """What ``data`` (a ``&data`` group) sets: the file names it lists (none when ``file_names_*`` are
        empty) and its ``level_source``."""
        names = []
        for model, files in ((data.variables_3d, data.file_names_3d), (data.variables_2d, data.file_names_2d)):
            if files:
                names += zip(model, files)
        return cls(tuple(names), data.level_source)

    @classmethod
    def parse(cls, text: str, level_source: str = "auto") -> "Naming":
        """The inverse of :meth:`describe`: ``'u=U temperature=T'`` (whitespace-separated ``model=file``)."""
        names = []
        for item in str(text).split():
            model, sep, file = item.partition("=")
            if not (sep and model and file):
                raise DataError(f"{item!r} in the file names {text!r} is not MODEL=FILE (e.g. temperature=T)")
            names.append((model, file))
        return cls(tuple(names), level_source)

    def over(self, fallback: "Naming") -> "Naming":
        """These names and level source, with ``fallback``'s for the variables (and an ``'auto'`` source) left open."""
        mine = dict(self.names)
        names = self.names + tuple((m, f) for m, f in fallback.names if m not in mine)
        return Naming(names, self.level_source if self.level_source != "auto" else fallback.level_source)

    def file_name(self, model: str) -> str:
        """The name of model variable ``model`` in the files (the model name unless given)."""
        return dict(self.names).get(model, model)

    def describe(self, variables) -> str:
        """``'u=U temperature=T ...'`` for the model names ``variables`` (a forecast file records it)."""
        return " ".join(f"{v}={self.file_name(v)}" for v in variables)

    def data_config(self, base: DataConfig, layout: ColumnLayout, dt_seconds: float | None = None) -> DataConfig:
        """``base`` made to read files of a model with ``layout``: its variables and static features, their
        file names and this level source (and ``dt_seconds`` as the time step, if given)."""
        out = replace(base, variables_3d=layout.variables_3d, variables_2d=layout.variables_2d,
                      file_names_3d=tuple(self.file_name(v) for v in layout.variables_3d),
                      file_names_2d=tuple(self.file_name(v) for v in layout.variables_2d),
                      level_source=self.level_source, static_features=layout.static_features)
        return out if dt_seconds is None else replace(out, time_step_hours=float(dt_seconds) / 3600.0)
