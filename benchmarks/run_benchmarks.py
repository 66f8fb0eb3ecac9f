"""Measure the project's own overheads: `make bench` (or `--quick` for the tests).

Writes results/benchmarks/<name>.json and results/benchmarks/summary.md.
"""
import argparse
import json
import platform
from pathlib import Path

import torch
import yaml

from mdmlib.benchmarking import routing_overhead, trainer_overhead
from mdmlib.config import load_config
from mdmlib.data import prepare_dataset, load_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--out", default="results/benchmarks")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the benchmarks run")
    args = parser.parse_args()
    values = yaml.safe_load(Path(args.config).read_text())
    cfg = load_config(values)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.training.threads)  # one job = one device, as in the pipeline
    prepare_dataset(cfg.data, out / "train.npz", out / "val.npz", out / "provenance.json")
    images, _ = load_split(out / "train.npz")
    steps, repeats, ddim_steps = (20, 2, 5) if args.quick else (300, 5, 50)
    results = {
        "trainer_overhead": trainer_overhead(cfg, images, steps, repeats),
        "routing_overhead": routing_overhead(cfg, images.shape[1], cfg.sampling.batch_size, ddim_steps, repeats),
    }
    machine = f"{platform.machine()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"
    lines = ["# Benchmarks", "", f"Machine: {machine}; config: {args.config}", "",
             "| benchmark | figure | target | median | min | max | repeats |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        (out / f"{name}.json").write_text(json.dumps({**r, "machine": machine}, indent=2))
        lines.append(f"| {name} | {r['figure']} | {r['target']} | {r['ratio_median']:.3f} | "
                     f"{r['ratio_min']:.3f} | {r['ratio_max']:.3f} | {r['repeats']} |")
        print(name, json.dumps(r))
    (out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
