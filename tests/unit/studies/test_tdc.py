"""TDC's runs and model names, FLOPs schedules, trajectory MACs and claims, on constructed numbers."""
from __future__ import annotations

import pandas as pd
import pytest

from mdmlib.config import load_config
from mdmlib.core.intervals import Interval
from mdmlib.intervals.snr import group_upper_limits
from mdmlib.report.verdicts import FAILS, HOLDS, UNDECIDED
from mdmlib.studies.tdc import tdc_claims, trajectory_macs
from mdmlib.studies.tdc_ablations import ablation_claims, write_tdc_ablations
from mdmlib.studies.tdc_runs import (
    group_limits,
    k_runs,
    schedule_limits,
    tdc_ablation_runs,
    tdc_base_iterations,
    tdc_run_models,
    tdc_runs,
)
from mdmlib.training.job import (
    is_fresh_shape,
    parse_tdc_name,
    pruned_base_name,
    train_job,
)

GROUPS = [Interval(0, 161), Interval(161, 943), Interval(943, 998), Interval(998, 1000)]  # the default's N = 4


def test_group_limits_are_the_snr_methods_eq4():
    for n, k in ((4, 0.5), (10, 0.3), (2, 0.7)):
        assert group_limits(n, k) == pytest.approx(group_upper_limits(n, k).tolist())


def test_every_tdc_run_routes_one_model_per_group_named_by_what_it_is():
    cfg = load_config("config.yaml")
    assert tdc_base_iterations(cfg) == 1200  # the baseline's middle snapshot (400 ... 2400)
    proxy = tdc_run_models("tdc_proxy", cfg, GROUPS)
    assert proxy == ["tdc_proxy_b1200_t0-161_f625_i200", "tdc_proxy_b1200_t161-943_f750_i200",
                     "tdc_proxy_b1200_t943-998_f875_i200", "tdc_full_b1200_t998-1000_f1000_i200"]  # limit F: shared
    assert tdc_run_models("tdc_scratch", cfg, GROUPS) == [f"t{g.lo}-{g.hi}_i500" for g in GROUPS]  # (1200+800)/4
    assert tdc_run_models("tdcv_magnitude", cfg, GROUPS) == ["tdc_magnitude_b1200_t0-1000_f625_i200"]
    scratch_long = tdc_run_models("tdcv_scratch_long", cfg, GROUPS)[0]
    assert scratch_long == "tdcs_proxy_b1200_t0-1000_f625_i800" and is_fresh_shape(scratch_long)
    assert pruned_base_name(scratch_long) == "tdc_proxy_b1200_t0-1000_f625"
    job = train_job(proxy[0], cfg)
    assert (job.interval, job.iterations, job.snapshot_steps[-1]) == (GROUPS[0], 200, 200)
    assert parse_tdc_name(proxy[1]) == ("proxy", 1200, GROUPS[1], 750, 200)
    assert set(tdc_runs(cfg)) >= {"tdc_full", "tdc_scratch", "tdc_proxy", "tdcv_proxy", "tdcv_scratch"}
    assert tdc_ablation_runs(cfg)[:4] == ["tdcflops_snr", "tdcflops_constant", "tdcflops_increasing",
                                          "tdcflops_decreasing"]
    with pytest.raises(ValueError, match="not a TDC model"):
        pruned_base_name("t0-1000_i2400")


@pytest.mark.parametrize("schedule", ["constant", "increasing", "decreasing"])
def test_flops_schedules_keep_the_snr_schedules_mean_within_k_and_one(schedule):
    k, T = 0.5, 1000
    snr = schedule_limits("snr", GROUPS, k, T)
    limits = schedule_limits(schedule, GROUPS, k, T)
    mean = sum(g.size * limit for g, limit in zip(GROUPS, snr)) / T
    assert sum(g.size * limit for g, limit in zip(GROUPS, limits)) / T == pytest.approx(mean)
    assert all(k - 1e-9 <= limit <= 1 + 1e-9 for limit in limits)
    steps = [b - a for a, b in zip(limits, limits[1:])]
    assert {"constant": all(s == 0 for s in steps), "increasing": all(s > 0 for s in steps),
            "decreasing": all(s < 0 for s in steps)}[schedule]


