"""DDIM: the timestep grid, an exact oracle, per-sample seeds and the step callback."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import perturbed_unet

from mdmlib.core.schedule import NoiseSchedule
from mdmlib.models.unet import UNet
from mdmlib.sampling.ddim import (
    StackedRandomGenerator,
    ddim_sample,
    ddim_timesteps,
    generate_images,
)

X_STAR = 0.3  # every pixel of the single data point, in [-1, 1]


def point_mass_oracle(schedule: NoiseSchedule, x_star: float = X_STAR):
    """The optimal epsilon model when the data is the single point x*: (x_t - sqrt(abar) x*) / sqrt(1 - abar)."""
    abar = schedule.alphas_cumprod

    def model(x_t, t):
        a = abar[t].to(x_t.dtype).view(-1, *([1] * (x_t.dim() - 1)))
        return (x_t - a.sqrt() * x_star) / (1 - a).sqrt()

    return model


def random_unet(seed: int = 0) -> UNet:
    return perturbed_unet(seed, scale=0.1, dropout=0.0, eval_mode=True)


def test_ddim_timesteps_1000_50():
    seq = ddim_timesteps(1000, 50)
    assert len(seq) == 50 and len(set(seq)) == 50
    assert seq[0] == 999 and seq[-1] == 0
    assert all(a > b for a, b in zip(seq, seq[1:]))
    assert all(isinstance(t, int) for t in seq)
    # Evenly spaced: every gap is 999/49 = 20.39 rounded, i.e. 20 or 21.
    assert {a - b for a, b in zip(seq, seq[1:])} == {20, 21}


@pytest.mark.parametrize("T,steps", [(1000, 1000), (100, 7), (10, 2), (4000, 50), (1000, 999)])
def test_ddim_timesteps_has_steps_unique_entries_from_T_minus_one_to_zero(T, steps):
    seq = ddim_timesteps(T, steps)
    assert len(seq) == steps == len(set(seq))
    assert seq[0] == T - 1 and seq[-1] == 0
    assert seq == sorted(seq, reverse=True)


def test_one_step_ddim_starts_from_the_noisiest_timestep():
    assert ddim_timesteps(1000, 1) == [999]


@pytest.mark.parametrize("steps", [0, -3, 1001])
def test_invalid_step_counts_raise(steps):
    with pytest.raises(ValueError, match="DDIM steps"):
        ddim_timesteps(1000, steps)


def test_ddim_with_the_point_mass_oracle_returns_the_point():
    schedule = NoiseSchedule.from_name("cosine", 100)
    noise = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x = ddim_sample(point_mass_oracle(schedule), schedule, noise, steps=10)
    assert x.shape == noise.shape
    torch.testing.assert_close(x, torch.full_like(x, X_STAR), rtol=0, atol=1e-5)


def test_ddim_oracle_trajectory_is_the_deterministic_forward_path():
    # With eta = 0 and the oracle, DDIM keeps the implied noise fixed: at every visited t,
    # x_t = sqrt(abar_t) x* + sqrt(1 - abar_t) eps, with eps read off the initial x_T, and the
    # predicted x0 is x* exactly. This checks the update rule, not only the last step.
    schedule = NoiseSchedule.from_name("cosine", 100)
    abar = schedule.alphas_cumprod.float()
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    eps = (noise - abar[99].sqrt() * X_STAR) / (1 - abar[99]).sqrt()
    seen = []

    def on_step(i, t, x_t, x0):
        seen.append((i, t))
        assert x0.shape == x_t.shape == noise.shape
        # float32 cancellation at t = T-1 (sqrt(abar) ~ 5e-4) costs ~1e-4; later steps are ~1e-7.
        torch.testing.assert_close(x0, torch.full_like(x0, X_STAR), rtol=0, atol=1e-3)
        torch.testing.assert_close(x_t, abar[t].sqrt() * X_STAR + (1 - abar[t]).sqrt() * eps, rtol=0, atol=1e-4)

    ddim_sample(point_mass_oracle(schedule), schedule, noise, steps=10, on_step=on_step)
    seq = ddim_timesteps(100, 10)
    assert seen == list(enumerate(seq))


def test_ddim_with_eta_still_recovers_the_point_and_uses_the_rng():
    schedule = NoiseSchedule.from_name("cosine", 100)
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    xs = {}
    for eta in (0.0, 1.0):
        trajectory = []
        rng = StackedRandomGenerator([5, 6])
        out = ddim_sample(point_mass_oracle(schedule), schedule, noise, steps=8, eta=eta, rng=rng,
                          on_step=lambda i, t, x_t, x0: trajectory.append(x_t.clone()))
        torch.testing.assert_close(out, torch.full_like(out, X_STAR), rtol=0, atol=1e-5)
        xs[eta] = trajectory
    # The stochastic sampler visits different intermediate states from the same x_T.
    assert torch.equal(xs[0.0][0], xs[1.0][0])
    assert (xs[0.0][3] - xs[1.0][3]).abs().max() > 1e-2


def test_on_step_is_called_once_per_step_with_predicted_x0_shaped_like_x():
    schedule = NoiseSchedule.from_name("linear", 100)
    model = random_unet()
    calls = []
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    ddim_sample(model, schedule, noise, steps=6,
                on_step=lambda i, t, x_t, x0: calls.append((i, t, x_t.shape, x0.shape, float(x0.abs().max()))))
    assert [(i, t) for i, t, *_ in calls] == list(enumerate(ddim_timesteps(100, 6)))
    assert all(xs == x0s == noise.shape for _, _, xs, x0s, _ in calls)
    assert all(m <= 1.0 for *_, m in calls)  # the predicted x0 is clipped to the data range


def test_eta_above_zero_without_rng_raises():
    schedule = NoiseSchedule.from_name("cosine", 100)
    with pytest.raises(ValueError, match="StackedRandomGenerator"):
        ddim_sample(point_mass_oracle(schedule), schedule, torch.zeros(1, 1, 8, 8), steps=5, eta=0.5)


def test_stacked_generator_draws_depend_only_on_each_samples_seed():
    together = StackedRandomGenerator([3, 4, 5]).randn((1, 2, 2))
    alone = StackedRandomGenerator([5]).randn((1, 2, 2))
    assert together.shape == (3, 1, 2, 2)
    assert torch.equal(together[2:], alone)
    assert torch.equal(together[0], torch.randn((1, 2, 2), generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_generate_images_is_the_same_however_the_seeds_are_split(eta):
    schedule = NoiseSchedule.from_name("cosine", 100)
    model = random_unet()
    logs = []
    run = lambda seeds, batch: generate_images(model, schedule, (1, 8, 8), seeds, steps=4, eta=eta,  # noqa: E731
                                               batch_size=batch, device=torch.device("cpu"), log=logs.append)
    one_batch = run(list(range(8)), 8)
    two_batches = run(list(range(8)), 4)
    last_four = run([4, 5, 6, 7], 4)
    assert one_batch.dtype == np.uint8 and one_batch.shape == (8, 1, 8, 8)
    np.testing.assert_array_equal(one_batch, two_batches)
    np.testing.assert_array_equal(one_batch[4:], last_four)
    # Not trivially equal: different seeds give different images.
    assert len({img.tobytes() for img in one_batch}) == 8
    assert logs[:3] == ["sampled 8/8 images", "sampled 4/8 images", "sampled 8/8 images"]
