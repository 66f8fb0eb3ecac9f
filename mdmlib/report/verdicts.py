"""Whether a paper's claim holds here, decided from metrics measured on paired sample sets.

Every run of a comparison is sampled from the same seed sets (same initial noise set by set),
so a difference is read set by set (``mdmlib.metrics.spread.paired_difference``) and counts only
when a paired t-test at 95% finds it (``PairedDifference.decided``). A claim is then "holds", "does not hold", or
"undecided" when the difference that would decide it is within the spread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from mdmlib.metrics.spread import PairedDifference, paired_difference

HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided"


@dataclass(frozen=True)
class Verdict:
    verdict: str  # HOLDS, FAILS or UNDECIDED
    reason: str  # the numbers behind it, in one clause

    def text(self) -> str:
        return f"{self.verdict} ({self.reason})"


def lowest_verdict(claimed: str, values: Mapping[str, Sequence[float]], confidence: float = 0.95) -> Verdict:
    """The claim "``claimed`` has the lowest mean" (FID: lower is better) over candidates whose
    ``values`` are per seed set, in the same set order for all. It holds when ``claimed`` is
    lowest and the paired difference to the runner-up is decided at ``confidence``; it fails when
    another candidate beats ``claimed`` so; otherwise it is undecided."""
    if claimed not in values or len(values) < 2:
        raise ValueError(f"claim about {claimed!r} needs it and at least one other of {sorted(values)}")
    means = {k: float(np.mean(v)) for k, v in values.items()}
    best = min(means, key=means.get)
    if best == claimed:
        runner_up = min((k for k in means if k != claimed), key=means.get)
        diff = paired_difference(values[claimed], values[runner_up])
        verdict = HOLDS if diff.decided(confidence) else UNDECIDED
        return Verdict(verdict, f"{claimed} lowest, {diff.mean:+.3g} (se {diff.se:.2g}) against {runner_up} "
                                f"over {diff.sets} sample sets")
    diff = paired_difference(values[claimed], values[best])
    verdict = FAILS if diff.decided(confidence) else UNDECIDED
    return Verdict(verdict, f"{best} lowest; {claimed} {diff.mean:+.3g} (se {diff.se:.2g}) from it "
                            f"over {diff.sets} sample sets")


def less_verdict(a: str, b: str, values: Mapping[str, Sequence[float]], confidence: float = 0.95) -> Verdict:
    """The claim "``a`` is lower than ``b``" on paired sample sets."""
    return lowest_verdict(a, {a: values[a], b: values[b]}, confidence)


def difference_verdict(diff: PairedDifference, lower: bool = True, confidence: float = 0.95) -> str:
    """The claim "a - b is negative" (``lower``; else positive) from a paired difference: holds
    when the difference is decided with the claimed sign, does not hold when decided with the
    other, and is undecided within the spread."""
    if not diff.decided(confidence):
        return UNDECIDED
    return HOLDS if (diff.mean < 0) == lower else FAILS


def equivalent_verdict(diffs: Mapping[str, PairedDifference], tolerance: float,
                       confidence: float = 0.95) -> Verdict:
    """The claim "no run differs from the reference by more than ``tolerance``" (an equivalence
    claim, as "stable across k"), from each run's paired difference to the reference. It holds
    when every difference's confidence interval lies within +-tolerance, does not hold when some
    interval lies wholly outside it, and is undecided otherwise: few sets cannot show stability."""
    if not diffs or tolerance <= 0:
        raise ValueError(f"an equivalence claim needs differences and a positive tolerance, got {tolerance}")
    intervals = {name: d.interval(confidence) for name, d in diffs.items()}
    widest = max(diffs, key=lambda name: abs(diffs[name].mean))
    worst = f"largest {widest} {diffs[widest].mean:+.3g} (se {diffs[widest].se:.2g}), tolerance {tolerance:.3g}"
    outside = [name for name, (lo, hi) in intervals.items() if lo > tolerance or hi < -tolerance]
    if outside:
        return Verdict(FAILS, f"{', '.join(outside)} decided beyond the tolerance; {worst}")
    if all(-tolerance <= lo and hi <= tolerance for lo, hi in intervals.values()):
        return Verdict(HOLDS, f"every difference within the tolerance at {confidence:.0%}; {worst}")
    return Verdict(UNDECIDED, f"the spread reaches past the tolerance; {worst}")


def reached_within_verdict(diffs: Sequence[tuple[float, PairedDifference]], limit: float,
                           confidence: float = 0.95) -> Verdict:
    """The claim "a run passes a target (its paired difference to it turns negative) at a cost
    below ``limit``", from ``diffs``: (cost, difference to the target) at each evaluation point.
    It holds when some point below the limit is decided below the target, does not hold when
    every point below the limit is decided above it (or there is none), else it is undecided."""
    within = [(cost, d) for cost, d in diffs if cost < limit]
    below = [(cost, d) for cost, d in within if difference_verdict(d, True, confidence) == HOLDS]
    if below:
        cost, d = below[0]
        return Verdict(HOLDS, f"below the target at cost {cost:.3g} ({d.mean:+.3g}, se {d.se:.2g})")
    if all(difference_verdict(d, True, confidence) == FAILS for _, d in within):
        return Verdict(FAILS, f"every point below cost {limit:g} ({len(within)}) is decided above the target")
    undecided = [cost for cost, d in within if difference_verdict(d, True, confidence) == UNDECIDED]
    return Verdict(UNDECIDED, f"within the spread of the target at cost {', '.join(f'{c:.3g}' for c in undecided)}")


def sooner_verdict(a: str, a_at: float | None, b: str, b_at: float | None) -> Verdict:
    """The claim "``a`` reaches a point (converges) at a smaller cost than ``b``"; None: never
    reached within the run. Neither reaching it decides nothing."""
    def at(x):
        return "never" if x is None else f"at {x:.3g}"
    reason = f"{a} {at(a_at)}, {b} {at(b_at)}"
    if a_at is None and b_at is None:
        return Verdict(UNDECIDED, reason)
    if a_at is None:
        return Verdict(FAILS, reason)
    return Verdict(HOLDS if b_at is None or a_at < b_at else FAILS, reason)
