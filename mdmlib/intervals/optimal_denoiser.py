"""Interval choice by optimal-denoiser clustering (multi-stage paper, supplementary Eq. 20, Eq. 21, Algorithm 2).

The training set is treated as the data distribution, ``p_data = (1/N) sum_i delta(y_i)``, so the
denoiser that minimises the training loss has a closed form (Eq. 20). With our VP parametrisation
``x_t = sqrt(abar_t) y + sqrt(1 - abar_t) eps`` (the paper's ``s_t = sqrt(abar_t)``,
``s_t sigma_t = sqrt(1 - abar_t)``) its clean-image prediction is the posterior mean

    x0*(x_t, t) = sum_i softmax_i(-||x_t - sqrt(abar_t) y_i||^2 / (2 (1 - abar_t))) y_i,

and Eq. 20's noise prediction is ``(x_t - sqrt(abar_t) x0*) / sqrt(1 - abar_t)``. Distances are
taken between clean-image predictions (as the authors' public clustering code does): for a
training image the noise prediction tends to the true noise at both ends of the trajectory, so
it cannot tell clean from noisy steps, while x0* goes from the image itself to the dataset mean.

Timesteps are grouped so that the denoiser behaves alike within each interval: Eq. 21 minimises
the summed distance between the denoiser's outputs over all pairs of timesteps that share an
interval, ``sum_k int_{t_k}^{t_k+1} int_{t_k}^{t_k+1} S(t_a, t_b) dt_a dt_b``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mdmlib.core.images import to_model_range
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.intervals.choice import IntervalChoice
from mdmlib.intervals.partition import best_partition

METHOD = "optimal_denoiser"
FIGURE_NAME = "optimal_denoiser_distance.png"


def optimal_denoiser(x_t: torch.Tensor, t_index: torch.Tensor, train: torch.Tensor, schedule: NoiseSchedule,
                     chunk_size: int = 4096) -> torch.Tensor:
    """Eq. 20 as a clean-image prediction: the posterior mean of x0 given x_t over the training set.

    ``x_t`` (B, ...) and ``train`` (N, ...) are in model range; ``t_index`` (B,) holds internal
    indices (paper t - 1). Training images are visited in chunks with a running log-sum-exp, so
    memory stays at B x chunk_size and no weight underflows: the largest weight of every row is
    exp(0) = 1 even where every Gaussian density is below the smallest double (small t).
    Computed in float64; returns float64 of ``x_t``'s shape.
    """
    rows = x_t.reshape(len(x_t), -1).double()
    images = train.reshape(len(train), -1).double().to(rows.device)
    abar = schedule.alphas_cumprod.to(rows.device)[t_index.to(rows.device)].double()
    scale, variance = abar.sqrt()[:, None], (1 - abar)[:, None]
    running_max = torch.full((len(rows),), -torch.inf, dtype=torch.float64, device=rows.device)
    total = torch.zeros(len(rows), dtype=torch.float64, device=rows.device)
    weighted = torch.zeros_like(rows)
    for start in range(0, len(images), chunk_size):
        chunk = images[start:start + chunk_size]
        # -||x - s y||^2 / (2 v) without the ||x||^2 term, which is the same for every y_i of a row
        logits = (scale * (rows @ chunk.T) - 0.5 * abar[:, None] * chunk.pow(2).sum(1)) / variance
        new_max = torch.maximum(running_max, logits.max(dim=1).values)
        rescale = torch.exp(running_max - new_max)  # exp(-inf) = 0 on the first chunk
        weights = torch.exp(logits - new_max[:, None])
        total = total * rescale + weights.sum(dim=1)
        weighted = weighted * rescale[:, None] + weights @ chunk
        running_max = new_max
    return (weighted / total[:, None]).reshape(x_t.shape)


def grid_cells(timesteps: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the paper's t = 1..T into ``grid`` contiguous cells of (near-)equal size.

    Returns the cell edges (grid + 1 ints; cell c holds t in (edges[c], edges[c+1]]) and each
    cell's representative timestep, its middle. A cut between cells is an exact integer boundary.
    """
    if not 1 <= grid <= timesteps:
        raise ValueError(f"grid must be between 1 and T = {timesteps}, got {grid}")
    edges = np.round(np.linspace(0, timesteps, grid + 1)).astype(int)
    return edges, (edges[:-1] + edges[1:] + 1) // 2


