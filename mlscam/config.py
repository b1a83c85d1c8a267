"""Namelist configuration: one frozen dataclass per namelist group.

Every field carries ``metadata={"doc": ...}`` (the reference in
``docs/namelist.md`` is generated from it) and, for paths,
``metadata={"path": "input" | "output"}``.

NOTE: this is the field skeleton; the strict f90nml loader, overrides, path
resolution and the ``validate`` command are built on top of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ConfigError",
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
]


class ConfigError(ValueError):
    """A namelist problem; the message names the group, the key, the bad value and what is allowed."""


def _f(default, doc, **meta):
    """A dataclass field with documentation metadata."""
    meta["doc"] = doc
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class MetaConfig:
    """``&mlscam``: about the namelist file itself."""

    host_groups: tuple[str, ...] = _f((), "names of groups that belong to a host model; mlscam ignores them")


@dataclass(frozen=True)
class DataConfig:
    """``&data``: training/evaluation files and the column layout."""

    files: tuple[str, ...] = _f((), "NetCDF files or globs (concatenated in time)", path="input")
    val_files: tuple[str, ...] = _f((), "validation NetCDF files or globs", path="input")
    variables_3d: tuple[str, ...] = _f(("u", "v", "temperature"), "model names of the 3-D variables")
    variables_2d: tuple[str, ...] = _f(("surface_pressure",), "model names of the 2-D variables")
    file_names_3d: tuple[str, ...] = _f((), "names in the files of variables_3d (default: the same)")
    file_names_2d: tuple[str, ...] = _f((), "names in the files of variables_2d (default: the same)")
    static_features: tuple[str, ...] = _f(("sin_lat", "cos_lat"), "static per-column encoder inputs")
    time_step_hours: float = _f(6.0, "data interval = the model step, hours")
    stats_path: str = _f("", "normalization statistics NetCDF (python -m mlscam.data.stats)", path="output")
    columns_dir: str = _f("", "single-column tile shards (python -m mlscam.data.prepare_columns)", path="output")
    columns_per_time: int = _f(0, "tiles cut per time when preparing columns (0 = every column)")
    seed: int = _f(0, "seed of the column sampler")


@dataclass(frozen=True)
class ModelConfig:
    """``&model``: encoder, latent mixer and decoder sizes."""

    latent_dim: int = _f(128, "width of the latent vector of one column")
    encoder_hidden: int = _f(256, "hidden width of the column encoder MLP")
    encoder_layers: int = _f(2, "hidden layers of the column encoder MLP")
    decoder_hidden: int = _f(256, "hidden width of the decoders")
    decoder_layers: int = _f(2, "hidden layers of the decoders")
    mixer: str = _f("conv", "latent mixer: 'mlp' (MLP-mixer over the 9 tokens) or 'conv' (stencil mixing, then channel MLP once per column)")
    mixer_blocks: int = _f(4, "mixer blocks")
    token_hidden: int = _f(32, "hidden width of the token-mixing MLP ('mlp' mixer)")
    channel_hidden: int = _f(512, "hidden width of the channel-mixing MLP")
    heads: int = _f(4, "heads of the token mixing ('mlp' mixer); must divide latent_dim")
    norm: str = _f("layer", "normalisation in the mixer: 'layer' or 'none'")
    activation: str = _f("gelu", "activation: 'gelu' or 'silu'")
    chunk_size: int = _f(1024, "columns per fixed-size chunk (results do not depend on how many columns are stepped together)")


@dataclass(frozen=True)
class LossConfig:
    """``&loss``: weights of every loss term (0 switches a term off)."""

    mse: float = _f(1.0, "MSE of decoded normalised states")
    mae: float = _f(0.0, "MAE of decoded normalised states")
    ccc: float = _f(0.0, "1 - CCC of decoded states, per channel over space")
    ccc_latent: float = _f(0.0, "1 - CCC of latent increments against encoded-truth increments")
    barlow: float = _f(0.0, "Barlow Twins between predicted and encoded-truth latent increments")
    vicreg: float = _f(0.0, "VICReg between predicted and encoded-truth latent increments")
    tendency_mse: float = _f(0.0, "MSE of the tendency decoder's output against true normalised tendencies")
    latent_mse: float = _f(0.0, "MSE between predicted latent and encoded truth")
    barlow_lambda: float = _f(5e-3, "Barlow Twins off-diagonal weight")
    vicreg_sim: float = _f(25.0, "VICReg invariance weight")
    vicreg_var: float = _f(25.0, "VICReg variance weight")
    vicreg_cov: float = _f(1.0, "VICReg covariance weight")
    self_normalise: bool = _f(False, "weight each term as w*L/|L| (|L| detached), as the seed did")
    stop_gradient_target: bool = _f(True, "stop the gradient through the encoded-truth branch")


@dataclass(frozen=True)
class TrainConfig:
    """``&train``: the training loop."""

    mode: str = _f("global", "'single_column', 'global' or 'global_rollout'")
    rollout_steps: int = _f(4, "latent steps unrolled in 'global_rollout'")
    batch_size: int = _f(4, "samples per optimizer step (times, or tiles in 'single_column')")
    max_steps: int = _f(1000, "optimizer steps")
    lr: float = _f(1e-3, "peak learning rate (AdamW)")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    warmup_steps: int = _f(50, "linear warm-up steps")
    schedule: str = _f("cosine", "decay after warm-up: 'cosine', 'linear' or 'constant'")
    min_lr_ratio: float = _f(0.0, "final learning rate / peak")
    clip_grad_norm: float = _f(1.0, "gradient clipping norm (0 = off)")
    grad_checkpointing: bool = _f(False, "recompute mixer activations in backward")
    bf16: bool = _f(False, "bf16 autocast (GPU only)")
    val_every: int = _f(100, "validate every this many steps (0 = never)")
    val_batches: int = _f(4, "validation batches")
    early_stopping_patience: int = _f(0, "validations without improvement before stopping (0 = off)")
    checkpoint_dir: str = _f("checkpoints", "where best.pt and last.pt go", path="output")
    checkpoint_every: int = _f(100, "write last.pt every this many steps")
    resume: str = _f("", "checkpoint to resume from exactly", path="input")
    on_the_fly: bool = _f(False, "'single_column': sample tiles from the files instead of prepared shards")
    seed: int = _f(0, "seed of initialisation, sampling and noise")


@dataclass(frozen=True)
class RolloutConfig:
    """``&rollout``: a forecast from a checkpoint and an initial state."""

    checkpoint_path: str = _f("mlscam:demo/checkpoint.pt", "trained checkpoint", path="input")
    input_nc_path: str = _f("mlscam:demo/initial_state.nc", "NetCDF with the initial state", path="input")
    output_nc_path: str = _f("forecast.nc", "forecast NetCDF", path="output")
    start_time: int = _f(0, "time index of the initial state in input_nc_path")
    num_steps: int = _f(40, "model steps to run")
    output_every: int = _f(4, "decode and write every this many steps")
    restart_in: str = _f("", "restart file to continue from", path="input")
    restart_out: str = _f("", "restart file written at the end", path="output")
    allow_other_grid: bool = _f(False, "run a checkpoint on a grid other than its training grid")


@dataclass(frozen=True)
class ParallelConfig:
    """``&parallel``: decomposition, devices and threads."""

    layout: tuple[int, ...] = _f((0, 0), "ranks along (lat, lon); 0,0 = chosen from the rank count")
    device: str = _f("auto", "'auto' (cuda:<node-local rank> if GPUs, else cpu), 'cpu' or 'cuda'")
    threads: int = _f(0, "torch threads per rank (0 = the cores the rank owns, at least 1)")
    deterministic: bool = _f(True, "deterministic algorithms (bit-for-bit across rank counts)")


@dataclass(frozen=True)
class CouplerConfig:
    """``&coupler``: the component called by a host model."""

    coupling_interval_seconds: float = _f(0.0, "host coupling interval; must equal the checkpoint's step (0 = take the checkpoint's)")


@dataclass(frozen=True)
class OutputConfig:
    """``&output``: where outputs go."""

    directory: str = _f(".", "output directory; relative to the working directory")
    quicklook: bool = _f(True, "write a PNG quick-look next to forecast files")
    progress: bool = _f(True, "show progress bars")


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
