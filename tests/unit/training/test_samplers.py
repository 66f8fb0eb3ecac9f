"""Timestep samplers: P2W weights, soft truncation and loss-aware importance sampling (issue 5)."""
from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from mdmlib.core.intervals import Interval
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.training.job import RECIPES
from mdmlib.training.samplers import (
    LossAwareSampler,
    P2WeightedSampler,
    SoftTruncationSampler,
    UniformIntervalSampler,
    make_sampler,
)


def test_uniform_sampler_stays_inside_its_interval():
    t, w = UniformIntervalSampler(Interval(100, 800)).sample(5000, torch.Generator().manual_seed(0))
    assert t.min() >= 100 and t.max() <= 799 and (w == 1).all()
    assert t.float().mean().item() == pytest.approx(449.5, abs=10)


@pytest.mark.parametrize("index", [0, 99, 500, 999])
def test_p2w_weights_follow_their_formula(index):
    snr = NoiseSchedule.from_name("cosine", 1000).snr()
    sampler = P2WeightedSampler(Interval(0, 1000), snr, k=1.0, gamma=1.0)
    expected = 1.0 / (1.0 + snr[index].item())
    assert sampler.lambdas[index].item() == pytest.approx(expected, rel=1e-6)
    t, w = sampler.sample(64, torch.Generator().manual_seed(1))
    assert torch.allclose(w, sampler.lambdas[t])


def fill(sampler: LossAwareSampler, loss_of_t, rounds: int) -> None:
    t = torch.arange(sampler.interval.lo, sampler.interval.hi)
    for _ in range(rounds):
        sampler.update(t, loss_of_t(t))


def test_importance_sampler_is_uniform_until_every_history_is_full():
    sampler = LossAwareSampler(Interval(0, 20), history=10)
    fill(sampler, lambda t: t.double() + 1, rounds=9)
    assert not sampler.warmed_up()
    assert torch.allclose(sampler.probabilities(), torch.full((20,), 0.05, dtype=torch.float64))
    t, w = sampler.sample(4000, torch.Generator().manual_seed(0))
    assert (w == 1).all() and t.bincount(minlength=20).min() > 150  # every timestep drawn about 200 times
    fill(sampler, lambda t: t.double() + 1, rounds=1)
    assert sampler.warmed_up()


def test_importance_sampler_then_favours_high_loss_timesteps_and_stays_unbiased():
    sampler = LossAwareSampler(Interval(100, 120), history=10, uniform_share=0.01)
    loss_of_t = lambda t: (t - 99).double() ** 2  # noqa: E731  - loss grows with t
    fill(sampler, loss_of_t, rounds=10)
    p = sampler.probabilities()
    assert p.sum().item() == pytest.approx(1.0) and (p.diff() > 0).all()
    # Exact unbiasedness: E_p[w(t) L(t)] = sum_t p_t / (N p_t) L_t = mean_t L_t.
    t_all = torch.arange(100, 120)
    assert (p * (1 / (20 * p)) * loss_of_t(t_all)).sum().item() == pytest.approx(loss_of_t(t_all).mean().item())
    t, w = sampler.sample(200_000, torch.Generator().manual_seed(0))
    assert t.min() >= 100 and t.max() < 120
    assert (w.double() * loss_of_t(t)).mean().item() == pytest.approx(loss_of_t(t_all).mean().item(), rel=0.01)
    assert (t >= 110).float().mean() > 0.7  # high-loss half drawn far more often than 50%


def test_importance_sampler_keeps_only_the_last_losses_and_round_trips_its_state():
    sampler = LossAwareSampler(Interval(0, 2), history=3)
    for value in (1.0, 2.0, 3.0, 4.0):
        sampler.update(torch.tensor([0, 1]), torch.tensor([value, 10 * value]))
    assert sampler.losses[0].tolist() == [2.0, 3.0, 4.0]
    clone = LossAwareSampler(Interval(0, 2), history=3)
    clone.load_state_dict(sampler.state_dict())
    assert torch.equal(clone.probabilities(), sampler.probabilities())


@pytest.mark.parametrize("interval", [Interval(0, 1000), Interval(200, 600), Interval(0, 5)])
def test_soft_truncation_never_samples_below_the_drawn_truncation(interval):
    sampler, g = SoftTruncationSampler(interval), torch.Generator().manual_seed(0)
    lowest_truncation = interval.hi
    for _ in range(2000):
        t, w, tau = sampler.sample_with_truncation(16, g)
        assert interval.lo + 1 <= tau <= interval.hi
        # Index i is paper step i + 1: the batch covers paper steps floor(tau)..hi.
        assert t.min() >= math.floor(tau) - 1 and t.max() < interval.hi and (w == 1).all()
        lowest_truncation = min(lowest_truncation, math.floor(tau) - 1)
    assert lowest_truncation == interval.lo  # batches still reach the interval's cleanest step


@pytest.mark.parametrize("k", [1.0, 0.9])
@pytest.mark.parametrize("interval", [Interval(0, 1000), Interval(200, 600)])
def test_soft_truncation_draws_follow_the_power_law_prior(k, interval):
    sampler, g = SoftTruncationSampler(interval, k=k), torch.Generator().manual_seed(1)
    taus = [sampler.draw_truncation(g) for _ in range(4000)]
    prior = lambda x: sampler.prior_cdf(torch.as_tensor(x, dtype=torch.float64)).numpy()  # noqa: E731
    assert prior(interval.lo + 1) == pytest.approx(0) and prior(interval.hi) == pytest.approx(1)
    assert stats.kstest(taus, prior).pvalue > 0.01
    # The test has power: the same draws are far from uniform truncation times.
    uniform = stats.uniform(interval.lo + 1, interval.size - 1).cdf
    assert stats.kstest(taus, uniform).pvalue < 1e-6


def test_soft_truncation_with_k_1_is_log_uniform_over_the_full_range():
    sampler, g = SoftTruncationSampler(Interval(0, 1000)), torch.Generator().manual_seed(2)
    logs = torch.tensor([math.log(sampler.draw_truncation(g)) for _ in range(4000)])
    assert logs.mean().item() == pytest.approx(math.log(1000) / 2, abs=0.1)  # uniform on [0, log T]


def test_each_recipe_builds_its_sampler_with_the_papers_settings():
    schedule = NoiseSchedule.from_name("cosine", 1000)
    interval = Interval(100, 800)
    samplers = {r: make_sampler(r, interval, schedule) for r in RECIPES}
    assert type(samplers["adm"]) is UniformIntervalSampler
    assert isinstance(samplers["soft_truncation"], SoftTruncationSampler) and samplers["soft_truncation"].k == 1.0
    importance = samplers["importance"]
    assert isinstance(importance, LossAwareSampler) and importance.losses.shape == (700, 10)
    # P2W with k = gamma = 1: 1 / (1 + SNR) = 1 - alpha-bar, unnormalised.
    for index in (100, 400, 799):
        expected = 1 - schedule.alphas_cumprod[index].item()
        assert samplers["p2w"].lambdas[index].item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="unknown training recipe 'edm'"):
        make_sampler("edm", interval, schedule)
