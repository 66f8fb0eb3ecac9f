"""Measure where the project's time goes: `make bench` (or `--quick` for the tests).

Writes results/benchmarks/<name>.json and results/benchmarks/summary.md.
"""
import argparse
import json
import platform
import time
from pathlib import Path

import torch
import yaml

from benchmarks.fid_precision import fid_precision
from benchmarks.metric_cost import metric_times, precision_recall_memory
from benchmarks.models import model_efficiency
from benchmarks.multistage import multistage_costs
from benchmarks.parallel import parallel_experts
from benchmarks.pipeline import pipeline_overhead
from benchmarks.pruned_sampling import pruned_sampling
from benchmarks.throughput import routing_overhead, trainer_overhead
from mdmlib import paths
from mdmlib.config import load_config
from mdmlib.data.splits import load_split, prepare_dataset

# Full sizes keep `make bench` under 15 minutes on 2 cores with >= 3 paired repeats each.
SIZES = {
    "full": {"repeats": 3, "trainer_steps": 100, "ddim_steps": 50, "parallel_iterations": 100, "parallel_repeats": 3,
             "controls": {"compute": 1000, "memory": 100}, "metric_n": 10000,
             "memory_n": 50000, "memory_small_n": 20000, "memory_blocks": (10000, 5000), "model_steps": 5,
             "startup_repeats": 3, "multistage": {"batch": 128, "ddim_steps": 50, "train_steps": 10},
             "fid_precision": {"counts": (250, 500, 1000), "sets": 5},
             "pruned_sampling": {"batch": 128, "ddim_steps": None}},  # None: the config's sampling steps
    "quick": {"repeats": 2, "trainer_steps": 10, "ddim_steps": 3, "parallel_iterations": 6, "parallel_repeats": 1,
              "controls": {"compute": 20, "memory": 2}, "metric_n": 200,
              "memory_n": 9000, "memory_small_n": 6000, "memory_blocks": (3000, 1500), "model_steps": 1,
              "startup_repeats": 1, "multistage": {"batch": 8, "ddim_steps": 3, "train_steps": 1},
              "fid_precision": {"counts": (8, 16), "sets": 2},
              "pruned_sampling": {"batch": 8, "ddim_steps": 3}},
}
NAMES = ("trainer_overhead", "routing_overhead", "parallel_experts", "pipeline_overhead", "metric_times",
         "precision_recall_memory", "model_efficiency", "multistage_costs", "fid_precision", "pruned_sampling")


def benchmarks(cfg, args, train_path: Path) -> dict:
    """name -> a function returning that benchmark's result dict."""
    s = SIZES["quick" if args.quick else "full"]
    images, _ = load_split(train_path)
    channels, res = images.shape[1], cfg.data.resolution
    run_dir = args.pipeline_run or paths.run_dir(cfg)
    return {
        "trainer_overhead": lambda: trainer_overhead(cfg, images, s["trainer_steps"], s["repeats"]),
        "routing_overhead": lambda: routing_overhead(cfg, channels, cfg.sampling.batch_size, s["ddim_steps"],
                                                     s["repeats"]),
        "parallel_experts": lambda: parallel_experts(cfg, train_path, s["parallel_iterations"],
                                                     s["parallel_repeats"], control_iterations=s["controls"]),
        "pipeline_overhead": lambda: pipeline_overhead(run_dir, startup_repeats=s["startup_repeats"]),
        "metric_times": lambda: metric_times(cfg, channels, s["metric_n"], s["repeats"]),
        "precision_recall_memory": lambda: precision_recall_memory(
            s["memory_n"], cfg.metrics.feature_net.feature_dim, s["memory_blocks"], s["memory_small_n"],
            k=cfg.metrics.pr_k),
        "model_efficiency": lambda: model_efficiency(cfg.model, channels, res, cfg.training.batch_size,
                                                     s["model_steps"], s["repeats"]),
        "multistage_costs": lambda: multistage_costs(cfg, channels, repeats=s["repeats"], **s["multistage"]),
        "fid_precision": lambda: fid_precision(cfg, run_dir, **s["fid_precision"]),
        "pruned_sampling": lambda: pruned_sampling(cfg, images, repeats=s["repeats"], **s["pruned_sampling"]),
    }


def summary_lines(results: dict, machine: str, config: str) -> list[str]:
    lines = ["# Benchmarks", "", f"Machine: {machine}; config: {config}. Median and range over repeats; "
             "ratios are of variants measured in alternation in the same run.", "",
             "| benchmark | figure | median | range | repeats | target | met |", "|---|---|---|---|---|---|---|"]
    notes = []
    for name, r in results.items():
        for f in r["figures"]:
            unit = f" {f['unit']}" if f["unit"] else ""
            spread = f"{f['min']:.4g}-{f['max']:.4g}" if f["repeats"] > 1 else ""
            met = "" if f["met"] is None else ("yes" if f["met"] else "**no**")
            lines.append(f"| {name} | {f['figure'].strip()} | {f['median']:.4g}{unit} | {spread} | {f['repeats']} | "
                         f"{f['target'] or ''} | {met} |")
        if "message" in r:
            notes.append(f"- {name}: {r['message']}")
    lines += ["", "Wall time of each benchmark: " +
              ", ".join(f"{name} {r['benchmark_seconds']:.0f} s" for name, r in results.items())]
    return lines + (["", "Not measured:", *notes] if notes else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--out", default="results/benchmarks")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the benchmarks run")
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--pipeline-run", help="run folder for pipeline_overhead (default results/<dataset>/<experiment>)")
    args = parser.parse_args()
    cfg = load_config(yaml.safe_load(Path(args.config).read_text()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.training.threads)  # one job = one device, as in the pipeline
    prepare_dataset(cfg.data, out / "train.npz", out / "val.npz", out / "provenance.json")
    machine = f"{platform.machine()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"
    todo, results = benchmarks(cfg, args, out / "train.npz"), {}
    for name in args.only:
        start = time.perf_counter()
        results[name] = {**todo[name](), "benchmark_seconds": 0.0}
        results[name]["benchmark_seconds"] = time.perf_counter() - start
        (out / f"{name}.json").write_text(json.dumps({**results[name], "machine": machine}, indent=2, default=str))
        for f in results[name]["figures"]:
            print(f"{name}: {f['figure'].strip()}: {f['median']:.4g} ({f['min']:.4g}-{f['max']:.4g}) {f['unit']}",
                  flush=True)
        if "message" in results[name]:
            print(f"{name}: {results[name]['message']}", flush=True)
    (out / "summary.md").write_text("\n".join(summary_lines(results, machine, args.config)) + "\n")


if __name__ == "__main__":
    main()
