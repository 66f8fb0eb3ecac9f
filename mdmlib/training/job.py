"""What one training job is: its model name, interval, budget, recipe and snapshot steps.

Torch-free, so that building the DAG (rules/common.smk) never imports PyTorch: the
Snakefile and the workflow scripts both read this, and a model's interval and budget
are decided in one place.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from mdmlib.config import RunConfig
from mdmlib.core.intervals import Interval, expert_budgets
from mdmlib.models.registry import plain, unet_arguments

RECIPES = ("adm", "p2w", "soft_truncation", "importance")  # timestep sampler + loss weights (training.samplers)
DEFAULT_RECIPE = "adm"

MODEL_NAME = re.compile(r"t(\d+)-(\d+)_i(\d+)(?:_(p2w|soft_truncation|importance))?")
# multi-decoder models: stages, encoder width, decoder widths, budget
STAGED_NAME = re.compile(r"ms_t(\d+(?:-\d+)+)_e(\d+)_d(\d+(?:-\d+)*)_i(\d+)")
# TDC group models: pruning method, base model's steps, group interval, FLOPs limit (per mille of F), budget
# ('tdcs_': a freshly initialised network of the shape that method's pruning gives: Table V's scratch rows)
TDC_NAME = re.compile(r"tdc(s?)_([a-z0-9_]+?)_b(\d+)_t(\d+)-(\d+)_f(\d+)_i(\d+)")
PRUNED_NAME = re.compile(r"tdc_([a-z0-9_]+?)_b(\d+)_t(\d+)-(\d+)_f(\d+)")  # a pruned base model (rule prune_group)
TDC_FULL = "full"  # a group model fine-tuned at the base model's full size (TDC without pruning)
# DiffPruning experts on one interval, from the baseline at b steps (p: the depth drop probability,
# per mille): 'dpd' elastic depth, 'dpw' then elastic width after d depth steps, 'dpf' that expert
# pruned by the routing agent at the MACs budget m (per mille) and fine-tuned after w width steps
DP_NAME = re.compile(r"dp([dwf])(?:_m(\d+))?_t(\d+)-(\d+)_b(\d+)_p(\d+)(?:_d(\d+))?(?:_w(\d+))?_i(\d+)")
MODEL_PATTERN = (f"{MODEL_NAME.pattern}|{STAGED_NAME.pattern}|{TDC_NAME.pattern}"
                 f"|{DP_NAME.pattern}")  # the Snakefile's wildcard constraint


def model_name(interval: Interval, iterations: int, recipe: str = DEFAULT_RECIPE) -> str:
    """A model is named by what it trains: 't100-800_i2100' is (100, 800] for 2100 iterations
    with the ADM recipe; other recipes add a suffix ('t0-1000_i2400_p2w').

    Runs that ask for the same interval, budget and recipe (e.g. two selection methods that
    agree) therefore share one trained model, and a new choice retrains only what changed.
    """
    suffix = "" if recipe == DEFAULT_RECIPE else f"_{recipe}"
    return f"t{interval.lo}-{interval.hi}_i{iterations}{suffix}"


def parse_model_name(name: str) -> tuple[Interval, int, str]:
    """'t100-800_i2100_p2w' -> (Interval(100, 800), 2100, 'p2w'); the inverse of ``model_name``."""
    match = MODEL_NAME.fullmatch(name)
    if not match:
        raise ValueError(f"model name {name!r} is not of the form t<lo>-<hi>_i<iterations>[_<recipe>]")
    lo, hi, iterations = map(int, match.groups()[:3])
    return Interval(lo, hi), iterations, match.group(4) or DEFAULT_RECIPE


def staged_model_name(stages: list[Interval], iterations: int, encoder_channels: int,
                      decoder_channels: list[int]) -> str:
    """A multi-decoder model is named by its stages, its encoder's and decoders' base widths and
    its budget: 'ms_t0-442-631-1000_e32_d48-32-16_i2400'. The name alone rebuilds the network, so
    two encoder/decoder splits of the same stages are two models."""
    if len(decoder_channels) != len(stages):
        raise ValueError(f"{len(decoder_channels)} decoder widths for {len(stages)} stages")
    edges = [stages[0].lo] + [s.hi for s in stages]
    widths = "-".join(map(str, decoder_channels))
    return f"ms_t{'-'.join(map(str, edges))}_e{encoder_channels}_d{widths}_i{iterations}"


def multistage_model(cfg: RunConfig, stages: list[Interval], iterations: int,
                     split: tuple[int, list[int]] | None = None) -> str:
    """The multi-decoder model on ``stages``: the config's encoder width and ``decoder_widths``,
    or ``split`` = (encoder width, decoder widths) (a Table 7 split)."""
    encoder, decoders = split or (cfg.model.base_channels, decoder_widths(cfg, len(stages)))
    return staged_model_name(stages, iterations, encoder, list(decoders))


def tdc_model_name(method: str, base_iterations: int, interval: Interval, limit: float, iterations: int,
                   fresh: bool = False) -> str:
    """A TDC group model: the base model (the baseline at ``base_iterations``) pruned by ``method`` to
    ``limit`` x its MACs, then fine-tuned on ``interval`` for ``iterations``:
    'tdc_magnitude_b1200_t0-212_f625_i200'. At a limit of 1 nothing is pruned, whatever the method,
    so every method shares the full-size model of that group. ``fresh``: a network of that pruned
    shape trained from a fresh initialisation instead ('tdcs_...')."""
    permille = round(limit * 1000)
    method = TDC_FULL if permille >= 1000 else method
    prefix = "tdcs" if fresh else "tdc"
    return f"{prefix}_{method}_b{base_iterations}_t{interval.lo}-{interval.hi}_f{min(permille, 1000)}_i{iterations}"


def parse_tdc_name(name: str) -> tuple[str, int, Interval, int, int]:
    """(method, base iterations, interval, limit per mille, iterations) of a TDC model name."""
    match = TDC_NAME.fullmatch(name)
    if not match:
        raise ValueError(f"model name {name!r} is not a TDC model (tdc[s]_<method>_b<n>_t<lo>-<hi>_f<permille>_i<n>)")
    method, base, lo, hi, permille, iterations = match.group(2), *map(int, match.groups()[2:])
    return method, base, Interval(lo, hi), permille, iterations


def pruned_base_name(name: str) -> str:
    """The pruned base model a TDC model starts from (or whose shape it takes): its name less the
    budget, always 'tdc_'."""
    parse_tdc_name(name)  # refuses any other name
    return "tdc_" + without_budget(name).split("_", 1)[1]


def is_fresh_shape(name: str) -> bool:
    """Whether a TDC model trains a pruned shape from scratch ('tdcs_') rather than fine-tunes."""
    match = TDC_NAME.fullmatch(name)
    return bool(match and match.group(1))


def without_budget(name: str) -> str:
    """What a model trains, less how long: two names that agree here differ only in budget."""
    return re.sub(r"_i\d+", "", name, count=1)


def head_multiple(ratio: float, cfg: RunConfig) -> int:
    """``ratio`` x model.base_channels, rounded up to a multiple of the head width (at least one head)."""
    head = cfg.model.channels_per_head
    return max(head, -(-round(ratio * cfg.model.base_channels) // head) * head)


def resampled(values: tuple[float, ...], n: int) -> list[float]:
    """``values`` (clean to noisy) read at ``n`` evenly spaced positions, linearly interpolated."""
    if len(values) == n:
        return list(values)
    if len(values) == 1 or n == 1:
        return [values[0]] * n if len(values) == 1 else [values[0]]
    out = []
    for k in range(n):
        x = k * (len(values) - 1) / (n - 1)
        i = min(int(x), len(values) - 2)
        out.append(values[i] + (x - i) * (values[i + 1] - values[i]))
    return out


def split_widths(cfg: RunConfig, split, stages: int) -> tuple[int, list[int]]:
    """A Table 7 split's (encoder width, decoder widths) on ``stages`` stages."""
    return head_multiple(split.encoder, cfg), [head_multiple(r, cfg) for r in resampled(split.decoders, stages)]


