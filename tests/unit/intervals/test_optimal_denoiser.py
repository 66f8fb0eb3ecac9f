"""Optimal-denoiser interval choice: Eq. 20 against hand-computed posterior means, the Eq. 21 partition
against known answers and brute force, and the entry point end to end on a tiny dataset."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from mdmlib.core.schedule import NoiseSchedule
from mdmlib.intervals.choice import read_choice, write_choice
from mdmlib.intervals.optimal_denoiser import (
    grid_cells,
    intervals_table,
    optimal_denoiser,
    optimal_denoiser_intervals,
    partition_grid,
)

# index 0: 1 - abar = 1e-4 (the linear schedule's first step); 1: abar = 1/2; 2: almost pure noise
SCHEDULE = NoiseSchedule(torch.tensor([1 - 1e-4, 0.5, 1e-8], dtype=torch.float64))
TWO_IMAGES = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64).view(2, 1, 1, 2)


def two_image_posterior_mean(x: torch.Tensor, abar: float) -> torch.Tensor:
    """Hand derivation for y1 = (1, 0), y2 = -y1, s = sqrt(abar), v = 1 - abar:
    log w1/w2 = (||x - s y2||^2 - ||x - s y1||^2) / (2v) = 2 s x_0 / v, so
    E[x0 | x] = (w1 - w2) y1 = tanh(s x_0 / v) y1."""
    s, v = math.sqrt(abar), 1 - abar
    return torch.tensor([math.tanh(s * float(x[0]) / v), 0.0], dtype=torch.float64)


def denoise(x: torch.Tensor, index: int, train: torch.Tensor = TWO_IMAGES, **kwargs) -> torch.Tensor:
    batch = x.view(1, *train.shape[1:])
    return optimal_denoiser(batch, torch.tensor([index]), train, SCHEDULE, **kwargs).flatten()


def test_two_images_at_moderate_t_equal_the_hand_computed_posterior_mean():
    x = torch.tensor([0.3, -0.2], dtype=torch.float64)
    expected = two_image_posterior_mean(x, 0.5)  # tanh(0.3 sqrt(2)) = 0.4038...
    torch.testing.assert_close(denoise(x, 1), expected, rtol=1e-12, atol=1e-12)


def test_two_images_at_tiny_t_are_exact_where_a_naive_softmax_gives_nan():
    abar = float(SCHEDULE.alphas_cumprod[0])
    s, v = math.sqrt(abar), 1 - abar
    # x_0 chosen so that w1 / w2 = 3 exactly: posterior mean (3 y1 + y2) / 4 = (0.5, 0)
    x = torch.tensor([math.log(3) * v / (2 * s), 3.0 * s], dtype=torch.float64)
    log_density = -((x - s * TWO_IMAGES.view(2, 2)) ** 2).sum(1) / (2 * v)  # about -5e4 each
    naive = torch.exp(log_density) @ TWO_IMAGES.view(2, 2) / torch.exp(log_density).sum()
    assert torch.exp(log_density).sum() == 0 and naive.isnan().all()
    result = denoise(x, 0)
    assert torch.isfinite(result).all()
    torch.testing.assert_close(result, torch.tensor([0.5, 0.0], dtype=torch.float64), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(result, two_image_posterior_mean(x, abar), rtol=1e-9, atol=1e-9)


def test_large_t_tends_to_the_dataset_mean():
    train = torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = math.sqrt(1e-8) * train[0] + math.sqrt(1 - 1e-8) * torch.randn(1, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(denoise(x, 2, train), train.mean(0).flatten(), rtol=0, atol=1e-3)


def test_chunks_with_running_log_sum_exp_match_one_softmax_over_the_training_set():
    gen = torch.Generator().manual_seed(1)
    train = torch.randn(7, 1, 2, 2, generator=gen, dtype=torch.float64)
    x = torch.randn(5, 1, 2, 2, generator=gen, dtype=torch.float64)
    t_index = torch.tensor([0, 1, 2, 1, 0])
    abar = SCHEDULE.alphas_cumprod[t_index][:, None]
    logits = -((x.view(5, 1, -1) - abar.sqrt()[:, :, None] * train.view(1, 7, -1)) ** 2).sum(-1)
    reference = torch.softmax(logits / (2 * (1 - abar)), dim=1) @ train.view(7, -1)
    for chunk_size in (1, 3, 100):
        result = optimal_denoiser(x, t_index, train, SCHEDULE, chunk_size=chunk_size).view(5, -1)
        torch.testing.assert_close(result, reference, rtol=1e-8, atol=1e-8)


def block_matrix(sizes: list[int], seed: int = 0) -> np.ndarray:
    """Small distances (< 0.05) inside each block, large (> 0.9) across blocks, symmetric."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    same = labels[:, None] == labels[None, :]
    noise = rng.uniform(0, 1, (len(labels),) * 2)
    noise = (noise + noise.T) / 2
    return np.where(same, 0.05 * noise, 0.9 + 0.1 * noise)


