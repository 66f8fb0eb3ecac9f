"""profiles/slurm/: it parses, and the smoke baseline's FID series made through it on a
real SLURM cluster, with the baseline's training preempted and requeued halfway, equals
that of a local run.

The cluster test needs a running cluster: CI starts a one-node one with
.ci/slurm_cluster.sh and sets MDM_TEST_SLURM=1, which makes the test required. Without
the variable it is skipped. Locally (as root, on Debian):
    .ci/slurm_cluster.sh start && MDM_TEST_SLURM=1 .venv/bin/python -m pytest tests/test_slurm.py
"""
from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, SMOKE_OUT, copy_workflow

from mdmlib import paths

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
GPU_RULES = ("train_model", "train_baseline", "finetune_group", "prune_group", "sample_point", "seed_spread")  # resources: gpu=1 in rules/
SLURM_REQUIRED = os.environ.get("MDM_TEST_SLURM") == "1"
# The baseline's FID series: data, the feature net, GPU rules (training, sampling) and
# metrics, in 7 jobs. The paper's tables (15 jobs, with the interval checkpoint and the
# experts, which run the same rules) or the whole smoke DAG (~45 jobs) would spend CI
# minutes on job start-up alone (three Python starts per SLURM job), run twice: on
# SLURM and locally for the reference.
TARGET = paths.series(SMOKE_OUT, "baseline")
# Measured wall-clock time and what is computed from it differ between any two runs.
TIMING_COLUMN = re.compile(r"seconds|elapsed|wct|ntc|it/s", re.IGNORECASE)


def load_profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> str:
    cmd = [sys.executable, "-m", "snakemake", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}")
    return proc.stdout + proc.stderr


def test_the_profile_names_the_executor_requeue_and_resources_per_rule():
    profile = load_profile()
    assert profile["executor"] == "slurm"
    assert profile["slurm-requeue"] is True and profile["rerun-incomplete"] is True
    assert profile["retries"] >= 1  # a job past its time limit is resubmitted and resumes
    assert profile["default-resources"]["runtime"] > 0 and profile["default-resources"]["mem_mb"] > 0
    resources = profile["set-resources"]
    for rule in GPU_RULES:
        assert resources[rule]["gpu"] == 1 and isinstance(resources[rule]["gpu_model"], str), rule
        assert resources[rule]["runtime"] > 0 and resources[rule]["mem_mb"] > 0, rule
    # What a user edits is marked where it is set.
    text = PROFILE.read_text()
    for key in ("slurm_partition", "slurm_account", "gpu_model"):
        assert re.search(rf"^\s*#?\s*{key}:.*# EDIT", text, re.MULTILINE), key