def decoder_widths(cfg: RunConfig, stages: int) -> list[int]:
    """``multistage.decoder_channels`` (given for experts.n stages), or else a ramp from 1.5x the
    encoder's width (the cleanest stage) to 0.5x (the noisiest), each rounded up to a multiple of
    the head width: Table 9's other stage counts always take the ramp."""
    if cfg.multistage.decoder_channels is not None and len(cfg.multistage.decoder_channels) == stages:
        return list(cfg.multistage.decoder_channels)
    ratios = [1.5 - k / (stages - 1) for k in range(stages)] if stages > 1 else [1.0]
    return [head_multiple(r, cfg) for r in ratios]


def multi_decoder_spec(cfg: RunConfig, stages: list[Interval], encoder_channels: int,
                       decoder_channels: list[int]) -> dict:
    """The spec of the multi-decoder U-Net on ``stages``: the config's U-Net at base width
    ``encoder_channels`` as its encoder, one decoder per stage (mdmlib.models.multi_decoder)."""
    if len(decoder_channels) != len(stages):
        raise ValueError(f"{len(decoder_channels)} decoder widths for {len(stages)} stages")
    arguments = unet_arguments(cfg.model, cfg.data.channels, cfg.data.resolution)
    arguments |= {"base_channels": encoder_channels, "stage_boundaries": [s.lo for s in stages[1:]],
                  "decoder_channels": list(decoder_channels)}
    return {"architecture": "multi_decoder", "arguments": plain(arguments)}