def test_trajectory_macs_weights_each_model_by_the_steps_it_serves():
    # DDIM indices 999, 500, 0 -> served by groups 3, 1, 0 (indices lo <= t < hi)
    assert trajectory_macs([1.0, 2.0, 3.0, 4.0], GROUPS, [999, 500, 0]) == pytest.approx((4 + 2 + 1) / 3)
    with pytest.raises(ValueError, match="served by 0 models"):
        trajectory_macs([1.0], [Interval(0, 10)], [50])


def sets_frame(values, point=1) -> pd.DataFrame:
    return pd.DataFrame({"seed_set": range(len(values)), "fid": values, "point": point})


def costed_frame(steps: int) -> pd.DataFrame:
    return pd.DataFrame({"point": [1], "fid": [1.0], "train_steps": [steps]})


BASE = [0.50, 0.60, 0.55, 0.52, 0.58]


@pytest.mark.parametrize("shift, verdict", [(-0.10, HOLDS), (+0.10, FAILS), (0.0, UNDECIDED)])
def test_tdc_claims_follow_the_numbers(shift, verdict):
    noise = [0.002, -0.003, 0.001, -0.001, 0.002]  # small paired noise: a 0.1 shift is decided, none is not
    moved = [b + shift + e for b, e in zip(BASE, noise)]
    sets = {"baseline": sets_frame(BASE), "tdc_full": sets_frame(moved), "tdc_proxy": sets_frame(moved),
            "tdc_magnitude": sets_frame([b + 0.2 for b in BASE]), "tdc_scratch": sets_frame(BASE)}
    costed = {run: costed_frame(2000 if run != "baseline" else 2400) for run in sets}
    sizes = {run: {"trajectory_macs": 0.7 if run in ("tdc_proxy", "tdc_magnitude") else 1.0} for run in sets}
    claims = {c.claim: c for c in tdc_claims(costed, sets, sizes, "constructed")}
    assert claims["tdc_table1_no_pruning"].verdict == verdict
    assert claims["tdc_table1_pruned"].verdict == verdict
    assert claims["tdc_table6_proxy"].verdict == HOLDS  # magnitude is 0.2 worse on every set
    assert claims["tdc_fig3_two_stage"].verdict == verdict


def test_pruned_tdc_at_too_many_macs_does_not_keep_the_claim():
    sets = {"baseline": sets_frame(BASE), "tdc_proxy": sets_frame([b - 0.1 for b in BASE])}
    costed = {run: costed_frame(2000) for run in sets}
    sizes = {"baseline": {"trajectory_macs": 1.0}, "tdc_proxy": {"trajectory_macs": 0.95}}
    claim = {c.claim: c for c in tdc_claims(costed, sets, sizes, "constructed")}["tdc_table1_pruned"]
    assert claim.verdict == FAILS and "not below 0.85" in claim.reason


def test_without_pruning_at_more_steps_fails_even_when_lower():
    sets = {"baseline": sets_frame(BASE), "tdc_full": sets_frame([b - 0.1 for b in BASE])}
    costed = {"baseline": costed_frame(2400), "tdc_full": costed_frame(2600)}
    sizes = {run: {"trajectory_macs": 1.0} for run in sets}
    claim = tdc_claims(costed, sets, sizes, "constructed")[0]
    assert claim.claim == "tdc_table1_no_pruning" and claim.verdict == FAILS and "fewer steps" in claim.reason


def test_ablation_claims_decide_the_schedule_and_group_rows():
    schedules = ["tdcflops_snr", "tdcflops_constant"]
    groups = ["tdcgroups_2", "tdcgroups_8"]
    label = {"tdcflops_snr": "SNR", "tdcflops_constant": "constant", "tdcgroups_2": "2 groups",
             "tdcgroups_8": "8 groups"}
    sets = {"tdcflops_snr": sets_frame(BASE), "tdcflops_constant": sets_frame([b + 0.1 for b in BASE]),
            "tdcgroups_2": sets_frame(BASE), "tdcgroups_8": sets_frame([b + 0.1 for b in BASE])}
    claims = {c.claim: c for c in ablation_claims(schedules, groups, label, sets, "constructed")}
    assert claims["tdc_table2_snr_schedule"].verdict == HOLDS
    assert claims["tdc_table3_groups"].verdict == FAILS  # 8 groups 0.1 worse on every set


