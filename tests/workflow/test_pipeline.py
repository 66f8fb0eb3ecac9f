"""The real pipeline through the Snakemake CLI, in a temporary copy of the workflow."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, SMOKE_OUT, copy_smoke_run, copy_workflow, snakemake

from mdmlib import paths


def test_smoke_run_writes_tables_with_finite_numbers_from_this_run(smoke_run):
    workdir, _ = smoke_run
    out = workdir / SMOKE_OUT
    quality = pd.read_csv(paths.table(out, "quality", "csv"))
    assert list(quality["method"]) == ["ADM", "ADM+MDM"]
    for col in ("FID", "sFID", "precision", "recall"):
        assert np.isfinite(quality[col]).all(), col
    assert quality[["precision", "recall"]].apply(lambda s: s.between(0, 1)).all().all()
    # The table's numbers are those of this run's evaluation series, not constants.
    for run, method in (("baseline", "ADM"), ("mdm", "ADM+MDM")):
        series = pd.read_csv(paths.series(out, run))
        assert quality.loc[quality["method"] == method, "FID"].item() == pytest.approx(series["fid"].min())
    efficiency = pd.read_csv(paths.table(out, "efficiency", "csv"))
    assert efficiency.loc[0, "NWCT end of run, ideal (%)"] == pytest.approx(100.0)
    mdm = efficiency.iloc[1]
    assert np.isfinite(mdm["NWCT best score (%)"]) and np.isfinite(mdm["NTC best score (%)"])
    # Parallel experts: wall-clock time is the slowest expert, never more than the total cost.
    assert mdm["NWCT end of run, ideal (%)"] < mdm["NTC end of run (%)"]
    for name in ("quality", "efficiency"):
        text = (out / f"tables/{name}.md").read_text()
        assert "64 generated vs 64 validation images" in text and "features:" in text


def test_make_runs_tables_carry_the_spread_over_sample_sets_and_paired_differences(smoke_run):
    workdir, _ = smoke_run
    out = workdir / SMOKE_OUT
    sets = pd.read_csv(paths.series_sets(out, "mdm"))
    assert sets.groupby("point")["seed_set"].apply(list).tolist() == [[0, 1], [0, 1]]  # smoke: 2 sets a point
    series = pd.read_csv(paths.series(out, "mdm"))
    assert series["fid"].tolist() == pytest.approx(sets.groupby("point")["fid"].mean().tolist())
    quality = pd.read_csv(paths.table(out, "quality", "csv")).set_index("method")
    assert (quality["sample sets"] == 2).all() and np.isfinite(quality["FID sd"]).all()
    assert np.isfinite(quality.loc["ADM+MDM", ["FID - baseline", "FID - baseline se", "sFID - baseline"]]).all()
    assert "paper's claim (MDM lower than its baseline)" in (out / "tables/quality.md").read_text()
    study = pd.read_csv(paths.table(out, "interval_study", "csv"))
    assert (study["sample sets"] == 2).all() and np.isfinite(study["FID sd"]).all()
    swap = pd.read_csv(paths.table(out, "expert_swap", "csv"))
    assert swap["expert"].tolist() == [1, 2, 3]
    assert np.isfinite(swap[["FID change", "FID change se", "held-out loss, expert", "held-out loss, baseline"]]).all().all()
    for ext in ("png", "pdf"):
        assert (out / "figures" / f"expert_swap.{ext}").stat().st_size > 1000


def test_smoke_run_writes_figures_as_png_and_pdf(smoke_run):
    workdir, _ = smoke_run
    out = workdir / SMOKE_OUT / "figures"
    for stem in ("fid_vs_cost", "samples_baseline", "samples_mdm"):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"


def test_every_job_leaves_a_log_with_its_malloc_settings_and_compute_jobs_a_benchmark(smoke_run):
    workdir, _ = smoke_run
    out = workdir / SMOKE_OUT
    logs = list((out / "logs").rglob("*.log"))
    assert len(logs) >= 13 and all(p.stat().st_size > 0 for p in logs)
    train_log = (out / "logs/train_model/t0-1000_i40.log").read_text()
    assert "step 10/40" in train_log and "it/s" in train_log
    # The job inherited the malloc settings the Snakefile sets (mdmlib.runtime.allocator).
    assert train_log.splitlines()[0].endswith("; MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824")
    bench = pd.read_csv(paths.benchmark(out, "train_model", "t0-1000_i40"), sep="\t")
    assert bench["s"].iloc[0] > 0
    provenance = (out / "data/provenance.json").read_text()
    assert "load_digits" in provenance


def test_a_rerun_has_nothing_to_do_and_the_report_builds(smoke_run):
    workdir, _ = smoke_run
    proc = snakemake(workdir, "--configfile", "configs/smoke.yaml", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    snakemake(workdir, "--configfile", "configs/smoke.yaml", "--report", "report.html")
    html = (workdir / "report.html").read_text(errors="replace")
    assert "fid_vs_cost.png" in html and "quality.csv" in html


def test_dry_run_of_the_default_config_lists_the_dag_up_to_the_interval_checkpoints(tmp_path):
    """Experts are known only once their interval file exists: a dry run lists every other job."""
    workdir = copy_workflow(tmp_path)
    proc = snakemake(workdir, "-n")
    text = proc.stdout + proc.stderr
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    points, methods = cfg["training"]["eval_points"], len(cfg["intervals"]["study"]["methods"])
    # Single models: the baseline, and its 10% copy that the attention analysis reads.
    for rule, count in (("prepare_data", 1), ("train_feature_net", 1), ("reference_statistics", 1),
                        ("train_baseline", 2), ("select_intervals", methods),
                        # study points wait for the checkpoints: their samples may be a main run's
                        ("sample_point", 2 * points), ("sample_extra_sets", 2 * points),
                        # ... and so do the expert-swap runs' (one per expert)
                        ("evaluate_series", 2 + methods + cfg["experts"]["n"]), ("expert_swap", 1),
                        ("paper_tables", 1), ("sample_grid", 2), ("interval_study", 1)):
        assert any(line.split() == [rule, str(count)] for line in text.splitlines()), (rule, text[-2000:])
    assert "checkpoint jobs" in text


def test_lint_is_clean(tmp_path):
    proc = snakemake(copy_workflow(tmp_path), "--lint")
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


@pytest.mark.parametrize("override, key", [
    ("training: {batch_size: 0}", "training.batch_size"),
    ("model: {dropoutt: 0.1}", "model.dropoutt"),
    ("experts: {boundaries: [0.9, 0.2]}", "experts.boundaries"),
    ("experts: {intervals: by_eye}", "experts.intervals"),
    ("experts: {n: 4}", "experts.n"),
    ("intervals: {study: {methods: [snr, snr]}}", "intervals.study.methods"),
])
def test_a_bad_config_value_fails_at_load_naming_the_key(tmp_path, override, key):
    workdir = copy_workflow(tmp_path)
    (workdir / "bad.yaml").write_text(override + "\n")
    proc = snakemake(workdir, "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert f"config key '{key}'" in proc.stdout + proc.stderr
    assert not (workdir / "results").exists()  # nothing ran


def test_a_killed_training_job_resumes_and_ends_with_the_uninterrupted_weights(tmp_path):
    """kill -9 mid-run, start Snakemake again: the job resumes from its state folder."""
    import os
    import signal
    import time

    import torch

    overrides = ("training: {baseline_iterations: 300, checkpoint_every: 20, log_every: 10, eval_points: 2}\n"
                 "experiment: killed\n")
    out, model = paths.results_dir("digits", "killed"), "t0-1000_i300"
    target = paths.timing_csv(out, model)
    runs = {}
    for name in ("whole", "killed"):  # one core each: the reference runs beside the killed run
        (tmp_path / name).mkdir()
        runs[name] = copy_workflow(tmp_path / name)
        (runs[name] / "kill.yaml").write_text(overrides)
    cmd = [sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", "configs/smoke.yaml",
           "kill.yaml"]
    whole_log = open(tmp_path / "whole.log", "w")
    whole = subprocess.Popen(cmd, cwd=runs["whole"], stdout=whole_log, stderr=subprocess.STDOUT)
    workdir = runs["killed"]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    latest = workdir / paths.state_dir(out, model) / "latest.pt"
    deadline = time.time() + 300
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # let it run past the first checkpoint
    assert proc.poll() is None, "the job finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # A killed Snakemake leaves its lock behind; the user's first step after a crash.
    subprocess.run(cmd + ["--unlock"], cwd=workdir, check=True, capture_output=True, timeout=120)
    subprocess.run(cmd, cwd=workdir, check=True, capture_output=True, timeout=600)
    assert whole.wait(timeout=600) == 0, (tmp_path / "whole.log").read_text()[-3000:]
    whole_log.close()
    log = (runs["killed"] / paths.log(out, "train_model", model)).read_text()
    assert "resumed at step" in log
    weights = [torch.load(w / paths.snapshot(out, model, 2), weights_only=True)
               for w in (runs["killed"], runs["whole"])]
    assert weights[0]["step"] == weights[1]["step"] == 300
    assert weights[0]["restarts"] == 1 and weights[1]["restarts"] == 0
    for key in ("model", "ema"):
        assert all(torch.equal(weights[0][key][k], weights[1][key][k]) for k in weights[0][key])


def test_inception_metrics_skip_the_feature_net_and_take_a_gpu_slot(tmp_path):
    workdir = copy_workflow(tmp_path)
    (workdir / "weights.pth").write_bytes(b"stand-in: a dry run never opens it")
    (workdir / "inception.yaml").write_text("metrics: {features: inception, inception_weights: weights.pth}\n")
    text = snakemake(workdir, "--configfile", "configs/smoke.yaml", "inception.yaml", "-n").stdout
    assert "train_feature_net" not in text and "reference_statistics" in text
    missing = snakemake(workdir, "--configfile", "configs/smoke.yaml", "inception.yaml", "--config",
                        "metrics={'features': 'inception', 'inception_weights': 'absent.pth'}", "-n", check=False)
    assert missing.returncode != 0 and "absent.pth" in missing.stdout + missing.stderr


def test_a_data_parallel_training_job_runs_under_torchrun(tmp_path):
    """training.data_parallel: 2 makes the training rule launch two gloo processes here (GPUs
    on a workstation: the job takes two slots) and publish their run like any other."""
    workdir = copy_workflow(tmp_path)
    (workdir / "ddp.yaml").write_text("training: {baseline_iterations: 20, threads: 2, data_parallel: 2}\n"
                                      "experiment: ddp\n")
    out, model = paths.results_dir("digits", "ddp"), "t0-1000_i20"
    timing = paths.timing_csv(out, model)
    snakemake(workdir, timing, "--configfile", "configs/smoke.yaml", "ddp.yaml")
    log = (workdir / paths.log(out, "train_model", model)).read_text()
    assert "2 process(es)" in log and "data-parallel over 2 processes on cpu" in log
    assert pd.read_csv(workdir / timing)["step"].iloc[-1] == 20


def test_four_gpu_slots_give_four_side_by_side_training_jobs_four_devices(tmp_path):
    """`--resources gpu=4` with four visible devices: the jobs Snakemake runs side by side each
    pin a different one (simulated on the CPU: CUDA_VISIBLE_DEVICES set, no CUDA present)."""
    import os
    import re

    workdir = copy_workflow(tmp_path)
    # Four of the eight-expert study's models, long enough (100 steps) to run side by side.
    (workdir / "slots.yaml").write_text("training: {baseline_iterations: 800}\n")
    models = [f"t{125 * k}-{125 * (k + 1)}_i100" for k in range(4)]
    targets = [paths.timing_csv(SMOKE_OUT, m) for m in models]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="0,1,2,3", TMPDIR=str(tmp_path))  # private lock folder
    cmd = [sys.executable, "-m", "snakemake", *targets, "--cores", "4", "--resources", "gpu=4",
           "--configfile", "configs/smoke.yaml", "slots.yaml"]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spans = {}
    for model in models:
        log = (workdir / paths.log(SMOKE_OUT, "train_model", model)).read_text()
        device = re.search(r"pinned to GPU (\S+)", log).group(1)
        timing = pd.read_csv(workdir / paths.timing_csv(SMOKE_OUT, model))
        spans[model] = (device, timing["wall_clock"].iloc[0] - timing["interval_seconds"].iloc[0],
                        timing["wall_clock"].iloc[-1])
    assert {d for d, _, _ in spans.values()} == {"0", "1", "2", "3"}, spans
    for a, (da, sa, ea) in spans.items():  # training spans on one device never overlap
        for b, (db, sb, eb) in spans.items():
            assert a == b or da != db or ea <= sb or eb <= sa, (a, b, spans)


def test_changing_a_setting_reruns_the_jobs_that_read_it_and_no_others(smoke_run, tmp_path):
    """Config sections reach the rules as plain params (Snakemake ignores dataclass params)."""
    workdir = tmp_path / "workflow"
    copy_smoke_run(smoke_run[0], workdir)
    (workdir / "rule.yaml").write_text("convergence: {max_change: 0.5 sd}\n")
    plan = snakemake(workdir, "--configfile", "configs/smoke.yaml", "rule.yaml", "-n").stdout
    assert "paper_tables" in plan and "train_baseline" not in plan and "sample_point" not in plan
    (workdir / "model.yaml").write_text("model: {dropout: 0.2}\n")
    plan = snakemake(workdir, "--configfile", "configs/smoke.yaml", "model.yaml", "-n").stdout
    assert "train_baseline" in plan and "prepare_data" not in plan
