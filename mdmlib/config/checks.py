"""Cross-key checks of a built config: what the schema cannot say, each error naming its key."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mdmlib.config.sections import sd_value
from mdmlib.intervals.registry import interval_method, method_names
from mdmlib.models.registry import architecture

if TYPE_CHECKING:
    from mdmlib.config import RunConfig


def check_consistency(cfg: RunConfig) -> None:
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