def denoiser_distances(train: torch.Tensor, schedule: NoiseSchedule, grid_timesteps: np.ndarray, probes: int,
                       seed: int, eta: float | None = None, chunk_size: int = 4096,
                       device: str | torch.device = "cpu") -> np.ndarray:
    """D[a, b]: distance between the optimal denoiser's outputs at grid timesteps t_a and t_b.

    As in Algorithm 2 (steps 4-6) each probe k draws a training image y_k ~ p_data and a noise
    eps_k; both outputs see that same y_k and eps_k. Every probe is evaluated on the whole grid,
    which averages over all (t_a, t_b) pairs instead of the paper's one random pair per probe.
    The distance per probe is the mean squared difference per pixel (model range [-1, 1]); with
    ``eta`` it is instead the fraction of pixels differing by more than ``eta`` (the paper's
    threshold eta = 2/256 of the [0, 1] range is 4/256 in model range). D is the probe average.
    Probes are drawn on the CPU, so ``device`` changes only where the arithmetic runs.
    """
    generator = torch.Generator().manual_seed(seed)
    flat = train.reshape(len(train), -1).double()
    picks = torch.randint(len(flat), (probes,), generator=generator)
    noise = torch.randn((probes, flat.shape[1]), generator=generator, dtype=torch.float64)
    t_index = torch.as_tensor(np.asarray(grid_timesteps) - 1, dtype=torch.long)
    abar = schedule.alphas_cumprod.double()[t_index][:, None, None]
    x_t = (abar.sqrt() * flat[picks] + (1 - abar).sqrt() * noise).to(device)  # (grid, probes, pixels)
    x0 = optimal_denoiser(x_t.reshape(-1, flat.shape[1]), t_index.repeat_interleave(probes), flat, schedule,
                          chunk_size).reshape(x_t.shape).transpose(0, 1).cpu()  # (probes, grid, pixels)
    if eta is None:
        per_probe = torch.cdist(x0, x0, compute_mode="donot_use_mm_for_euclid_dist").pow(2) / flat.shape[1]
        return per_probe.mean(dim=0).numpy()
    return np.stack([(x0[:, a:a + 1] - x0).abs().gt(eta).double().mean(dim=(0, 2)).numpy()
                     for a in range(x0.shape[1])])