def test_the_k_ablation_runs_the_same_groups_under_each_ks_limits():
    cfg = load_config("config.yaml")
    assert k_runs(cfg) == {"tdck_300": 0.3, "tdck_400": 0.4, "tdcflops_snr": 0.5, "tdck_600": 0.6, "tdck_700": 0.7}
    runs = tdc_ablation_runs(cfg)
    assert runs.count("tdcflops_snr") == 1 and {"tdck_300", "tdck_700"} <= set(runs)  # k = 0.5 is Table II's run
    # Eq. 4 at k = 0.3 over N = 4: 0.475, 0.65, 0.825, 1 (the top group's limit is F: not pruned)
    assert tdc_run_models("tdck_300", cfg, GROUPS) == [
        "tdc_proxy_b1200_t0-161_f475_i200", "tdc_proxy_b1200_t161-943_f650_i200",
        "tdc_proxy_b1200_t943-998_f825_i200", "tdc_full_b1200_t998-1000_f1000_i200"]


def test_the_snr_groups_do_not_move_with_k():
    """Eq. 3-5: FLOPs(t) and the group limits both scale as k + (1 - k) x, so k only sets the limits."""
    from mdmlib.core.schedule import NoiseSchedule
    from mdmlib.intervals.snr import snr_intervals

    schedule = NoiseSchedule.from_name("linear", 1000)
    groups = {k: snr_intervals(schedule, 4, k).intervals for k in (0.3, 0.4, 0.5, 0.6, 0.7)}
    assert all(g == groups[0.5] for g in groups.values()), groups


def test_the_k_table_figure_and_claim_come_from_the_runs_numbers(tmp_path):
    from types import SimpleNamespace

    k_of = {"tdck_300": 0.3, "tdcflops_snr": 0.5, "tdck_700": 0.7}
    noise = [0.002, -0.003, 0.001, -0.001, 0.002]
    sets = {"tdcflops_snr": sets_frame(BASE), "tdcflops_constant": sets_frame([b + 0.1 for b in BASE]),
            "tdcgroups_2": sets_frame(BASE), "tdcgroups_4": sets_frame(BASE),
            "tdck_300": sets_frame([b + 0.3 + e for b, e in zip(BASE, noise)]),  # k = 0.3 far worse
            "tdck_700": sets_frame([b + e for b, e in zip(BASE, noise)])}
    sizes = {run: {"macs": [0.6, 1.0], "trajectory_macs": 0.8, "mean_parameters": 5e5} for run in sets}
    sizes["tdck_300"]["trajectory_macs"] = 0.6
    outputs = SimpleNamespace(**{f"{name}_{ext}": tmp_path / f"{name}.{ext}" for name in ("table2", "table3", "table_k")
                                 for ext in ("csv", "md")}, figure_k_png=tmp_path / "k.png")
    claims = write_tdc_ablations(["tdcflops_snr", "tdcflops_constant"], ["tdcgroups_2", "tdcgroups_4"], k_of,
                                 "tdcflops_snr", sets, sizes, dict.fromkeys(sets, 2000), 1.0, "proxy", 0.1,
                                 outputs, "constructed", "FID on 5 sets")
    claim = {c.claim: c for c in claims}["tdc_fig6_k_stable"]
    assert claim.verdict == FAILS and "k = 0.3" in claim.reason  # 0.3 above, tolerance 0.1 x 0.55
    table = pd.read_csv(outputs.table_k_csv)
    assert list(table["run"]) == ["k = 0.3", "k = 0.5", "k = 0.7"]
    assert table["MACs per step / F"].tolist() == pytest.approx([0.6, 0.8, 0.8])
    assert table["FID - k = 0.5"].iloc[0].startswith("+0.3")
    assert (tmp_path / "k.png").stat().st_size > 0 and (tmp_path / "k.pdf").stat().st_size > 0
    # within the tolerance on every set: stable
    sets["tdck_300"] = sets_frame([b + 0.01 + e for b, e in zip(BASE, noise)])
    claims = write_tdc_ablations(["tdcflops_snr", "tdcflops_constant"], ["tdcgroups_2", "tdcgroups_4"], k_of,
                                 "tdcflops_snr", sets, sizes, dict.fromkeys(sets, 2000), 1.0, "proxy", 0.1,
                                 outputs, "constructed", "FID on 5 sets")
    assert {c.claim: c for c in claims}["tdc_fig6_k_stable"].verdict == HOLDS
