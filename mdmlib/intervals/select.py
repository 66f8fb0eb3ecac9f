"""One entry point for every interval-selection method, as the pipeline runs them.

Each method gets only what it needs: the training images (optimal denoiser, gradient
alignment), an analysed baseline checkpoint (attention, gradient), or nothing but the
noise schedule (SNR, uniform, paper).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mdmlib.config import RunConfig
from mdmlib.core.images import to_model_range
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.data.splits import load_split
from mdmlib.intervals.choice import IntervalChoice
from mdmlib.intervals.fixed import paper_intervals, uniform_intervals
from mdmlib.training.checkpoint import load_checkpoint, model_from_checkpoint


def select_intervals(method: str, cfg: RunConfig, device: torch.device, train_path: str | Path | None = None,
                     model_path: str | Path | None = None, figure_dir: str | Path | None = None) -> IntervalChoice:
    """The ``cfg.experts.n`` intervals that ``method`` chooses; figures go to ``figure_dir``."""
    T, n, settings = cfg.diffusion.timesteps, cfg.experts.n, cfg.intervals
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, T)
    if figure_dir is not None:
        Path(figure_dir).mkdir(parents=True, exist_ok=True)
    if method == "paper":
        return paper_intervals(cfg.experts.boundaries, T)
    if method == "uniform":
        return uniform_intervals(T, n)
    if method == "snr":
        from mdmlib.intervals.snr import snr_intervals

        return snr_intervals(schedule, n, settings.snr.min_flops_ratio, figure_dir=figure_dir)
    if method == "optimal_denoiser":
        from mdmlib.intervals.optimal_denoiser import optimal_denoiser_intervals

        od = settings.optimal_denoiser
        images, _ = load_split(train_path)
        ns = sorted(set(od.table_n) | {n})
        choices = optimal_denoiser_intervals(images, schedule, ns=tuple(ns), grid=od.grid, probes=od.probes,
                                             seed=settings.seed, figure_dir=figure_dir)
        chosen = choices[n]
        by_n = {str(k): list(c.boundaries) for k, c in choices.items()}
        return IntervalChoice(chosen.method, T, chosen.boundaries, {**chosen.details, "boundaries_by_n": by_n})
    model = analysed_model(model_path, device)
    generator = torch.Generator().manual_seed(settings.seed)
    if method == "attention":
        from mdmlib.intervals.attention import attention_intervals

        a = settings.attention
        shape = (a.images, model.in_channels, model.resolution, model.resolution)
        noise = torch.randn(shape, generator=generator).to(device)
        return attention_intervals(model, schedule, noise, n, steps=a.steps, batch_size=a.batch_size,
                                   figure_dir=figure_dir)
    if method == "gradient":
        from mdmlib.intervals.gradient import gradient_intervals

        g = settings.gradient
        images, _ = load_split(train_path)
        pick = torch.randperm(len(images), generator=generator)[: g.batch_size].numpy()
        batch = to_model_range(images[np.sort(pick)]).to(device)
        return gradient_intervals(model, schedule, batch, n, grid=g.grid, seed=settings.seed, figure_dir=figure_dir,
                                  batch_size=min(g.batch_size, 64))  # micro-batches: same gradients, bounded memory
    raise ValueError(f"unknown interval method {method!r}")


def analysed_model(path: str | Path, device: torch.device) -> torch.nn.Module:
    """The EMA weights of a baseline snapshot, the model the analyses look inside."""
    return model_from_checkpoint(load_checkpoint(path)).to(device)
