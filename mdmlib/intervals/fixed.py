"""The two methods that need no analysis: the papers' fixed split and equal-width intervals."""
from __future__ import annotations

from typing import Sequence

from mdmlib.intervals.choice import IntervalChoice


def paper_intervals(fractions: Sequence[float], timesteps: int) -> IntervalChoice:
    """Cut points at the given fractions of T (MDM's ADM split is 0.1, 0.8)."""
    return IntervalChoice("paper", timesteps, tuple(round(f * timesteps) for f in fractions),
                          {"fractions": list(fractions)})


def uniform_intervals(timesteps: int, n: int) -> IntervalChoice:
    """n intervals of (near) equal width."""
    return IntervalChoice("uniform", timesteps, tuple(round(k * timesteps / n) for k in range(1, n)), {})


def select_paper(context) -> IntervalChoice:
    """The registry's 'paper' method: ``experts.boundaries`` as fractions of T."""
    return paper_intervals(context.cfg.experts.boundaries, context.timesteps)


def select_uniform(context) -> IntervalChoice:
    return uniform_intervals(context.timesteps, context.n)
