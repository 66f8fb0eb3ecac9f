"""DiffPruning gradient-alignment intervals: the grid, the exact J search, the gradients, the entry point."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from tiny_models import perturbed_unet
from torch import nn

from mdmlib.core.schedule import NoiseSchedule, epsilon_loss_per_sample
from mdmlib.intervals.choice import read_choice, write_choice
from mdmlib.intervals.gradient import (
    best_cutoffs,
    gradient_intervals,
    gradient_similarity,
    grid_cells,
    loss_gradient,
    objective,
)
from mdmlib.models.unet import UNet


def random_unet(seed: int = 0) -> UNet:
    return perturbed_unet(seed, scale=0.2, dropout=0.5, eval_mode=False)


def tiny_images(count: int = 4, seed: int = 3) -> torch.Tensor:
    return torch.rand(count, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def block_matrix(edges: list[int], inside: float = 0.9, outside: float = -0.1) -> np.ndarray:
    size = edges[-1]
    sim = np.full((size, size), outside)
    for lo, hi in zip(edges, edges[1:]):
        sim[lo:hi, lo:hi] = inside
    np.fill_diagonal(sim, 1.0)
    return sim


# --- grid and search -----------------------------------------------------------------------------

def test_grid_cells_cover_the_timesteps():
    edges, points = grid_cells(1000, 20)
    assert edges == list(range(0, 1001, 50)) and points[:2] == [25, 75] and points[-1] == 975
    edges, points = grid_cells(10, 10)
    assert edges == list(range(11)) and points == list(range(1, 11))  # every timestep is a grid point
    edges, points = grid_cells(100, 7)
    assert edges[0] == 0 and edges[-1] == 100 and all(a < p <= b for a, p, b in zip(edges, points, edges[1:]))
    with pytest.raises(ValueError, match="grid"):
        grid_cells(10, 11)


@pytest.mark.parametrize("edges", [[0, 7, 20], [0, 5, 12, 20], [0, 3, 9, 10, 16]])
def test_search_returns_the_block_edges_of_a_block_diagonal_matrix(edges):
    n = len(edges) - 1
    cuts, best = best_cutoffs(block_matrix(edges, inside=1.0, outside=0.0), n)
    assert cuts == tuple(edges[1:-1])
    assert best == pytest.approx(1.0)  # every interval has mean 1, and the weights sum to 1
    noisy = block_matrix(edges) + np.random.default_rng(n).normal(0, 0.02, (edges[-1],) * 2)
    assert best_cutoffs((noisy + noisy.T) / 2, n)[0] == tuple(edges[1:-1])


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_search_is_the_exact_maximum_over_every_cutoff_choice(n):
    rng = np.random.default_rng(n)
    a = rng.uniform(-1, 1, (9, 9))
    sim = (a + a.T) / 2
    np.fill_diagonal(sim, 1.0)
    sizes = rng.integers(1, 5, 9).astype(float)
    cuts, best = best_cutoffs(sim, n, sizes)
    brute = max(itertools.combinations(range(1, 9), n - 1), key=lambda c: objective(sim, c, sizes))
    assert best == pytest.approx(objective(sim, brute, sizes))
    assert best == pytest.approx(objective(sim, cuts, sizes))


def test_objective_is_supplementary_eq_1_when_every_timestep_is_a_grid_point():
    rng = np.random.default_rng(5)
    a = rng.uniform(-1, 1, (12, 12))
    sim = (a + a.T) / 2
    np.fill_diagonal(sim, 1.0)
    t1 = 4  # I_1 holds timesteps 0..3, I_2 holds 4..11; T = 12
    eq1 = sum(len(idx) / 12 * sim[np.ix_(idx, idx)].sum() / len(idx) ** 2 for idx in (range(0, 4), range(4, 12)))
    assert objective(sim, [t1]) == pytest.approx(eq1)
    # A single timestep as its own interval is not favoured: its weight is 1/T (the paper's remark).
    assert best_cutoffs(block_matrix([0, 6, 12]), 2)[0] == (6,)


def test_search_refuses_impossible_requests():
    with pytest.raises(ValueError, match="intervals"):
        best_cutoffs(np.eye(3), 4)
    with pytest.raises(ValueError, match="square"):
        best_cutoffs(np.ones((3, 4)), 2)


# --- gradients -----------------------------------------------------------------------------------

class InputRecorder(nn.Module):
    """Wraps a model and keeps every (x_t, t) it sees."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, x, t):
        self.calls.append((x.detach().clone(), t.clone()))
        return self.model(x, t)


