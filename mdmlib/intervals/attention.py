"""MDM interval choice by attention concentration (MDM Sec. 4.2, Eq. 3, Fig. 3(b), Fig. 4).

Along DDIM trajectories from the given noise, the concentration of one attention layer
at one step is the standard deviation of its softmax weights over key positions,
averaged over queries, heads and images (Eq. 3): 0 for uniform rows, sqrt(K-1)/K for
one-hot rows over K keys. The layer-averaged curve over t is fitted by ``n`` straight
segments (exact segmented least squares); the segment edges become the boundaries.

Breakpoints to timesteps: the fit splits the DDIM timesteps, sorted ascending, into n
runs of consecutive points. Where one run ends at paper timestep ``a`` and the next
starts at ``b``, the boundary is ``(a + b) // 2``. Then ``a <= boundary < b``: every DDIM
step stays in the interval of its own segment, and boundaries are strictly ascending
integers in [1, T-1] with no further snapping.

``details`` keys (paper timesteps t = index + 1): ``ddim_timesteps`` in sampling order
(T first); ``layer_curves`` {label 'r-o': values aligned with ddim_timesteps};
``mean_curve``; ``breakpoints`` (= the boundaries); ``residual`` (sum of squared errors
of the fit); ``slopes`` (change of concentration per paper timestep, one per segment,
clean to noisy; growing concentration during sampling is a negative slope);
``segment_ranges`` ([first, last] paper t of each segment); ``num_images``; ``steps``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mdmlib.core.schedule import NoiseSchedule
from mdmlib.intervals.choice import IntervalChoice
from mdmlib.intervals.partition import best_partition
from mdmlib.models.hooks import record_attention
from mdmlib.report.figures import plt, save_figure
from mdmlib.sampling.ddim import ddim_sample, ddim_timesteps


def attention_concentration(weights: torch.Tensor) -> torch.Tensor:
    """Eq. 3 per image: (B, heads, Q, K) softmax weights -> (B,) mean over heads and queries of std over keys."""
    return weights.float().std(dim=-1, correction=0).mean(dim=(1, 2))


def attention_map(weights: torch.Tensor) -> torch.Tensor:
    """(B, heads, Q, K) -> (B, r, r): attention each key position receives, averaged over heads and queries."""
    b, _, _, k = weights.shape
    side = int(round(k ** 0.5))
    if side * side != k:
        raise ValueError(f"{k} key positions do not form a square grid")
    return weights.float().mean(dim=(1, 2)).reshape(b, side, side)


@dataclass(frozen=True)
class SegmentFit:
    """n least-squares lines over consecutive runs of points sorted by x."""

    edges: tuple[int, ...]  # segment k holds points edges[k] .. edges[k+1]-1; edges[0] = 0, edges[-1] = N
    slopes: tuple[float, ...]
    intercepts: tuple[float, ...]
    residual: float  # sum of squared errors over all points


def _segment_costs(x: np.ndarray, y: np.ndarray, min_points: int) -> np.ndarray:
    """cost[i, j] = SSE of one line through points i..j-1 (inf when fewer than min_points)."""
    # Standardised values keep the prefix-sum differences well conditioned.
    xs = (x - x.mean()) / (x.std() or 1.0)
    y_scale = y.std() or 1.0
    ys = (y - y.mean()) / y_scale
    prefix = [np.concatenate([[0.0], np.cumsum(v)]) for v in (np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys)]
    m, sx, sy, sxx, sxy, syy = (p[None, :] - p[:, None] for p in prefix)  # [i, j] sums over i..j-1
    with np.errstate(divide="ignore", invalid="ignore"):
        cxx = sxx - sx * sx / m
        cxy = sxy - sx * sy / m
        cyy = syy - sy * sy / m
        sse = np.clip(cyy - cxy * cxy / cxx, 0.0, None) * y_scale**2
    return np.where(m >= min_points, sse, np.inf)


def fit_segments(x: np.ndarray, y: np.ndarray, n: int, min_points: int = 2) -> SegmentFit:
    """Exact segmented least squares: n lines over consecutive runs of points, by dynamic programming.

    ``x`` must be strictly ascending. Each segment holds at least ``min_points`` points
    (2 makes every slope defined). Among equal fits the earliest split wins.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    count = len(x)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("x and y must be 1-D arrays of one length")
    if np.any(np.diff(x) <= 0):
        raise ValueError("x must be strictly ascending")
    if n < 1 or min_points < 1 or n * min_points > count:
        raise ValueError(f"cannot fit {n} segments of >= {min_points} points to {count} points")
    cost = _segment_costs(x, y, min_points)
    edges, _ = best_partition(cost, n)
    slopes, intercepts, residual = [], [], 0.0
    for lo, hi in zip(edges, edges[1:]):
        slope, intercept = np.polyfit(x[lo:hi], y[lo:hi], 1) if hi - lo > 1 else (0.0, y[lo])
        residual += float(np.sum((y[lo:hi] - (slope * x[lo:hi] + intercept)) ** 2))
        slopes.append(float(slope))
        intercepts.append(float(intercept))
    return SegmentFit(tuple(int(e) for e in edges), tuple(slopes), tuple(intercepts), residual)


