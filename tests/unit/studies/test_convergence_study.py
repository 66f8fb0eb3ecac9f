"""The convergence study (MDM Sec. 3, 4.1, 5.2) on small synthetic frames with hand-computed answers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mdmlib.core.intervals import Interval
from mdmlib.report.convergence_figures import fig1, fig2, fig3a
from mdmlib.studies.convergence import (
    block_average,
    eight_expert_boundaries,
    loss_curves,
    measured_span_seconds,
    normalised_costs,
    per_expert_curves,
    reallocation_record,
    seconds_at_step,
    slowest_intervals,
    table2,
)
from mdmlib.studies.convergence_rule import ConvergenceRule

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LOOSE = ConvergenceRule(max_change=0.5, consecutive=2, max_gap_to_best=1.0)  # short synthetic series


def metrics_frame(run, steps, fids):
    """A ``metrics/<run>.csv`` frame; ``steps`` rows are lists, one entry per checkpoint."""
    n = len(fids)
    return pd.DataFrame({
        "run": run, "point": range(1, n + 1), "fid": fids, "sfid": [f + 10 for f in fids],
        "precision": 0.5, "recall": 0.5, "num_samples": 100, "num_reference": 100,
        "feature_network": "test", "steps": [" ".join(map(str, s)) for s in steps],
        "fraction_of_budget": 0.0, "total_steps": [sum(s) for s in steps], "wct_seconds": 0.0, "tc_seconds": 0.0,
    })


def timing_frame(model, steps, elapsed):
    elapsed = list(elapsed)
    return pd.DataFrame({"step": steps, "interval_steps": np.diff([0, *steps]),
                         "interval_seconds": np.diff([0.0, *elapsed]), "elapsed_seconds": elapsed,
                         "restarts": 0, "model": model})


def roundtrip(df, path):
    """Through a CSV file, as the pipeline hands the frames over (steps come back as str or int)."""
    df.to_csv(path, index=False)
    return pd.read_csv(path)


# --------------------------------------------------------------------------- the 8-expert split


def test_eight_expert_intervals_are_the_papers_125_step_ranges():
    assert [(i.lo, i.hi) for i in eight_expert_boundaries(1000)] == [(125 * (k - 1), 125 * k) for k in range(1, 9)]
    scaled = eight_expert_boundaries(64)
    assert [(i.lo, i.hi) for i in scaled] == [(8 * (k - 1), 8 * k) for k in range(1, 9)]
    with pytest.raises(ValueError, match="eight"):
        eight_expert_boundaries(7)


# ----------------------------------------------------------------------- per-expert curves (Fig. 3a)

MODELS = ["t0-500_i600", "t500-1000_i600"]
EXPERT1_FIDS = [30.0, 20.0, 15.0, 15.05, 15.02, 15.0]  # diffs 10, 5, .05, .03, .02: converged at index 2
EXPERT2_FIDS = [30.0, 25.0, 20.0, 17.0, 16.0, 15.0]  # still falling by 1-3 per point: never converged


def expert_series(tmp_path):
    its = [100, 200, 300, 400, 500, 600]
    return [roundtrip(metrics_frame("expert_1", [[s, 600] for s in its], EXPERT1_FIDS), tmp_path / "e1.csv"),
            roundtrip(metrics_frame("expert_2", [[600, s] for s in its], EXPERT2_FIDS), tmp_path / "e2.csv")]


def test_per_expert_curves_read_the_varied_experts_step_and_find_its_convergence(tmp_path):
    curves, convergence = per_expert_curves(expert_series(tmp_path), MODELS)
    first = curves[curves["expert"] == 1]
    assert list(first["iteration"]) == [100, 200, 300, 400, 500, 600]
    assert list(first["fid"]) == EXPERT1_FIDS and set(first["interval"]) == {"(0, 500]"}
    assert list(curves[curves["expert"] == 2]["iteration"]) == [100, 200, 300, 400, 500, 600]
    c1, c2 = convergence.iloc[0], convergence.iloc[1]
    assert (c1["converged_point"], c1["converged_at"], c1["budget"]) == (3, 300, 600)
    assert pd.isna(c2["converged_point"]) and pd.isna(c2["converged_at"])
    assert c2["final_change"] == pytest.approx(3.0)  # largest of the last three changes: 3, 1, 1
    assert c1["final_change"] == pytest.approx(0.05)


def test_per_expert_curves_refuse_a_series_whose_other_experts_are_not_fully_trained(tmp_path):
    series = expert_series(tmp_path)
    series[1] = metrics_frame("expert_2", [[300, s] for s in range(100, 700, 100)], EXPERT2_FIDS)
    with pytest.raises(ValueError, match="not all at their final step"):
        per_expert_curves(series, MODELS)


def test_the_rule_is_a_setting_of_the_per_expert_curves(tmp_path):
    rule = ConvergenceRule(max_change=1.5, consecutive=2, max_gap_to_best=2.5)
    _, convergence = per_expert_curves(expert_series(tmp_path), MODELS, rule)
    assert list(convergence["converged_at"]) == [300, 400]  # expert 2: diffs 1, 1 from index 3, 17 - 15 < 2.5


def test_slowest_intervals_rank_by_convergence_step_and_put_never_converged_last_by_final_change():
    convergence = pd.DataFrame({
        "expert": [1, 2, 3, 4], "interval": ["(0, 250]", "(250, 500]", "(500, 750]", "(750, 1000]"],
        "budget": 500, "converged_at": [300, math.nan, 200, math.nan],
        "final_change": [0.02, 2.0, 0.01, 0.5], "best_fid": [10.0, 11.0, 12.0, 13.0],
    })
    table = slowest_intervals(convergence)
    assert list(table["expert"]) == [3, 1, 4, 2]  # 200, 300, then never: still moving 0.5, then 2.0
    assert list(table["rank"]) == [1, 2, 3, 4]
    assert table["converged_at_fraction"].iloc[0] == pytest.approx(0.4)
    assert pd.isna(table["converged_at_fraction"].iloc[3]) and pd.isna(table["converged_at"].iloc[3])


# --------------------------------------------------------------------------------- reallocation


def test_reallocation_record_of_the_papers_split():
    intervals = [Interval(0, 100), Interval(100, 800), Interval(800, 1000)]
    record = reallocation_record(intervals, 1000, 3000, [None, 1200, None])
    assert list(record["planned"]) == [300, 2100, 600]
    assert list(record["reallocated"]) == [600, 1200, 1200]  # 900 freed, shared 300:600
    assert list(record["actually_ran"]) == [600, 1200, 1200]
    assert record["converged_at"].iloc[1] == 1200 and record["converged_at"].isna().sum() == 2
    assert list(record["interval"]) == ["(0, 100]", "(100, 800]", "(800, 1000]"]


def test_reallocation_keeps_the_total_and_never_gives_a_converged_expert_more():
    intervals = eight_expert_boundaries(1000)
    rng = np.random.default_rng(0)
    for _ in range(200):
        converged = [int(rng.integers(1, 501)) if rng.random() < 0.5 else None for _ in intervals]
        record = reallocation_record(intervals, 1000, 4000, converged)
        assert (record["planned"] == 500).all()
        done = record["converged_at"].notna()
        assert (record.loc[done, "reallocated"] == record.loc[done, "converged_at"]).all()
        assert (record.loc[done, "reallocated"] <= record.loc[done, "planned"]).all()
        assert (record.loc[~done, "reallocated"] >= record.loc[~done, "planned"]).all()
        if (~done).any():
            assert record["reallocated"].sum() == 4000
        else:  # everyone stopped early: the savings are kept, never spent
            assert record["reallocated"].sum() <= 4000
        assert (record["actually_ran"] <= record["reallocated"]).all()


# ------------------------------------------------------------------------ WCT / TC (Table 2, Fig. 1)

RUN_MODELS = {"baseline": ["t0-1000_i500"], "mdm": ["t0-500_i200", "t500-1000_i100"]}
BASELINE_FIDS = [30.0, 20.0, 16.0, 15.8, 15.9]  # LOOSE: converged at index 2, best at 3
MDM_FIDS = [25.0, 15.5, 14.0, 13.9, 13.95]  # converged at 2, best at 3, first below 15.8 at 1


def efficiency_inputs(tmp_path):
    series = {
        "baseline": metrics_frame("baseline", [[s] for s in (100, 200, 300, 400, 500)], BASELINE_FIDS),
        "mdm": metrics_frame("mdm", [[a, b] for a, b in zip((40, 80, 120, 160, 200), (20, 40, 60, 80, 100))],
                             MDM_FIDS),
    }
    timings = {
        # 1 s per step: the full run, 500 s, is 100%.
        "t0-1000_i500": timing_frame("t0-1000_i500", [100, 200, 300, 400, 500], [100.0, 200.0, 300.0, 400.0, 500.0]),
        # Expert A: 1 s per step, logged every 50 steps.
        "t0-500_i200": timing_frame("t0-500_i200", [50, 100, 150, 200], [50.0, 100.0, 150.0, 200.0]),
        # Expert B: 1.5 s per step for its first 50 steps, then 1 s: at 20, 40, 60, 80, 100 -> 30, 60, 85, 105, 125 s.
        "t500-1000_i100": timing_frame("t500-1000_i100", [50, 100], [75.0, 125.0]),
    }
    series = {k: roundtrip(v, tmp_path / f"{k}.csv") for k, v in series.items()}
    timings = {k: roundtrip(v, tmp_path / f"{k}_timing.csv") for k, v in timings.items()}
    return series, timings


def test_seconds_at_step_interpolates_inside_a_logged_interval_and_refuses_steps_past_the_run():
    timing = timing_frame("m", [50, 100], [75.0, 125.0])
    assert seconds_at_step(timing, 0) == 0.0
    assert seconds_at_step(timing, 20) == pytest.approx(30.0)
    assert seconds_at_step(timing, 60) == pytest.approx(85.0)
    assert seconds_at_step(timing, 100) == pytest.approx(125.0)
    with pytest.raises(ValueError, match="outside the logged run"):
        seconds_at_step(timing, 101)


def test_mdm_wct_is_the_longest_expert_and_tc_the_sum(tmp_path):
    series, timings = efficiency_inputs(tmp_path)
    costed = normalised_costs(series, RUN_MODELS, timings)
    mdm = costed["mdm"]
    # A at 40..200 steps: 40..200 s; B at 20..100 steps: 30, 60, 85, 105, 125 s. Baseline: 500 s.
    assert list(mdm["wct_timed"]) == pytest.approx([40, 80, 120, 160, 200])
    assert list(mdm["tc_timed"]) == pytest.approx([70, 140, 205, 265, 325])
    assert list(mdm["nwct"]) == pytest.approx([8, 16, 24, 32, 40])
    assert list(mdm["ntc"]) == pytest.approx([14, 28, 41, 53, 65])
    assert list(costed["baseline"]["nwct"]) == pytest.approx([20, 40, 60, 80, 100])
    assert list(costed["baseline"]["ntc"]) == list(costed["baseline"]["nwct"])


def test_measured_span_runs_from_the_first_start_to_the_last_end():
    def log(ends, interval_seconds):
        return pd.DataFrame({"wall_clock": ends, "interval_seconds": interval_seconds})
    side_by_side = [log([110.0, 120.0], [10.0, 10.0]), log([105.0, 130.0], [4.0, 25.0])]
    assert measured_span_seconds(side_by_side) == pytest.approx(30.0)  # 100 .. 130 s
    one_after_another = [log([110.0, 120.0], [10.0, 10.0]), log([140.0, 150.0], [20.0, 10.0])]
    assert measured_span_seconds(one_after_another) == pytest.approx(50.0)
    assert math.isnan(measured_span_seconds([pd.DataFrame({"interval_seconds": [1.0]})]))  # older logs


def test_table2_reports_the_three_points_as_percentages_of_the_baselines_full_run(tmp_path):
    series, timings = efficiency_inputs(tmp_path)
    table = table2(series, RUN_MODELS, timings, LOOSE, measured_wall_seconds={"mdm": 300.0}).set_index("method")
    base, mdm = table.loc["ADM"], table.loc["ADM+MDM"]
    assert (base["NWCT converged (%)"], base["NWCT best score (%)"]) == pytest.approx((60, 80))
    assert (base["NTC converged (%)"], base["NTC best score (%)"]) == pytest.approx((60, 80))
    assert math.isnan(base["NWCT baseline equivalent (%)"]) and math.isnan(base["NTC baseline equivalent (%)"])
    assert base["NWCT end of run, ideal (%)"] == 100 and math.isnan(base["NWCT end of run, measured side by side (%)"])
    # MDM: converged at point 3, best at point 4, first FID below 15.8 at point 2.
    points = ("converged", "best score", "baseline equivalent")
    assert [mdm[f"NWCT {p} (%)"] for p in points] == pytest.approx([24, 32, 16])
    assert [mdm[f"NTC {p} (%)"] for p in points] == pytest.approx([41, 53, 28])
    assert [mdm[f"{p} point"] for p in points] == [3, 4, 2]
    assert mdm["NWCT end of run, ideal (%)"] == pytest.approx(40)
    assert mdm["NWCT end of run, measured side by side (%)"] == pytest.approx(60)  # 300 s of 500 s
    assert mdm["NTC end of run (%)"] == pytest.approx(65)


def test_table2_leaves_points_that_are_never_reached_empty(tmp_path):
    series, timings = efficiency_inputs(tmp_path)
    series["mdm"] = series["mdm"].assign(fid=[40.0, 35.0, 30.0, 25.0, 20.0])  # never converges nor beats 15.8
    mdm = table2(series, RUN_MODELS, timings, LOOSE).set_index("method").loc["ADM+MDM"]
    assert math.isnan(mdm["NWCT converged (%)"]) and math.isnan(mdm["NTC baseline equivalent (%)"])
    assert pd.isna(mdm["converged point"]) and mdm["best score point"] == 5
    assert mdm["NWCT best score (%)"] == pytest.approx(40)


def test_a_checkpoint_count_that_does_not_match_the_runs_models_is_refused(tmp_path):
    series, timings = efficiency_inputs(tmp_path)
    with pytest.raises(ValueError, match="checkpoints per point"):
        table2(series, {**RUN_MODELS, "mdm": RUN_MODELS["mdm"][:1]}, timings, LOOSE)


# ---------------------------------------------------------------------------------- losses (Fig. 2)


def test_block_average_means_five_adjacent_points_with_their_range():
    steps, values = np.arange(10, 130, 10), [3.0, 1.0, 5.0, 2.0, 4.0, 10.0, 6.0, 8.0, 7.0, 9.0, 11.0, 12.0]
    out = block_average(steps, values, window=5)
    assert list(out["step"]) == [30.0, 80.0, 115.0]  # the blocks' mean steps; the last block holds two
    assert list(out["mean"]) == [3.0, 8.0, 11.5]
    assert list(out["min"]) == [1.0, 6.0, 11.0]
    assert list(out["max"]) == [5.0, 10.0, 12.0]


def loss_frame(model, bins, steps, fn, count=10):
    return pd.DataFrame([{"step": s, "t_lo": lo, "t_hi": hi, "loss": fn(b, s), "count": count, "model": model}
                         for s in steps for b, (lo, hi) in enumerate(bins)])


BINS = [(0, 500), (500, 1000)]


def loss_inputs():
    baseline = loss_frame("t0-1000_i100", BINS, range(10, 110, 10), lambda b, s: 1.0 / (b + 1) + s / 1000)
    experts = [loss_frame("t0-500_i50", BINS[:1], range(5, 55, 5), lambda b, s: 2.0 + s / 100),
               loss_frame("t500-1000_i50", BINS[1:], range(5, 55, 5), lambda b, s: 0.1)]
    return baseline, experts


def test_each_bin_pairs_the_baseline_with_the_expert_that_owns_it():
    curves = loss_curves(*loss_inputs(), window=5)
    expert_bin1 = curves[(curves["source"] == "experts") & (curves["bin"] == 1)]
    assert set(expert_bin1["model"]) == {"t0-500_i50"}
    assert list(expert_bin1["step"]) == [15.0, 40.0]
    assert list(expert_bin1["mean"]) == pytest.approx([2.15, 2.40])  # 2 + mean(5..25)/100, 2 + mean(30..50)/100
    assert list(expert_bin1["min"]) == pytest.approx([2.05, 2.30])
    base_bin2 = curves[(curves["source"] == "baseline") & (curves["bin"] == 2)]
    assert list(base_bin2["mean"]) == pytest.approx([0.53, 0.58]) and list(base_bin2["t_lo"]) == [500, 500]


def test_a_bin_shared_by_two_experts_is_drawn_from_the_one_that_logged_most_of_it():
    baseline, experts = loss_inputs()
    # A neighbour with a few stray timesteps in bin 2 (rounded boundaries) does not draw its curve.
    experts.append(loss_frame("t250-510_i50", BINS[1:], range(5, 55, 5), lambda b, s: 0.2, count=1))
    curves = loss_curves(baseline, experts)
    bin2 = curves[(curves["source"] == "experts") & (curves["bin"] == 2)]
    assert set(bin2["model"]) == {"t500-1000_i50"} and list(bin2["mean"]) == pytest.approx([0.1, 0.1])
    with pytest.raises(ValueError, match="logged by no experts model"):
        loss_curves(baseline, experts[:1])


# ---------------------------------------------------------------------------------------- figures


def assert_png_and_pdf(png):
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


def test_figures_are_written_as_png_and_pdf(tmp_path):
    series, timings = efficiency_inputs(tmp_path)
    fig1(series, RUN_MODELS, timings, tmp_path / "fig1.png", LOOSE, title="synthetic")
    fig2(*loss_inputs(), tmp_path / "fig2.png")
    curves, convergence = per_expert_curves(expert_series(tmp_path), MODELS)
    fig3a(curves, convergence, tmp_path / "fig3a.png")
    for name in ("fig1", "fig2", "fig3a"):
        assert_png_and_pdf(tmp_path / f"{name}.png")
