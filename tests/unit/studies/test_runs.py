"""What the pipeline trains and scores: a short run served from a longer one's snapshot, the models
each run routes, and which checkpoints and sample files serve each point (RunPlan)."""
from __future__ import annotations

import pytest
from conftest import REPO

from mdmlib.config import load_config
from mdmlib.core.intervals import Interval
from mdmlib.studies.runs import RunPlan
from mdmlib.training.job import snapshot_source


def test_a_study_expert_is_the_main_experts_snapshot_at_its_budget():
    main = ["t0-100_i300", "t100-800_i2100", "t800-1000_i600"]  # snapshots at 1/6 .. 6/6 of each budget
    assert snapshot_source("t100-800_i700", main, points=6) == ("t100-800_i2100", 2)
    assert snapshot_source("t0-100_i100", main, points=6) == ("t0-100_i300", 2)
    assert snapshot_source("t800-1000_i600", main, points=6) is None  # itself: nothing longer


def test_no_source_when_interval_recipe_or_step_differs():
    main = ["t0-1000_i3000", "t0-1000_i3000_p2w"]
    assert snapshot_source("t0-1000_i1000", main, points=6) == ("t0-1000_i3000", 2)
    assert snapshot_source("t0-1000_i1000_p2w", main, points=6) == ("t0-1000_i3000_p2w", 2)
    assert snapshot_source("t0-1000_i1000_importance", main, points=6) is None
    assert snapshot_source("t0-1000_i300", main, points=6) is None  # 300 is not a multiple of 500
    assert snapshot_source("t0-999_i1000", main, points=6) is None


# ------------------------------------------------ RunPlan: what the rules' input functions return


def default_plan(chosen=None, reallocated=None):
    cfg = load_config(REPO / "config.yaml")
    splits = chosen or {"paper": [Interval(0, 100), Interval(100, 800), Interval(800, 1000)],
                        "snr": [Interval(0, 477), Interval(477, 995), Interval(995, 1000)]}
    return RunPlan(cfg, "out", lambda method, n=3: splits[method] if n == 3 else splits[(method, n)],
                   reallocated or (lambda: ["t0-125_i100"]))


OD = {"optimal_denoiser": [Interval(0, 300), Interval(300, 700), Interval(700, 1000)],
      ("optimal_denoiser", 2): [Interval(0, 500), Interval(500, 1000)],
      ("optimal_denoiser", 4): [Interval(0, 200), Interval(200, 500), Interval(500, 800), Interval(800, 1000)],
      ("optimal_denoiser", 5): [Interval(0, 200), Interval(200, 400), Interval(400, 600), Interval(600, 800),
                                Interval(800, 1000)]}


def test_models_of_each_kind_of_run():
    plan = default_plan()
    assert plan.models("baseline") == ["t0-1000_i2400"]
    assert plan.models("mdm") == ["t0-100_i240", "t100-800_i1680", "t800-1000_i480"]
    assert plan.models("study_snr") == ["t0-477_i382", "t477-995_i414", "t995-1000_i4"]  # 800 in total
    assert plan.models("base_p2w") == ["t0-1000_i2400_p2w"]
    assert plan.models("hybrid") == ["t0-1000_i2400", "t800-1000_i480"]
    assert plan.models("expert8_3")[2] == "t250-375_i300" and len(plan.models("expert8_3")) == 8
    assert plan.models("reallocated8") == ["t0-125_i100"]


def test_a_checkpoint_signal_from_the_interval_choice_reaches_the_caller():
    class Incomplete(Exception):
        pass

    def not_yet(method):
        raise Incomplete(method)

    plan = default_plan()
    plan.chosen_intervals = not_yet
    with pytest.raises(Incomplete, match="attention"):
        plan.checkpoints("study_attention", 6)
    assert plan.checkpoints("baseline", 1) == ["out/models/t0-1000_i2400/point_1.pt"]  # needs no choice


def test_study_runs_are_scored_at_their_end_and_served_by_the_main_runs_snapshots():
    plan = default_plan()
    assert plan.run_points("study_paper") == [6] and plan.run_points("mdm") == [1, 2, 3, 4, 5, 6]
    # The paper split at 800 iterations is MDM's experts at their second snapshot (800 = 2/6 of 2400).
    assert plan.checkpoints("study_paper", 6) == plan.checkpoints("mdm", 2) == [
        "out/models/t0-100_i240/point_2.pt", "out/models/t100-800_i1680/point_2.pt",
        "out/models/t800-1000_i480/point_2.pt"]
    assert plan.samples("study_paper", 6) == "out/samples/mdm/point_2.npz"
    # The SNR split trains its own experts, and samples its own point.
    assert plan.checkpoints("study_snr", 6)[0] == "out/models/t0-477_i382/point_6.pt"
    assert plan.series_samples("study_snr") == ["out/samples/study_snr/point_6.npz"]


