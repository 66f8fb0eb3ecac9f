"""The benchmarks run end to end on tiny sizes (they measure; the suite does not time them)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO

from benchmarks.metric_cost import peak_memory_increase
from benchmarks.parallel import greedy_makespan
from benchmarks.pipeline import parse_snakemake_log, pipeline_overhead
from benchmarks.pruned_sampling import LIMITS, pruned_sampling
from mdmlib.models.macs import forward_macs

NAMES = ("trainer_overhead", "routing_overhead", "parallel_experts", "pipeline_overhead", "metric_times",
         "precision_recall_memory", "model_efficiency", "multistage_costs", "pruned_sampling")


def job_block(jobid: int, rule: str, start: str, end: str, benchmark: str | None, threads: int = 1) -> str:
    lines = [f"[Mon Nov 23 10:{start} 2026]", f"localrule {rule}:", f"    output: results/digits/default/{rule}.out",
             f"    jobid: {jobid}"]
    lines += [f"    benchmark: {benchmark}"] if benchmark else []
    lines += [f"    threads: {threads}"] if threads > 1 else []
    lines += ["    resources: tmpdir=/tmp", f"[Mon Nov 23 10:{end} 2026]", f"Finished jobid: {jobid} (Rule: {rule})"]
    return "\n".join(lines)


def synthetic_run(root: Path) -> Path:
    """A run on 2 cores over 100 s: jobs of 40 + 30 s and one 2-thread job of 10 s have
    benchmark files; one 4-s job has none. Spans: 42, 31, 11 and 4 s."""
    run = root / "results" / "digits" / "default"
    bench = {"a": 40.0, "b": 30.0, "c": 10.0}
    for name, seconds in bench.items():
        path = run / "benchmarks" / "train_model" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:{int(seconds):02d}\t100.0\n")
    log = "\n".join([
        "Building DAG of jobs...", "Provided cores: 2",
        job_block(1, "a", "00:00", "00:42", "results/digits/default/benchmarks/train_model/a.tsv"),
        job_block(2, "b", "00:01", "00:32", "results/digits/default/benchmarks/train_model/b.tsv"),
        job_block(3, "c", "00:50", "01:01", "results/digits/default/benchmarks/train_model/c.tsv", threads=2),
        job_block(4, "tables", "01:10", "01:14", None),
        job_block(0, "all", "01:14", "01:14", None),
        "5 of 5 steps (100%) done", "Elapsed time: 0:01:40.000000",
    ])
    (root / ".snakemake" / "log").mkdir(parents=True)
    (root / ".snakemake" / "log" / "2026-11-23T100000.000000.snakemake.log").write_text(log)
    (root / ".snakemake" / "log" / "2026-11-23T120000.000000.snakemake.log").write_text("Nothing to be done.\n")
    return run


def test_benchmarks_run_quick_and_write_json_and_summary(tmp_path):
    run = synthetic_run(tmp_path / "workdir")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick",
                           "--config", str(REPO / "configs/smoke.yaml"), "--out", str(tmp_path / "out"),
                           "--pipeline-run", str(run)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in NAMES:
        result = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert result["figures"] or name == "model_efficiency" and result["status"] == "skipped", name
        for f in result["figures"]:
            assert f["min"] <= f["median"] <= f["max"] and f["repeats"] == len(f["values"]) >= 1, (name, f)
            assert f["met"] in (None, True, False)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert all(name in summary for name in NAMES)
    parallel = json.loads((tmp_path / "out" / "parallel_experts.json").read_text())
    assert parallel["repeats"] == 1 and sum(parallel["expert_iterations"]) == parallel["baseline_iterations"] == 6
    assert all(len(r["jobs"]["parallel"]) == 3 for r in parallel["runs"])
    pipeline = json.loads((tmp_path / "out" / "pipeline_overhead.json").read_text())
    # Measured: a fresh Python importing PyTorch takes a tenth of a second at least.
    assert all(len(v) == 1 and v[0] > 0.1 for v in pipeline["startup_seconds"].values())


def test_pruned_sampling_times_each_limit_against_the_base_model():
    from mdmlib.config import load_config

    cfg = load_config(REPO / "configs/smoke.yaml")
    images = torch.randint(0, 256, (16, 1, cfg.data.resolution, cfg.data.resolution), dtype=torch.uint8).numpy()
    result = pruned_sampling(cfg, images, batch=2, ddim_steps=1, repeats=1)
    assert result["limits"] == list(LIMITS) == [0.625, 0.75, 0.875] and result["criterion"] == "magnitude"
    assert result["ddim_steps"] == 1 and len(result["figures"]) == 6 * len(LIMITS)
    macs = [row["macs_ratio"] for row in result["limits_measured"]]
    assert all(m <= limit for m, limit in zip(macs, LIMITS)) and macs == sorted(macs) and macs[-1] < 1
    for row in result["limits_measured"]:
        (time_ratio,) = row["ddim"]["ratios"]
        assert row["speedup_over_predicted"] == pytest.approx([row["macs_ratio"] / time_ratio])
        assert row["predicted_speedup"] == pytest.approx(1 / row["macs_ratio"]) and 0 < row["parameters_ratio"] < 1
        assert row["pruned_ms_per_step"] == pytest.approx([1000 * row["ddim"]["numerator_s"][0]])
    tracking = [f for f in result["figures"] if "predicted" in f["figure"]]
    assert len(tracking) == 3 and all(f["target"] == ">= 0.8" and f["met"] in (True, False) for f in tracking)


def test_pipeline_overhead_of_a_synthetic_run(tmp_path):
    run = synthetic_run(tmp_path)
    # Two repeats of the start-up measurement: 1.0 / 1.5 s per job, 2.0 / 3.0 s per training job.
    result = pipeline_overhead(run, startup_seconds={"job": [1.0, 1.5], "training": [2.0, 3.0]})
    assert result["status"] == "ok" and result["cores"] == 2 and result["wall_seconds"] == 100
    assert result["job_core_seconds"] == 40 + 30 + 2 * 10  # the 2-thread job holds two cores
    assert result["jobs_counted"] == result["training_jobs"] == 3  # all three under benchmarks/train_model/
    share, startup, outside, _, _, idle, unmeasured, unbenchmarked = (f for f in result["figures"])
    assert startup["values"] == pytest.approx([3 * 2.0 / 200, 3 * 3.0 / 200])
    assert outside["median"] == pytest.approx(1 - 90 / 200)
    assert share["values"] == pytest.approx([1 - 90 / 200 + v for v in startup["values"]]) and share["met"] is False
    assert idle["median"] == pytest.approx(1 - (42 + 31 + 22 + 4) / 200)
    assert unmeasured["median"] == pytest.approx((42 + 31 + 22 - 90) / 200)
    assert unbenchmarked["median"] == pytest.approx(4 / 200)
    assert outside["median"] == pytest.approx(idle["median"] + unmeasured["median"] + unbenchmarked["median"])


def test_pipeline_overhead_takes_a_recorded_wall_time(tmp_path):
    run = synthetic_run(tmp_path)
    result = pipeline_overhead(run, log_dir=tmp_path / "nowhere", wall_seconds=50, cores=2,
                               startup_seconds={"job": [1.0], "training": [2.0]})
    assert result["figures"][0]["median"] == pytest.approx(1 - 80 / 100 + 3 * 2.0 / 100)  # no log: one thread per file


def test_pipeline_overhead_says_when_there_is_no_run(tmp_path):
    result = pipeline_overhead(tmp_path / "results" / "digits" / "default")
    assert result["status"] == "no run" and "make run" in result["message"] and result["figures"] == []
    (tmp_path / "results" / "digits" / "default" / "benchmarks").mkdir(parents=True)
    (tmp_path / "results" / "digits" / "default" / "benchmarks" / "x.tsv").write_text("s\n1.0\n")
    assert pipeline_overhead(tmp_path / "results" / "digits" / "default")["status"] == "no wall time"


def test_snakemake_log_elapsed_time_with_days(tmp_path):
    (tmp_path / "x.log").write_text("Provided cores: 4\nElapsed time: 1 day, 2:03:04.5\n")
    log = parse_snakemake_log(tmp_path / "x.log")
    assert log["cores"] == 4 and log["wall_seconds"] == 86400 + 2 * 3600 + 3 * 60 + 4.5


def test_greedy_makespan():
    assert greedy_makespan([10, 70, 20], 2) == 70
    assert greedy_makespan([10, 70, 20], 1) == 100
    assert greedy_makespan([5, 5, 5], 2) == 10


def test_macs_count_fused_attention_products():
    q = torch.randn(1, 4, 16, 8)  # batch, heads, length, head width

    def attention(x, t):
        return F.scaled_dot_product_attention(x, x, x)

    def explicit(x, t):
        return torch.softmax(x @ x.transpose(-1, -2), -1) @ x

    expected = 4 * 16 * 16 * 8 * 2  # QK^T and AV, one image
    assert forward_macs(attention, q, None) == forward_macs(explicit, q, None) == expected


def test_peak_memory_increase_sees_torch_allocations():
    def allocate():
        x = torch.ones(64 * 2**20 // 8, dtype=torch.float64)  # 64 MiB, outside tracemalloc's view
        return float(x.sum())

    peak = peak_memory_increase(allocate)
    if peak is None:
        pytest.skip("no /proc/self/clear_refs on this system")
    assert 60 * 2**20 <= peak < 200 * 2**20


def test_diffusers_counterpart_matches_the_project_unet():
    pytest.importorskip("diffusers")
    from benchmarks.models import diffusers_counterpart
    from mdmlib.config import load_config
    from mdmlib.models.macs import count_parameters
    from mdmlib.models.registry import new_model

    cfg = load_config(REPO / "config.yaml").model
    ours, theirs = new_model(cfg, 1, 8), diffusers_counterpart(cfg, 1, 8)
    x, t = torch.randn(1, 1, 8, 8), torch.tensor([10])
    assert abs(count_parameters(ours) / count_parameters(theirs) - 1) < 0.05
    assert forward_macs(ours, x, t) == pytest.approx(forward_macs(lambda a, b: theirs(a, b).sample, x, t), rel=0.05)
