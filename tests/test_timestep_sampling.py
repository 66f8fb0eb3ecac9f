"""Timestep samplers: P2W weights and loss-aware importance sampling (library; see issue 5)."""
from __future__ import annotations

import pytest
import torch

from mdmlib.diffusion import NoiseSchedule
from mdmlib.experts import Interval
from mdmlib.timestep_sampling import LossAwareSampler, P2WeightedSampler, UniformIntervalSampler


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