def test_every_timestep_sees_the_same_images_and_noise():
    schedule = NoiseSchedule.from_name("cosine", 100)
    recorder = InputRecorder(random_unet())
    images = tiny_images()
    gradient_similarity(recorder, schedule, images, [5, 50, 95], seed=7)
    abar = schedule.alphas_cumprod.float()
    noises = []
    for x_t, t in recorder.calls:
        a = abar[t[0]]
        assert (t == t[0]).all()
        noises.append((x_t - a.sqrt() * images) / (1 - a).sqrt())  # the noise q_sample used
    assert [int(t[0]) for _, t in recorder.calls] == [5, 50, 95]
    expected = torch.randn(images.shape, generator=torch.Generator().manual_seed(7))
    for noise in noises:
        torch.testing.assert_close(noise, expected, rtol=0, atol=2e-4)


def test_gradient_is_that_of_the_mean_loss_and_micro_batches_add_up():
    schedule = NoiseSchedule.from_name("cosine", 100)
    model = random_unet().eval()
    images = tiny_images(5)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    full, loss = loss_gradient(model, schedule, images, noise, 40)
    chunked, chunked_loss = loss_gradient(model, schedule, images, noise, 40, batch_size=2)
    model.zero_grad()
    manual = epsilon_loss_per_sample(model, schedule, images, torch.full((5,), 40), noise).mean()
    manual.backward()
    reference = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(full, reference)
    # Summation order differs between chunks: compare as vectors, not elementwise near cancellations.
    assert float((chunked - reference).norm() / reference.norm()) < 1e-5
    assert loss == pytest.approx(manual.item()) and chunked_loss == pytest.approx(loss)


def test_similarity_is_deterministic_symmetric_with_unit_diagonal():
    schedule = NoiseSchedule.from_name("linear", 100)
    model = random_unet().train()
    images = tiny_images()
    sim, losses = gradient_similarity(model, schedule, images, [0, 30, 60, 99], seed=1)
    again, _ = gradient_similarity(model, schedule, images, [0, 30, 60, 99], seed=1)
    assert model.training  # eval mode only while the gradients are taken
    np.testing.assert_array_equal(sim, again)
    np.testing.assert_allclose(sim, sim.T)
    np.testing.assert_array_equal(np.diag(sim), np.ones(4))
    assert (np.abs(sim) <= 1).all() and len(losses) == 4
    assert sim[0, 3] < 0.999  # distinct timesteps: not trivially parallel gradients


@pytest.mark.parametrize("n", [2, 3])
def test_gradient_intervals_on_a_tiny_unet(tmp_path, n):
    schedule = NoiseSchedule.from_name("cosine", 100)
    choice = gradient_intervals(random_unet(), schedule, tiny_images(), n, grid=10, seed=0, figure_dir=tmp_path)
    assert choice.method == "gradient" and choice.n == n and choice.timesteps == 100
    d = choice.details
    assert d["grid_timesteps"] == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    assert list(choice.boundaries) == d["cutoffs"] == [d["grid_edges"][c] for c in d["cutoff_indices"]]
    assert all(b % 10 == 0 for b in choice.boundaries)  # boundaries are cell edges
    assert np.array(d["similarity"]).shape == (10, 10)
    assert d["J"] == pytest.approx(objective(np.array(d["similarity"]), d["cutoff_indices"]))
    assert d["J"] == pytest.approx(max(d["J_first_cutoff"]["J"]))
    for name in ("gradient_similarity", "gradient_objective"):
        for suffix in (".png", ".pdf"):
            assert (tmp_path / f"{name}{suffix}").stat().st_size > 1000
    write_choice(choice, tmp_path / f"gradient_n{n}.json")
    assert read_choice(tmp_path / f"gradient_n{n}.json") == choice
