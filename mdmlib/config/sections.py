"""The core's typed sections: data, diffusion, model, training, experts, intervals, convergence,
baselines, sampling and metrics. Defaults live here only; the schema checks values and types."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from mdmlib.config.plain import from_dict, to_plain
from mdmlib.intervals.registry import interval_method, method_names
from mdmlib.metrics.inception_weights import check_weights_file


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"  # digits | cifar10 | fashion_mnist | image_folder
    root: str | None = None  # local root for cifar10 / fashion_mnist / image_folder
    download: bool = False  # let torchvision download cifar10 when the root lacks it
    resolution: int = 8  # images are resized to resolution x resolution
    channels: int = 1  # 1 (grey) or 3 (RGB); image_folder converts to this
    val_size: int = 500  # validation images for datasets without an official test split
    max_train: int | None = None  # keep only the first N training images (after shuffling)
    max_val: int | None = None  # keep only the first N validation images
    seed: int = 0  # seed of the train/validation split


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int = 1000  # T, discrete steps; t is indexed 0..T-1 internally (t = 1..T in the paper)
    schedule: str = "cosine"  # linear | cosine


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "unet"  # a name in mdmlib.models.registry; the fields below are the U-Net's
    base_channels: int = 32  # channels at the first resolution
    channel_mult: tuple[int, ...] = (1, 2)  # one entry per resolution level
    num_res_blocks: int = 1  # residual blocks per resolution
    attention_resolutions: tuple[int, ...] = (4,)  # spatial sizes that get self-attention
    channels_per_head: int = 16  # attention head width (ADM's num_head_channels)
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    baseline_iterations: int = 2400  # I_baseline; an expert gets |tau_e|/T of it
    batch_size: int = 128
    learning_rate: float = 2e-4
    ema_decay: float = 0.999
    log_every: int = 50  # steps per logged interval (loss per timestep bin and wall time)
    checkpoint_every: int = 250  # steps between resumable checkpoints
    eval_points: int = 6  # snapshots per run, evenly spaced over its budget, for the evaluation series
    loss_bins: int = 8  # timestep bins of the logged loss (8 matches the paper's Fig. 2)
    threads: int = 1  # CPU threads of one training job (one job = one device)
    data_parallel: int = 1  # processes (GPUs) per training job; > 1 runs it under torchrun (mdmlib.training.distributed)
    seed: int = 0
    recipe: str = "adm"  # the main runs' baseline recipe: adm | p2w | soft_truncation | importance


@dataclass(frozen=True)
class ExpertsConfig:
    intervals: str = "paper"  # how the experts' intervals are chosen: a method of mdmlib.intervals.registry
    n: int = 3  # number of experts (intervals)
    # The 'paper' method's interior boundaries as fractions of T, ascending. [0.1, 0.8] gives
    # the MDM paper's ADM intervals tau_C = (0, 0.1T], tau_B = (0.1T, 0.8T], tau_A = (0.8T, T].
    boundaries: tuple[float, ...] = (0.1, 0.8)


@dataclass(frozen=True)
class IntervalStudyConfig:
    # MDM trained with each method's intervals at equal total iterations (multi-stage Table 4 form).
    methods: tuple[str, ...] = field(default_factory=method_names)  # default: every registered method
    iterations: int = 800  # total over the experts of one method, split by interval size


@dataclass(frozen=True)
class ConvergenceConfig:
    # MDM's rule: converged at the first point after which the FID changes by less than
    # max_change for `consecutive` points and lies within max_gap_to_best of the best FID.
    # The paper's 0.1 / 3 / 0.3 are Inception-FID units on CIFAR-10. Either threshold may be given
    # as a multiple of the FID's measured spread between sample sets, "0.5 sd" (both then in sd).
    max_change: float | str = 0.1
    consecutive: int = 3
    max_gap_to_best: float | str = 0.3

    def rule(self):
        """The typed rule (mdmlib.studies.convergence_rule.ConvergenceRule)."""
        from mdmlib.studies.convergence_rule import ConvergenceRule

        (change, in_sd), (gap, _) = sd_value(self.max_change), sd_value(self.max_gap_to_best)  # one unit (checked)
        return ConvergenceRule(change, self.consecutive, gap, in_sd=in_sd)


def sd_value(value: float | str) -> tuple[float, bool]:
    """0.015 -> (0.015, False); "0.5 sd" -> (0.5, True)."""
    if isinstance(value, str):
        number, _, unit = value.partition(" ")
        if unit.strip() != "sd":
            raise ValueError(f"{value!r}: a number, or a multiple of the measured sd written '<x> sd'")
        return float(number), True
    return float(value), False


@dataclass(frozen=True)
class BaselinesConfig:
    # MDM paper Tables 1, 3 and 4 (`snakemake baselines`): each baseline with and without MDM.
    recipes: tuple[str, ...] = ("adm", "p2w", "soft_truncation")  # Table 3 rows; Table 1 adds 'importance'
    iterations: int | None = None  # each baseline's budget (its MDM splits the same); None: training.baseline_iterations
    soft_truncation_boundaries: tuple[float, ...] = (0.2, 0.6)  # the paper's split for Soft-truncation+MDM


@dataclass(frozen=True)
class IntervalsConfig:
    study: IntervalStudyConfig = field(default_factory=IntervalStudyConfig)
    seed: int = 0  # noise and image draws of the analyses
    # intervals.<method>: the settings of every registered method that has some (its
    # registry entry names their dataclass), so a new method needs no field here
    methods: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for name in method_names():
            settings = interval_method(name).settings
            if settings is not None and name not in self.methods:
                object.__setattr__(self, "methods", {**self.methods, name: settings()})

    def settings(self, method: str) -> Any:
        """The settings of ``method`` (None for a method without settings)."""
        return self.methods.get(method)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> IntervalsConfig:
        values = dict(values)  # the methods' blocks given here; __post_init__ fills the others' defaults
        methods = {name: from_dict(interval_method(name).settings, values.pop(name)) for name in method_names()
                   if interval_method(name).settings is not None and name in values}
        study = from_dict(IntervalStudyConfig, values.pop("study", None))
        return from_dict(cls, {**values, "study": study, "methods": methods})

    def to_plain(self) -> dict[str, Any]:
        """The YAML's shape: each method's block beside study and seed."""
        return {**{k: to_plain(v) for k, v in self.methods.items()}, "study": to_plain(self.study), "seed": self.seed}


@dataclass(frozen=True)
class SamplingConfig:
    steps: int = 50  # DDIM steps
    eta: float = 0.0  # 0 = deterministic DDIM
    num_samples: int = 500  # images per evaluation point
    batch_size: int = 500
    seed: int = 0  # sample i uses seed + i
    threads: int = 1
    grid_size: int = 8  # the sample grid is grid_size x grid_size
    # disjoint sample sets (seed set s draws seeds seed + s * num_samples + i): every point of the
    # main runs and the interval study, and the points the other targets' tables read (the
    # baseline study's best points, the multi-stage ablations' end points); tables give mean (sd)
    seed_sets: int = 5


@dataclass(frozen=True)
class FeatureNetConfig:
    width: int = 32  # channels of the first conv layer
    feature_dim: int = 64  # pool feature size (FID, precision, recall)
    spatial_channels: int = 2  # first channels of the intermediate map kept for sFID (keep C x H x W well below the samples)
    epochs: int = 15
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class MetricsConfig:
    features: str = "classifier"  # classifier (trained here, offline) | inception
    # torch-fidelity's weights-inception-2015-12-05-6726825d.pth for 'inception';
    # None: torch-fidelity downloads it into the torch hub cache (needs the internet)
    inception_weights: str | None = None
    pr_k: int = 3  # nearest neighbour of the precision/recall radius
    block_size: int = 10000  # rows/cols per distance block
    feature_net: FeatureNetConfig = field(default_factory=FeatureNetConfig)
    # the images the samples are compared with: validation (the MDM paper's), training (the ADM
    # evaluator's) or both; `make bench`'s fid_precision measures the spread each gives
    reference: str = "validation"

    def __post_init__(self):
        # At config load, so a missing weights file stops the run before any job starts.
        if self.features == "inception" and self.inception_weights is not None:
            check_weights_file(self.inception_weights)