@dataclass(frozen=True)
class ExpertName:
    """A DiffPruning expert's name, parsed: 'dpd_t0-400_b2400_p500_i200' (elastic depth),
    'dpw_t0-400_b2400_p500_d200_i200' (elastic width), 'dpf_m500_t0-400_b2400_p500_d200_w200_i200'
    (pruned at budget 0.5 and fine-tuned). Each stage's name extends the one it starts from."""

    stage: str  # 'depth' | 'width' | 'pruned'
    interval: Interval
    base: int  # the baseline's steps at the start
    drop_permille: int
    iterations: int
    depth_iterations: int | None = None  # width and pruned stages
    width_iterations: int | None = None  # pruned stage
    budget_permille: int | None = None  # pruned stage

    STAGES = {"d": "depth", "w": "width", "f": "pruned"}

    @property
    def name(self) -> str:
        code = {v: k for k, v in self.STAGES.items()}[self.stage]
        budget = "" if self.budget_permille is None else f"_m{self.budget_permille}"
        depth = "" if self.depth_iterations is None else f"_d{self.depth_iterations}"
        width = "" if self.width_iterations is None else f"_w{self.width_iterations}"
        return (f"dp{code}{budget}_t{self.interval.lo}-{self.interval.hi}_b{self.base}_p{self.drop_permille}"
                f"{depth}{width}_i{self.iterations}")

    @classmethod
    def parse(cls, name: str) -> "ExpertName":
        match = DP_NAME.fullmatch(name)
        if not match:
            raise ValueError(f"model name {name!r} is not a DiffPruning expert (dp<d|w|f>[_m<budget>]_t<lo>-<hi>_b<n>"
                             f"_p<permille>[_d<n>][_w<n>]_i<n>)")
        code, budget, lo, hi, base, drop, depth, width, iterations = match.groups()
        number = (lambda v: None if v is None else int(v))
        parsed = cls(cls.STAGES[code], Interval(int(lo), int(hi)), int(base), int(drop), int(iterations),
                     number(depth), number(width), number(budget))
        present = (budget is not None, depth is not None, width is not None)
        expected = {"depth": (False, False, False), "width": (False, True, False), "pruned": (True, True, True)}
        if present != expected[parsed.stage]:  # the optional parts must match the stage
            shape = {"depth": "dpd_t<lo>-<hi>_b<n>_p<n>_i<n>", "width": "dpw_t<lo>-<hi>_b<n>_p<n>_d<n>_i<n>",
                     "pruned": "dpf_m<budget>_t<lo>-<hi>_b<n>_p<n>_d<n>_w<n>_i<n>"}[parsed.stage]
            raise ValueError(f"model name {name!r}: a {parsed.stage} expert is named {shape}")
        return parsed

    def start(self) -> "ExpertName | None":
        """The expert this one's training starts from (None: the baseline's snapshot)."""
        if self.stage == "depth":
            return None
        if self.stage == "width":
            return ExpertName("depth", self.interval, self.base, self.drop_permille, self.depth_iterations)
        return ExpertName("width", self.interval, self.base, self.drop_permille, self.width_iterations,
                          self.depth_iterations)

    def pruned(self, budget_permille: int, iterations: int) -> "ExpertName":
        """This width-stage expert pruned at a budget and fine-tuned for ``iterations``."""
        if self.stage != "width":
            raise ValueError(f"{self.name}: only an elastic width expert is pruned")
        return ExpertName("pruned", self.interval, self.base, self.drop_permille, iterations, self.depth_iterations,
                          self.iterations, budget_permille)


