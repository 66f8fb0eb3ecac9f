"""Pipeline overhead of a finished run: its wall time x cores against its jobs' measured compute.

overhead = 1 - sum(job seconds x threads) / (wall seconds x cores). The job seconds are the
``s`` column of the Snakemake ``benchmark:`` files; the wall time, the cores and every job's
start and finish come from the Snakemake log of the run (``.snakemake/log/*.snakemake.log``).
The log also splits the overhead in two: cores left idle because no job was ready (the
DAG's shape, the longest job's tail) and, inside each job's span as Snakemake saw it, time
that the job's benchmark did not measure (scheduling, DAG updates, job set-up). Log
timestamps have 1-second resolution, so the split is coarse for second-long jobs.

A ``benchmark:`` file times the job's whole process, so each job's Python start-up and
imports count as its compute. They are overhead all the same: they are measured here (a
fresh process importing what a job imports, PyTorch included; training jobs also import the
training loop) and added, once per job, to the share.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from benchmarks.timing import figure, one_thread_env

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")
# What a job's process imports before its work: Snakemake's script preamble and PyTorch
# through mdmlib. Training jobs add the training loop (its optimizer, mdmlib.core.adam, spares
# them the torch._dynamo import of torch.optim's first step).
JOB_IMPORTS = ("snakemake.script", "torch", "mdmlib.runtime.devices", "mdmlib.sampling.points")
TRAINING_IMPORTS = (*JOB_IMPORTS, "mdmlib.training.loop")
TRAINING_RULES = ("train_model", "train_baseline")
ELAPSED = re.compile(r"^Elapsed time: (?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


def _stamp(text: str) -> datetime:
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")


def parse_snakemake_log(path: str | Path) -> dict:
    """Cores, wall seconds and jobs ({jobid: rule, threads, benchmark, start, end}) of one Snakemake log."""
    lines = Path(path).read_text(errors="replace").splitlines()
    cores, wall, jobs, stamps = None, None, {}, []
    last_stamp, current = None, None
    for line in lines:
        if m := STAMP.match(line):
            last_stamp = _stamp(m.group(1))
            stamps.append(last_stamp)
        elif m := JOB_HEADER.match(line):
            current = {"rule": m.group(1), "threads": 1, "benchmark": None, "start": last_stamp, "end": None}
        elif current is not None and (m := re.match(r"^\s+(jobid|threads|benchmark): (.+)$", line)):
            key, value = m.groups()
            if key == "jobid":
                jobs[int(value)] = current
            else:
                current[key] = int(value) if key == "threads" else value.strip()
        elif m := FINISHED.match(line):
            if int(m.group(1)) in jobs:
                jobs[int(m.group(1))]["end"] = last_stamp
        elif line.startswith("Provided cores:"):
            cores = int(line.split(":")[1])
        elif m := ELAPSED.match(line):
            days, h, mnt, sec = m.groups()
            wall = timedelta(days=int(days or 0), hours=int(h), minutes=int(mnt), seconds=float(sec)).total_seconds()
    if wall is None and len(stamps) >= 2 and any("(100%) done" in line for line in lines):
        wall = (stamps[-1] - stamps[0]).total_seconds()  # older logs: first to last timestamp
    return {"path": str(path), "cores": cores, "wall_seconds": wall, "jobs": jobs}


def read_benchmark_seconds(path: str | Path) -> float:
    """Seconds of one ``benchmark:`` file: the sum of its ``s`` column (one row per repeat)."""
    return float(pd.read_csv(path, sep="\t")["s"].sum())


def process_startup_seconds(repeats: int) -> dict[str, list[float]]:
    """Wall seconds of a fresh one-thread Python process importing what a job imports ("job")
    and what a training job imports ("training"), measured in alternation ``repeats`` times."""
    env = one_thread_env()
    times: dict[str, list[float]] = {"job": [], "training": []}
    for _ in range(repeats):
        for kind, modules in (("job", JOB_IMPORTS), ("training", TRAINING_IMPORTS)):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import " + ", ".join(modules)], check=True, env=env)
            times[kind].append(time.perf_counter() - start)
    return times


def find_run_log(run_dir: Path, log_dir: Path) -> dict | None:
    """The newest complete log whose jobs wrote into ``run_dir`` (its path relative to the workdir appears)."""
    marker = "/".join(run_dir.parts[-3:]) + "/"  # results/<dataset>/<experiment>/
    for path in sorted(log_dir.glob("*.snakemake.log"), reverse=True):  # names start with the start time
        if marker not in path.read_text(errors="replace"):
            continue
        log = parse_snakemake_log(path)
        finished = [j for j in log["jobs"].values() if j["end"] is not None and j["rule"] != "all"]
        if log["wall_seconds"] is not None and finished:
            return log
    return None


def pipeline_overhead(run_dir: str | Path, log_dir: str | Path | None = None, wall_seconds: float | None = None,
                      cores: int | None = None, startup_repeats: int = 3,
                      startup_seconds: dict[str, list[float]] | None = None) -> dict:
    """Orchestration and start-up share of a finished run (target <= 10%), or why it cannot be computed.

    ``log_dir`` defaults to ``.snakemake/log`` of the workdir that holds ``results/``;
    ``wall_seconds`` and ``cores`` (e.g. a recorded wall time) override the log's.
    ``startup_seconds`` ({"job": [...], "training": [...]}, equal lengths) replaces the
    measurement of :func:`process_startup_seconds` with ``startup_repeats``.
    """
    run_dir = Path(run_dir)
    log_dir = Path(log_dir) if log_dir is not None else run_dir.parent.parent.parent / ".snakemake" / "log"
    files = sorted((run_dir / "benchmarks").glob("**/*.tsv"))
    if not files:
        return {"status": "no run", "figures": [], "run_dir": str(run_dir),
                "message": f"no finished pipeline run in {run_dir} (no benchmarks/**/*.tsv): run `make run` first"}
    log = find_run_log(run_dir, log_dir) if log_dir.is_dir() else None
    wall = wall_seconds if wall_seconds is not None else (log or {}).get("wall_seconds")
    cores = cores if cores is not None else (log or {}).get("cores")
    if wall is None or cores is None:
        return {"status": "no wall time", "figures": [], "run_dir": str(run_dir), "benchmark_files": len(files),
                "message": f"{len(files)} benchmark files in {run_dir} but no complete Snakemake log of that run "
                           f"in {log_dir}: pass the recorded wall time and cores"}
    startup = startup_seconds if startup_seconds is not None else process_startup_seconds(startup_repeats)
    return _overhead(run_dir, files, log, wall, cores, startup)


def benchmark_rule(benchmark: str) -> str:
    """The rule of a benchmark file: results/<dataset>/<experiment>/benchmarks/<rule>[/<job>].tsv."""
    return Path(benchmark).parts[4].removesuffix(".tsv")


def _overhead(run_dir: Path, files: list[Path], log: dict | None, wall: float, cores: int,
              startup: dict[str, list[float]]) -> dict:
    seconds = {f.relative_to(run_dir.parent.parent.parent).as_posix(): read_benchmark_seconds(f) for f in files}
    jobs = [j for j in (log or {"jobs": {}})["jobs"].values() if j["benchmark"] in seconds and j["end"] is not None]
    if jobs:  # only this log's jobs; threads from the log
        core_seconds = sum(seconds[j["benchmark"]] * j["threads"] for j in jobs)
        counted = [j["benchmark"] for j in jobs]
    else:  # no log, or one without benchmark lines: every file, one thread each
        core_seconds = sum(seconds.values())
        counted = list(seconds)
    training_jobs = sum(benchmark_rule(b) in TRAINING_RULES for b in counted)
    startup_core_seconds = [(len(counted) - training_jobs) * job + training_jobs * training
                            for job, training in zip(startup["job"], startup["training"])]
    capacity = wall * cores
    outside_jobs = 1 - core_seconds / capacity
    result = {"status": "ok", "run_dir": str(run_dir), "log": (log or {}).get("path"), "wall_seconds": wall,
              "cores": cores, "job_core_seconds": core_seconds, "benchmark_files": len(files),
              "jobs_in_log_with_benchmark": len(jobs), "jobs_counted": len(counted), "training_jobs": training_jobs,
              "startup_seconds": startup,
              "figures": [figure("orchestration, idle cores and process start-up, share of wall x cores",
                                 [outside_jobs + s / capacity for s in startup_core_seconds], target=("<=", 0.10)),
                          figure("  of which process start-up and imports (inside the jobs' benchmarks)",
                                 [s / capacity for s in startup_core_seconds]),
                          figure("  of which outside the jobs' benchmarks", [outside_jobs]),
                          figure("  start-up and imports of one job (not training)", startup["job"], "s"),
                          figure("  start-up and imports of one training job", startup["training"], "s")]}
    if jobs:
        spans = sum((j["end"] - j["start"]).total_seconds() * j["threads"] for j in jobs)
        others = [j for j in log["jobs"].values() if j not in jobs and j["end"] is not None and j["start"] is not None]
        other_spans = sum((j["end"] - j["start"]).total_seconds() * j["threads"] for j in others)
        result["figures"] += [
            figure("    outside: cores idle (no job ready)", [1 - (spans + other_spans) / capacity]),
            figure("    outside: inside job spans, unmeasured", [(spans - core_seconds) / capacity]),
            figure("    outside: jobs without benchmark files", [other_spans / capacity]),
        ]
        result["files_not_in_log"] = len(files) - len(jobs)  # jobs of earlier invocations (resumed run)
    return result
