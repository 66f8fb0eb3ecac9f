"""How precise one FID is: its sd between disjoint sample sets, by sample count and reference set.

Reads a finished `make run`: the trained baseline's last snapshot, the data splits and the
feature network. It draws a pool of samples (seeds past every seed the pipeline's sample sets
use, so nothing is shared with them), cuts it into ``sets`` disjoint sets of each count and
scores every set against three references: the validation split (the pipeline's), the
training split (what the ADM evaluator compares against) and both. The spread is what a
comparison of two runs must beat; the mean shows the bias small sets carry.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.timing import figure
from mdmlib import paths
from mdmlib.config import RunConfig
from mdmlib.data.splits import load_split
from mdmlib.metrics.reference import (
    compute_reference,
    load_reference,
    make_extractor,
    reference_images,
)
from mdmlib.metrics.series import evaluate_samples
from mdmlib.sampling.points import load_samples, sample_point
from mdmlib.training.job import baseline_model

REFERENCES = ("validation", "training", "both")


def fid_precision(cfg: RunConfig, run_dir: str | Path, counts=(250, 500, 1000), sets: int = 5,
                  device: str = "cpu") -> dict:
    run_dir = Path(run_dir)
    snapshot = Path(paths.snapshot(run_dir, baseline_model(cfg), cfg.training.eval_points))
    net = Path(paths.feature_net(run_dir))
    needed = [snapshot, Path(paths.train_split(run_dir)), Path(paths.val_split(run_dir))]
    needed += [] if cfg.metrics.features == "inception" else [net]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        return {"status": "no run", "figures": [], "message": f"needs a finished `make run`: missing {missing}"}
    extractor = make_extractor(cfg.metrics, None if cfg.metrics.features == "inception" else net)
    train, val = load_split(paths.train_split(run_dir))[0], load_split(paths.val_split(run_dir))[0]
    pool_size = max(counts) * sets
    # Seeds past the pipeline's sample sets (sampling.seed_sets x num_samples from sampling.seed).
    first_set = (cfg.sampling.seed_sets * cfg.sampling.num_samples) // pool_size + 1
    sampling = dataclasses.replace(cfg.sampling, num_samples=pool_size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pool_path, refs = Path(tmp) / "pool.npz", {}
        sample_point([snapshot], sampling, pool_path, torch.device(device), log=lambda s: None, seed_sets=[first_set])
        pool = load_samples(pool_path)["images"]
        for name in REFERENCES:
            compute_reference(extractor, reference_images(name, val, train), Path(tmp) / f"{name}.npz", device=device,
                              split=name)
            refs[name] = load_reference(Path(tmp) / f"{name}.npz")
        for n in counts:
            for s in range(sets):
                chunk = pool[s * n:(s + 1) * n]
                for name, ref in refs.items():
                    r = evaluate_samples(extractor, ref, chunk, k=cfg.metrics.pr_k, block_size=cfg.metrics.block_size,
                                         device=device)
                    rows.append({"samples": n, "set": s, "reference": name, "reference images": r.num_reference,
                                 "fid": r.fid, "sfid": r.sfid})
    figures = []
    for n in counts:
        for name in REFERENCES:
            fids = [r["fid"] for r in rows if r["samples"] == n and r["reference"] == name]
            sfids = [r["sfid"] for r in rows if r["samples"] == n and r["reference"] == name]
            figures.append(figure(f"FID at {n} samples vs {name} ({len(fids)} sets): sd", [np.std(fids, ddof=1)]))
            figures.append(figure(f"FID at {n} samples vs {name}: mean", [np.mean(fids)]))
            figures.append(figure(f"sFID at {n} samples vs {name}: sd", [np.std(sfids, ddof=1)]))
    return {"status": "ok", "figures": figures, "rows": rows, "snapshot": str(snapshot),
            "reference_images": {name: int(ref["num_reference"]) for name, ref in refs.items()}}