def test_partition_of_a_block_matrix_returns_the_block_edges():
    assert partition_grid(block_matrix([10, 30, 10]), 3)[0] == [10, 40]
    assert partition_grid(block_matrix([5, 5, 12, 8]), 4)[0] == [5, 10, 22]
    second = np.arange(9) >= 4
    exact = (second[:, None] != second[None, :]).astype(float)  # blocks of 4 and 5 cells, zero inside
    cuts, objective = partition_grid(exact, 2)
    assert cuts == [4] and objective == 0.0


def eq21_objective(distance: np.ndarray, weights: np.ndarray, cuts: tuple[int, ...]) -> float:
    """Eq. 21 summed pair by pair, independently of the prefix sums in the module."""
    edges = (0, *cuts, len(distance))
    return sum(weights[i] * weights[j] * distance[i, j]
               for a, b in zip(edges, edges[1:]) for i in range(a, b) for j in range(a, b))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_dynamic_programming_matches_brute_force(n):
    rng = np.random.default_rng(n)
    distance = rng.uniform(0, 1, (9, 9))
    distance = (distance + distance.T) / 2
    weights = rng.integers(1, 4, 9).astype(float)
    values = {cuts: eq21_objective(distance, weights, cuts) for cuts in itertools.combinations(range(1, 9), n - 1)}
    best = min(values, key=values.get)
    cuts, objective = partition_grid(distance, n, weights)
    assert cuts == list(best)
    assert objective == pytest.approx(values[best], rel=1e-12)


def test_partition_refuses_more_intervals_than_cells():
    with pytest.raises(ValueError, match="non-empty"):
        partition_grid(np.zeros((3, 3)), 4)


def test_grid_cells_cover_1_to_T_with_middle_representatives():
    edges, middles = grid_cells(1000, 50)
    assert edges[0] == 0 and edges[-1] == 1000 and (np.diff(edges) == 20).all()
    assert middles[0] == 10 and middles[-1] == 990
    edges, middles = grid_cells(7, 3)
    assert edges.tolist() == [0, 2, 5, 7] and ((edges[:-1] < middles) & (middles <= edges[1:])).all()


@pytest.mark.parametrize("eta", [None, 4 / 256])
def test_entry_point_on_a_tiny_dataset(tmp_path, eta):
    images = np.random.default_rng(0).integers(0, 256, (20, 1, 4, 4), dtype=np.uint8)
    schedule = NoiseSchedule.from_name("linear", 100)
    choices = optimal_denoiser_intervals(images, schedule, ns=(2, 3, 4, 5), grid=10, probes=8, seed=3,
                                         figure_dir=tmp_path / "fig", eta=eta)
    assert sorted(choices) == [2, 3, 4, 5]
    for n, choice in choices.items():
        assert choice.method == "optimal_denoiser" and choice.n == n and choice.timesteps == 100
        assert all(b % 10 == 0 for b in choice.boundaries)  # cuts fall on the grid's cell edges
        distance = np.array(choice.details["distance_matrix"])
        assert distance.shape == (10, 10) and np.allclose(distance, distance.T) and np.allclose(np.diag(distance), 0)
        assert choice.details["grid_timesteps"] == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
        weights = np.diff(choice.details["grid_edges"]).astype(float)
        cells = tuple(choice.details["cut_cells"])
        assert choice.details["objective"] == pytest.approx(eq21_objective(distance, weights, cells) / 100**2)
        write_choice(choice, tmp_path / f"optimal_denoiser_n{n}.json")
        assert read_choice(tmp_path / f"optimal_denoiser_n{n}.json") == choice
    objectives = [choices[n].details["objective"] for n in (2, 3, 4, 5)]
    assert objectives == sorted(objectives, reverse=True)  # more intervals never raise the minimum
    if eta is not None:
        assert 0 <= distance.min() and distance.max() <= 1
    for suffix in (".png", ".pdf"):
        assert (tmp_path / "fig" / f"optimal_denoiser_distance{suffix}").stat().st_size > 1000
    table = intervals_table(choices)
    assert table["n"].tolist() == [2, 3, 4, 5]
    assert table.loc[0, "intervals"] == ", ".join(i.label() for i in choices[2].intervals)


def test_same_seed_same_choice_and_distances():
    images = np.random.default_rng(1).integers(0, 256, (12, 1, 3, 3), dtype=np.uint8)
    schedule = NoiseSchedule.from_name("cosine", 60)
    first = optimal_denoiser_intervals(images, schedule, ns=(3,), grid=12, probes=4, seed=7)
    second = optimal_denoiser_intervals(images, schedule, ns=(3,), grid=12, probes=4, seed=7)
    assert first == second