def resources_per_job(dry_run_output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run lists."""
    jobs, rule = [], None
    for line in dry_run_output.splitlines():
        if m := re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):", line):
            rule = m.group(1)
        elif (m := re.match(r"^\s+resources: (.*)", line)) and rule:
            jobs.append((rule, dict(item.split("=", 1) for item in m.group(1).split(", "))))
            rule = None
    return jobs


def test_the_workflow_takes_the_profile_and_every_job_gets_runtime_and_memory(tmp_path):
    workdir = copy_workflow(tmp_path)
    rules = set(snakemake(workdir, "--list-rules").split())
    assert set(load_profile()["set-resources"]) <= rules, "set-resources names a rule the workflow lacks"
    # Without --cores, as on a cluster: a rule sized by workflow.cores would fail here (a dry run sets cores).
    snakemake(workdir, "diffpruning", "--dag", "--profile", "profiles/slurm", "--configfile", "configs/smoke.yaml")
    out = snakemake(workdir, "-n", "--profile", "profiles/slurm", "--configfile", "configs/smoke.yaml")
    jobs = resources_per_job(out)
    assert {rule for rule, _ in jobs} >= {"prepare_data", "train_baseline", "sample_point"}, out[-2000:]
    for rule, res in jobs:
        assert int(res["runtime"]) > 0 and int(res["mem_mb"]) > 0, (rule, res)
        if rule in GPU_RULES:
            assert res["gpu"] == "1" and res["gpu_model"], (rule, res)


# ---- the real cluster ------------------------------------------------------------------

@pytest.fixture(scope="module")
def slurm_node_memory_mb() -> int:
    if not SLURM_REQUIRED:
        pytest.skip("no SLURM cluster: start one with .ci/slurm_cluster.sh start and set MDM_TEST_SLURM=1")
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T %m"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.fail("MDM_TEST_SLURM=1 but sinfo is not installed (.ci/slurm_cluster.sh start installs it)")
    states = proc.stdout.split()
    assert proc.returncode == 0 and states and states[0].startswith(("idle", "mixed", "allocated")), \
        f"MDM_TEST_SLURM=1 but the cluster is not up: {proc.stdout} {proc.stderr}"
    return int(states[1].rstrip("+"))


def cpu_cluster_profile(workdir: Path, node_memory_mb: int) -> str:
    """profiles/slurm for a cluster without GPUs: what the README tells such users to do.

    Every rule gets gpu=0 and no gpu_model (rules/ ask for gpu=1, which sbatch would
    refuse here), memory is capped at the node's, and job status comes from squeue
    (the test cluster keeps no accounting). Polling starts after 1 s instead of 40.
    """
    profile = load_profile()
    rules = snakemake(workdir, "--list-rules").split()
    resources = {rule: copy.deepcopy(profile["set-resources"].get(rule, {})) for rule in rules}
    for res in (*resources.values(), profile["default-resources"]):
        res["gpu"] = 0
        res.pop("gpu_model", None)
        res["mem_mb"] = min(res.get("mem_mb", node_memory_mb), node_memory_mb)
    profile["set-resources"] = resources
    profile["slurm-status-command"] = "squeue"
    profile["slurm-init-seconds-before-status-checks"] = 1
    profile["latency-wait"] = 5
    (workdir / "profiles" / "slurm_cpu").mkdir()
    (workdir / "profiles" / "slurm_cpu" / "config.yaml").write_text(yaml.safe_dump(profile))
    return "profiles/slurm_cpu"


def compared_csvs(workdir: Path) -> dict[str, pd.DataFrame]:
    out = workdir / SMOKE_OUT
    return {str(p.relative_to(out)): pd.read_csv(p) for p in sorted((out / "metrics").rglob("*.csv"))}


def scontrol(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=30)


def job_state(jobid: str) -> str:
    proc = subprocess.run(["squeue", "-h", "-t", "all", "-j", jobid, "-o", "%T %r"], capture_output=True, text=True,
                          timeout=30)
    return proc.stdout.strip()


def preempt_training_job(workdir: Path, run: subprocess.Popen, timeout_s: float = 600) -> str:
    """Requeue a baseline training job of the run once it has saved its running state.

    What SLURM does to a preempted job (PreemptMode=REQUEUE): kill it and put it back
    in the queue. Returns the SLURM job id.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and run.poll() is None:
        listing = subprocess.run(["squeue", "-h", "-t", "running", "-o", "%i %k"], capture_output=True, text=True,
                                 timeout=30).stdout
        for jobid, comment in (line.split(" ", 1) for line in listing.splitlines()):
            # The plugin names each job's rule and wildcards in its comment.
            if comment.startswith("rule_train_baseline_wildcards_"):
                model = comment.split("_wildcards_", 1)[1]
                if (workdir / paths.state_dir(SMOKE_OUT, model) / "latest.pt").exists():
                    requeue = scontrol("requeue", jobid)
                    assert requeue.returncode == 0, requeue.stderr
                    release_requeued_job(jobid)
                    return jobid
        time.sleep(0.1)
    raise AssertionError("no running train_baseline job with a saved state was seen")


def release_requeued_job(jobid: str, timeout_s: float = 120) -> None:
    """SLURM holds a requeued job back for about two minutes; let it start at once."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = job_state(jobid)
        if state.startswith("PENDING"):
            scontrol("update", f"JobId={jobid}", "StartTime=now")
        elif not state.startswith(("COMPLETING", "REQUEUED")):
            return
        time.sleep(0.5)
    raise AssertionError(f"requeued job {jobid} did not start again: {job_state(jobid)}")


def test_the_smoke_pipeline_on_slurm_survives_a_preemption_and_matches_a_local_run(slurm_node_memory_mb, tmp_path):
    on_slurm, local = copy_workflow(tmp_path / "slurm"), copy_workflow(tmp_path / "local")
    profile = cpu_cluster_profile(on_slurm, slurm_node_memory_mb)
    smoke = ["-m", "snakemake", TARGET, "--configfile", "configs/smoke.yaml"]
    log_path = tmp_path / "slurm.log"
    # The local run fills the cores while the SLURM run waits on the queue and its polls.
    with open(log_path, "w") as slurm_log, open(tmp_path / "local.log", "w") as local_log:
        runs = [subprocess.Popen([sys.executable, *smoke, "--profile", profile], cwd=on_slurm, stdout=slurm_log,
                                 stderr=subprocess.STDOUT),
                subprocess.Popen([sys.executable, *smoke, "--cores", "2"], cwd=local, stdout=local_log,
                                 stderr=subprocess.STDOUT)]
        try:
            preempted = preempt_training_job(on_slurm, runs[0])
            returncodes = [run.wait(timeout=1500) for run in runs]
        finally:
            for run in runs:
                if run.poll() is None:
                    run.send_signal(signal.SIGINT)  # as Ctrl-C: Snakemake cancels its SLURM jobs
                    run.wait(timeout=120)
    log = log_path.read_text()
    assert returncodes == [0, 0], (log[-6000:], (tmp_path / "local.log").read_text()[-3000:])
    assert "has been submitted with SLURM jobid" in log, log[-3000:]  # through sbatch, not local
    job = scontrol("show", "job", preempted).stdout
    assert "Requeue=1" in job and "Restarts=1" in job, job  # the profile's slurm-requeue reached sbatch
    logs = (on_slurm / SMOKE_OUT / "logs").rglob("*.log")
    assert any("resumed at step" in p.read_text() for p in logs), "the requeued job started over"

    slurm_csvs, local_csvs = compared_csvs(on_slurm), compared_csvs(local)
    assert "metrics/baseline.csv" in local_csvs
    assert sorted(slurm_csvs) == sorted(local_csvs)
    for name, expected in local_csvs.items():
        got = slurm_csvs[name]
        assert list(got.columns) == list(expected.columns) and got.shape == expected.shape, name
        timing = [c for c in expected.columns if TIMING_COLUMN.search(c)]
        # Timings differ run to run; only whether a value exists must agree.
        pd.testing.assert_frame_equal(got[timing].isna(), expected[timing].isna(), obj=name)
        pd.testing.assert_frame_equal(got.drop(columns=timing), expected.drop(columns=timing),
                                      check_exact=True, obj=name)
