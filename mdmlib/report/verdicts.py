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

from mdmlib.metrics.spread import paired_difference

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
