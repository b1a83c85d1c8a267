"""The namelist groups: one frozen dataclass per group, each checking itself, and ``Config`` holding them all.

The public home of these classes is :mod:`mlscam.config` (which re-exports them
and reads, resolves and writes namelists); this module holds the declarations.

Every field carries ``metadata={"doc": ...}`` (``docs/namelist.md`` is generated
from it) and, for paths, ``metadata={"path": "input" | "output"}``.

Groups build what they describe: ``ModelConfig.build(layout)`` -> the
``LatentModel``, ``LossConfig.build()`` -> the ``LossComputer``.  They import
``mlscam.model`` / ``mlscam.losses`` inside the method: config is the layer above
them (they never import it) and this module stays torch-free.  ``LossConfig``
has one weight field per term of ``mlscam.losses.registry`` (checked on import).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

from mlscam._namelist import ConfigError, Group
from mlscam.assets import is_asset
from mlscam.layout import DEFAULT_STATIC_FEATURES
from mlscam.losses.registry import TERM_NAMES as _LOSS_TERMS  # pure Python: no torch

__all__ = ["DEFAULT_CHUNK_SIZE", "LEVEL_SOURCES", "MetaConfig", "DataConfig", "ModelConfig", "LossConfig", "TrainConfig",
           "RolloutConfig", "ParallelConfig", "CouplerConfig", "OutputConfig", "Config", "GROUPS"]

#: Columns per fixed-size chunk of the chunk engine (``&model chunk_size``). Code that runs a model without a
#: ``ModelConfig`` at hand takes its chunk size from the checkpoint's config or from here.
DEFAULT_CHUNK_SIZE = 1024

#: ``&data level_source``: how a file's levels become sigma values (``mlscam.data.levels``).
LEVEL_SOURCES = ("auto", "hybrid", "coordinate")


def _f(default, doc, **meta):
    """A dataclass field with documentation metadata."""
    meta["doc"] = doc
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class MetaConfig(Group):
    """``&mlscam``: about the namelist file itself."""

    GROUP: ClassVar[str] = "mlscam"
    host_groups: tuple[str, ...] = _f((), "names of groups that belong to a host model; mlscam ignores them")

    def _validate(self) -> None:
        object.__setattr__(self, "host_groups", tuple(g.lower() for g in self.host_groups))
        self._names("host_groups")
        clash = [g for g in self.host_groups if g in _GROUP_NAMES]
        self._require(not clash, "host_groups",
                      f"{', '.join(clash)} is an mlscam group and cannot be a host group")


@dataclass(frozen=True)
class DataConfig(Group):
    """``&data``: training/evaluation files and the column layout."""

    GROUP: ClassVar[str] = "data"
    files: tuple[str, ...] = _f((), "NetCDF files or globs (concatenated in time unless independent_files)",
                                path="input")
    val_files: tuple[str, ...] = _f((), "validation NetCDF files or globs", path="input")
    variables_3d: tuple[str, ...] = _f(("u", "v", "temperature"), "model names of the 3-D variables")
    variables_2d: tuple[str, ...] = _f(("surface_pressure",), "model names of the 2-D variables")
    file_names_3d: tuple[str, ...] = _f((), "names in the files of variables_3d (default: the same); the "
                                            "checkpoint keeps them: rollout and evaluate use them unless set here")
    file_names_2d: tuple[str, ...] = _f((), "names in the files of variables_2d (default: the same); the "
                                            "checkpoint keeps them: rollout and evaluate use them unless set here")
    level_source: str = _f("auto", "how the sigma value of each level is read: 'hybrid' (hyam*P0/1e5 + hybm of a CAM "
                                   "file; P0 = 1e5 Pa if absent), 'coordinate' (the level dimension's coordinate "
                                   "variable; Pa, hPa and mb are divided by the surface value) or 'auto' (hybrid if "
                                   "the file has hyam and hybm, else coordinate). Training records the one it used "
                                   "in the checkpoint; rollout and evaluate use it unless set here")
    static_features: tuple[str, ...] = _f(DEFAULT_STATIC_FEATURES, "static per-column encoder inputs")
    time_step_hours: float = _f(6.0, "data interval = the model step, hours")
    independent_files: bool = _f(False, "every file is a trajectory of its own (ensemble members, restarts from "
                                        "other states): windows and tendencies never span two files, and the times "
                                        "need not continue from one file to the next")
    stats_path: str = _f("", "normalization statistics NetCDF (python -m mlscam.data.stats)", path="output")
    columns_dir: str = _f("", "single-column tile shards (python -m mlscam.data.prepare_columns)", path="output")
    columns_per_time: int = _f(0, "tiles cut per time when preparing columns (0 = every column)")
    seed: int = _f(0, "seed of the column sampler")

    def _validate(self) -> None:
        for key in ("variables_3d", "variables_2d", "file_names_3d", "file_names_2d", "static_features"):
            self._names(key)
        both = sorted(set(self.variables_3d) & set(self.variables_2d))
        self._require(not both, "variables_2d", f"{', '.join(both)} is also in variables_3d")
        self._require(bool(self.variables_3d or self.variables_2d), "variables_3d",
                      "give at least one variable in variables_3d or variables_2d")
        for dim in ("3d", "2d"):
            names, variables = f"file_names_{dim}", getattr(self, f"variables_{dim}")
            self._require(len(getattr(self, names)) in (0, len(variables)), names,
                          f"must be empty or give one name per entry of variables_{dim} ({len(variables)})")
        self._choice("level_source", LEVEL_SOURCES)
        self._positive("time_step_hours")
        self._at_least(0, "columns_per_time", "seed")


@dataclass(frozen=True)
class ModelConfig(Group):
    """``&model``: encoder, latent mixer and decoder sizes."""

    GROUP: ClassVar[str] = "model"
    latent_dim: int = _f(128, "width of the latent vector of one column")
    encoder_hidden: int = _f(256, "hidden width of the column encoder MLP")
    encoder_layers: int = _f(2, "hidden layers of the column encoder MLP")
    decoder_hidden: int = _f(256, "hidden width of the decoders")
    decoder_layers: int = _f(2, "hidden layers of the decoders")
    mixer: str = _f("conv", "latent mixer: 'mlp' (MLP-mixer over the 9 tokens) or 'conv' (stencil mixing, then channel MLP once per column)")
    mixer_blocks: int = _f(4, "mixer blocks")
    token_hidden: int = _f(32, "hidden width of the token-mixing MLP ('mlp' mixer)")
    channel_hidden: int = _f(512, "hidden width of the channel-mixing MLP")
    stencil_width: int = _f(0, "'conv' mixer: width of the stencil projection 9*latent -> stencil_width and of the "
                               "channel blocks after it (0 = latent_dim). The stencil is linear, so a width below the "
                               "number of stencil features the dynamics needs (gradients of every channel) is a bottleneck")
    heads: int = _f(4, "heads of the token mixing ('mlp' mixer); must divide latent_dim")
    norm: str = _f("layer", "normalisation in the mixer: 'layer' or 'none'")
    activation: str = _f("gelu", "activation: 'gelu' or 'silu'")
    chunk_size: int = _f(DEFAULT_CHUNK_SIZE, "columns per fixed-size chunk (results do not depend on how many columns are stepped together)")
    latent_filter: float = _f(0.0, "grid-scale damping in every latent step: nu in [0, 1], the step adds -nu (z - S z) "
                                   "with S the 1-2-1 x 1-2-1 filter of the column's 3x3 tile (the 2-dx wave loses "
                                   "a fraction nu per step; 0 = off); see mlscam/model/filters.py")
    latent_filter_polar_lat: float = _f(0.0, "poleward of this latitude (degrees) nu grows as cos(polar_lat) / cos(lat), "
                                             "capped at 1 (0 = the same nu everywhere)")
    latent_projection: float = _f(0.0, "pull each stepped latent back towards the encoder's manifold: z <- z + alpha "
                                       "(encode(decode(z)) - z), alpha in [0, 1] (1 = re-encode every step; 0 = off); "
                                       "column-local, one decode and one encode per step")
    latent_projection_every: int = _f(1, "apply the manifold projection on every M-th step only (the steps that "
                                         "bring the run's step count to M, 2M, ...; restarts keep the count), "
                                         "1 = every step; M > 1 saves M-1 of every M decode+encode pairs; the mass "
                                         "fixer, inside the projection, then acts on those steps only")
    latent_substeps: int = _f(1, "sub-steps of the latent step: K > 1 advances each step in K sub-steps of 1/K of "
                                 "the mixer's increment (and of the filter's damping), each from its own 3x3 tile "
                                 "(a halo exchange each), so information travels K cells per step instead of one; "
                                 "K times the mixer's work. 1 = one step (the shipped demo)")
    mass_fixer: bool = _f(False, "conserve the global dry mass: inside the manifold projection, shift the decoded "
                                 "surface_pressure uniformly so its area-weighted global mean stays that of the "
                                 "rollout's initial state (reproducible global sum, bit for bit on any number of "
                                 "ranks); decoded outputs get the same shift, so they keep that mean whatever "
                                 "latent_projection_every (M > 1: only every M-th step fixes the latent itself). "
                                 "Needs latent_projection > 0 and surface_pressure in the column layout; not with "
                                 "&train mode = 'single_column'")
    polar_wind_fixer: int = _f(0, "k > 0: no zonal-mean meridional wind next to the poles: inside the manifold "
                                  "projection (after the mass fixer), subtract from v, at every level of the k "
                                  "latitude rows next to each pole, the row's zonal mean, so [v] = 0 there (mass "
                                  "continuity through a latitude circle around a pole; reproducible global sums, "
                                  "bit for bit on any number of ranks); decoded outputs get the same fix. 0 = off; "
                                  "k <= nlat / 2. Needs latent_projection > 0 and v in the column layout; not with "
                                  "&train mode = 'single_column'; see mlscam/model/polar.py")

    def _validate(self) -> None:
        self._positive("latent_dim", "encoder_hidden", "encoder_layers", "decoder_hidden", "decoder_layers",
                       "mixer_blocks", "token_hidden", "channel_hidden", "heads", "chunk_size",
                       "latent_projection_every", "latent_substeps")
        self._at_least(0, "stencil_width", "latent_filter", "latent_filter_polar_lat", "latent_projection")
        self._require(self.latent_filter <= 1.0, "latent_filter", "must be in [0, 1]")
        self._require(self.latent_projection <= 1.0, "latent_projection", "must be in [0, 1]")
        self._require(not self.mass_fixer or self.latent_projection > 0.0, "mass_fixer",
                      "needs the manifold projection it acts in: set &model latent_projection > 0 (e.g. 0.1), "
                      "or mass_fixer = .false.")
        self._at_least(0, "polar_wind_fixer")
        self._require(self.polar_wind_fixer == 0 or self.latent_projection > 0.0, "polar_wind_fixer",
                      "needs the manifold projection it acts in: set &model latent_projection > 0 (e.g. 0.1), "
                      "or polar_wind_fixer = 0")
        self._require(self.latent_filter_polar_lat < 90.0, "latent_filter_polar_lat", "must be in [0, 90) degrees")
        self._choice("mixer", ("mlp", "conv"))
        self._choice("norm", ("layer", "none"))
        self._choice("activation", ("gelu", "silu"))
        self._require(self.stencil_width == 0 or self.mixer == "conv", "stencil_width",
                      "applies to the 'conv' mixer only; set &model stencil_width = 0 with mixer = 'mlp'")
        self._require(self.latent_dim % self.heads == 0, "heads",
                      f"must divide latent_dim = {self.latent_dim}")

    def build(self, layout):
        """A freshly initialised ``mlscam.model.LatentModel`` of these sizes for the columns of ``layout``
        (a ``ColumnLayout``).  Imports torch (this module does not)."""
        from mlscam.model.network import build_model

        return build_model(self, layout)

    #: keys that do not change the parameters: how the step runs, not what it learned
    RUNTIME_KEYS: ClassVar[tuple[str, ...]] = ("chunk_size", "latent_filter", "latent_filter_polar_lat",
                                               "latent_projection", "latent_projection_every", "mass_fixer",
                                               "polar_wind_fixer", "latent_substeps")

    def same_parameters(self, other: "ModelConfig") -> bool:
        """Whether ``other`` describes the same parameters (all keys but :attr:`RUNTIME_KEYS` equal)."""
        keys = [f.name for f in fields(self) if f.name not in self.RUNTIME_KEYS]
        return all(getattr(self, k) == getattr(other, k) for k in keys)


@dataclass(frozen=True)
class LossConfig(Group):
    """``&loss``: weights of every loss term (0 switches a term off)."""

    GROUP: ClassVar[str] = "loss"
    #: The fields that are not term weights.
    OPTIONS: ClassVar[tuple[str, ...]] = ("barlow_lambda", "vicreg_sim", "vicreg_var", "vicreg_cov", "self_normalise",
                                          "stop_gradient_target")
    mse: float = _f(1.0, "MSE of decoded normalised states")
    mae: float = _f(0.0, "MAE of decoded normalised states")
    ccc: float = _f(0.0, "1 - CCC of decoded states, per channel over space")
    ccc_latent: float = _f(0.0, "1 - CCC of latent increments against encoded-truth increments")
    barlow: float = _f(0.0, "Barlow Twins between predicted and encoded-truth latent increments")
    vicreg: float = _f(0.0, "VICReg between predicted and encoded-truth latent increments")
    tendency_mse: float = _f(0.0, "MSE of the tendency decoder's output against true normalised tendencies")
    increment: float = _f(0.0, "MSE of decoded one-step changes decode(z[k]) - decode(z[k-1]) against the true "
                               "x[k] - x[k-1], in units of the tendency std: the dynamics' error, free of the "
                               "autoencoder's (which is larger than a one-hour change)")
    latent_mse: float = _f(0.0, "MSE between predicted latent and encoded truth")
    reconstruction: float = _f(0.0, "MSE of decode(encode(x)) against x: keeps the latent space an autoencoder's, "
                                    "so stepped latents stay decodable")
    barlow_lambda: float = _f(5e-3, "Barlow Twins off-diagonal weight")
    vicreg_sim: float = _f(25.0, "VICReg invariance weight")
    vicreg_var: float = _f(25.0, "VICReg variance weight")
    vicreg_cov: float = _f(1.0, "VICReg covariance weight")
    self_normalise: bool = _f(False, "weight each term as w*L/|L| (|L| detached), as the seed did")
    stop_gradient_target: bool = _f(True, "stop the gradient through the encoded-truth branch")

    def _validate(self) -> None:
        self._at_least(0.0, *_LOSS_TERMS, "barlow_lambda", "vicreg_sim", "vicreg_var", "vicreg_cov")
        self._require(any(getattr(self, t) > 0 for t in _LOSS_TERMS), "mse",
                      "every loss weight is 0; give at least one of " + ", ".join(_LOSS_TERMS) + " a weight > 0")

    def build(self):
        """The ``mlscam.losses.LossComputer`` of these weights.  Imports torch (this module does not)."""
        from mlscam.losses.combined import LossComputer

        return LossComputer(self)


def _check_loss_fields() -> None:
    """``LossConfig`` has one weight field per term of the registry (``mlscam.losses.registry``), in its order."""
    weights = [f.name for f in fields(LossConfig) if f.name not in LossConfig.OPTIONS]
    if weights != list(_LOSS_TERMS):
        raise ConfigError(f"LossConfig weight fields {weights} differ from the loss terms of mlscam.losses.registry "
                          f"{list(_LOSS_TERMS)}: add or remove the weight field (or the registry entry) so they match")


_check_loss_fields()


@dataclass(frozen=True)
class TrainConfig(Group):
    """``&train``: the training loop."""

    GROUP: ClassVar[str] = "train"
    mode: str = _f("global", "'single_column', 'global' or 'global_rollout'")
    rollout_steps: int = _f(4, "latent steps unrolled in 'global_rollout'")
    pushforward_steps: int = _f(0, "'global_rollout': latent steps run WITHOUT gradients before the rollout_steps "
                                   "with losses, so the model learns from its own drifted states (the "
                                   "'pushforward' trick); windows of pushforward_steps + rollout_steps + 1 states")
    truth_start_every: int = _f(0, "'global_rollout' with pushforward_steps > 0: every truth_start_every-th training "
                                   "step (steps 0, N, 2N, ...) grades the first truth_start_steps steps of its window "
                                   "from the truth, with no pushforward, instead of the steps after it; the others are "
                                   "pushforward steps (0 = off; 2 alternates the short leads with the model's own "
                                   "drifted states; docs/demo_model.md, 'Alternating the two kinds of batches')")
    truth_start_steps: int = _f(24, "with truth_start_every: graded steps from the truth, at most pushforward_steps + "
                                    "rollout_steps (24: the first day at one-hour steps)")
    batch_size: int = _f(4, "samples per optimizer step (times, or tiles in 'single_column')")
    max_steps: int = _f(1000, "optimizer steps")
    lr: float = _f(1e-3, "peak learning rate (AdamW)")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    warmup_steps: int = _f(50, "linear warm-up steps")
    schedule: str = _f("cosine", "decay after warm-up: 'cosine', 'linear' or 'constant'")
    min_lr_ratio: float = _f(0.0, "final learning rate / peak")
    clip_grad_norm: float = _f(1.0, "gradient clipping norm (0 = off)")
    ema_decay: float = _f(0.0, "exponential moving average of the weights (0 = off; e.g. 0.999): validation, "
                               "best.pt and the weights of last.pt are the averaged ones (the raw weights are "
                               "kept in last.pt to resume exactly); the decay is min(ema_decay, (1 + n) / (10 + n)) "
                               "after n updates, so early steps are not averaged with the initial weights")
    grad_checkpointing: bool = _f(False, "recompute mixer activations in backward")
    bf16: bool = _f(False, "bf16 autocast (GPU only)")
    val_every: int = _f(100, "validate every this many steps (0 = never)")
    val_batches: int = _f(4, "validation batches")
    early_stopping_patience: int = _f(0, "validations without improvement before stopping (0 = off)")
    checkpoint_dir: str = _f("checkpoints", "where best.pt and last.pt go", path="output")
    checkpoint_every: int = _f(100, "write last.pt every this many steps")
    resume: str = _f("", "checkpoint to resume from exactly (with its normalization statistics)", path="input")
    init_from: str = _f("", "checkpoint whose weights start this run (fresh optimizer and schedule: fine-tuning, "
                            "e.g. global_rollout after global); the run normalises with the checkpoint's "
                            "statistics, not the data's or data.stats_path's", path="input")
    climate_correction: str = _f("", "a checkpoint whose climate correction (mlscam/model/correction.py, a fixed "
                                     "zonal-mean forcing inside the manifold projection) the training step "
                                     "applies: the weather unrolls, the free-run chain and the climate score step "
                                     "with it, and the run's checkpoints carry it ('' = none; e.g. the init_from "
                                     "model's own, from python -m mlscam.train.correction)", path="input")
    correction_every: int = _f(0, "adapt the step's climate correction during training (0 = off; needs "
                                  "free_run_weight > 0 and &model latent_projection > 0): every correction_every "
                                  "training steps, once the free-run chain's running means are warm, the forcing "
                                  "of climate_variables is updated by -bias / correction_response_days, bias = the "
                                  "chain's running zonal mean minus the training data's (an online flux "
                                  "adjustment; starts from climate_correction's, or from none; the checkpoints "
                                  "carry it; docs/design.md, 'A climatological correction')")
    correction_response_days: float = _f(160.0, "with correction_every: days in each update -bias / days (the "
                                                "offline estimate's full update is 1 / 20 days after a 210-day "
                                                "mean; the chain's means are about 40 days long, so smaller "
                                                "steps, more often)")
    correction_symmetric: bool = _f(False, "with correction_every: update with the bias averaged over the two "
                                           "hemispheres (a truth forced symmetrically about the equator, e.g. "
                                           "Held-Suarez; not for real geography)")
    init_partial: bool = _f(False, "with init_from: accept a checkpoint with another &model and load only the "
                                   "parameters whose names and shapes match (e.g. a wider mixer on trained "
                                   "encoder/decoder); the others start fresh and are listed")
    climate_truth: str = _f("", "climate scoring at each validation ('' = off): the truth_summary.json of a long run "
                                "of the validation data's model (`python -m mlscam.evaluate climate` writes it); "
                                "the model (averaged weights with ema_decay) is rolled out climate_days from time 0 "
                                "of the first val_files file with its &model stabilisers and fixers (with the "
                                "&rollout overrides, as a forecast of this namelist), and scored "
                                "against it (docs/design.md, 'Choosing by climate')", path="input")
    climate_days: float = _f(120.0, "length of the climate-scoring rollout in days (decoded once a day)")
    climate_spinup_days: float = _f(30.0, "days of the climate-scoring rollout left out of its statistics")
    climate_variables: tuple[str, ...] = _f(("temperature", "u"), "variables of the climate score (model names)")
    climate_tolerances: tuple[float, ...] = _f((1.5, 2.0), "per climate_variables entry: the zonal-mean bias (RMS "
                                                           "over latitude and level, in the variable's units) "
                                                           "that counts 1 in the climate score")
    free_run_weight: float = _f(0.0, "weight of the free-run climate term (0 = off; 'global', 'global_rollout', "
                                     "one rank): a free-running globe of the model's own, advanced free_run_steps "
                                     "without gradients and free_run_graded with them every training step, is held "
                                     "to the climate of the &data files (zonal means and eddy variance of "
                                     "climate_variables, tolerances climate_tolerances; docs/design.md, 'Training "
                                     "on the model's own climate')")
    free_run_eddy: float = _f(1.0, "weight of the eddy-variance part of the free-run term, relative to its "
                                   "zonal-mean part (0 = held to the zonal means only, which the demo paid for "
                                   "with half its eddy variance; the shipped demo: 1 with free_run_weight = 0.01, "
                                   "docs/demo_model.md stage 15)")
    free_run_steps: int = _f(24, "free-run chain: steps without gradients per training step")
    free_run_graded: int = _f(6, "free-run chain: steps with gradients per training step (their decoded states are "
                                 "scored; 6 halved the demo's one-year biases against 2, docs/demo_model.md stage 16)")
    free_run_memory: float = _f(0.97, "free-run chain: weight of the old value in the running means of its climate, "
                                      "per training step (0.97: about the last 33 training steps; the term gives "
                                      "a gradient once the means hold 1 / (1 - free_run_memory) of them)")
    select_by: str = _f("val_loss", "what best.pt minimises: 'val_loss' or 'climate' (the climate score; needs "
                                    "climate_truth)")
    on_the_fly: bool = _f(False, "'single_column': sample tiles from the files instead of prepared shards")
    mirror: bool = _f(False, "hemispheric mirror augmentation ('global', 'global_rollout'): each training window is "
                             "flipped north-south with probability 1/2 and the variables of mirror_negate change "
                             "sign; valid where the forcing is symmetric about the equator (Held-Suarez, "
                             "aquaplanets), not for real geography")
    mirror_negate: tuple[str, ...] = _f(("v",), "variables whose sign flips in a mirrored window (the meridional "
                                                "wind; model names of &data variables_3d/variables_2d)")
    seed: int = _f(0, "seed of initialisation, sampling and noise")

    def _validate(self) -> None:
        self._choice("mode", ("single_column", "global", "global_rollout"))
        self._choice("schedule", ("cosine", "linear", "constant"))
        self._positive("rollout_steps", "batch_size", "lr", "val_batches", "checkpoint_every")
        self._at_least(0, "max_steps", "warmup_steps", "val_every", "early_stopping_patience", "seed",
                       "pushforward_steps")
        self._require(self.pushforward_steps == 0 or self.mode == "global_rollout", "pushforward_steps",
                      "applies to mode = 'global_rollout' only; set 0 or use that mode")
        self._at_least(0, "truth_start_every")
        self._positive("truth_start_steps")
        self._require(self.truth_start_every == 0 or (self.mode == "global_rollout" and self.pushforward_steps > 0),
                      "truth_start_every", "alternates with pushforward steps: needs mode = 'global_rollout' and "
                      "pushforward_steps > 0, or set 0")
        self._require(self.truth_start_every == 0
                      or self.truth_start_steps <= self.pushforward_steps + self.rollout_steps, "truth_start_steps",
                      f"must fit the window of pushforward_steps + rollout_steps = "
                      f"{self.pushforward_steps + self.rollout_steps} steps")
        self._require(not self.mirror or self.mode != "single_column", "mirror",
                      "applies to the whole-globe modes 'global' and 'global_rollout'; set .false. for "
                      "'single_column'")
        self._at_least(0.0, "weight_decay", "clip_grad_norm")
        self._require(0.0 <= self.ema_decay < 1.0, "ema_decay", "must be in [0, 1) (0 = off; e.g. 0.999)")
        self._choice("select_by", ("val_loss", "climate"))
        self._require(self.select_by != "climate" or self.climate_truth != "", "select_by",
                      "'climate' needs &train climate_truth (a truth_summary.json of the validation climate)")
        self._require(self.climate_truth == "" or self.val_every > 0, "climate_truth",
                      "is scored at each validation; set &train val_every > 0")
        self._require(self.climate_truth == "" or self.mode != "single_column", "climate_truth",
                      "scores whole-globe rollouts; use mode 'global' or 'global_rollout'")
        self._require(0.0 <= self.climate_spinup_days < self.climate_days, "climate_spinup_days",
                      f"must be >= 0 and below climate_days ({self.climate_days:g})")
        self._require(len(self.climate_variables) > 0 and len(self.climate_tolerances) == len(self.climate_variables),
                      "climate_tolerances", f"needs one value per climate_variables entry "
                                            f"({len(self.climate_variables)}), got {len(self.climate_tolerances)}")
        self._require(all(t > 0 for t in self.climate_tolerances), "climate_tolerances", "must all be > 0")
        self._at_least(0.0, "free_run_weight", "free_run_eddy")
        self._at_least(0, "free_run_steps")
        self._positive("free_run_graded")
        self._require(0.0 <= self.free_run_memory < 1.0, "free_run_memory", "must be in [0, 1) (e.g. 0.99)")
        self._require(self.free_run_weight == 0.0 or self.mode != "single_column", "free_run_weight",
                      "runs a whole globe; use mode 'global' or 'global_rollout', or set free_run_weight = 0")
        self._at_least(0, "correction_every")
        self._require(self.correction_every == 0 or self.free_run_weight > 0.0, "correction_every",
                      "adapts the correction from the free-run chain's climate: set free_run_weight > 0, or "
                      "correction_every = 0")
        self._require(self.correction_response_days > 0.0, "correction_response_days", "must be > 0 (days)")
        self._require(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", "must be between 0 and 1")
        self._require(self.checkpoint_dir != "", "checkpoint_dir",
                      "must name a directory ('.' = output.directory itself)")


@dataclass(frozen=True)
class RolloutConfig(Group):
    """``&rollout``: a forecast from a checkpoint and an initial state."""

    GROUP: ClassVar[str] = "rollout"
    checkpoint_path: str = _f("mlscam:demo/checkpoint.pt", "trained checkpoint", path="input")
    input_nc_path: str = _f("mlscam:demo/initial_state.nc", "NetCDF with the initial state", path="input")
    output_nc_path: str = _f("forecast.nc", "forecast NetCDF", path="output")
    start_time: int = _f(0, "time index of the initial state in input_nc_path")
    num_steps: int = _f(40, "model steps to run")
    output_every: int = _f(4, "decode and write every this many steps")
    output_initial: bool = _f(False, "also write the decoded initial state (lead 0: the state the run starts from) "
                                     "as the first record; with num_steps = 0 it is the only one")
    restart_in: str = _f("", "restart file to continue from", path="input")
    restart_out: str = _f("", "restart file written at the end", path="output")
    allow_other_grid: bool = _f(False, "run a checkpoint on a grid other than its training grid")
    latent_filter: float = _f(-1.0, "override the checkpoint's &model latent_filter at inference (-1 = keep the "
                                    "checkpoint's; 0 = off)")
    latent_filter_polar_lat: float = _f(-1.0, "override the checkpoint's &model latent_filter_polar_lat (-1 = keep)")
    latent_projection: float = _f(-1.0, "override the checkpoint's &model latent_projection (-1 = keep; 0 = off)")
    latent_projection_every: int = _f(0, "override the checkpoint's &model latent_projection_every (0 = keep)")
    latent_substeps: int = _f(0, "override the checkpoint's &model latent_substeps (0 = keep)")
    mass_fixer: int = _f(-1, "override the checkpoint's &model mass_fixer (-1 = keep; 0 = off; 1 = on, which needs "
                             "a latent projection > 0)")
    polar_wind_fixer: int = _f(-1, "override the checkpoint's &model polar_wind_fixer (-1 = keep; 0 = off; k > 0 = "
                                   "[v] = 0 in the k rows next to each pole, which needs a latent projection > 0)")
    climate_correction: int = _f(1, "1 = apply the checkpoint's climate correction when it carries one (a fixed "
                                    "zonal-mean forcing inside the manifold projection, mlscam/model/correction.py); "
                                    "0 = off")
    chunk_size: int = _f(0, "columns per fixed-size chunk at inference (0 = the checkpoint's &model chunk_size); "
                            "results are independent of the decomposition for any one value, and differ in the "
                            "last bits between values; a GPU runs larger chunks faster")
    precision: str = _f("fp32", "latent step precision: 'fp32' (exact) or 'bf16' (the mixer's matrix products under "
                                "bfloat16 autocast, latents kept in float32; encode/decode stay fp32)")

    def _validate(self) -> None:
        self._at_least(0, "start_time", "num_steps", "chunk_size", "latent_projection_every", "latent_substeps")
        self._choice("precision", ("fp32", "bf16"))
        self._require(self.latent_filter == -1.0 or 0.0 <= self.latent_filter <= 1.0, "latent_filter",
                      "must be -1 (keep the checkpoint's) or in [0, 1]")
        self._require(self.latent_filter_polar_lat == -1.0 or 0.0 <= self.latent_filter_polar_lat < 90.0,
                      "latent_filter_polar_lat", "must be -1 (keep the checkpoint's) or in [0, 90) degrees")
        self._require(self.latent_projection == -1.0 or 0.0 <= self.latent_projection <= 1.0, "latent_projection",
                      "must be -1 (keep the checkpoint's) or in [0, 1]")
        self._require(self.mass_fixer in (-1, 0, 1), "mass_fixer",
                      "must be -1 (keep the checkpoint's), 0 (off) or 1 (on)")
        self._require(self.mass_fixer != 1 or self.latent_projection != 0.0, "mass_fixer",
                      "= 1 needs the manifold projection it acts in, but &rollout latent_projection = 0 switches it "
                      "off: set latent_projection > 0 (or -1 to keep the checkpoint's), or mass_fixer = 0")
        self._require(self.polar_wind_fixer >= -1, "polar_wind_fixer",
                      "must be -1 (keep the checkpoint's), 0 (off) or k > 0 (the rows next to each pole)")
        self._require(self.polar_wind_fixer <= 0 or self.latent_projection != 0.0, "polar_wind_fixer",
                      "> 0 needs the manifold projection it acts in, but &rollout latent_projection = 0 switches it "
                      "off: set latent_projection > 0 (or -1 to keep the checkpoint's), or polar_wind_fixer = 0")
        self._positive("output_every")
        self._require(self.climate_correction in (0, 1), "climate_correction",
                      "must be 1 (apply the checkpoint's correction, if any) or 0 (off)")


@dataclass(frozen=True)
class ParallelConfig(Group):
    """``&parallel``: decomposition, devices and threads."""

    GROUP: ClassVar[str] = "parallel"
    layout: tuple[int, ...] = _f((0, 0), "ranks along (lat, lon); 0,0 = chosen from the rank count")
    device: str = _f("auto", "'auto' (cuda:<node-local rank> if GPUs, else cpu), 'cpu' or 'cuda'")
    threads: int = _f(0, "torch threads per rank (0 = the cores the rank owns, at least 1)")
    deterministic: bool = _f(True, "deterministic algorithms (bit-for-bit across rank counts)")
    time_groups: int = _f(1, "tile-parallel training: groups of ranks working on different times of each batch "
                             "(must divide the number of ranks)")
    cuda_graph: bool = _f(False, "replay the latent steps from CUDA graphs (a GPU device; same results as eager; "
                                 "on a CPU the steps run eagerly with a warning)")

    def _validate(self) -> None:
        self._require(len(self.layout) == 2 and min(self.layout) >= 0, "layout",
                      "must be two non-negative integers (ranks along lat, lon), e.g. 2, 4; 0, 0 = automatic")
        self._choice("device", ("auto", "cpu", "cuda"))
        self._at_least(0, "threads")
        self._positive("time_groups")


@dataclass(frozen=True)
class CouplerConfig(Group):
    """``&coupler``: the component called by a host model."""

    GROUP: ClassVar[str] = "coupler"
    coupling_interval_seconds: float = _f(0.0, "host coupling interval; must equal the checkpoint's step (0 = take the checkpoint's)")

    def _validate(self) -> None:
        self._at_least(0.0, "coupling_interval_seconds")


@dataclass(frozen=True)
class OutputConfig(Group):
    """``&output``: where outputs go."""

    GROUP: ClassVar[str] = "output"
    directory: str = _f(".", "output directory; relative to the working directory; every output path resolves against it")
    quicklook: bool = _f(True, "write a PNG quick-look next to forecast files")
    progress: bool = _f(True, "show progress bars")

    def _validate(self) -> None:
        self._require(self.directory != "", "directory", "must name a directory ('.' = the working directory)")
        self._require(not is_asset(self.directory), "directory",
                      "package assets are read-only; give a directory to write to")


@dataclass(frozen=True)
class Config:
    """All groups of one namelist file."""

    mlscam: MetaConfig = field(default_factory=MetaConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    coupler: CouplerConfig = field(default_factory=CouplerConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        for name, cls in GROUPS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"Config.{name} must be a {cls.__name__}, got {getattr(self, name)!r}")
        if self.model.mass_fixer and self.train.mode == "single_column":
            raise ConfigError("&model mass_fixer = .true. with &train mode = 'single_column': the fixer conserves a "
                              "global mean, and single-column training steps independent 3x3 tiles with no globe; "
                              "train with mode = 'global' or 'global_rollout', or set mass_fixer = .false.")
        if self.model.polar_wind_fixer and self.train.mode == "single_column":
            raise ConfigError(f"&model polar_wind_fixer = {self.model.polar_wind_fixer} with &train mode = "
                              "'single_column': the fixer removes zonal means over whole latitude rows, and "
                              "single-column training steps independent 3x3 tiles with no globe; train with mode = "
                              "'global' or 'global_rollout', or set polar_wind_fixer = 0")


#: group name -> dataclass, in namelist order.
GROUPS: dict[str, type] = {
    "mlscam": MetaConfig, "data": DataConfig, "model": ModelConfig, "loss": LossConfig,
    "train": TrainConfig, "rollout": RolloutConfig, "parallel": ParallelConfig,
    "coupler": CouplerConfig, "output": OutputConfig,
}
_GROUP_NAMES = frozenset(GROUPS)
