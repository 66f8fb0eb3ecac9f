"""SNR-based (TDC) interval choice against TDC Eq. 2-5 recomputed here, on real and hand-made schedules."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mdmlib.core.schedule import NoiseSchedule
from mdmlib.intervals.choice import read_choice, write_choice
from mdmlib.intervals.snr import flops_ratio_curve, snr_intervals


def eq3_flops_ratio(schedule: NoiseSchedule, k: float) -> np.ndarray:
    """Eq. 2-3 without the standardisation, which a min-max normalisation cancels."""
    abar = schedule.alphas_cumprod.numpy()
    negative_snr = -10 * np.log10(abar / (1 - abar))
    return k + (1 - k) * (negative_snr - negative_snr.min()) / (negative_snr.max() - negative_snr.min())


def linear_log_snr_schedule(timesteps: int) -> NoiseSchedule:
    """SNR falling linearly in dB from 40 to -40: FLOPs(t) is linear in t, so groups have equal sizes."""
    snr = 10 ** (np.linspace(40, -40, timesteps) / 10)
    return NoiseSchedule(torch.tensor(snr / (1 + snr), dtype=torch.float64))


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_groups_are_contiguous_ordered_and_cover_1_to_T(name, n):
    schedule = NoiseSchedule.from_name(name, 1000)
    choice = snr_intervals(schedule, n)
    intervals = choice.intervals
    assert choice.method == "snr" and choice.n == n and len(intervals) == n
    assert intervals[0].lo == 0 and intervals[-1].hi == 1000
    assert all(a.hi == b.lo for a, b in zip(intervals, intervals[1:]))
    assert sum(i.size for i in intervals) == 1000 == sum(choice.details["group_timesteps"])
    # Eq. 5 per timestep: v(i) < FLOPs(t) <= w(i), with Eq. 4's w(i) = k + (i + 1)(1 - k)/n, v(0) = 0
    flops = eq3_flops_ratio(schedule, 0.5)
    for i, interval in enumerate(intervals):
        upper = 0.5 + (i + 1) * 0.5 / n
        lower = 0.0 if i == 0 else 0.5 + i * 0.5 / n
        group = flops[interval.lo:interval.hi]  # paper t in (lo, hi] is index lo..hi-1
        assert (group > lower).all() and (group <= upper + 1e-12).all()
        assert choice.details["group_flops_upper"][i] == pytest.approx(upper)
        assert choice.details["group_flops_lower"][i] == pytest.approx(lower)
        assert choice.details["group_mean_flops_ratio"][i] == pytest.approx(group.mean())
    # groups get larger models as t grows
    assert choice.details["group_mean_flops_ratio"] == sorted(choice.details["group_mean_flops_ratio"])


@pytest.mark.parametrize("k", [0.3, 0.5, 0.7])
def test_flops_follow_eq3_at_a_few_timesteps(k):
    schedule = NoiseSchedule.from_name("linear", 1000)
    flops = flops_ratio_curve(schedule, k)
    expected = eq3_flops_ratio(schedule, k)
    for t in (1, 2, 250, 500, 999, 1000):
        assert flops[t - 1] == pytest.approx(expected[t - 1], rel=1e-12)
    assert flops[0] == pytest.approx(k) and flops[-1] == pytest.approx(1.0)
    details = snr_intervals(schedule, 3, k).details
    curve = dict(zip(details["curve_timesteps"], details["curve_flops_ratio"]))
    assert curve[1] == pytest.approx(k) and curve[1000] == pytest.approx(1.0)
    assert all(v == pytest.approx(expected[t - 1]) for t, v in curve.items())


def test_linear_log_snr_gives_hand_computed_boundaries():
    # FLOPs(t)/F = 0.5 + 0.5 (t - 1)/99; group i holds (t - 1)/99 in (i/4, (i + 1)/4]:
    # t <= 25.75, t <= 50.5, t <= 75.25 -> boundaries 25, 50, 75
    choice = snr_intervals(linear_log_snr_schedule(100), 4)
    assert choice.boundaries == (25, 50, 75)
    assert choice.details["group_timesteps"] == [25, 25, 25, 25]


def test_one_group_is_the_whole_range():
    choice = snr_intervals(NoiseSchedule.from_name("cosine", 1000), 1)
    assert choice.boundaries == () and [i.to_list() for i in choice.intervals] == [[0, 1000]]
    assert choice.details["group_flops_upper"] == [1.0] and choice.details["group_timesteps"] == [1000]


def test_empty_group_is_refused():
    # the cosine schedule's clipped last step drops the SNR by 30 dB, leaving bin 8 of 10 empty
    with pytest.raises(ValueError, match=r"groups \[8\] of 10 get no timestep"):
        snr_intervals(NoiseSchedule.from_name("cosine", 1000), 10)


def test_bad_arguments_are_refused():
    schedule = NoiseSchedule.from_name("linear", 100)
    with pytest.raises(ValueError, match="k must be in"):
        snr_intervals(schedule, 3, min_flops_ratio=1.0)
    with pytest.raises(ValueError, match="at least one group"):
        snr_intervals(schedule, 0)


def test_json_round_trip_and_figure(tmp_path):
    choice = snr_intervals(NoiseSchedule.from_name("linear", 1000), 5, figure_dir=tmp_path / "fig")
    write_choice(choice, tmp_path / "snr_n5.json")
    assert read_choice(tmp_path / "snr_n5.json") == choice
    for suffix in (".png", ".pdf"):
        assert (tmp_path / "fig" / f"snr_flops{suffix}").stat().st_size > 1000
