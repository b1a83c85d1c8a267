"""The registry of loss terms: the one list of every term, its inputs, and whether it needs the encoded truth.

``mlscam.config.LossConfig`` has one weight field per term here (checked when
the config module loads and by ``tests/test_losses.py``),
:class:`~mlscam.losses.combined.LossComputer` evaluates them in this order, and
the training objective asks :func:`needs_latent_truth` whether to encode the truth.

Each :class:`LossTerm` of :data:`TERMS` names the two ``LossComputer`` inputs
it compares (``[..., ncol, C]`` fields or ``[..., ncol, D]`` latents, leading
dims samples) and its loss function: ``mse``, ``mae`` and ``ccc`` are area
weighted, ``barlow`` (Barlow Twins) and ``vicreg`` (its ``"total"``) are not.

"Encoded truth" terms need ``encoder(x[k])`` of the true state (``true_z``,
``true_dz = true_z[k] - true_z[k-1]``, ``pred_recon = decoder(true_z)``).

Pure Python: importing this module imports neither torch nor ``mlscam.config``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LossTerm", "TERMS", "TERM_NAMES", "TERM_INPUTS", "LATENT_TERMS", "term", "term_weights",
           "needs_latent_truth"]


@dataclass(frozen=True)
class LossTerm:
    """One loss term.

    Attributes:
      name: the term's name (its ``&loss`` weight key).
      prediction, truth: the ``LossComputer`` keyword arguments it compares.
      kind: the loss function: ``"mse"``, ``"mae"``, ``"ccc"``, ``"barlow"`` or ``"vicreg"``.
      encoded_truth: whether it needs the encoder applied to the true state.
    """

    name: str
    prediction: str
    truth: str
    kind: str
    encoded_truth: bool = False

    @property
    def inputs(self) -> tuple[str, str]:
        return self.prediction, self.truth


#: Every term, in evaluation order.
TERMS: tuple[LossTerm, ...] = (
    LossTerm("mse", "pred_state", "true_state", "mse"),
    LossTerm("mae", "pred_state", "true_state", "mae"),
    LossTerm("ccc", "pred_state", "true_state", "ccc"),
    LossTerm("ccc_latent", "pred_dz", "true_dz", "ccc", encoded_truth=True),
    LossTerm("barlow", "pred_dz", "true_dz", "barlow", encoded_truth=True),
    LossTerm("vicreg", "pred_dz", "true_dz", "vicreg", encoded_truth=True),
    LossTerm("tendency_mse", "pred_tendency", "true_tendency", "mse"),
    LossTerm("increment", "pred_increment", "true_increment", "mse"),
    LossTerm("latent_mse", "pred_z", "true_z", "mse", encoded_truth=True),
    LossTerm("reconstruction", "pred_recon", "true_recon", "mse", encoded_truth=True),
)

#: Term names in evaluation order (the weight fields of ``&loss``).
TERM_NAMES: tuple[str, ...] = tuple(t.name for t in TERMS)
#: name -> (prediction, truth) keyword arguments of ``LossComputer``.
TERM_INPUTS: dict[str, tuple[str, str]] = {t.name: t.inputs for t in TERMS}
#: The terms that need the encoded truth.
LATENT_TERMS: tuple[str, ...] = tuple(t.name for t in TERMS if t.encoded_truth)

_BY_NAME = {t.name: t for t in TERMS}


def term(name: str) -> LossTerm:
    """The registered term ``name``; an unknown name is a KeyError listing the valid ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown loss term {name!r}; the terms are {', '.join(TERM_NAMES)}") from None


def term_weights(weights_or_config: Any) -> dict[str, float]:
    """The weight of every term (0 for absent ones), in evaluation order.

    Accepts a mapping ``{term: weight}``, an object with a ``weights`` mapping
    (a ``LossComputer``), or an object with one attribute per term (``&loss``,
    i.e. ``mlscam.config.LossConfig``).
    """
    source = getattr(weights_or_config, "weights", weights_or_config)
    if isinstance(source, Mapping):
        unknown = sorted(set(source) - set(TERM_NAMES))
        if unknown:
            raise KeyError(f"unknown loss terms {unknown}; the terms are {', '.join(TERM_NAMES)}")
        return {name: float(source.get(name, 0.0)) for name in TERM_NAMES}
    missing = [name for name in TERM_NAMES if not hasattr(source, name)]
    if missing:
        raise TypeError(f"{type(source).__name__} has no weight for the loss terms {missing}; pass a &loss "
                        "configuration (mlscam.config.LossConfig), a LossComputer or a {term: weight} mapping")
    return {name: float(getattr(source, name)) for name in TERM_NAMES}


def needs_latent_truth(weights_or_config: Any) -> bool:
    """Whether any active (non-zero weight) term needs the encoded truth (see :func:`term_weights` for inputs)."""
    weights = term_weights(weights_or_config)
    return any(weights[name] != 0 for name in LATENT_TERMS)