def test_samples_are_shared_where_checkpoints_and_routing_match():
    plan = default_plan()
    assert plan.samples("base_adm", 3) == "out/samples/baseline/point_3.npz"
    assert plan.samples("mdm_adm", 4) == "out/samples/mdm/point_4.npz"  # the main split is the paper's
    assert plan.samples("base_p2w", 4) == "out/samples/base_p2w/point_4.npz"
    assert plan.samples("hybrid", 6) == "out/samples/hybrid/point_6.npz"  # its own routing
    assert plan.samples("expert8_5", 6) == "out/samples/expert8_1/point_6.npz"  # all eight final
    assert plan.samples("expert8_5", 5) == "out/samples/expert8_5/point_5.npz"
    assert plan.checkpoints("expert8_2", 1)[:3] == ["out/models/t0-125_i300/point_6.pt",
                                                    "out/models/t125-250_i300/point_1.pt",
                                                    "out/models/t250-375_i300/point_6.pt"]


def test_the_multi_stage_ablations_train_only_what_the_main_models_snapshots_do_not_give():
    plan = default_plan(chosen=OD)
    assert plan.ablation_runs == ["stages1", "stages2", "stages3", "stages4", "stages5", "split1", "split3"]
    assert plan.interval_counts == [2, 3, 4, 5, 6, 8]  # with TDC's groups and Table III's counts
    main = "ms_t0-300-700-1000_e32_d48-32-16_i2400"
    assert plan.models("multistage") == [main]
    # At 1200 iterations (3/6 of 2400) one stage is the baseline's and three the main model's snapshot.
    assert plan.checkpoints("stages1", 6) == ["out/models/t0-1000_i2400/point_3.pt"]
    assert plan.checkpoints("stages3", 6) == [f"out/models/{main}/point_3.pt"]
    assert plan.samples("stages1", 6) == "out/samples/baseline/point_3.npz"
    assert plan.samples("stages3", 6) == "out/samples/multistage/point_3.npz"
    # the other counts and splits train their own models: the default ramp, the splits' widths
    assert plan.models("stages2") == ["ms_t0-500-1000_e32_d48-16_i1200"]
    assert plan.models("stages4") == ["ms_t0-200-500-800-1000_e32_d48-48-32-16_i1200"]
    assert plan.models("split1") == ["ms_t0-300-700-1000_e16_d64-32-16_i1200"]
    assert plan.checkpoints("split3", 6) == ["out/models/ms_t0-300-700-1000_e48_d32-16-16_i1200/point_6.pt"]
    assert plan.run_points("split3") == [6] and plan.samples("split3", 6) == "out/samples/split3/point_6.npz"


def test_make_runs_runs_take_every_set_and_reuse_a_source_points_other_sets():
    plan = default_plan()
    assert plan.seed_sets("baseline") == plan.seed_sets("study_snr") == plan.seed_sets("swap_1") == 5
    assert plan.seed_sets("base_p2w") == plan.seed_sets("expert8_1") == plan.seed_sets("multistage") == 1
    # the paper split's study point is MDM's point 2: both its set 0 and its other sets are MDM's
    assert plan.series_extra_samples("study_paper") == ["out/samples/mdm/point_2_sets.npz"]
    assert plan.series_extra_samples("mdm")[0] == "out/samples/mdm/point_1_sets.npz"
    assert plan.series_extra_samples("base_p2w") == []


def test_a_swap_run_serves_one_experts_interval_by_the_baseline():
    plan = default_plan()
    assert plan.models("swap_3") == ["t0-100_i240", "t100-800_i1680", "t0-1000_i2400"]
    assert plan.routing("swap_3") == [[0, 100], [100, 800], [800, 1000]]
    assert plan.run_points("swap_3") == [6]
    assert plan.checkpoints("swap_1", 6) == ["out/models/t0-1000_i2400/point_6.pt",
                                             "out/models/t100-800_i1680/point_6.pt",
                                             "out/models/t800-1000_i480/point_6.pt"]
    assert plan.samples("swap_1", 6) == "out/samples/swap_1/point_6.npz"  # its own routing: its own samples


def test_tdcs_pruned_runs_are_scored_at_their_end_and_fig3s_curves_over_their_series():
    groups = [Interval(0, 161), Interval(161, 943), Interval(943, 998), Interval(998, 1000)]
    plan = default_plan({("snr", 4): groups, "snr": groups})
    for run in ("tdc_proxy", "tdc_magnitude", "tdc_random", "tdcv_proxy", "tdcflops_constant"):
        assert plan.run_points(run) == [6], run
    assert plan.run_points("tdc_full") == plan.run_points("tdc_scratch") == [1, 2, 3, 4, 5, 6]
    # Table II's SNR run is the proxy's TDC run: its end point is sampled once, by tdc_proxy.
    proxy_end = ["out/samples/tdc_proxy/point_6.npz"]
    assert plan.series_samples("tdcflops_snr") == plan.series_samples("tdc_proxy") == proxy_end
