"""Noise schedules against their papers' formulas (recomputed here in numpy float64) and the loss."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mdmlib.core.schedule import (
    NoiseSchedule,
    cosine_alphas_cumprod,
    epsilon_loss_per_sample,
    linear_betas,
)


def nichol_dhariwal_alphas_cumprod(T: int, s: float = 0.008) -> np.ndarray:
    """Eq. 17 of Nichol & Dhariwal (2021): abar(t) = f(t) / f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2).

    Returned for the paper's t = 1..T, i.e. entry i is timestep index i.
    """
    t = np.arange(T + 1, dtype=np.float64)
    f = np.cos((t / T + s) / (1 + s) * np.pi / 2) ** 2
    return f[1:] / f[0]


@pytest.mark.parametrize("T", [1000, 250, 4000])
def test_linear_betas_follow_ho_et_al_rescaled_to_T(T):
    betas = linear_betas(T).numpy()
    scale = 1000 / T
    assert betas.shape == (T,) and betas.dtype == np.float64
    assert betas[0] == pytest.approx(1e-4 * scale, rel=1e-12)
    assert betas[-1] == pytest.approx(0.02 * scale, rel=1e-12)
    # Linear: constant increments equal to the range over T - 1 steps.
    np.testing.assert_allclose(np.diff(betas), (0.02 - 1e-4) * scale / (T - 1), rtol=1e-9)


def test_linear_schedule_alphas_cumprod_is_the_product_of_one_minus_beta():
    T = 1000
    betas = 1e-4 + (0.02 - 1e-4) * np.arange(T) / (T - 1)
    expected = np.cumprod(1 - betas)
    np.testing.assert_allclose(NoiseSchedule.from_name("linear", T).alphas_cumprod.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("T", [1000, 100])
def test_cosine_alphas_cumprod_matches_eq_17_where_no_beta_was_clipped(T):
    abar = cosine_alphas_cumprod(T).numpy()
    expected = nichol_dhariwal_alphas_cumprod(T)
    betas = 1 - expected / np.concatenate([[1.0], expected[:-1]])
    unclipped = betas <= 0.999
    # The clipping only ever bites at the very end (f(T) = cos^2(pi/2) ~ 0, so beta_T ~ 1).
    assert not unclipped[-1] and unclipped[:-1].all()
    # Float64 telescoping product of T ratios: relative error of a few hundred ulps at most.
    np.testing.assert_allclose(abar[unclipped], expected[unclipped], rtol=1e-10)


@pytest.mark.parametrize("T", [1000, 100])
def test_cosine_last_beta_is_clipped_at_0_999(T):
    abar = cosine_alphas_cumprod(T).numpy()
    betas = 1 - abar / np.concatenate([[1.0], abar[:-1]])
    assert betas[-1] == pytest.approx(0.999, rel=1e-9)
    assert betas.max() == pytest.approx(0.999, rel=1e-9)
    assert abar[-1] == pytest.approx(abar[-2] * 0.001, rel=1e-9)


def test_cosine_schedule_uses_s_0_008_at_the_first_step():
    # abar(1) = f(1)/f(0) depends visibly on s; recompute it by hand for T = 1000.
    T, s = 1000, 0.008
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    assert NoiseSchedule.from_name("cosine", T).alphas_cumprod[0].item() == pytest.approx(f(1) / f(0), rel=1e-14)


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("T", [1000, 100])
def test_alphas_cumprod_strictly_decreasing_in_open_unit_interval_and_snr_monotone(name, T):
    schedule = NoiseSchedule.from_name(name, T)
    abar = schedule.alphas_cumprod
    assert schedule.timesteps == T
    assert abar.dtype == torch.float64 and abar.shape == (T,)
    assert (abar > 0).all() and (abar < 1).all()
    assert (abar[1:] < abar[:-1]).all()
    snr = schedule.snr()
    torch.testing.assert_close(snr, abar / (1 - abar), rtol=0, atol=0)
    assert (snr[1:] < snr[:-1]).all()


def test_unknown_schedule_name_raises():
    with pytest.raises(ValueError, match="sigmoid"):
        NoiseSchedule.from_name("sigmoid", 1000)


def test_q_sample_is_exactly_the_closed_form_per_sample():
    schedule = NoiseSchedule.from_name("cosine", 1000)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1
    noise = torch.randn(4, 3, 8, 8, generator=gen)
    t = torch.tensor([0, 99, 500, 999])
    abar = schedule.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    # Each sample uses its own timestep: noise-free gives sqrt(abar) x0, data-free gives sqrt(1 - abar) eps.
    torch.testing.assert_close(schedule.q_sample(x0, t, torch.zeros_like(x0)), abar.sqrt() * x0, rtol=1e-6, atol=0)
    torch.testing.assert_close(schedule.q_sample(torch.zeros_like(x0), t, noise), (1 - abar).sqrt() * noise,
                               rtol=1e-6, atol=0)
    torch.testing.assert_close(schedule.q_sample(x0, t, noise), abar.sqrt() * x0 + (1 - abar).sqrt() * noise)


def test_q_sample_has_the_forward_process_mean_and_variance():
    # x_t | x0 ~ N(sqrt(abar) x0, (1 - abar) I). With N = 200,000 draws per timestep the standard
    # error of the mean is sqrt((1 - abar)/N) <= 2.3e-3 and that of the variance is
    # (1 - abar) sqrt(2/N) <= 3.2e-3 (relative); 5 standard errors is a deterministic, safe margin.
    schedule = NoiseSchedule.from_name("linear", 1000)
    n = 200_000
    t = torch.tensor([10, 500, 990]).repeat_interleave(n)
    x0 = torch.full((t.numel(), 1), 0.7)
    gen = torch.Generator().manual_seed(0)
    x_t = schedule.q_sample(x0, t, torch.randn(t.numel(), 1, generator=gen)).view(3, n).double()
    abar = schedule.alphas_cumprod[torch.tensor([10, 500, 990])]
    mean_expected = abar.sqrt() * 0.7
    var_expected = 1 - abar
    se_mean = (var_expected / n).sqrt()
    assert ((x_t.mean(dim=1) - mean_expected).abs() < 5 * se_mean).all()
    rel_var_err = (x_t.var(dim=1) / var_expected - 1).abs()
    assert (rel_var_err < 5 * math.sqrt(2 / n)).all()


def test_epsilon_loss_is_zero_for_an_oracle_and_per_sample():
    schedule = NoiseSchedule.from_name("cosine", 1000)
    gen = torch.Generator().manual_seed(2)
    x0 = torch.rand(5, 1, 8, 8, generator=gen) * 2 - 1
    noise = torch.randn(5, 1, 8, 8, generator=gen)
    t = torch.tensor([0, 1, 250, 700, 999])

    def oracle(x_t, t_in):
        assert torch.equal(t_in, t)
        return noise

    loss = epsilon_loss_per_sample(oracle, schedule, x0, t, noise)
    assert loss.shape == (5,)
    assert torch.equal(loss, torch.zeros(5))


def test_epsilon_loss_of_a_zero_model_is_the_mean_squared_noise_per_sample():
    schedule = NoiseSchedule.from_name("linear", 1000)
    gen = torch.Generator().manual_seed(3)
    x0 = torch.rand(3, 2, 4, 4, generator=gen)
    noise = torch.randn(3, 2, 4, 4, generator=gen)
    noise[1] *= 3.0  # per-sample losses must differ, not be a batch mean
    loss = epsilon_loss_per_sample(lambda x, t: torch.zeros_like(x), schedule, x0, torch.tensor([5, 5, 5]), noise)
    torch.testing.assert_close(loss, noise.pow(2).mean(dim=(1, 2, 3)))
    assert loss[1] > 4 * loss[0]
