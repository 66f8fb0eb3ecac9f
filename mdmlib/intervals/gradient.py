"""DiffPruning interval choice by gradient alignment (DiffPruning Sec. 3.3; supplementary Sec. 2.1, Eq. 1-3).

The alignment score a_{t,s} of two timesteps is the cosine similarity between the
gradients, w.r.t. all model parameters, of the per-timestep losses L_t and L_s (Eq. 3
of the main text: E ||eps_theta(x_t, t) - eps||^2). Each gradient is estimated on one
fixed batch of training images with one fixed noise draw, the same for every t, so
the scores differ only through t.

Cut-offs maximise the supplementary's objective (Eq. 1 for two intervals, Eq. 3 for
more): J = sum_i w_i * (sum_{j, k in I_i} a_{j,k}) / |I_i|^2, with w_i = |I_i| / T.
The diagonal a_{j,j} = 1 is part of the sums, as written. On a grid, point k stands
for the cell (e_k, e_{k+1}] of |cell_k| timesteps; with cell sizes s, an interval of
cells contributes (sum_{j,k} s_j s_k a_{j,k}) / (|I_i| T), |I_i| = sum of its s_j:
Eq. 1/3 for a matrix constant on cells, and exactly Eq. 1/3 when the grid is every
timestep. J is a sum over intervals, so the search is exact by dynamic programming.

Grid: G cells of [1, T], edges e_k = round(k T / G), grid point k at the cell's middle
timestep. A cut-off before cell c puts the boundary at paper timestep e_c, giving the
intervals (0, e_c], (e_c, ...]; so boundaries are cell edges in [1, T-1].
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mdmlib.core.images import to_model_range
from mdmlib.core.schedule import NoiseSchedule, epsilon_loss_per_sample
from mdmlib.intervals.choice import IntervalChoice
from mdmlib.intervals.partition import best_partition
from mdmlib.report.figures import plt, save_figure


def grid_cells(timesteps: int, grid: int) -> tuple[list[int], list[int]]:
    """(edges e_0..e_G in paper timesteps, grid points: each cell's middle paper timestep)."""
    if not 1 <= grid <= timesteps:
        raise ValueError(f"grid must be in [1, {timesteps}], got {grid}")
    edges = [(2 * k * timesteps + grid) // (2 * grid) for k in range(grid + 1)]  # round half up
    points = [(lo + 1 + hi) // 2 for lo, hi in zip(edges, edges[1:])]
    return edges, points


def objective(similarity: np.ndarray, cuts: Sequence[int], sizes: Sequence[float] | None = None) -> float:
    """J (supplementary Eq. 1/3) of the intervals that start new at grid indices ``cuts``."""
    sim = np.asarray(similarity, dtype=np.float64)
    s = np.ones(len(sim)) if sizes is None else np.asarray(sizes, dtype=np.float64)
    edges = [0, *cuts, len(sim)]
    total = 0.0
    for lo, hi in zip(edges, edges[1:]):
        if hi <= lo:
            raise ValueError(f"cut-offs {list(cuts)} leave an empty interval")
        block = s[lo:hi, None] * s[None, lo:hi] * sim[lo:hi, lo:hi]
        total += block.sum() / s[lo:hi].sum()
    return float(total / s.sum())


def best_cutoffs(similarity: np.ndarray, n: int, sizes: Sequence[float] | None = None) -> tuple[tuple[int, ...], float]:
    """Exact maximiser of J over n intervals of consecutive grid points.

    Returns the grid indices at which intervals 2..n start (ascending, in 1..G-1) and
    the maximum J. ``sizes`` are the cells' timestep counts (default: all equal).
    Among equal optima the earliest cut-offs win.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    count = len(sim)
    if sim.shape != (count, count):
        raise ValueError(f"similarity must be square, got shape {sim.shape}")
    if not 1 <= n <= count:
        raise ValueError(f"cannot cut {count} grid points into {n} non-empty intervals")
    s = np.ones(count) if sizes is None else np.asarray(sizes, dtype=np.float64)
    prefix = np.zeros((count + 1, count + 1))
    prefix[1:, 1:] = (sim * s[:, None] * s[None, :]).cumsum(0).cumsum(1)
    diag = np.diagonal(prefix).copy()
    block = diag[None, :] - prefix - prefix.T + diag[:, None]  # [i, j]: block sum over i..j-1
    size_prefix = np.concatenate([[0.0], np.cumsum(s)])
    width = size_prefix[None, :] - size_prefix[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(width > 0, block / width, -np.inf) / s.sum()
    edges, _ = best_partition(-gain, n)  # maximise J
    cuts = tuple(edges[1:-1])
    return cuts, objective(sim, cuts, s)


def loss_gradient(model, schedule: NoiseSchedule, images: torch.Tensor, noise: torch.Tensor, t_index: int,
                  batch_size: int | None = None) -> tuple[torch.Tensor, float]:
    """Flattened gradient of L_t (mean over all images) w.r.t. every trainable parameter, and L_t.

    Micro-batches of ``batch_size`` images accumulate to the gradient of the full batch.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    loss_sum = 0.0
    step = batch_size or images.shape[0]
    for start in range(0, images.shape[0], step):
        x0, eps = images[start:start + step], noise[start:start + step]
        t = torch.full((x0.shape[0],), t_index, device=x0.device, dtype=torch.long)
        loss = epsilon_loss_per_sample(model, schedule, x0, t, eps).sum() / images.shape[0]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for acc, g in zip(total, grads):
            if g is not None:
                acc += g
        loss_sum += float(loss.detach())
    return torch.cat([g.reshape(-1) for g in total]), loss_sum


def gradient_similarity(model, schedule: NoiseSchedule, images: torch.Tensor, t_indices: Sequence[int],
                        seed: int = 0, batch_size: int | None = None) -> tuple[np.ndarray, list[float]]:
    """Cosine similarity of the L_t gradients for the internal timestep indices ``t_indices``, and L_t.

    The noise is ``torch.randn(images.shape)`` from a generator seeded with ``seed``, shared
    by every t. The model runs in eval mode (no dropout), so only t changes between
    gradients. The gradients are kept on the model's device: G x P x 4 bytes.
    """
    device = next(model.parameters()).device
    images = images.to(device)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    was_training = model.training
    model.eval()
    try:
        results = [loss_gradient(model, schedule, images, noise, int(t), batch_size) for t in t_indices]
    finally:
        model.train(was_training)
    grads = [g for g, _ in results]
    norms = [float(torch.linalg.vector_norm(g.double())) for g in grads]
    if min(norms) == 0.0:
        raise ValueError("a timestep's loss gradient is exactly zero; its cosine similarity is undefined")
    count = len(grads)
    sim = np.eye(count)
    for i in range(count):
        for j in range(i + 1, count):
            sim[i, j] = sim[j, i] = float(torch.dot(grads[i].double(), grads[j].double())) / (norms[i] * norms[j])
    return np.clip(sim, -1.0, 1.0), [loss for _, loss in results]


def first_cutoff_curve(similarity: np.ndarray, cuts: Sequence[int],
                       sizes: Sequence[float]) -> tuple[list[int], list[float]]:
    """J as the first cut-off moves over every grid index before the second (others fixed)."""
    if not cuts:
        return [], []
    stop = cuts[1] if len(cuts) > 1 else len(similarity)
    positions = list(range(1, stop))
    return positions, [objective(similarity, [c, *cuts[1:]], sizes) for c in positions]


def similarity_figure(similarity: np.ndarray, edges: list[int], boundaries: list[int], png_path: str | Path) -> None:
    """DiffPruning Fig. 3: the alignment scores with the chosen cut-offs dashed."""
    fig, ax = plt.subplots(figsize=(5, 4.4))
    image = ax.imshow(similarity, origin="lower", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest",
                      extent=(edges[0], edges[-1], edges[0], edges[-1]))
    for b in boundaries:
        ax.axvline(b, color="k", linestyle="--", linewidth=1.2)
        ax.axhline(b, color="k", linestyle="--", linewidth=1.2)
    ax.set_xlabel("t")
    ax.set_ylabel("t")
    ax.set_title(f"gradient cosine similarity; cut-offs {boundaries}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    save_figure(fig, png_path)


def objective_figure(t1: list[int], values: list[float], best_t1: int | None, png_path: str | Path) -> None:
    """Supplementary Fig. 2-5: J(t1) with the other cut-offs at their optimum."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    if t1:
        ax.plot(t1, values, "o-", markersize=3)
        ax.axvline(best_t1, color="r", linestyle="--", linewidth=1, label=f"t1 = {best_t1}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "one interval: no cut-off", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("t1 (first cut-off)")
    ax.set_ylabel("J")
    ax.grid(alpha=0.3)
    save_figure(fig, png_path)


def gradient_intervals(model, schedule: NoiseSchedule, images: torch.Tensor, n: int, grid: int = 20, seed: int = 0,
                       figure_dir: str | Path | None = None, *, batch_size: int | None = None) -> IntervalChoice:
    """DiffPruning: n intervals maximising J over the alignment scores on a ``grid``-point timestep grid.

    ``images`` are training images in [-1, 1], (B, C, H, W), used for every t. With
    ``figure_dir``, writes gradient_similarity.png/.pdf and gradient_objective.png/.pdf.
    """
    edges, points = grid_cells(schedule.timesteps, grid)
    sizes = np.diff(edges).astype(np.float64)
    sim, losses = gradient_similarity(model, schedule, images, [p - 1 for p in points], seed, batch_size)
    cuts, best = best_cutoffs(sim, n, sizes)
    boundaries = [edges[c] for c in cuts]
    positions, curve = first_cutoff_curve(sim, cuts, sizes)
    details: dict[str, Any] = {
        "grid_timesteps": points,
        "grid_edges": edges,
        "similarity": sim.tolist(),
        "losses": losses,
        "cutoff_indices": list(cuts),
        "cutoffs": boundaries,
        "J": best,
        "J_first_cutoff": {"t1": [edges[c] for c in positions], "J": curve},
        "num_images": int(images.shape[0]),
        "seed": seed,
    }
    if figure_dir is not None:
        figure_dir = Path(figure_dir)
        figure_dir.mkdir(parents=True, exist_ok=True)
        similarity_figure(sim, edges, boundaries, figure_dir / "gradient_similarity.png")
        objective_figure(details["J_first_cutoff"]["t1"], curve, boundaries[0] if boundaries else None,
                         figure_dir / "gradient_objective.png")
    return IntervalChoice("gradient", schedule.timesteps, tuple(boundaries), details)


def select_gradient(context) -> IntervalChoice:
    """The registry's 'gradient' method: one fixed batch of training images, drawn by the seed."""
    g, model = context.settings, context.analysed_model()
    generator = torch.Generator().manual_seed(context.seed)
    images = context.train_images()
    pick = torch.randperm(len(images), generator=generator)[: g.batch_size].numpy()
    batch = to_model_range(images[np.sort(pick)]).to(context.device)
    return gradient_intervals(model, context.schedule(), batch, context.n, grid=g.grid, seed=context.seed,
                              figure_dir=context.figure_dir,
                              batch_size=min(g.batch_size, 64))  # micro-batches: same gradients, bounded memory
