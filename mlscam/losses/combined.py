"""The weighted combination of loss terms configured by ``&loss`` (``mlscam.config.LossConfig``).

The terms, the inputs each needs and their order come from the registry
``mlscam.losses.registry`` (``TERMS``).

A term is computed only when its weight is non-zero.  The total is
``sum_k w_k L_k``; with ``self_normalise`` it is ``sum_k w_k L_k / |L_k|`` with
``|L_k|`` detached (the seed's scheme): every term then contributes exactly
``w_k`` to the value of the total and its gradient is ``w_k grad(L_k) / |L_k|``,
i.e. each term's *relative* change is weighted by ``w_k`` whatever the term's
scale.  ``|L_k|`` is clamped below by the smallest normal number of the dtype
so an exactly-zero term contributes 0 instead of NaN.

With ``stop_gradient_target`` the encoded-truth branch (``true_dz``,
``true_z``) is detached inside, so gradients reach the encoder only through
the prediction.  Terms are evaluated in the fixed order of the registry, so
every rank calls ``reduce`` in the same order.

Precision: the sums are accumulated in the inputs' dtype.  ``__call__`` turns
autocast off and casts float16/bfloat16 inputs to float32, so a bf16-autocast
forward pass still gets float32 moments (a bf16 sum of squares over a globe
would lose all precision).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from mlscam.losses.ccc import ccc_loss
from mlscam.losses.embedding import barlow_twins_loss, vicreg_loss
from mlscam.losses.pointwise import mae_loss, mse_loss
from mlscam.losses.registry import TERM_INPUTS, TERM_NAMES, term, term_weights
from mlscam.losses.statistics import Reduce

__all__ = ["LossComputer", "TERM_INPUTS"]

_TARGET_BRANCH = ("true_dz", "true_z")


class LossComputer:
    """Computes the configured loss terms and their weighted total.

    Build it from the ``&loss`` group: ``config.loss.build()`` (or ``LossComputer(config.loss)``).
    ``config`` is duck-typed: one weight attribute per registered term, ``barlow_lambda``,
    ``vicreg_sim``, ``vicreg_var``, ``vicreg_cov``, ``self_normalise`` and ``stop_gradient_target``.
    """

    def __init__(self, config: Any):
        weights = term_weights(config)
        bad = {k: v for k, v in weights.items() if not v >= 0.0 or v == float("inf")}
        if bad:
            raise ValueError(f"&loss weights must be finite and >= 0, got {bad}")
        if not any(weights.values()):
            raise ValueError(
                f"every &loss weight is 0 ({', '.join(TERM_NAMES)}); set at least one, e.g. &loss mse = 1.0"
            )
        self.config = config
        #: The active terms (non-zero weight) and their weights, in evaluation order.
        self.weights: dict[str, float] = {k: v for k, v in weights.items() if v != 0.0}

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """Keyword arguments that ``__call__`` needs for the active terms."""
        names: list[str] = []
        for name in self.weights:
            names += [n for n in TERM_INPUTS[name] if n not in names]
        return tuple(names)

    def _term(self, name: str, pred: Tensor, true: Tensor, weights: Optional[Tensor], reduce: Optional[Reduce]):
        c, kind = self.config, term(name).kind
        if kind == "mse":
            return mse_loss(pred, true, weights=weights, reduce=reduce)
        if kind == "mae":
            return mae_loss(pred, true, weights=weights, reduce=reduce)
        if kind == "ccc":
            return ccc_loss(pred, true, weights=weights, reduce=reduce)
        if kind == "barlow":
            return barlow_twins_loss(pred, true, lambda_offdiag=c.barlow_lambda, reduce=reduce)
        if kind == "vicreg":
            return vicreg_loss(pred, true, sim=c.vicreg_sim, var=c.vicreg_var, cov=c.vicreg_cov, reduce=reduce)
        raise AssertionError(f"loss term {name!r} has kind {kind!r}, which LossComputer does not know")

    def __call__(
        self,
        *,
        pred_state: Optional[Tensor] = None,
        true_state: Optional[Tensor] = None,
        pred_dz: Optional[Tensor] = None,
        true_dz: Optional[Tensor] = None,
        pred_tendency: Optional[Tensor] = None,
        true_tendency: Optional[Tensor] = None,
        pred_increment: Optional[Tensor] = None,
        true_increment: Optional[Tensor] = None,
        pred_z: Optional[Tensor] = None,
        true_z: Optional[Tensor] = None,
        pred_recon: Optional[Tensor] = None,
        true_recon: Optional[Tensor] = None,
        weights: Optional[Tensor] = None,
        reduce: Optional[Reduce] = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted total loss and every term.

        Args:
          pred_state, true_state: decoded and true normalised states ``[..., ncol, C]``.
          pred_dz, true_dz: predicted and encoded-truth latent increments ``[..., ncol, D]``.
          pred_tendency, true_tendency: tendency-decoder output and true normalised tendencies ``[..., ncol, C]``.
          pred_increment, true_increment: decoded one-step change ``decode(z[k]) - decode(z[k-1])`` and the
            true ``x[k] - x[k-1]``, both in tendency units (``(dx - tendency_mean) / tendency_std``) ``[..., ncol, C]``.
          pred_z, true_z: predicted latent and encoded truth ``[..., ncol, D]``.
          pred_recon, true_recon: ``decode(encode(x))`` and the normalised state ``x`` ``[..., ncol, C]``.
          weights: area weights broadcastable to ``[..., ncol]`` (used by mse, mae, ccc, ccc_latent,
            tendency_mse, increment, latent_mse; Barlow Twins and VICReg are unweighted).
          reduce: sum over ranks of local sums (see ``mlscam.losses``); None when serial.

        Returns:
          ``(total, terms)``: ``total`` 0-d with gradient; ``terms`` holds detached 0-d tensors
          (call ``.item()`` when logging): ``terms[name]`` the raw loss of each active term,
          ``terms[name + "_weighted"]`` its contribution to the total, ``vicreg_invariance``,
          ``vicreg_variance``, ``vicreg_covariance`` when VICReg is on, and ``total``.

        Raises:
          ValueError: an active term lacks one of its inputs (the message names both).
        """
        inputs = {
            "pred_state": pred_state,
            "true_state": true_state,
            "pred_dz": pred_dz,
            "true_dz": true_dz,
            "pred_tendency": pred_tendency,
            "true_tendency": true_tendency,
            "pred_increment": pred_increment,
            "true_increment": true_increment,
            "pred_z": pred_z,
            "true_z": true_z,
            "pred_recon": pred_recon,
            "true_recon": true_recon,
        }
        for term, w in self.weights.items():
            missing = [n for n in TERM_INPUTS[term] if inputs[n] is None]
            if missing:
                raise ValueError(
                    f"loss term '{term}' has weight {w} but {' and '.join(missing)} "
                    f"{'was' if len(missing) == 1 else 'were'} not given; pass "
                    f"{', '.join(n + '=...' for n in missing)} or set &loss {term} = 0"
                )
        for n, x in inputs.items():
            if x is not None and x.dtype in (torch.float16, torch.bfloat16):
                inputs[n] = x.float()
        if weights is not None and weights.dtype in (torch.float16, torch.bfloat16):
            weights = weights.float()
        if self.config.stop_gradient_target:
            for n in _TARGET_BRANCH:
                if inputs[n] is not None:
                    inputs[n] = inputs[n].detach()
        device_type = next(x for x in inputs.values() if x is not None).device.type
        with torch.autocast(device_type=device_type, enabled=False):
            return self._combine(inputs, weights, reduce)

    def _combine(
        self, inputs: dict[str, Optional[Tensor]], weights: Optional[Tensor], reduce: Optional[Reduce]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        terms: dict[str, Tensor] = {}
        total: Optional[Tensor] = None
        for term, w in self.weights.items():
            pred_name, true_name = TERM_INPUTS[term]
            value = self._term(term, inputs[pred_name], inputs[true_name], weights, reduce)
            if isinstance(value, dict):
                for k, v in value.items():
                    if k != "total":
                        terms[f"{term}_{k}"] = v.detach()
                value = value["total"]
            if self.config.self_normalise:
                scale = value.detach().abs().clamp_min(torch.finfo(value.dtype).tiny)
                contribution = w * value / scale
            else:
                contribution = w * value
            terms[term] = value.detach()
            terms[f"{term}_weighted"] = contribution.detach()
            total = contribution if total is None else total + contribution
        assert total is not None  # the constructor refuses all-zero weights
        terms["total"] = total.detach()
        return total, terms