def elastic_spec(cfg: RunConfig, stage: str, drop_probability: float) -> dict:
    """The spec of the config's U-Net trained elastically ('depth' or 'width'; mdmlib.models.elastic)."""
    arguments = unet_arguments(cfg.model, cfg.data.channels, cfg.data.resolution)
    arguments |= {"elastic": stage, "drop_probability": drop_probability}
    return {"architecture": "elastic_unet", "arguments": plain(arguments)}


def train_job(name: str, cfg: RunConfig) -> TrainJob:
    if DP_NAME.fullmatch(name):  # elastic stages: the elastic U-Net; pruned experts: their init's shape
        expert = ExpertName.parse(name)
        if expert.interval.hi > cfg.diffusion.timesteps or expert.iterations < 1:
            raise ValueError(f"model {name!r} does not fit T={cfg.diffusion.timesteps}")
        spec = None if expert.stage == "pruned" else elastic_spec(cfg, expert.stage, expert.drop_permille / 1000)
        return TrainJob(name, expert.interval, expert.iterations,
                        snapshot_steps(expert.iterations, cfg.training.eval_points), model_spec=spec)
    if TDC_NAME.fullmatch(name):  # its architecture is its init checkpoint's (the pruned base model)
        _, _, interval, _, iterations = parse_tdc_name(name)
        if interval.hi > cfg.diffusion.timesteps or iterations < 1:
            raise ValueError(f"model {name!r} does not fit T={cfg.diffusion.timesteps}")
        return TrainJob(name, interval, iterations, snapshot_steps(iterations, cfg.training.eval_points))
    staged = STAGED_NAME.fullmatch(name)
    if staged:
        edges, iterations = [int(e) for e in staged.group(1).split("-")], int(staged.group(4))
        encoder, decoders = int(staged.group(2)), [int(w) for w in staged.group(3).split("-")]
        stages = [Interval(lo, hi) for lo, hi in zip(edges, edges[1:])]
        if edges[0] != 0 or edges[-1] != cfg.diffusion.timesteps or iterations < 1:
            raise ValueError(f"model {name!r} does not tile (0, {cfg.diffusion.timesteps}]")
        if cfg.training.data_parallel > 1 and (cfg.training.data_parallel % len(stages)
                                               or cfg.training.batch_size % len(stages)):
            raise ValueError(f"config key 'training.data_parallel': {cfg.training.data_parallel} processes and a batch "
                             f"of {cfg.training.batch_size} for {len(stages)} stages; Algorithm 3 needs multiples of "
                             f"the stage count for both")
        return TrainJob(name, Interval(0, edges[-1]), iterations, snapshot_steps(iterations, cfg.training.eval_points),
                        stages=tuple(stages), model_spec=multi_decoder_spec(cfg, stages, encoder, decoders))
    interval, iterations, recipe = parse_model_name(name)
    if interval.hi > cfg.diffusion.timesteps or iterations < 1:
        raise ValueError(f"model {name!r} does not fit T={cfg.diffusion.timesteps}")
    return TrainJob(name, interval, iterations, snapshot_steps(iterations, cfg.training.eval_points), recipe=recipe)


