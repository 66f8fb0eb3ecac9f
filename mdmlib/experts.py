"""Timestep intervals and the expert mixture that routes each timestep to its expert.

An interval is ``(lo, hi]`` in the paper's t = 1..T, i.e. indices ``lo <= i < hi``.
A single model is the one-interval mixture, so samplers never count experts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class Interval:
    lo: int  # exclusive lower bound in paper timesteps (0 for the cleanest interval)
    hi: int  # inclusive upper bound in paper timesteps (T for the noisiest interval)

    def __post_init__(self):
        if not 0 <= self.lo < self.hi:
            raise ValueError(f"empty or negative interval ({self.lo}, {self.hi}]")

    @property
    def size(self) -> int:
        return self.hi - self.lo

    def contains_index(self, t: torch.Tensor) -> torch.Tensor:
        return (t >= self.lo) & (t < self.hi)

    def label(self) -> str:
        return f"({self.lo}, {self.hi}]"

    def to_list(self) -> list[int]:
        return [self.lo, self.hi]


def intervals_from_boundaries(fractions: Sequence[float], timesteps: int) -> list[Interval]:
    """Interior boundaries as fractions of T -> intervals ordered from clean (t near 0) to noisy."""
    edges = [0] + [int(round(f * timesteps)) for f in fractions] + [timesteps]
    return [Interval(lo, hi) for lo, hi in zip(edges, edges[1:])]


def expert_budgets(intervals: Sequence[Interval], timesteps: int, baseline_iterations: int) -> list[int]:
    """I_e for every expert, rounded by largest remainder so they sum to I_baseline exactly.

    An interval too narrow for even one iteration still gets one (taken from the largest
    budget): every chosen interval needs a trained expert.
    """
    if baseline_iterations < len(intervals):
        raise ValueError(f"{baseline_iterations} iterations cannot give each of {len(intervals)} experts one")
    exact = [i.size / timesteps * baseline_iterations for i in intervals]
    budgets = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda k: exact[k] - budgets[k], reverse=True)
    for k in by_remainder[: baseline_iterations - sum(budgets)]:
        budgets[k] += 1
    for k in range(len(budgets)):
        if budgets[k] == 0:
            budgets[k] = 1
            budgets[budgets.index(max(budgets))] -= 1
    return budgets


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
