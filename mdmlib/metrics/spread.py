"""The spread of a metric over disjoint sample sets, and paired differences between two runs.

Two runs sampled from the same seed sets share their initial noise set by set, so their
difference is read set by set (paired): the mean difference and its standard error over the
sets, not the difference of two means each with its own spread.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Spread:
    mean: float
    sd: float  # sample standard deviation over the sets (ddof = 1); nan for one set
    sets: int

    def text(self, digits: int = 3) -> str:
        """'0.545 (0.13)': the mean with the sd over sets in brackets, as the tables print it."""
        return f"{self.mean:.{digits}g}" + ("" if math.isnan(self.sd) else f" ({self.sd:.2g})")


@dataclass(frozen=True)
class PairedDifference:
    mean: float  # mean over sets of (a - b)
    se: float  # its standard error: sd of the differences / sqrt(sets); nan for one set
    sets: int

    def decided(self, confidence: float = 0.95) -> bool:
        """Whether the difference is non-zero by a two-sided paired t-test at ``confidence``: the
        mean beyond t(sets - 1) standard errors (12.7 for two sets, 2.78 for five), so few sets
        decide only large, steady differences."""
        lo, hi = self.interval(confidence)
        return lo > 0 or hi < 0

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """The two-sided t confidence interval of the mean difference; unbounded for one set."""
        if math.isnan(self.se) or self.sets < 2:
            return -math.inf, math.inf
        from scipy.stats import t

        half = t.ppf(0.5 + confidence / 2, self.sets - 1) * self.se
        return self.mean - half, self.mean + half


def spread(values: Sequence[float]) -> Spread:
    x = np.asarray(values, dtype=float)
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"spread of {list(values)}: need finite values")
    return Spread(float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else math.nan, int(x.size))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> PairedDifference:
    """a - b set by set; ``a[i]`` and ``b[i]`` must come from the same seed set."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"paired difference: {x.size} and {y.size} sets; need the same non-zero count")
    d = x - y
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.nan
    return PairedDifference(float(d.mean()), se, int(d.size))
