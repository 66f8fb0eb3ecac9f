"""A pruned group model's cost: DDIM time per step against the base model's, beside what its MACs
predict. The speed-up should track the MACs: measured speed-up / predicted speed-up near 1.

The base model is the config's U-Net; each pruned model is it pruned as TDC's stage 2 prunes a
group's model (mdmlib.pruning.group.prune_for_group with the magnitude criterion): the same keep
ratio in every layer, as large as the limit allows, channels and heads chosen by magnitude, at
each FLOPs limit (a fraction of the base model's MACs). Weights are untrained: time does not
depend on them. Reported per limit: measured speed-up / predicted speed-up, that is
(1 / time ratio) / (1 / MACs ratio) = MACs ratio / time ratio (1: the time tracks the MACs;
below 1: the pruned model saves less time than its MACs say).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.timing import figure, paired_ratio
from mdmlib.config import RunConfig
from mdmlib.core.images import to_model_range
from mdmlib.core.intervals import Interval
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.models.macs import count_parameters
from mdmlib.models.registry import new_model
from mdmlib.pruning.importance import layer_scores
from mdmlib.pruning.prune import prune_unet
from mdmlib.pruning.scheme import (
    macs_counter,
    scheme_widths,
    spec_macs,
    unet_shape,
    uniform_scheme,
)
from mdmlib.sampling.ddim import ddim_sample

LIMITS = (0.625, 0.75, 0.875)  # TDC's FLOPs limits kF + (i+1)(1-k)F/N at k = 0.5, N = 4 (config.yaml's tdc)
CRITERION = "magnitude"
TARGET = (">=", 0.8)  # measured speed-up / (1 / MACs ratio) on this CPU


def _ddim_seconds(model, schedule, noise, steps: int) -> float:
    start = time.perf_counter()
    ddim_sample(model, schedule, noise, steps)
    return time.perf_counter() - start


def pruned_models(cfg: RunConfig, images: np.ndarray, limits=LIMITS):
    """The config's U-Net and, per limit, it pruned (magnitude, uniform keep ratio) to ``limit`` x its MACs."""
    torch.manual_seed(cfg.training.seed)
    base = new_model(cfg.model, images.shape[1], cfg.data.resolution).eval()
    shape, spec = unet_shape(base), base.spec
    count, full = macs_counter(spec, shape), spec_macs(spec)
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    batch = to_model_range(images[:cfg.tdc.importance_images])
    # Magnitude reads the weights only; the interval is where gradient criteria would read their loss.
    scores, _ = layer_scores(base, CRITERION, schedule, batch, Interval(0, cfg.diffusion.timesteps),
                             cfg.training.seed)
    pruned = {}
    for limit in limits:
        scheme = uniform_scheme(limit * full, count, shape, key=f"the FLOPs limit {limit:g} F")
        widths = scheme_widths(shape, scheme)
        pruned[limit] = (prune_unet(base, widths, scores), widths)
    return base, pruned, full, schedule


def pruned_sampling(cfg: RunConfig, images: np.ndarray, batch: int, ddim_steps: int | None, repeats: int,
                    limits=LIMITS) -> dict:
    """DDIM of each pruned model against the base model's, in alternation (``repeats`` pairs per limit)."""
    steps = ddim_steps or cfg.sampling.steps
    base, pruned, full_macs, schedule = pruned_models(cfg, images, limits)
    res, channels = cfg.data.resolution, images.shape[1]
    noise = torch.randn(batch, channels, res, res, generator=torch.Generator().manual_seed(cfg.sampling.seed))
    base_parameters = count_parameters(base)
    for model in (base, *(m for m, _ in pruned.values())):
        _ddim_seconds(model, schedule, noise, 1)  # warm-up: allocator, first-call dispatch
    figures, rows = [], []
    for limit, (model, widths) in pruned.items():
        macs_ratio = spec_macs(model.spec) / full_macs
        parameters_ratio = count_parameters(model) / base_parameters
        ddim = paired_ratio(lambda: _ddim_seconds(model, schedule, noise, steps),
                            lambda: _ddim_seconds(base, schedule, noise, steps), repeats)
        tracking = [macs_ratio / r for r in ddim["ratios"]]  # (1 / time ratio) / (1 / MACs ratio)
        pruned_ms = [1000 * s / steps for s in ddim["numerator_s"]]
        base_ms = [1000 * s / steps for s in ddim["denominator_s"]]
        tag = f"limit {limit:g} F:"
        figures += [figure(f"{tag} MACs ratio (pruned / base)", [macs_ratio]),
                    figure(f"{tag} parameters ratio (pruned / base)", [parameters_ratio]),
                    figure(f"{tag} DDIM time ratio (pruned / base)", ddim["ratios"]),
                    figure(f"{tag} measured speed-up / predicted (1 / MACs ratio)", tracking, target=TARGET),
                    figure(f"{tag} DDIM step, pruned", pruned_ms, unit="ms"),
                    figure(f"{tag} DDIM step, base", base_ms, unit="ms")]
        rows.append({"limit": limit, "macs": spec_macs(model.spec), "macs_ratio": macs_ratio,
                     "parameters": count_parameters(model), "parameters_ratio": parameters_ratio,
                     "predicted_speedup": 1 / macs_ratio, "measured_speedup": [1 / r for r in ddim["ratios"]],
                     "speedup_over_predicted": tracking,
                     "time_ratio_over_macs_ratio": [r / macs_ratio for r in ddim["ratios"]],
                     "pruned_ms_per_step": pruned_ms, "base_ms_per_step": base_ms, "widths": widths,
                     "ddim": ddim})
    return {"figures": figures, "criterion": CRITERION, "limits": list(limits), "batch": batch,
            "ddim_steps": steps, "base_macs": full_macs, "base_parameters": base_parameters,
            "full_widths": {"block_widths": list(unet_shape(base).block_widths),
                            "attention_heads": list(unet_shape(base).attention_heads)},
            "reported": "speed-up / predicted = MACs ratio / time ratio (1: time tracks the MACs)",
            "limits_measured": rows}
