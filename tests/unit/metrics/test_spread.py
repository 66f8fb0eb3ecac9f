"""Spread over sample sets and paired differences, against hand computations and a synthetic FID."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mdmlib.metrics.fid import feature_statistics, frechet_distance
from mdmlib.metrics.spread import paired_difference, spread


def test_spread_and_paired_difference_by_hand():
    s = spread([0.5, 0.7, 0.6])
    assert s.mean == pytest.approx(0.6) and s.sd == pytest.approx(0.1) and s.sets == 3
    assert s.text() == "0.6 (0.1)"
    # a - b = 0.1, -0.1, 0.3: mean 0.1, sd 0.2, se 0.2 / sqrt(3)
    d = paired_difference([0.6, 0.5, 0.9], [0.5, 0.6, 0.6])
    assert d.mean == pytest.approx(0.1) and d.se == pytest.approx(0.2 / math.sqrt(3)) and not d.decided()
    assert paired_difference([1.0, 1.1, 1.2], [0.5, 0.6, 0.6]).decided()
    assert math.isnan(spread([0.4]).sd) and spread([0.4]).text() == "0.4"
    with pytest.raises(ValueError, match="same non-zero count"):
        paired_difference([1.0], [1.0, 2.0])


def test_pairing_removes_the_noise_two_runs_share():
    """Set-to-set noise common to both runs (the same initial noise) cancels in the paired difference."""
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 0.3, size=10)  # what each seed set's noise does to both runs
    a, b = 0.60 + shared + rng.normal(0, 0.01, 10), 0.55 + shared + rng.normal(0, 0.01, 10)
    paired = paired_difference(a, b)
    unpaired_se = math.sqrt(spread(a).sd ** 2 / 10 + spread(b).sd ** 2 / 10)
    assert paired.decided() and paired.se < unpaired_se / 10
    assert paired.mean == pytest.approx(0.05, abs=0.02)


def synthetic_fid_spread(n: int, sets: int = 16, dim: int = 4, shift: float = 0.5) -> tuple[float, float]:
    """FID between n samples of N(shift, I) and n of N(0, I) over disjoint draws: (mean, sd).
    The true FID is dim * shift^2."""
    rng = np.random.default_rng(n)
    fids = []
    for _ in range(sets):
        mu1, s1 = feature_statistics(rng.normal(shift, 1.0, size=(n, dim)))
        mu2, s2 = feature_statistics(rng.normal(0.0, 1.0, size=(n, dim)))
        fids.append(frechet_distance(mu1, s1, mu2, s2))
    s = spread(fids)
    return s.mean, s.sd


def test_fid_spread_shrinks_with_more_samples_towards_the_known_fid():
    true = 4 * 0.5 ** 2
    (_, sd_small), (m_large, sd_large) = synthetic_fid_spread(100), synthetic_fid_spread(1600)
    # About 1/sqrt(n) (a factor 4 for 16x the samples; the sd of 16 sets is itself uncertain).
    assert sd_large < sd_small / 2
    assert m_large == pytest.approx(true, abs=3 * sd_large / math.sqrt(16) + 0.01)
