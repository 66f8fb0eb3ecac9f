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

    The paper's values (CIFAR-10, Inception FID): 0.1, 3 and 0.3. With ``in_sd`` both thresholds
    are multiples of the FID's measured spread between sample sets (its sd at the points
    compared), so the rule asks for changes that noise cannot make or hide.
    """

    max_change: float = 0.1
    consecutive: int = 3
    max_gap_to_best: float = 0.3
    in_sd: bool = False

    def text(self) -> str:
        unit = " sd" if self.in_sd else ""
        return (f"FID change < {self.max_change}{unit} for {self.consecutive} points, within "
                f"{self.max_gap_to_best}{unit} of the best")


def convergence_index(fids: Sequence[float], rule: ConvergenceRule = ConvergenceRule(),
                      sds: Sequence[float] | None = None) -> int | None:
    """Index of the convergence point in an evaluation series, or None if it never converges.

    ``sds``: the FID's sd between sample sets at each point, needed when ``rule.in_sd``: a change
    between two points is weighed against the mean of their sds, a gap to the best against the
    point's own."""
    fids = np.asarray(fids, dtype=float)
    if not np.isfinite(fids).all():
        raise ValueError("FID series holds non-finite values")
    change_limit, gap_limit = rule_limits(rule, len(fids), sds)
    changes = np.abs(np.diff(fids))
    best = fids.min()
    for i in range(len(fids) - rule.consecutive):
        window = slice(i, i + rule.consecutive)
        if (changes[window] < change_limit[window]).all() and fids[i] - best < gap_limit[i]:
            return i
    return None


def why_not_converged(fids: Sequence[float], rule: ConvergenceRule, sds: Sequence[float] | None = None) -> str:
    """Why the rule did not fire, from the last window it could test: each of its FID changes
    against its limit, and the window start's gap to the best against its limit."""
    fids = np.asarray(fids, dtype=float)
    if len(fids) <= rule.consecutive:
        return f"{len(fids)} points: the rule needs more than {rule.consecutive}"
    i = len(fids) - rule.consecutive - 1
    change_limit, gap_limit = rule_limits(rule, len(fids), sds)
    window = slice(i, i + rule.consecutive)
    moves = np.abs(np.diff(fids))[window]
    return (f"last changes {', '.join(f'{m:.3g}' for m in moves)} against limits "
            f"{', '.join(f'{c:.3g}' for c in change_limit[window])}; gap to best {fids[i] - fids.min():.3g} "
            f"against {gap_limit[i]:.3g}")


def rule_limits(rule: ConvergenceRule, points: int, sds: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The limit on each of the ``points - 1`` adjacent FID changes and on each point's gap to the
    best: the rule's numbers, or in sd the mean sd of the two points compared and the point's own."""
    if not rule.in_sd:
        return np.full(max(points - 1, 0), rule.max_change), np.full(points, rule.max_gap_to_best)
    if sds is None or len(sds) != points or not np.isfinite(np.asarray(sds, dtype=float)).all():
        raise ValueError("convergence thresholds in sd need the FID's sd at every point (sample sets)")
    sd = np.asarray(sds, dtype=float)
    return rule.max_change * (sd[:-1] + sd[1:]) / 2, rule.max_gap_to_best * sd


def fid_sds(series, relative_spread: float | None = None, rule: ConvergenceRule | None = None) -> np.ndarray | None:
    """The FID's sd at each point of a series (sorted by point): its own, measured over its
    sample sets, or else ``relative_spread`` x its FID (a spread measured on other runs, as a
    share of the FID); None when neither is known, or when ``rule`` is given and not in sd (it
    then needs none)."""
    if rule is not None and not rule.in_sd:
        return None
    df = series.sort_values("point")
    if "fid_sd" in df and np.isfinite(df["fid_sd"].to_numpy(dtype=float)).all():
        return df["fid_sd"].to_numpy(dtype=float)
    if relative_spread is not None:
        return relative_spread * df["fid"].to_numpy(dtype=float)
    return None


def relative_fid_spread(series_list) -> float:
    """The median over the points of runs scored on several sample sets of sd / mean FID."""
    ratios = np.concatenate([(df["fid_sd"] / df["fid"]).to_numpy(dtype=float) for df in series_list
                             if "fid_sd" in df])
    ratios = ratios[np.isfinite(ratios)]
    if not len(ratios):
        raise ValueError("no run was scored on several sample sets: the FID's spread is unknown")
    return float(np.median(ratios))


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
