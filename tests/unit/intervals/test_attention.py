"""MDM attention-concentration intervals: the Eq. 3 statistic, the segmented fit, the entry point."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from tiny_models import perturbed_unet

from mdmlib.core.schedule import NoiseSchedule
from mdmlib.intervals.attention import (
    attention_concentration,
    attention_intervals,
    attention_map,
    boundaries_from_fit,
    fit_segments,
)
from mdmlib.intervals.choice import read_choice, write_choice
from mdmlib.models.hooks import record_attention
from mdmlib.models.unet import AttentionBlock, UNet
from mdmlib.sampling.ddim import ddim_timesteps


def random_unet(seed: int = 0) -> UNet:
    return perturbed_unet(seed, scale=0.3, dropout=0.0, eval_mode=True)


# --- the statistic -------------------------------------------------------------------------------

def test_uniform_attention_of_a_real_layer_gives_zero():
    block = AttentionBlock(channels=8, channels_per_head=4, label="4-1")
    with torch.no_grad():
        block.qkv.weight.zero_()  # q = k = 0: every logit equal, every row uniform
        block.qkv.bias.zero_()
        with record_attention(block) as recorded:
            block(torch.randn(3, 8, 4, 4))
    weights = recorded["4-1"][0]
    assert weights.shape == (3, 2, 16, 16)
    torch.testing.assert_close(weights, torch.full_like(weights, 1 / 16))
    torch.testing.assert_close(attention_concentration(weights), torch.zeros(3), rtol=0, atol=1e-7)


@pytest.mark.parametrize("keys", [4, 16, 64])
def test_one_hot_rows_give_sqrt_k_minus_one_over_k(keys):
    # Each query attends to one key (a permutation per head): mean 1/K, population variance (K-1)/K^2.
    gen = torch.Generator().manual_seed(keys)
    weights = torch.zeros(2, 3, keys, keys)
    for b, h in itertools.product(range(2), range(3)):
        weights[b, h, torch.arange(keys), torch.randperm(keys, generator=gen)] = 1.0
    expected = math.sqrt(keys - 1) / keys
    torch.testing.assert_close(attention_concentration(weights), torch.full((2,), expected))


def test_statistic_averages_rows_heads_and_keeps_images_apart():
    keys = 16
    uniform = torch.full((keys,), 1 / keys)
    one_hot = torch.zeros(keys)
    one_hot[5] = 1.0
    weights = torch.stack([uniform.expand(2, keys, keys), one_hot.expand(2, keys, keys)])  # (2, 2, 16, 16)
    weights[0, 1] = one_hot  # image 0: one uniform head, one one-hot head
    stat = attention_concentration(weights)
    peak = math.sqrt(keys - 1) / keys
    torch.testing.assert_close(stat, torch.tensor([peak / 2, peak]))
    amap = attention_map(weights)
    assert amap.shape == (2, 4, 4)
    assert amap[1].flatten().argmax() == 5 and amap[1].max() == pytest.approx(1.0)


# --- the segmented fit ---------------------------------------------------------------------------

PAPER_T = np.array(sorted(ddim_timesteps(1000, 50))) + 1  # 1, 21, 42, ..., 1000


def rising_flat_falling(t: np.ndarray, kinks: tuple[float, float]) -> np.ndarray:
    """Concentration against t: falls fast near t = 0 (tau_C), flat (tau_B), falls again towards T (tau_A)."""
    low, high = kinks
    return np.where(t < low, 0.02 + 0.001 * t,
                    np.where(t < high, 0.02 + 0.001 * low, 0.02 + 0.001 * low - 0.0004 * (t - high)))


def kink_between(i: int) -> tuple[float, int]:
    """A kink halfway between sorted points i-1 and i, and the boundary the midpoint rule gives."""
    a, b = PAPER_T[i - 1], PAPER_T[i]
    return (a + b) / 2, int(a + b) // 2


def test_fit_recovers_the_breakpoints_of_a_piecewise_linear_curve():
    (low, b_low), (high, b_high) = kink_between(5), kink_between(40)
    y = rising_flat_falling(PAPER_T.astype(float), (low, high))
    fit = fit_segments(PAPER_T.astype(float), y, 3)
    assert fit.edges == (0, 5, 40, 50)
    assert fit.residual == pytest.approx(0.0, abs=1e-18)
    assert fit.slopes == pytest.approx([0.001, 0.0, -0.0004], abs=1e-9)
    assert boundaries_from_fit(PAPER_T, fit.edges) == [b_low, b_high]
    assert PAPER_T[4] <= b_low < PAPER_T[5] and PAPER_T[39] <= b_high < PAPER_T[40]


def test_fit_with_noise_keeps_the_breakpoints_and_reports_its_residual():
    (low, _), (high, _) = kink_between(8), kink_between(30)
    y = rising_flat_falling(PAPER_T.astype(float), (low, high))
    y = y + np.random.default_rng(0).normal(0, 1e-4, y.shape)
    fit = fit_segments(PAPER_T.astype(float), y, 3)
    assert fit.edges == (0, 8, 30, 50)
    residual = sum(np.sum((y[lo:hi] - (s * PAPER_T[lo:hi] + c)) ** 2)
                   for (lo, hi), s, c in zip(zip(fit.edges, fit.edges[1:]), fit.slopes, fit.intercepts))
    assert fit.residual == pytest.approx(residual) and 0 < fit.residual < 50 * 4e-8


@pytest.mark.parametrize("n,min_points", [(2, 2), (3, 2), (3, 3), (4, 2)])
def test_fit_is_the_exact_minimum_over_every_split(n, min_points):
    rng = np.random.default_rng(n * 10 + min_points)
    x = np.sort(rng.choice(200, size=14, replace=False)).astype(float)
    y = rng.normal(size=14)
    fit = fit_segments(x, y, n, min_points)

    def sse(lo, hi):
        coef = np.polyfit(x[lo:hi], y[lo:hi], 1)
        return float(np.sum((y[lo:hi] - np.polyval(coef, x[lo:hi])) ** 2))

    brute = min(sum(sse(lo, hi) for lo, hi in zip((0, *cuts), (*cuts, 14)))
                for cuts in itertools.combinations(range(1, 14), n - 1)
                if min(np.diff((0, *cuts, 14))) >= min_points)
    assert fit.residual == pytest.approx(brute, rel=1e-9, abs=1e-12)
    assert min(np.diff(fit.edges)) >= min_points


def test_fit_refuses_too_many_segments_and_unsorted_x():
    with pytest.raises(ValueError, match="cannot fit"):
        fit_segments(np.arange(5.0), np.zeros(5), 3)
    with pytest.raises(ValueError, match="ascending"):
        fit_segments(np.array([0.0, 2.0, 1.0, 3.0]), np.zeros(4), 2)


# --- the entry point -----------------------------------------------------------------------------

def test_attention_intervals_on_a_tiny_unet(tmp_path):
    schedule = NoiseSchedule.from_name("cosine", 100)
    model = random_unet()
    noise = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    choice = attention_intervals(model, schedule, noise, n=3, steps=10, batch_size=4, figure_dir=tmp_path)

    assert choice.method == "attention" and choice.n == 3 and len(choice.intervals) == 3
    d = choice.details
    seq = ddim_timesteps(100, 10)
    assert d["ddim_timesteps"] == [t + 1 for t in seq]
    assert sorted(d["layer_curves"]) == ["4-1", "4-2", "4-3", "4-4"]
    curves = np.array(list(d["layer_curves"].values()))
    assert curves.shape == (4, 10)
    assert (curves > 0).all() and (curves <= math.sqrt(15) / 16 + 1e-6).all()
    np.testing.assert_allclose(d["mean_curve"], curves.mean(axis=0))
    assert d["breakpoints"] == list(choice.boundaries) and len(d["slopes"]) == 3
    assert d["residual"] >= 0 and d["num_images"] == 6
    # Each boundary keeps the DDIM points of its segment on its own side.
    ranges = d["segment_ranges"]
    assert all(hi <= b < lo_next for (_, hi), b, (lo_next, _) in zip(ranges, choice.boundaries, ranges[1:]))

    # The first step's value is the statistic of the model at t = T-1 on the noise itself.
    with torch.no_grad(), record_attention(model) as recorded:
        model(noise, torch.full((6,), 99))
    first = {label: float(attention_concentration(calls[0]).mean()) for label, calls in recorded.items()}
    for label, value in first.items():
        assert d["layer_curves"][label][0] == pytest.approx(value, rel=1e-5)

    for name in ("attention_curves", "attention_maps"):
        for suffix in (".png", ".pdf"):
            assert (tmp_path / f"{name}{suffix}").stat().st_size > 1000
    write_choice(choice, tmp_path / "attention_n3.json")
    assert read_choice(tmp_path / "attention_n3.json") == choice


def test_curves_do_not_depend_on_the_batch_split_and_the_mode_is_restored():
    schedule = NoiseSchedule.from_name("linear", 50)
    model = random_unet(seed=1).train()
    noise = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    one = attention_intervals(model, schedule, noise, n=2, steps=8, batch_size=5)
    split = attention_intervals(model, schedule, noise, n=2, steps=8, batch_size=2)
    assert model.training
    for label, curve in one.details["layer_curves"].items():
        np.testing.assert_allclose(split.details["layer_curves"][label], curve, rtol=1e-5)
    assert one.boundaries == split.boundaries and len(one.boundaries) == 1
