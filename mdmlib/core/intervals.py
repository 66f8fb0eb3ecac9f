"""Timestep intervals and the experts' iteration budgets.

An interval is ``(lo, hi]`` in the paper's t = 1..T, i.e. indices ``lo <= i < hi``.
Torch-free: building the DAG reads intervals without PyTorch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # no runtime import: building the DAG reads intervals without PyTorch
    import torch


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


