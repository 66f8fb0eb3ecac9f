"""Parallel experts: the experts as parallel jobs, one after another, and the baseline.

Every job is its own Python process with one thread, as Snakemake runs ``train_model``
under ``--cores 2``, so its wall time holds interpreter start-up, imports, data loading
and checkpoint writes as well as training. Each worker also reports the seconds of its
training loop, which splits any gap between ideal and measured into start-up and the
slow-down of a step when two jobs share the machine; two control loops measured next to
each parallel run (cache-resident matmuls, memory copies) tell whether that slow-down is
the machine's free cores or memory bandwidth.

Worker: ``python -m benchmarks.parallel --config cfg.json --data train.npz --lo 0 --hi 100
--iterations 30 --out result.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.timing import figure, one_thread_env
from mdmlib.config import RunConfig, load_config
from mdmlib.core.intervals import Interval, expert_budgets, intervals_from_boundaries
from mdmlib.data.splits import load_split
from mdmlib.training.job import TrainJob, snapshot_steps
from mdmlib.training.loop import run_training


@dataclass(frozen=True)
class Job:
    name: str
    interval: Interval
    iterations: int


@dataclass(frozen=True)
class JobTiming:
    name: str
    iterations: int
    start: float  # seconds after the batch of jobs started
    end: float
    train_seconds: float  # inside the training loop, as run_training measures it

    @property
    def wall(self) -> float:
        return self.end - self.start


def greedy_makespan(durations: list[float], slots: int) -> float:
    """Finish time of the jobs, longest first, each on the slot that frees first."""
    finish = [0.0] * slots
    for d in sorted(durations, reverse=True):
        finish[finish.index(min(finish))] += d
    return max(finish)


def _loop_seconds(kind: str, iterations: int) -> float:
    if kind == "compute":  # 256 x 256 matmuls: 0.5 MiB of operands, inside a core's cache
        a = torch.randn(256, 256)
        work = lambda: torch.mm(a, a)  # noqa: E731
    else:  # 64 MiB copies: bound by memory bandwidth
        src, dst = torch.randn(16 * 2**20), torch.empty(16 * 2**20)
        work = lambda: dst.copy_(src)  # noqa: E731
    start = time.perf_counter()
    for _ in range(iterations):
        work()
    return time.perf_counter() - start


def sharing_slowdown(kind: str, iterations: int) -> float:
    """Time of a loop when two run at once / when it runs alone (torch releases the GIL inside ops).

    A control for the training jobs: near 1 for ``compute`` means the machine has two free
    cores; near 2 means the two jobs share one core's worth (other load, shared vCPUs). The
    ``memory`` loop shows what memory bandwidth alone would cost.
    """
    alone = _loop_seconds(kind, iterations)
    paired: list[float] = []
    threads = [threading.Thread(target=lambda: paired.append(_loop_seconds(kind, iterations))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statistics.mean(paired) / alone


def run_jobs(jobs: list[Job], slots: int, config_path: Path, data_path: Path, work_dir: Path) -> tuple[float, list[JobTiming]]:
    """Run the jobs as worker processes, at most ``slots`` at once, longest first; (wall, timings)."""
    # the workers run this module: the repository root on their path, wherever the caller is
    env = one_thread_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                      env.get("PYTHONPATH")]))
    pending = sorted(jobs, key=lambda j: j.iterations, reverse=True)
    running: dict[str, tuple[subprocess.Popen, float, Job]] = {}
    timings = []
    t0 = time.perf_counter()
    while pending or running:
        while pending and len(running) < slots:
            job = pending.pop(0)
            cmd = [sys.executable, "-m", "benchmarks.parallel", "--config", str(config_path), "--data", str(data_path),
                   "--lo", str(job.interval.lo), "--hi", str(job.interval.hi), "--iterations", str(job.iterations),
                   "--out", str(work_dir / f"{job.name}.json")]
            running[job.name] = (subprocess.Popen(cmd, env=env), time.perf_counter() - t0, job)
        time.sleep(0.005)  # polling costs nothing next to jobs of seconds
        for name, (proc, start, job) in list(running.items()):
            if proc.poll() is None:
                continue
            end = time.perf_counter() - t0
            del running[name]
            if proc.returncode:
                raise RuntimeError(f"benchmark job {name} failed with exit code {proc.returncode}")
            result = json.loads((work_dir / f"{name}.json").read_text())
            timings.append(JobTiming(name, job.iterations, start, end, result["train_seconds"]))
    return time.perf_counter() - t0, timings


def parallel_experts(cfg: RunConfig, data_path: Path, total_iterations: int, repeats: int, slots: int = 2,
                     control_iterations: dict[str, int] | None = None) -> dict:
    """Wall clock of the experts as parallel jobs vs one after another vs the baseline, same total iterations.

    ``control_iterations`` sizes the compute and memory loops of :func:`sharing_slowdown`,
    measured in every repeat next to the parallel run.
    """
    control_iterations = control_iterations or {"compute": 1000, "memory": 100}
    T = cfg.diffusion.timesteps
    intervals = intervals_from_boundaries(cfg.experts.boundaries, T)
    budgets = expert_budgets(intervals, T, total_iterations)
    experts = [Job(f"expert_{k + 1}", i, b) for k, (i, b) in enumerate(zip(intervals, budgets))]
    baseline = [Job("baseline", Interval(0, T), total_iterations)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config_path = work / "config.json"
        config_path.write_text(json.dumps(cfg.to_dict()))
        for _ in range(repeats):
            seq_wall, seq = run_jobs(experts, 1, config_path, data_path, work)
            controls = {f"{kind}_sharing_slowdown": sharing_slowdown(kind, n) for kind, n in control_iterations.items()}
            par_wall, par = run_jobs(experts, slots, config_path, data_path, work)
            base_wall, base = run_jobs(baseline, 1, config_path, data_path, work)
            rows.append(_repeat_row(seq_wall, seq, par_wall, par, base_wall, base[0], slots) | controls)
    return {"figures": _figures(rows, slots), "expert_iterations": budgets, "baseline_iterations": total_iterations,
            "intervals": [i.to_list() for i in intervals], "slots": slots, "threads_per_job": 1, "repeats": repeats,
            "runs": rows}


def _repeat_row(seq_wall, seq, par_wall, par, base_wall, base: JobTiming, slots: int) -> dict:
    solo = {j.name: j for j in seq}
    ideal_makespan = greedy_makespan([j.wall for j in seq], slots)
    step_slowdown = [(j.train_seconds / j.iterations) / (solo[j.name].train_seconds / j.iterations) for j in par]
    return {
        "sequential_s": seq_wall, "parallel_s": par_wall, "baseline_s": base_wall,
        "ideal_speedup": sum(j.wall for j in seq) / ideal_makespan,
        "measured_speedup": seq_wall / par_wall,
        "ideal_parallel_over_baseline": ideal_makespan / base_wall,
        "startup_s": [j.wall - j.train_seconds for j in seq + [base]],
        "step_slowdown": step_slowdown,
        "jobs": {"sequential": [vars(j) for j in seq], "parallel": [vars(j) for j in par], "baseline": vars(base)},
    }


def _figures(rows: list[dict], slots: int) -> list[dict]:
    col = lambda key: [r[key] for r in rows]  # noqa: E731
    return [
        figure(f"speed-up on {slots} slots, ideal (greedy schedule of the solo job times)", col("ideal_speedup")),
        figure(f"speed-up on {slots} slots, measured (sequential / parallel wall)", col("measured_speedup")),
        figure("parallel efficiency (measured / ideal speed-up)",
               [r["measured_speedup"] / r["ideal_speedup"] for r in rows]),
        figure("parallel experts / baseline wall, ideal", col("ideal_parallel_over_baseline")),
        figure("parallel experts / baseline wall, measured", [r["parallel_s"] / r["baseline_s"] for r in rows]),
        figure("sequential experts / baseline wall (same iterations)", [r["sequential_s"] / r["baseline_s"] for r in rows]),
        figure("training-step time when jobs share the machine / alone", [statistics.median(r["step_slowdown"]) for r in rows]),
        figure("start-up, data loading and writes per job", [statistics.median(r["startup_s"]) for r in rows], "s"),
        figure("control: cache-resident matmul loop, two at once / alone", col("compute_sharing_slowdown")),
        figure("control: 64 MiB copy loop, two at once / alone", col("memory_sharing_slowdown")),
    ]


def worker_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one training job of the parallel-experts benchmark")
    for name, kind in (("--config", Path), ("--data", Path), ("--lo", int), ("--hi", int), ("--iterations", int),
                       ("--out", Path)):
        parser.add_argument(name, type=kind, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one job = one core, as the pipeline's train_model
    torch.set_num_interop_threads(1)
    cfg = load_config(json.loads(args.config.read_text()))
    images, _ = load_split(args.data)
    job = TrainJob("benchmark", Interval(args.lo, args.hi), args.iterations,
                   snapshot_steps(args.iterations, cfg.training.eval_points))
    with tempfile.TemporaryDirectory() as state_dir:
        state = run_training(cfg, job, images, state_dir, torch.device("cpu"), log=lambda s: None)
    args.out.write_text(json.dumps({"train_seconds": state.elapsed_seconds}))


if __name__ == "__main__":
    worker_main()
