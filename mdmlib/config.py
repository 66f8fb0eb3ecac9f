"""Typed configuration: one dataclass per concern, built once from the YAML.

The JSON schema in ``schemas/config.schema.yaml`` validates values and fills
defaults before these objects are built; the dataclasses only give the rest of
the library names and types instead of nested dictionaries.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from mdmlib.intervals.registry import interval_method, method_names
from mdmlib.metrics.inception_weights import check_weights_file
from mdmlib.models.registry import architecture, architecture_names

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


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


@dataclass(frozen=True)
class EncoderDecoderSplit:  # one row of the Table 7 form, in multiples of model.base_channels
    encoder: float  # the shared encoder's base width
    # each stage's decoder base width, clean to noisy; resampled linearly onto the stage count
    # when it has another length, so a split stays valid for any experts.n
    decoders: tuple[float, ...]

    @classmethod
    def from_values(cls, values: dict) -> "EncoderDecoderSplit":
        if not isinstance(values, dict) or set(values) != {"encoder", "decoders"}:
            raise ValueError(f"config key 'multistage.splits': each split is {{encoder: <multiple>, decoders: "
                             f"[<multiple per stage>]}}, got {values!r}")
        return cls(float(values["encoder"]), tuple(float(w) for w in values["decoders"]))


@dataclass(frozen=True)
class MultistageConfig:  # the multi-stage paper: a shared encoder, one decoder per stage
    intervals: str = "optimal_denoiser"  # the interval method that gives the stages (the paper's)
    # each stage's decoder base width, clean to noisy (model.base_channels is the encoder's); the
    # paper's CIFAR-10 model widens the cleanest stage's decoder: 192 / 128 / 16 over 128. None:
    # 1.5x the encoder's width for the cleanest stage down to 0.5x for the noisiest, each rounded up
    # to a multiple of model.channels_per_head (48 / 32 / 16 at the default)
    decoder_channels: tuple[int, ...] | None = None
    # its training steps, each a batch split over the stages; None: training.baseline_iterations,
    # so unified, separate and multi-stage models see the same samples
    iterations: int | None = None
    # Table 9 form: the numbers of stages compared, each on the interval method's split for that
    # many stages with the default decoder ramp; 1 stage is the unified model (the baseline)
    stage_counts: tuple[int, ...] = (1, 2, 3, 4, 5)
    # the interval method that splits each of Table 9's counts; None: ``intervals`` (the paper's
    # Table 9 splits come from its Algorithm 2, the optimal denoiser, for every count)
    stage_count_intervals: str | None = None

    @property
    def stage_count_method(self) -> str:
        return self.stage_count_intervals or self.intervals
    # Table 7 form: encoder/decoder splits of the same stages at about the same total parameters,
    # the shared (encoder) share small to large, widths in multiples of model.base_channels rounded
    # up to multiples of model.channels_per_head; the paper's CIFAR-10 ablation has four
    splits: tuple[EncoderDecoderSplit, ...] = ()
    # steps of every Table 7 / Table 9 model; None: the multi-stage budget. Where it is one of the
    # main models' snapshot steps, the baseline and the main multi-stage model serve by snapshot
    ablation_iterations: int | None = None

    def __post_init__(self):
        splits = tuple(s if isinstance(s, EncoderDecoderSplit) else EncoderDecoderSplit.from_values(s)
                       for s in self.splits)
        object.__setattr__(self, "splits", splits)


@dataclass(frozen=True)
class ProxyConfig:  # TDC's proxy-based pruning (mdmlib.pruning.proxy)
    proposer: str = "offline"  # offline (a search that learns from the memory bank) | chat (an LLM endpoint)
    rounds: int = 3  # R: proposal rounds per group
    candidates: int = 3  # K: schemes per round (the paper: 3)
    recovery_steps: int = 10  # fine-tune steps on the group's timesteps before a scheme is scored
    eval_images: int = 64  # validation images of the held-out loss that scores a scheme
    endpoint: str | None = None  # chat: an OpenAI-compatible base URL, e.g. https://api.openai.com/v1
    chat_model: str | None = None  # chat: the model name sent with the request (the paper: GPT-4)
    api_key_env: str | None = None  # chat: the environment variable holding the API key


@dataclass(frozen=True)
class TdcConfig:  # TDC training (make tdc): the SNR groups, a pruned base model fine-tuned per group
    groups: int = 4  # N; the FLOPs limits follow intervals.snr.min_flops_ratio (k)
    # the base model: the baseline's snapshot at this step (one of its evaluation points); None: the
    # middle point. The groups then fine-tune for finetune_iterations each.
    base_iterations: int | None = None
    finetune_iterations: int = 200
    scratch_factor: int = 4  # Table V: the pruned shape from scratch for 1x and this many x the fine-tune steps
    pruning: tuple[str, ...] = ("random", "magnitude", "taylor", "diff_pruning", "proxy")  # Table VI rows
    importance_images: int = 64  # training images whose gradients score channels (taylor, diff_pruning)
    # tdc_ablations: Table II compares FLOPs schedules with this pruning method; Table III TDC
    # without pruning on each of these group numbers
    ablation_pruning: str = "proxy"
    group_counts: tuple[int, ...] = (2, 3, 4, 6, 8)
    # tdc_ablations, Fig. 6: TDC with ablation_pruning at each k (the SNR groups do not move with k,
    # only their FLOPs limits); "stable across k": every k's FID within k_tolerance x the FID at
    # intervals.snr.min_flops_ratio, which must be one of them
    k_values: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
    k_tolerance: float = 0.1
    proxy: ProxyConfig = field(default_factory=ProxyConfig)


@dataclass(frozen=True)
class AgentConfig:  # DiffPruning's Expert Routing Agent (mdmlib.routing.agent), trained once per budget
    iterations: int = 200  # G of Alg. 1
    batch_size: int = 64  # training images per step (each expert's loss on its interval)
    learning_rate: float = 0.001  # AdamW, as the paper
    weight_decay: float = 0.01
    temperature: float = 0.4  # tau of the Gumbel-sigmoid (Eq. 7, 9)
    input_dim: int = 32  # z (the paper: 128)
    hidden: int = 64  # GRU width (the paper: 256)


@dataclass(frozen=True)
class DiffPruningConfig:  # DiffPruning (make diffpruning): the baseline pruned into a mixture of efficient experts
    intervals: str = "gradient"  # the interval method (the paper's gradient alignment, Sec. 3.3)
    n: int = 2  # experts (the paper: 2)
    budgets: tuple[float, ...] = (0.7, 0.5, 0.3)  # T_d: MACs per step as a fraction of the baseline's
    depth_iterations: int = 200  # elastic depth fine-tuning per expert (Eq. 4)
    drop_probability: float = 0.5  # p: each depth layer is the identity with this probability
    width_iterations: int = 200  # elastic width fine-tuning per expert (after depth)
    finetune_iterations: int = 200  # each pruned expert on its interval
    single_model_pruning: str = "taylor"  # the single-model baseline (the paper's SP: Taylor importance)
    throughput_batch: int = 64  # images per DDIM batch when throughput is measured (the paper: 64)
    throughput_repeats: int = 3  # timed batches per run (the fastest is kept)
    agent: AgentConfig = field(default_factory=AgentConfig)


@dataclass(frozen=True)
class RunConfig:
    experiment: str = "default"  # results/<dataset>/<experiment>/
    # Python modules imported before the config is checked: they register architectures
    # (mdmlib.models.registry) and interval methods (mdmlib.intervals.registry) of their own.
    plugins: tuple[str, ...] = ()
    data: DataConfig = field(default_factory=DataConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    experts: ExpertsConfig = field(default_factory=ExpertsConfig)
    intervals: IntervalsConfig = field(default_factory=IntervalsConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    convergence: ConvergenceConfig = field(default_factory=ConvergenceConfig)
    multistage: MultistageConfig = field(default_factory=MultistageConfig)
    tdc: TdcConfig = field(default_factory=TdcConfig)
    diffpruning: DiffPruningConfig = field(default_factory=DiffPruningConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


def to_plain(obj: Any) -> Any:
    """Dataclass -> nested dict of plain types (tuples become lists), e.g. for checkpoints."""
    if hasattr(obj, "to_plain"):
        return obj.to_plain()
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def from_dict(cls: type, values: dict[str, Any] | None):
    """Build dataclass ``cls`` from a dict, recursing into nested dataclasses.

    Unknown keys raise, naming the key, so a typo never silently falls back to a default.
    """
    values = dict(values or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else known[name].default
        if isinstance(default, IntervalsConfig) and isinstance(value, dict):
            value = IntervalsConfig.from_values(value)
        elif hasattr(default, "__dataclass_fields__") and isinstance(value, dict):
            value = from_dict(type(default), value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def validate(values: dict[str, Any]) -> RunConfig:
    """Validate against the JSON schema, build the typed config, check cross-field rules.

    Defaults live only in the dataclasses above. Raises ``ValueError`` naming the key.
    """
    import jsonschema

    load_plugins(values.get("plugins") or [])
    schema = registered_schema(yaml.safe_load(SCHEMA_PATH.read_text()))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = [str(p) for p in err.absolute_path]
        if err.validator == "additionalProperties":  # name the misspelt key itself
            path += sorted(set(err.instance) - set(err.schema.get("properties", {})))[:1]
        key = ".".join(path) or "<top level>"
        raise ValueError(f"config key '{key}': {err.message}")
    cfg = from_dict(RunConfig, values)
    _check_consistency(cfg)
    return cfg


def load_plugins(modules: list[str]) -> None:
    """Import each plug-in module; it registers its architectures and interval methods."""
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise ValueError(f"config key 'plugins': expected a list of module names, got {modules!r}")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"config key 'plugins': cannot import {module!r} ({err})") from err


def registered_schema(schema: dict) -> dict:
    """The schema with the registries' names as the allowed methods and architectures, and the
    schema blocks that plug-in methods carry."""
    props = schema["properties"]
    names = list(method_names())
    props["experts"]["properties"]["intervals"]["enum"] = names
    props["intervals"]["properties"]["study"]["properties"]["methods"]["items"]["enum"] = names
    props["model"]["properties"]["architecture"]["enum"] = list(architecture_names())
    for name in names:
        block = interval_method(name).schema
        if block is not None:
            props["intervals"]["properties"][name] = block
    return schema


def _check_consistency(cfg: RunConfig) -> None:
    b = cfg.experts.boundaries
    if any(not 0.0 < x < 1.0 for x in b) or list(b) != sorted(set(b)):
        raise ValueError(f"config key 'experts.boundaries': need strictly ascending fractions in (0, 1), got {list(b)}")
    T = cfg.diffusion.timesteps
    edges = [0] + [round(x * T) for x in b] + [T]
    if any(hi <= lo for lo, hi in zip(edges, edges[1:])):
        raise ValueError(f"config key 'experts.boundaries': {list(b)} gives an empty interval at T={T}")
    uses_paper = cfg.experts.intervals == "paper" or "paper" in cfg.intervals.study.methods
    if uses_paper and len(b) + 1 != cfg.experts.n:
        raise ValueError(f"config key 'experts.n': {cfg.experts.n} experts, but the 'paper' method's "
                         f"experts.boundaries {list(b)} give {len(b) + 1}")
    if cfg.experts.n > T:
        raise ValueError(f"config key 'experts.n': more experts than timesteps ({T})")
    if cfg.intervals.study.iterations < cfg.experts.n:
        raise ValueError(f"config key 'intervals.study.iterations': each of the {cfg.experts.n} experts "
                         "needs at least one iteration")
    used = [m for m in method_names() if m in {cfg.experts.intervals, *cfg.intervals.study.methods}]
    for method in used:
        check = interval_method(method).check
        problem = check(cfg.intervals.settings(method), cfg.experts.n) if check else None
        if problem:
            raise ValueError(problem)
    if "adm" not in cfg.baselines.recipes:
        raise ValueError("config key 'baselines.recipes': must include 'adm' (Tables 1 and 4 compare against it)")
    st = cfg.baselines.soft_truncation_boundaries
    if any(not 0.0 < x < 1.0 for x in st) or list(st) != sorted(set(st)) or not st:
        raise ValueError(f"config key 'baselines.soft_truncation_boundaries': need ascending fractions in (0, 1), got {list(st)}")
    study = cfg.intervals.study.methods
    if len(set(study)) != len(study):
        raise ValueError(f"config key 'intervals.study.methods': repeated method in {list(study)}")
    if cfg.training.batch_size % cfg.training.data_parallel:
        raise ValueError(f"config key 'training.data_parallel': {cfg.training.data_parallel} processes must "
                         f"divide training.batch_size ({cfg.training.batch_size}) evenly")
    if cfg.training.checkpoint_every % cfg.training.log_every:
        raise ValueError("config key 'training.checkpoint_every': must be a multiple of training.log_every "
                         "so a resumed run repeats no logged interval")
    if architecture(cfg.model.architecture).arguments is None:
        raise ValueError(f"config key 'model.architecture': {cfg.model.architecture!r} is built by its own target "
                         "from an explicit spec, not from the model config")
    if cfg.model.architecture == "unet":
        _check_unet(cfg)
    if cfg.multistage.intervals not in method_names():
        raise ValueError(f"config key 'multistage.intervals': unknown method {cfg.multistage.intervals!r}")
    widths = cfg.multistage.decoder_channels
    if widths is not None and len(widths) != cfg.experts.n:
        raise ValueError(f"config key 'multistage.decoder_channels': one width per stage: {cfg.experts.n} "
                         f"(experts.n), got {len(widths)}")
    _check_widths("multistage.decoder_channels", widths or (), cfg)
    _check_multistage_ablations(cfg)
    _check_tdc(cfg)
    for key in ("max_change", "max_gap_to_best"):
        try:
            sd_value(getattr(cfg.convergence, key))
        except ValueError as err:
            raise ValueError(f"config key 'convergence.{key}': {err}") from err
    if sd_value(cfg.convergence.max_change)[1] != sd_value(cfg.convergence.max_gap_to_best)[1]:
        raise ValueError("config key 'convergence.max_gap_to_best': give both thresholds in FID or both in sd "
                         f"(max_change is {cfg.convergence.max_change!r})")
    _check_data_and_sampling(cfg)
    _check_diffpruning(cfg)
    if cfg.sampling.grid_size ** 2 > cfg.sampling.num_samples:
        raise ValueError("config key 'sampling.grid_size': grid_size^2 exceeds sampling.num_samples")


LOCAL_DATASETS = ("cifar10", "fashion_mnist", "image_folder")  # read from data.root
DIGITS_IMAGES = 1797  # scikit-learn's digits, all of them (no test split)


def _check_data_and_sampling(cfg: RunConfig) -> None:
    """What the config alone can tell about the data, the sampler and the metrics."""
    data = cfg.data
    if data.dataset in LOCAL_DATASETS:
        if not data.root:
            raise ValueError(f"config key 'data.root': the {data.dataset} dataset is read from a local folder; "
                             "set data.root to it")
        can_download = data.dataset == "cifar10" and data.download
        if not can_download and not Path(data.root).expanduser().exists():
            raise ValueError(f"config key 'data.root': {data.root} does not exist (relative paths are read from "
                             f"the working directory{'' if data.dataset != 'cifar10' else '; data.download: true fetches CIFAR-10'})")
    if data.dataset == "digits" and data.val_size >= DIGITS_IMAGES:
        raise ValueError(f"config key 'data.val_size': {data.val_size} of the digits' {DIGITS_IMAGES} images "
                         "leaves none to train on")
    if cfg.sampling.steps > cfg.diffusion.timesteps:
        raise ValueError(f"config key 'sampling.steps': {cfg.sampling.steps} DDIM steps for "
                         f"{cfg.diffusion.timesteps} timesteps")
    if cfg.metrics.pr_k >= cfg.sampling.num_samples:
        raise ValueError(f"config key 'metrics.pr_k': the k-th neighbour among {cfg.sampling.num_samples} samples "
                         "(sampling.num_samples) needs k below it")
    references = data.max_val or (data.val_size if data.dataset in ("digits", "image_folder") else None)
    if cfg.metrics.reference == "validation" and references is not None and cfg.metrics.pr_k >= references:
        raise ValueError(f"config key 'metrics.pr_k': the k-th neighbour among {references} validation images "
                         "needs k below it")
    if cfg.training.eval_points > cfg.training.baseline_iterations:
        raise ValueError(f"config key 'training.eval_points': {cfg.training.eval_points} evaluation points in "
                         f"{cfg.training.baseline_iterations} iterations (training.baseline_iterations)")


def _check_widths(key: str, widths, cfg: RunConfig) -> None:
    for width in widths:
        if any(width * m % cfg.model.channels_per_head for m in cfg.model.channel_mult):
            raise ValueError(f"config key '{key}': model.channels_per_head ({cfg.model.channels_per_head}) must "
                             f"divide every level's width of a {width}-wide encoder or decoder")


def _check_multistage_ablations(cfg: RunConfig) -> None:
    """Tables 7 and 9 of the multi-stage paper: stage counts the interval method can give, splits
    with one decoder per stage."""
    counts = cfg.multistage.stage_counts
    if list(counts) != sorted(set(counts)):
        raise ValueError(f"config key 'multistage.stage_counts': need ascending distinct counts, got {list(counts)}")
    if counts and counts[-1] > cfg.diffusion.timesteps:
        raise ValueError(f"config key 'multistage.stage_counts': {counts[-1]} stages for {cfg.diffusion.timesteps} "
                         "timesteps")
    if cfg.multistage.stage_count_method not in method_names():
        raise ValueError(f"config key 'multistage.stage_count_intervals': unknown method "
                         f"{cfg.multistage.stage_count_method!r}")
    method = interval_method(cfg.multistage.stage_count_method)
    if method.name == "paper" and any(n not in (1, cfg.experts.n) for n in counts):
        raise ValueError(f"config key 'multistage.stage_counts': the 'paper' method gives only experts.n "
                         f"({cfg.experts.n}) stages, from experts.boundaries; set "
                         f"multistage.stage_count_intervals to a method that splits any count")
    for n in counts:
        problem = method.check(cfg.intervals.settings(method.name), n) if method.check and n > 1 else None
        if problem:
            raise ValueError(f"config key 'multistage.stage_counts': {n} stages: {problem}")
    for k, split in enumerate(cfg.multistage.splits):
        if split.encoder <= 0 or min(split.decoders, default=0) <= 0:
            raise ValueError(f"config key 'multistage.splits[{k}]': widths must be positive multiples")


def _check_tdc(cfg: RunConfig) -> None:
    from mdmlib.pruning.criteria import pruning_methods

    tdc, T = cfg.tdc, cfg.diffusion.timesteps
    if not 2 <= tdc.groups <= T:  # one group's limit is F: nothing to prune
        raise ValueError(f"config key 'tdc.groups': {tdc.groups} groups; need 2 to {T} (the timesteps)")
    if tdc.ablation_pruning not in pruning_methods():
        raise ValueError(f"config key 'tdc.ablation_pruning': {tdc.ablation_pruning!r} is not one of "
                         f"{list(pruning_methods())}")
    bad = [n for n in tdc.group_counts if not 2 <= n <= T]
    if bad or len(set(tdc.group_counts)) != len(tdc.group_counts):
        raise ValueError(f"config key 'tdc.group_counts': {list(tdc.group_counts)}; each once, 2 to {T}")
    k_permille = [round(k * 1000) for k in tdc.k_values]
    if not all(0 < k < 1 for k in tdc.k_values) or len(set(k_permille)) != len(k_permille):
        raise ValueError(f"config key 'tdc.k_values': {list(tdc.k_values)}; each once (to 0.001), in (0, 1)")
    if round(cfg.intervals.settings("snr").min_flops_ratio * 1000) not in k_permille:
        raise ValueError(f"config key 'tdc.k_values': {list(tdc.k_values)} lacks intervals.snr.min_flops_ratio "
                         f"({cfg.intervals.settings('snr').min_flops_ratio}), the reference of the k ablation")
    if not tdc.k_tolerance > 0:
        raise ValueError(f"config key 'tdc.k_tolerance': {tdc.k_tolerance}; need > 0 (a share of the FID)")
    unknown = [m for m in tdc.pruning if m not in pruning_methods()]
    if unknown or len(set(tdc.pruning)) != len(tdc.pruning):
        raise ValueError(f"config key 'tdc.pruning': {list(tdc.pruning)}; each once, of {list(pruning_methods())}")
    points = sorted({max(1, round(cfg.training.baseline_iterations * (i + 1) / cfg.training.eval_points))
                     for i in range(cfg.training.eval_points)})
    if tdc.base_iterations is not None and tdc.base_iterations not in points:
        raise ValueError(f"config key 'tdc.base_iterations': {tdc.base_iterations} is not a baseline snapshot step "
                         f"{points} (training.baseline_iterations over training.eval_points)")
    proxy = tdc.proxy
    if proxy.proposer == "chat":
        for key in ("endpoint", "chat_model"):
            if not getattr(proxy, key):
                raise ValueError(f"config key 'tdc.proxy.{key}': the chat proposer needs it")
        if not str(proxy.endpoint).startswith(("http://", "https://")):
            raise ValueError(f"config key 'tdc.proxy.endpoint': {proxy.endpoint!r} is not an http(s) URL")
    if cfg.data.dataset == "digits" and proxy.eval_images > cfg.data.val_size:
        raise ValueError(f"config key 'tdc.proxy.eval_images': {proxy.eval_images} exceeds data.val_size")


def _check_diffpruning(cfg: RunConfig) -> None:
    from mdmlib.pruning.criteria import PROXY, pruning_methods

    dp, T = cfg.diffpruning, cfg.diffusion.timesteps
    if dp.intervals not in method_names():
        raise ValueError(f"config key 'diffpruning.intervals': unknown method {dp.intervals!r}")
    method = interval_method(dp.intervals)
    problem = method.check(cfg.intervals.settings(dp.intervals), dp.n) if method.check else None
    if not 2 <= dp.n <= T or problem:
        raise ValueError(f"config key 'diffpruning.n': {dp.n} experts; {problem or f'need 2 to {T}'}")
    if not dp.budgets or any(not 0 < b <= 1 for b in dp.budgets) or len(set(dp.budgets)) != len(dp.budgets):
        raise ValueError(f"config key 'diffpruning.budgets': {list(dp.budgets)}; distinct fractions in (0, 1]")
    if len({round(b * 1000) for b in dp.budgets}) != len(dp.budgets):
        raise ValueError(f"config key 'diffpruning.budgets': {list(dp.budgets)} name the same per-mille budget twice")
    if not 0 <= dp.drop_probability < 1:
        raise ValueError(f"config key 'diffpruning.drop_probability': {dp.drop_probability}; need 0 <= p < 1")
    if dp.single_model_pruning not in pruning_methods() or dp.single_model_pruning == PROXY:
        raise ValueError(f"config key 'diffpruning.single_model_pruning': {dp.single_model_pruning!r} is not one of "
                         f"{[m for m in pruning_methods() if m != PROXY]}")
    agent = dp.agent
    if agent.temperature <= 0:
        raise ValueError(f"config key 'diffpruning.agent.temperature': {agent.temperature}; must be positive")
    if cfg.data.dataset == "digits" and agent.batch_size > DIGITS_IMAGES - cfg.data.val_size:
        raise ValueError(f"config key 'diffpruning.agent.batch_size': {agent.batch_size} exceeds the training images")


def check_diffpruning_model(cfg: RunConfig) -> None:
    """DiffPruning's elastic experts are U-Nets: checked when the DAG holds its jobs (rules/common.smk),
    so that another architecture runs every other target."""
    if cfg.model.architecture != "unet":
        raise ValueError(f"config key 'model.architecture': DiffPruning's elastic experts need the 'unet' "
                         f"architecture, got {cfg.model.architecture!r}")


def _check_unet(cfg: RunConfig) -> None:
    res = cfg.data.resolution
    levels = len(cfg.model.channel_mult)
    if res % (2 ** (levels - 1)) != 0:
        raise ValueError(
            f"config key 'model.channel_mult': {levels} levels need data.resolution divisible by {2 ** (levels - 1)}, got {res}"
        )
    sizes = {res // 2**i for i in range(levels)}
    bad = [r for r in cfg.model.attention_resolutions if r not in sizes]
    if bad:
        raise ValueError(f"config key 'model.attention_resolutions': {bad} not among the U-Net's resolutions {sorted(sizes)}")
    for c in cfg.model.channel_mult:
        if (cfg.model.base_channels * c) % cfg.model.channels_per_head:
            raise ValueError("config key 'model.channels_per_head': must divide every level's channel count")


def load_config(path: str | Path | dict) -> RunConfig:
    """Read YAML (or take a dict), validate, and build the typed config."""
    values = path if isinstance(path, dict) else yaml.safe_load(Path(path).read_text())
    return validate(values or {})
