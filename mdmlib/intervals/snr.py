"""Interval choice by SNR-based task difficulty (TDC training, Eq. 2-5).

Eq. 2: SNR(t) = 10 log10(abar_t / (1 - abar_t)) in dB (signal amplitude sqrt(abar_t), noise
amplitude sqrt(1 - abar_t)). Low SNR means a harder denoising task and a larger model.

Eq. 3: S_n = (-SNR - mean(-SNR)) / std(-SNR) over all T timesteps, then
FLOPs(t) = kF + (1 - k) F (S_n(t) - min S_n) / (max S_n - min S_n), a value in [kF, F]. The
standardisation cancels in the min-max step, so FLOPs is the min-max normalised negative log-SNR
mapped to [kF, F]; it is computed as written anyway.

Eq. 4: the FLOPs range is cut into N equal steps; group i (0 <= i < N) has the upper limit
FLOPs_g(i) = ((i + 1) / N + (N - i - 1) / N k) F = kF + (i + 1) (1 - k) F / N.

Eq. 5: T(i) = {t : v(i) < FLOPs(t) <= w(i)} with v(0) = 0, v(i) = FLOPs_g(i - 1), w(i) = FLOPs_g(i).
So the groups are equal-width bins of FLOPs, not equal numbers of timesteps, and a timestep on a
limit belongs to the lower group. FLOPs(t) rises with t (the SNR falls), so group i is a
contiguous run of timesteps and group 0 (smallest models) is the cleanest. Everything is in
units of F: a "FLOPs ratio" is FLOPs / F.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mdmlib.core.schedule import NoiseSchedule
from mdmlib.intervals.choice import IntervalChoice

METHOD = "snr"
FIGURE_NAME = "snr_flops.png"
PAPER_MIN_FLOPS_RATIO = 0.5  # k in all of TDC's main experiments (Sec. III)
CURVE_POINTS = 200  # per-timestep curve kept in the details, subsampled to about this many points


def snr_db(schedule: NoiseSchedule) -> np.ndarray:
    """Eq. 2 per timestep index (paper t - 1)."""
    abar = schedule.alphas_cumprod.double().numpy()
    if not ((abar > 0) & (abar < 1)).all():
        raise ValueError("the SNR needs 0 < alpha-bar < 1 at every timestep")
    return 10 * np.log10(abar / (1 - abar))


def flops_ratio_curve(schedule: NoiseSchedule, min_flops_ratio: float = PAPER_MIN_FLOPS_RATIO) -> np.ndarray:
    """Eq. 3: FLOPs(t) / F per timestep index, in [k, 1]."""
    if not 0 < min_flops_ratio < 1:
        raise ValueError(f"min_flops_ratio k must be in (0, 1), got {min_flops_ratio}")
    negative = -snr_db(schedule)
    if negative.max() == negative.min():
        raise ValueError("the SNR is the same at every timestep; Eq. 3 cannot be normalised")
    standardised = (negative - negative.mean()) / negative.std()
    spread = (standardised - standardised.min()) / (standardised.max() - standardised.min())
    return min_flops_ratio + (1 - min_flops_ratio) * spread


def group_upper_limits(n: int, min_flops_ratio: float = PAPER_MIN_FLOPS_RATIO) -> np.ndarray:
    """Eq. 4: FLOPs_g(i) / F for groups i = 0..n-1 (ascending; the last is 1)."""
    i = np.arange(n)
    return (i + 1) / n + (n - i - 1) / n * min_flops_ratio


def assign_groups(flops_ratio: np.ndarray, n: int, min_flops_ratio: float = PAPER_MIN_FLOPS_RATIO) -> np.ndarray:
    """Eq. 5: the group of every timestep, the i with v(i) < FLOPs(t) <= w(i)."""
    step = (1 - min_flops_ratio) / n
    # rounding keeps a FLOPs value that lies on a limit (up to float error) in the lower group
    position = np.round((np.asarray(flops_ratio) - min_flops_ratio) / step, 9)
    return np.clip(np.ceil(position).astype(int) - 1, 0, n - 1)  # FLOPs = kF falls in group 0 (v(0) = 0)


def snr_intervals(schedule: NoiseSchedule, n: int, min_flops_ratio: float = PAPER_MIN_FLOPS_RATIO,
                  figure_dir=None) -> IntervalChoice:
    """TDC's N = ``n`` groups as intervals; ``min_flops_ratio`` is the paper's k (0.5 there).

    Raises ValueError when a group gets no timestep (possible for large n where the SNR drops
    steeply, e.g. at the clipped last step of the cosine schedule) or when the groups are not
    contiguous (an SNR that does not fall with t): neither gives n intervals.
    """
    if n < 1:
        raise ValueError(f"need at least one group, got n = {n}")
    timesteps = schedule.timesteps
    snr = snr_db(schedule)
    flops = flops_ratio_curve(schedule, min_flops_ratio)
    groups = assign_groups(flops, n, min_flops_ratio)
    counts = np.bincount(groups, minlength=n)
    if (counts == 0).any():
        raise ValueError(f"snr: groups {np.flatnonzero(counts == 0).tolist()} of {n} get no timestep "
                         f"(timesteps per group {counts.tolist()}); choose fewer groups")
    if (np.diff(groups) < 0).any():
        raise ValueError("snr: FLOPs(t) does not rise with t, so the groups are not contiguous intervals")
    boundaries = tuple(int(b) for b in np.cumsum(counts)[:-1])  # last paper t of each group but the last
    upper = group_upper_limits(n, min_flops_ratio)
    curve_index = np.unique(np.r_[np.arange(0, timesteps, max(1, timesteps // CURVE_POINTS)), timesteps - 1])
    details = {
        "criterion": "TDC Eq. 2-5: FLOPs(t)/F = k + (1-k) * minmax(standardised -SNR_dB); groups are the "
                     "equal FLOPs steps v(i) < FLOPs(t) <= w(i)",
        "min_flops_ratio": min_flops_ratio,
        "group_flops_upper": upper.tolist(),
        "group_flops_lower": [0.0, *upper[:-1].tolist()],
        "group_timesteps": counts.tolist(),
        "group_mean_flops_ratio": [float(flops[groups == i].mean()) for i in range(n)],
        "snr_db_range": [float(snr.min()), float(snr.max())],
        "curve_timesteps": (curve_index + 1).tolist(),
        "curve_flops_ratio": flops[curve_index].tolist(),
    }
    choice = IntervalChoice(METHOD, timesteps, boundaries, details)
    if figure_dir is not None:
        Path(figure_dir).mkdir(parents=True, exist_ok=True)
        flops_figure(flops, choice, Path(figure_dir) / FIGURE_NAME)
    return choice


def flops_figure(flops_ratio: np.ndarray, choice: IntervalChoice, png_path: str | Path) -> None:
    """FLOPs(t)/F over t with the group limits (horizontal) and the interval boundaries (vertical)."""
    from mdmlib.report.figures import plt, save_figure

    t = np.arange(1, len(flops_ratio) + 1)
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for k, interval in enumerate(choice.intervals):
        ax.axvspan(interval.lo, interval.hi, color=f"C{k % 10}", alpha=0.15, linewidth=0)
    ax.plot(t, flops_ratio, color="black", linewidth=1.5, label="FLOPs(t) / F (Eq. 3)")
    for limit in choice.details["group_flops_upper"][:-1]:
        ax.axhline(limit, color="grey", linestyle=":", linewidth=0.8)
    for b in choice.boundaries:
        ax.axvline(b, color="grey", linestyle="--", linewidth=0.8)
        ax.text(b, 1.0, str(b), ha="center", va="bottom", fontsize=7, transform=ax.get_xaxis_transform())
    k = choice.details["min_flops_ratio"]
    ax.set_xlim(0, len(flops_ratio))
    ax.set_ylim(k - 0.03 * (1 - k), 1 + 0.03 * (1 - k))
    ax.set_xlabel("t")
    ax.set_ylabel("FLOPs / F")
    ax.set_title(f"TDC groups: n = {choice.n}, k = {k:g} (dotted: Eq. 4 limits, dashed: boundaries)",
                 fontsize=10, pad=14)
    ax.legend(loc="lower right")
    save_figure(fig, png_path)


def select_snr(context) -> IntervalChoice:
    """The registry's 'snr' method, with ``intervals.snr`` settings."""
    return snr_intervals(context.schedule(), context.n, context.settings.min_flops_ratio, figure_dir=context.figure_dir)