def _block_costs(distance: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """cost[a, b] = sum of w_i w_j D[i, j] over cells a <= i, j < b (2-D prefix sums)."""
    prefix = np.zeros((len(distance) + 1,) * 2)
    prefix[1:, 1:] = (weights[:, None] * distance * weights[None, :]).cumsum(0).cumsum(1)
    diag = np.diag(prefix)
    return diag[None, :] - prefix - prefix.T + diag[:, None]


def partition_grid(distance: np.ndarray, n: int, weights: np.ndarray | None = None) -> tuple[list[int], float]:
    """Exact minimiser of the discretised Eq. 21 / Algorithm 2 step 9 over contiguous partitions.

    Minimises ``sum_k sum_{i, j in block k} w_i w_j D[i, j]`` over all splits of the grid cells into
    ``n`` non-empty contiguous blocks, by dynamic programming over (blocks used, cells covered):
    O(n G^2) and exact (the tests compare it with brute-force enumeration). ``w`` are the cell widths
    (default 1), so the sum is the double integral of Eq. 21 by the midpoint rule. Returns the
    first cell of blocks 2..n (ascending) and the minimum; ties go to the earliest cut.
    """
    distance = np.asarray(distance, dtype=np.float64)
    cells = len(distance)
    if distance.shape != (cells, cells) or not np.isfinite(distance).all():
        raise ValueError(f"distance must be a finite square matrix, got shape {distance.shape}")
    if not 1 <= n <= cells:
        raise ValueError(f"cannot split {cells} grid cells into {n} non-empty intervals")
    weights = np.ones(cells) if weights is None else np.asarray(weights, dtype=np.float64)
    cost = _block_costs(distance, weights)
    edges, minimum = best_partition(cost, n)
    return edges[1:-1], minimum


def optimal_denoiser_intervals(train_images: np.ndarray, schedule: NoiseSchedule, ns: Sequence[int] = (2, 3, 4, 5),
                               grid: int = 50, probes: int = 64, seed: int = 0, figure_dir: str | Path | None = None,
                               eta: float | None = None, chunk_size: int = 4096,
                               device: str | torch.device = "cpu") -> dict[int, IntervalChoice]:
    """Algorithm 2 for every n in ``ns`` from one distance matrix over a grid of timesteps.

    ``train_images``: uint8 (N, C, H, W). The paper's t = 1..T is cut into ``grid`` equal cells
    (``grid_cells``); D is measured between the cells' middle timesteps (``denoiser_distances``:
    ``probes`` probes drawn with ``seed``; ``eta`` and ``device`` as there). For each n the cells
    are split into n contiguous blocks minimising Eq. 21 (``partition_grid``); the objective is
    reported over t scaled to [0, 1], i.e. divided by T^2. Boundaries fall on cell edges: a block starting at
    cell c puts the cut at edges[c], so timestep edges[c] ends the previous interval.
    """
    if probes < 1:
        raise ValueError(f"need at least one probe, got {probes}")
    timesteps = schedule.timesteps
    edges, grid_timesteps = grid_cells(timesteps, grid)
    train = to_model_range(np.asarray(train_images))
    distance = denoiser_distances(train, schedule, grid_timesteps, probes, seed, eta, chunk_size, device)
    widths = np.diff(edges).astype(np.float64)
    shared = {"criterion": "Eq. 21 / Algorithm 2 step 9: minimise the summed within-interval distance, "
                           "exact dynamic programming over grid cells",
              "distance": "mean squared difference per pixel of x0 predictions" if eta is None
              else f"fraction of pixels whose x0 predictions differ by more than eta = {eta}",
              "eta": eta, "probes": probes, "seed": seed, "num_train_images": len(train),
              "grid_edges": edges.tolist(), "grid_timesteps": grid_timesteps.tolist(),
              "distance_matrix": distance.tolist()}
    choices = {}
    for n in ns:
        cuts, objective = partition_grid(distance, n, widths)
        choices[n] = IntervalChoice(METHOD, timesteps, tuple(int(edges[c]) for c in cuts),
                                    {**shared, "cut_cells": cuts, "objective": objective / timesteps**2})
    if figure_dir is not None:
        label = "D: mean squared difference per pixel" if eta is None else f"D: fraction of pixels off by > {eta:.4g}"
        Path(figure_dir).mkdir(parents=True, exist_ok=True)
        distance_figure(distance, edges, choices, Path(figure_dir) / FIGURE_NAME, label)
    return choices


def intervals_table(choices: dict[int, IntervalChoice]) -> pd.DataFrame:
    """One row per n: n, boundaries, the intervals as text, and the Eq. 21 objective."""
    rows = [{"n": choice.n, "boundaries": " ".join(str(b) for b in choice.boundaries),
             "intervals": ", ".join(i.label() for i in choice.intervals),
             "objective": choice.details.get("objective")}
            for _, choice in sorted(choices.items())]
    return pd.DataFrame(rows, columns=["n", "boundaries", "intervals", "objective"])


def distance_figure(distance: np.ndarray, edges: np.ndarray, choices: dict[int, IntervalChoice],
                    png_path: str | Path, label: str = "D") -> None:
    """Left: D over (t_a, t_b) on the grid. Right: the chosen intervals for each n on the same t axis."""
    from mdmlib.report.figures import plt, save_figure

    timesteps = int(edges[-1])
    fig, (heat, bars) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained",
                                     gridspec_kw={"width_ratios": [1.1, 1]})
    image = heat.pcolormesh(edges, edges, distance, cmap="viridis", shading="flat")
    heat.set_aspect("equal")
    fig.colorbar(image, ax=heat, label=label)
    heat.set_xlabel("t_a")
    heat.set_ylabel("t_b")
    heat.set_title("optimal-denoiser distance D(t_a, t_b)", fontsize=10)
    ns = sorted(choices)
    for row, n in enumerate(ns):
        intervals = choices[n].intervals
        bars.broken_barh([(i.lo, i.size) for i in intervals], (row - 0.35, 0.7),
                         facecolors=[f"C{k % 10}" for k in range(len(intervals))], alpha=0.6)
        for b in choices[n].boundaries:
            bars.text(b, row + 0.4, str(b), ha="center", va="bottom", fontsize=7)
    bars.set_yticks(range(len(ns)), [f"n = {n}" for n in ns])
    bars.set_ylim(-0.6, len(ns) - 0.2)
    bars.set_xlim(0, timesteps)
    bars.set_xlabel("t")
    bars.set_title("intervals minimising Eq. 21 (boundaries labelled)", fontsize=10)
    save_figure(fig, png_path)


def select_optimal_denoiser(context) -> IntervalChoice:
    """The registry's 'optimal_denoiser' method; its details also give the cut points for every n of
    ``intervals.optimal_denoiser.table_n``."""
    od, n = context.settings, context.n
    ns = sorted(set(od.table_n) | {n})
    choices = optimal_denoiser_intervals(context.train_images(), context.schedule(), ns=tuple(ns), grid=od.grid,
                                         probes=od.probes, seed=context.seed, figure_dir=context.figure_dir)
    chosen = choices[n]
    by_n = {str(k): list(c.boundaries) for k, c in choices.items()}
    return IntervalChoice(chosen.method, context.timesteps, chosen.boundaries,
                          {**chosen.details, "boundaries_by_n": by_n})
