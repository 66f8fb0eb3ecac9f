"""Timestep intervals, routing at the interval edges, and the per-expert training budget.

Indices are 0-based: index i is the paper's t = i + 1, and the interval (lo, hi] holds
indices lo .. hi - 1.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mdmlib.config import ModelConfig
from mdmlib.core.intervals import Interval, expert_budgets, intervals_from_boundaries
from mdmlib.models.registry import new_model
from mdmlib.routing.mixture import ExpertMixture

T = 1000


class Constant(nn.Module):
    """An 'expert' whose output is its id everywhere, so routing shows in the output."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value
        self.calls: list[torch.Tensor] = []

    def forward(self, x, t):
        self.calls.append(t.clone())
        return torch.full_like(x, self.value)


def paper_mixture() -> ExpertMixture:
    return ExpertMixture([Constant(k) for k in range(3)], intervals_from_boundaries([0.1, 0.8], T))


def test_paper_boundaries_give_the_adm_intervals():
    intervals = intervals_from_boundaries([0.1, 0.8], T)
    assert intervals == [Interval(0, 100), Interval(100, 800), Interval(800, 1000)]
    assert [i.label() for i in intervals] == ["(0, 100]", "(100, 800]", "(800, 1000]"]
    assert [i.size for i in intervals] == [100, 700, 200]


def test_interval_contains_indices_lo_to_hi_minus_one():
    interval = Interval(100, 800)
    t = torch.tensor([99, 100, 799, 800])
    assert interval.contains_index(t).tolist() == [False, True, True, False]


@pytest.mark.parametrize("index,expert", [(0, 0), (99, 0), (100, 1), (799, 1), (800, 2), (999, 2)])
def test_routing_at_the_interval_edges(index, expert):
    mixture = paper_mixture()
    x = torch.zeros(2, 1, 8, 8)
    t = torch.full((2,), index)
    assert mixture.expert_index(t).tolist() == [expert, expert]
    assert torch.equal(mixture(x, t), torch.full_like(x, expert))


def test_a_mixed_batch_routes_each_sample_to_its_own_expert():
    mixture = paper_mixture()
    t = torch.tensor([999, 0, 100, 99, 800, 799, 500])
    x = torch.randn(7, 2, 4, 4)
    out = mixture(x, t)
    expected = torch.tensor([2, 0, 1, 0, 2, 1, 1], dtype=x.dtype)
    assert torch.equal(out, expected.view(-1, 1, 1, 1).expand_as(x))
    # Each expert saw exactly its own samples' timesteps, in batch order.
    assert [e.calls[0].tolist() for e in mixture.experts] == [[0, 99], [100, 799, 500], [999, 800]]


def test_a_mixed_batch_of_real_unets_matches_calling_each_expert_alone():
    cfg = ModelConfig(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                      channels_per_head=4, dropout=0.0)
    torch.manual_seed(0)
    experts = [new_model(cfg, 1, 8).eval() for _ in range(2)]
    with torch.no_grad():
        for e in experts:
            e.out[-1].weight.normal_(0, 0.2)
    mixture = ExpertMixture(experts, intervals_from_boundaries([0.5], T))
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([10, 600, 499])
    with torch.no_grad():
        out = mixture(x, t)
        torch.testing.assert_close(out[[0, 2]], experts[0](x[[0, 2]], t[[0, 2]]))
        torch.testing.assert_close(out[[1]], experts[1](x[[1]], t[[1]]))


def test_intervals_may_be_given_in_any_order():
    intervals = intervals_from_boundaries([0.1, 0.8], T)
    experts = [Constant(k) for k in range(3)]
    mixture = ExpertMixture(experts[::-1], intervals[::-1])
    assert mixture.intervals == intervals
    out = mixture(torch.zeros(3, 1, 2, 2), torch.tensor([50, 500, 900]))
    assert out[:, 0, 0, 0].tolist() == [0, 1, 2]


@pytest.mark.parametrize("index", [-1, 1000, 5000])
def test_out_of_range_timestep_raises(index):
    mixture = paper_mixture()
    with pytest.raises(ValueError, match="outside"):
        mixture(torch.zeros(2, 1, 2, 2), torch.tensor([5, index]))


@pytest.mark.parametrize("intervals", [
    [Interval(0, 100), Interval(200, 1000)],  # gap
    [Interval(0, 150), Interval(100, 1000)],  # overlap
    [Interval(10, 100), Interval(100, 1000)],  # does not start at 0
    [Interval(0, 500), Interval(0, 500)],  # the same interval twice
])
def test_intervals_that_do_not_tile_raise(intervals):
    with pytest.raises(ValueError):
        ExpertMixture([Constant(k) for k in range(len(intervals))], intervals)


def test_experts_and_intervals_must_pair_up():
    with pytest.raises(ValueError, match="2 experts for 3 intervals"):
        ExpertMixture([Constant(0), Constant(1)], intervals_from_boundaries([0.1, 0.8], T))


@pytest.mark.parametrize("lo,hi", [(5, 5), (6, 5), (-1, 5)])
def test_empty_or_negative_interval_raises(lo, hi):
    with pytest.raises(ValueError):
        Interval(lo, hi)


def test_one_interval_mixture_returns_exactly_the_single_models_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1))
    wrapped = lambda x, t: model(x) * (1 + t.view(-1, 1, 1, 1))  # noqa: E731

    class Single(nn.Module):
        def forward(self, x, t):
            return wrapped(x, t)

    mixture = ExpertMixture([Single()], [Interval(0, T)])
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 999, 3, 500])
    assert mixture.timesteps == T
    assert torch.equal(mixture(x, t), wrapped(x, t))


def test_expert_budgets_are_interval_shares_of_the_baseline_iterations():
    intervals = intervals_from_boundaries([0.1, 0.8], T)
    assert expert_budgets(intervals, T, 3000) == [300, 2100, 600]


@pytest.mark.parametrize("boundaries,iterations", [([0.1, 0.8], 3000), ([0.5], 41), ([0.333, 0.667], 40),
                                                   ([0.25, 0.5, 0.75], 1000)])
def test_expert_budgets_sum_to_the_baseline_iterations(boundaries, iterations):
    budgets = expert_budgets(intervals_from_boundaries(boundaries, T), T, iterations)
    assert sum(budgets) == iterations
    edges = [0] + [round(x * T) for x in boundaries] + [T]
    assert all(abs(got - (b - a) / T * iterations) < 1 for got, a, b in zip(budgets, edges, edges[1:]))


def test_a_tiny_interval_still_gets_one_iteration_from_the_largest_budget():
    assert expert_budgets([Interval(0, 1), Interval(1, 995), Interval(995, 1000)], T, 30) == [1, 28, 1]
    with pytest.raises(ValueError, match="cannot give each"):
        expert_budgets([Interval(0, 1), Interval(1, 1000)], T, 1)