def boundaries_from_fit(paper_t: np.ndarray, edges: tuple[int, ...]) -> list[int]:
    """Midpoint rule between the last point of one segment and the first of the next (module docstring)."""
    return [int(paper_t[e - 1] + paper_t[e]) // 2 for e in edges[1:-1]]


@dataclass
class AttentionCurves:
    timesteps: list[int]  # internal indices, sampling order
    layers: dict[str, np.ndarray]  # label -> concentration per step
    frames: list[tuple[int, np.ndarray, np.ndarray]]  # (internal t, predicted x0 HWC in [0, 1], map r x r)
    frame_layer: str


def _label_key(label: str) -> tuple[int, int]:
    resolution, ordinal = label.split("-")
    return int(resolution), int(ordinal)


class _StepCollector:
    """DDIM callback: reduces the recorded maps of each step to sums, then drops them."""

    def __init__(self, recorded: dict[str, list[torch.Tensor]], steps: int, frame_steps: set[int],
                 frame_layer: str | None):
        self.recorded, self.steps, self.frame_steps = recorded, steps, frame_steps
        self.frame_layer = frame_layer
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}
        self.frames: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.capture = True

    def __call__(self, i: int, t: int, x: torch.Tensor, x0: torch.Tensor) -> None:
        if self.frame_layer is None and self.recorded:
            self.frame_layer = min(self.recorded, key=lambda lab: (-_label_key(lab)[0], _label_key(lab)[1]))
        for label, calls in self.recorded.items():
            sums = self.sums.setdefault(label, np.zeros(self.steps))
            counts = self.counts.setdefault(label, np.zeros(self.steps))
            for weights in calls:
                sums[i] += float(attention_concentration(weights).sum())
                counts[i] += weights.shape[0]
            if self.capture and i in self.frame_steps and label == self.frame_layer and calls:
                image = ((x0[0].detach().float().cpu().permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
                self.frames.append((t, image, attention_map(calls[0][:1])[0].numpy()))
            calls.clear()  # keep only one forward pass of maps in memory

    def curves(self) -> dict[str, np.ndarray]:
        if not self.sums or any((c == 0).any() for c in self.counts.values()):
            raise ValueError("no attention weights recorded at some DDIM step; does the model have attention layers?")
        return {label: self.sums[label] / self.counts[label] for label in sorted(self.sums, key=_label_key)}


@torch.no_grad()
def attention_curves(model, schedule: NoiseSchedule, noise: torch.Tensor, steps: int = 50, batch_size: int = 100,
                     map_steps: int = 6, map_layer: str | None = None) -> AttentionCurves:
    """Per-layer concentration at every DDIM step over all images of ``noise``, in batches.

    Fig. 4 frames come from the first image at ``map_steps`` evenly spaced steps, for
    ``map_layer`` (default: the first layer at the highest attention resolution).
    """
    seq = ddim_timesteps(schedule.timesteps, steps)
    frame_steps = {int(round(v)) for v in np.linspace(0, len(seq) - 1, max(1, min(map_steps, len(seq))))}
    was_training = model.training
    model.eval()  # dropout would make the curves depend on the batch split
    try:
        with record_attention(model) as recorded:
            collector = _StepCollector(recorded, len(seq), frame_steps, map_layer)
            for start in range(0, noise.shape[0], batch_size):
                ddim_sample(model, schedule, noise[start:start + batch_size], steps, on_step=collector)
                collector.capture = False
    finally:
        model.train(was_training)
    return AttentionCurves(seq, collector.curves(), collector.frames, collector.frame_layer or "")


def attention_curves_figure(paper_t: np.ndarray, layers: dict[str, np.ndarray], mean: np.ndarray, fit: SegmentFit,
                            order: np.ndarray, boundaries: list[int], png_path: str | Path) -> None:
    """MDM Fig. 3(b): one curve per layer 'r-o', their mean, the fitted segments and the boundaries."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, curve in layers.items():
        ax.plot(paper_t, curve, "-", linewidth=1, alpha=0.8, label=label)
    ax.plot(paper_t, mean, "k-", linewidth=2.2, label="mean")
    x_sorted = paper_t[order]
    for k, (lo, hi) in enumerate(zip(fit.edges, fit.edges[1:])):
        xs = x_sorted[lo:hi]
        ax.plot(xs, fit.slopes[k] * xs + fit.intercepts[k], "r--", linewidth=1.6,
                label="segment fit" if k == 0 else None)
    for b in boundaries:
        ax.axvline(b, color="grey", linestyle=":", linewidth=1.2)
    ax.invert_xaxis()  # sampling runs from t = T on the left to t = 1 on the right
    ax.set_xlabel("t (sampling runs left to right)")
    ax.set_ylabel("attention concentration (std of weights)")
    ax.set_title(f"boundaries {boundaries}, residual {fit.residual:.3g}", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    save_figure(fig, png_path)


def attention_maps_figure(frames: list[tuple[int, np.ndarray, np.ndarray]], layer: str, png_path: str | Path) -> None:
    """MDM Fig. 4: predicted x0 (top) and the head- and query-averaged attention map (bottom), max-normalised."""
    cols = max(1, len(frames))
    fig, axes = plt.subplots(2, cols, figsize=(1.8 * cols, 3.8), squeeze=False)
    for k, (t, image, amap) in enumerate(frames):
        axes[0, k].imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1,
                          interpolation="nearest")
        axes[0, k].set_title(f"t = {t + 1}", fontsize=9)
        axes[1, k].imshow(amap / max(float(amap.max()), 1e-12), cmap="viridis", vmin=0, vmax=1,
                          interpolation="nearest")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"predicted x0 and attention map of layer {layer}", fontsize=10)
    save_figure(fig, png_path)


def attention_intervals(model, schedule: NoiseSchedule, noise: torch.Tensor, n: int, steps: int = 50,
                        batch_size: int = 100, figure_dir: str | Path | None = None, *, min_points: int = 2,
                        map_steps: int = 6, map_layer: str | None = None) -> IntervalChoice:
    """MDM Sec. 4.2: n intervals from the segmented fit of the layer-averaged attention concentration.

    ``noise`` (N, C, H, W) starts N DDIM trajectories of ``steps`` steps, run ``batch_size``
    at a time on noise's device (the model must be there too). With ``figure_dir``,
    writes attention_curves.png/.pdf and attention_maps.png/.pdf there.
    """
    curves = attention_curves(model, schedule, noise, steps, batch_size, map_steps, map_layer)
    paper_t = np.asarray(curves.timesteps, dtype=np.int64) + 1
    mean = np.mean(np.stack(list(curves.layers.values())), axis=0)
    order = np.argsort(paper_t)
    fit = fit_segments(paper_t[order].astype(np.float64), mean[order], n, min_points)
    boundaries = boundaries_from_fit(paper_t[order], fit.edges)
    sorted_t = paper_t[order]
    details: dict[str, Any] = {
        "ddim_timesteps": paper_t.tolist(),
        "layer_curves": {label: curve.tolist() for label, curve in curves.layers.items()},
        "mean_curve": mean.tolist(),
        "breakpoints": boundaries,
        "residual": fit.residual,
        "slopes": list(fit.slopes),
        "segment_ranges": [[int(sorted_t[lo]), int(sorted_t[hi - 1])] for lo, hi in zip(fit.edges, fit.edges[1:])],
        "num_images": int(noise.shape[0]),
        "steps": steps,
        "map_layer": curves.frame_layer,
    }
    if figure_dir is not None:
        figure_dir = Path(figure_dir)
        figure_dir.mkdir(parents=True, exist_ok=True)
        attention_curves_figure(paper_t, curves.layers, mean, fit, order, boundaries,
                                figure_dir / "attention_curves.png")
        attention_maps_figure(curves.frames, curves.frame_layer, figure_dir / "attention_maps.png")
    return IntervalChoice("attention", schedule.timesteps, tuple(boundaries), details)


def select_attention(context) -> IntervalChoice:
    """The registry's 'attention' method: DDIM trajectories of the analysed baseline from seeded noise."""
    a, model = context.settings, context.analysed_model()
    generator = torch.Generator().manual_seed(context.seed)
    shape = (a.images, model.in_channels, model.resolution, model.resolution)
    noise = torch.randn(shape, generator=generator).to(context.device)
    return attention_intervals(model, context.schedule(), noise, context.n, steps=a.steps, batch_size=a.batch_size,
                               figure_dir=context.figure_dir)