def snapshot_source(model: str, candidates: list[str], points: int) -> tuple[str, int] | None:
    """(longer model, point) whose snapshot is ``model``'s final weights, or None.

    Training has no budget-dependent part (constant learning rate; data, timesteps and noise
    from a generator seeded by the config), so a model trained for k steps equals a model of
    the same interval and recipe with a longer budget at its snapshot of step k
    (``test_short_run_is_the_snapshot_of_a_longer_one``). Study runs whose budgets fall on
    the main runs' evaluation points therefore train nothing.
    """
    steps = model_budget(model)
    for other in candidates:
        if without_budget(other) != without_budget(model) or model_budget(other) <= steps:
            continue
        other_steps = model_budget(other)
        snapshots = snapshot_steps(other_steps, points)
        if steps in snapshots:
            return other, snapshots.index(steps) + 1
    return None


def model_budget(name: str) -> int:
    """The iterations a model name gives (one-interval, multi-decoder or TDC group)."""
    if TDC_NAME.fullmatch(name):
        return parse_tdc_name(name)[4]
    if DP_NAME.fullmatch(name):
        return ExpertName.parse(name).iterations
    staged = STAGED_NAME.fullmatch(name)
    return int(staged.group(4)) if staged else parse_model_name(name)[1]


def baseline_model(cfg: RunConfig, fraction: float = 1.0) -> str:
    """The single model on (0, T]; ``fraction`` < 1 names the same run stopped early (same seed)."""
    iterations = max(1, round(fraction * cfg.training.baseline_iterations))
    return model_name(Interval(0, cfg.diffusion.timesteps), iterations, cfg.training.recipe)


def expert_models(intervals: list[Interval], total_iterations: int, timesteps: int,
                  recipe: str = DEFAULT_RECIPE) -> list[str]:
    """Experts from clean to noisy, I_e = |tau_e|/T of the total (MDM Sec. 3)."""
    budgets = expert_budgets(intervals, timesteps, total_iterations)
    return [model_name(i, b, recipe) for i, b in zip(intervals, budgets)]


@dataclass(frozen=True)
class TrainJob:
    name: str  # "baseline", "expert_1", ...
    interval: Interval  # timesteps this model trains on
    iterations: int  # its budget
    snapshot_steps: tuple[int, ...]  # steps whose EMA weights feed the evaluation series
    recipe: str = DEFAULT_RECIPE  # timestep sampling and loss weights: one of RECIPES
    # A multi-stage model's stages, clean to noisy, tiling ``interval``: each step trains every
    # stage on a batch of its own (training.samplers.StagedSampler); () for one-interval models.
    stages: tuple[Interval, ...] = ()
    model_spec: dict | None = field(default=None, compare=False)  # None: the config's architecture

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"[{self.name}] unknown training recipe {self.recipe!r}; expected one of {RECIPES}")
        if self.stages:
            edges = [s.lo for s in self.stages] + [self.stages[-1].hi]
            if any(a.hi != b.lo for a, b in zip(self.stages, self.stages[1:])) or \
                    (edges[0], edges[-1]) != (self.interval.lo, self.interval.hi):
                raise ValueError(f"[{self.name}] stages {[s.label() for s in self.stages]} do not tile "
                                 f"{self.interval.label()}")
            if self.recipe != DEFAULT_RECIPE:
                raise ValueError(f"[{self.name}] staged training uses uniform t within each stage (recipe adm)")


def snapshot_steps(iterations: int, points: int) -> tuple[int, ...]:
    """``points`` evenly spaced steps ending at the budget (repeats possible for tiny budgets)."""
    return tuple(max(1, round(iterations * (i + 1) / points)) for i in range(points))

