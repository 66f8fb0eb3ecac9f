"""The MDM paper's convergence rule and the budget reallocation it drives (Sec. 3, 5.2).

The pure rules, tested on synthetic curves; Table 2 and Fig. 1 (``convergence_study``) and
the reallocation run of the `convergence` target (``reallocation``) apply them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class ConvergenceRule:
    """Converged at the first point after which the FID changes by less than ``max_change``
    for ``consecutive`` adjacent pairs, and which lies within ``max_gap_to_best`` of the best FID.

    The paper's values (CIFAR-10, Inception FID): 0.1, 3 and 0.3.
    """

    max_change: float = 0.1
    consecutive: int = 3
    max_gap_to_best: float = 0.3


def convergence_index(fids: Sequence[float], rule: ConvergenceRule = ConvergenceRule()) -> int | None:
    """Index of the convergence point in an evaluation series, or None if it never converges."""
    fids = np.asarray(fids, dtype=float)
    if not np.isfinite(fids).all():
        raise ValueError("FID series holds non-finite values")
    changes = np.abs(np.diff(fids))
    best = fids.min()
    for i in range(len(fids) - rule.consecutive):
        if (changes[i:i + rule.consecutive] < rule.max_change).all() and fids[i] - best < rule.max_gap_to_best:
            return i
    return None


def reallocate_budgets(initial: Sequence[int], converged_at: Sequence[int | None]) -> list[int]:
    """Move the iterations of experts that converged early to those that did not.

    A converged expert stops at its convergence step; the iterations it frees go to the
    experts that did not converge, in proportion to their initial budgets (largest
    remainder, so nothing is lost). When every expert converged, the savings are kept:
    the total then stays below the baseline's budget, never above it.
    """
    if len(initial) != len(converged_at):
        raise ValueError(f"{len(initial)} budgets for {len(converged_at)} convergence points")
    for budget, step in zip(initial, converged_at):
        if step is not None and not 0 < step <= budget:
            raise ValueError(f"convergence step {step} outside the budget (0, {budget}]")
    stopped = [b if c is None else c for b, c in zip(initial, converged_at)]
    freed = sum(initial) - sum(stopped)
    open_experts = [k for k, c in enumerate(converged_at) if c is None]
    if not open_experts or freed == 0:
        return stopped
    weight = sum(initial[k] for k in open_experts)
    shares = {k: freed * initial[k] / weight for k in open_experts}
    extra = {k: int(v) for k, v in shares.items()}
    for k in sorted(open_experts, key=lambda k: shares[k] - extra[k], reverse=True)[: freed - sum(extra.values())]:
        extra[k] += 1
    return [s + extra.get(k, 0) for k, s in enumerate(stopped)]
