"""The expert mixture: one model that routes each timestep to the expert of its interval.

A single model is the one-interval mixture, so samplers never count experts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from mdmlib.core.intervals import Interval
from mdmlib.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
)


class ExpertMixture(nn.Module):
    """f_theta(t)(x_t, t): each sample's timestep picks the expert of its interval (MDM Eq. 1)."""

    def __init__(self, experts: Sequence[nn.Module], intervals: Sequence[Interval]):
        super().__init__()
        if len(experts) != len(intervals):
            raise ValueError(f"{len(experts)} experts for {len(intervals)} intervals")
        ordered = sorted(zip(intervals, experts), key=lambda pair: pair[0].lo)
        for (a, _), (b, _) in zip(ordered, ordered[1:]):
            if a.hi != b.lo:
                raise ValueError(f"intervals {a.label()} and {b.label()} do not tile the timesteps")
        if ordered[0][0].lo != 0:
            raise ValueError(f"the intervals start at {ordered[0][0].lo}, not 0")
        self.intervals = [i for i, _ in ordered]
        self.experts = nn.ModuleList([e for _, e in ordered])

    @property
    def timesteps(self) -> int:
        return self.intervals[-1].hi

    def expert_index(self, t: torch.Tensor) -> torch.Tensor:
        """Index of the responsible expert for each timestep index in ``t``."""
        uppers = torch.tensor([i.hi for i in self.intervals], device=t.device)
        if (t < 0).any() or (t >= self.timesteps).any():
            raise ValueError(f"timestep index outside [0, {self.timesteps})")
        return torch.bucketize(t, uppers, right=True)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        which = self.expert_index(t)
        if (which == which[0]).all():  # the usual sampling case: one expert for the whole batch
            return self.experts[int(which[0])](x, t)
        out = torch.empty_like(x)
        for k, expert in enumerate(self.experts):
            mask = which == k
            if mask.any():
                out[mask] = expert(x[mask], t[mask])
        return out


def mixture_from_checkpoints(paths: list[str | Path], intervals: list[list[int]] | None = None) -> ExpertMixture:
    """EMA experts of one or more checkpoints as a single routed model.

    Each expert serves the interval it was trained on, unless ``intervals`` routes otherwise
    (the MDM paper's Table 4 hybrid: a full-range baseline serving only part of the range).
    """
    ckpts = [load_checkpoint(p) for p in paths]
    timesteps = {c["config"]["diffusion"]["timesteps"] for c in ckpts}
    schedules = {c["config"]["diffusion"]["schedule"] for c in ckpts}
    if len(timesteps) != 1 or len(schedules) != 1:
        raise CheckpointError(f"checkpoints {paths} disagree on the diffusion (T {timesteps}, schedule {schedules})")
    experts = [model_from_checkpoint(c) for c in ckpts]
    routed = [Interval(*c["interval"]) for c in ckpts] if intervals is None else [Interval(*i) for i in intervals]
    for c, interval in zip(ckpts, routed):
        trained = Interval(*c["interval"])
        if not trained.lo <= interval.lo < interval.hi <= trained.hi:
            raise CheckpointError(f"{c['name']} was trained on {trained.label()}, cannot serve {interval.label()}")
    return ExpertMixture(experts, routed).eval()
