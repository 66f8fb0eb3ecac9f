"""Evaluation series: sample a run at one of its snapshot points, then score every point.

A run is the baseline (one checkpoint per point) or MDM (one checkpoint per expert per
point). Each sample file carries the steps and measured training seconds of the
checkpoints it came from, so cost accounting needs nothing else.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .checkpoint import load_checkpoint, mixture_from_checkpoints
from .config import MetricsConfig, SamplingConfig
from .diffusion import NoiseSchedule
from .metrics import evaluate_samples, load_reference, make_extractor
from .sampling import generate_images

SAMPLE_KEYS = ("images", "checkpoint_names", "checkpoint_steps", "checkpoint_iterations", "checkpoint_seconds", "seeds")


def sample_point(checkpoint_paths: Sequence[str | Path], cfg: SamplingConfig, out_path: str | Path,
                 device: torch.device, log: Callable[[str], None] = print,
                 intervals: list[list[int]] | None = None, seed_set: int = 0) -> None:
    """DDIM samples from the EMA weights of the given checkpoints (routed as experts).

    ``intervals`` overrides the routing (see ``mixture_from_checkpoints``); sample set
    ``seed_set`` s uses seeds ``seed + s * num_samples + i``, disjoint from the other sets.
    """
    ckpts = [load_checkpoint(p) for p in checkpoint_paths]
    diffusion = ckpts[0]["config"]["diffusion"]
    schedule = NoiseSchedule.from_name(diffusion["schedule"], diffusion["timesteps"])
    model = mixture_from_checkpoints(checkpoint_paths, intervals).to(device)
    shape = (ckpts[0]["in_channels"], ckpts[0]["resolution"], ckpts[0]["resolution"])
    first = cfg.seed + seed_set * cfg.num_samples
    seeds = list(range(first, first + cfg.num_samples))
    log(f"sampling {len(seeds)} images, DDIM {cfg.steps} steps, eta {cfg.eta}, "
        f"{len(ckpts)} expert(s): {[c['name'] + '@' + str(c['step']) for c in ckpts]}")
    images = generate_images(model, schedule, shape, seeds, cfg.steps, cfg.eta, cfg.batch_size, device, log)
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, images=images, seeds=np.asarray(seeds),
             checkpoint_names=np.asarray([c["name"] for c in ckpts]),
             checkpoint_steps=np.asarray([c["step"] for c in ckpts]),
             checkpoint_iterations=np.asarray([c["iterations"] for c in ckpts]),
             checkpoint_seconds=np.asarray([c["elapsed_seconds"] for c in ckpts], dtype=np.float64))
    os.replace(tmp, out_path)


def load_samples(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:
        raise ValueError(f"sample file {path}: unreadable ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in SAMPLE_KEYS if k not in data]
    if missing or data["images"].dtype != np.uint8 or data["images"].ndim != 4:
        raise ValueError(f"sample file {path}: malformed (missing {missing} or images not uint8 NCHW)")
    return data


def evaluate_series(run: str, sample_paths: Sequence[str | Path], feature_net_path: str | Path | None,
                    reference_path: str | Path, cfg: MetricsConfig, points: Sequence[int] | None = None,
                    log: Callable[[str], None] = print, device: str | torch.device = "cpu") -> pd.DataFrame:
    """One row per evaluation point: metrics, checkpoint steps, WCT and TC in seconds.

    ``points`` numbers the sample files (1, 2, ... when not given)."""
    extractor = make_extractor(cfg, feature_net_path)  # classifier CNN or Inception, by cfg.features
    reference = load_reference(reference_path)
    feature_network = str(reference["feature_network"])
    rows = []
    points = list(points) if points is not None else list(range(1, len(sample_paths) + 1))
    if len(points) != len(sample_paths):
        raise ValueError(f"{len(sample_paths)} sample files for {len(points)} points")
    for point, path in zip(points, sample_paths):
        samples = load_samples(path)
        result = evaluate_samples(extractor, reference, samples["images"], feature_network,
                                  k=cfg.pr_k, block_size=cfg.block_size, device=device)
        seconds = samples["checkpoint_seconds"]
        rows.append({
            "run": run, "point": point, **result.to_dict(),
            "steps": " ".join(str(int(s)) for s in samples["checkpoint_steps"]),
            "fraction_of_budget": float(np.mean(samples["checkpoint_steps"] / samples["checkpoint_iterations"])),
            "total_steps": int(samples["checkpoint_steps"].sum()),
            # Experts train in parallel: WCT is the slowest one, TC the sum (MDM Sec. 5.2).
            "wct_seconds": float(seconds.max()), "tc_seconds": float(seconds.sum()),
        })
        log(f"[{run}] point {point}: FID {result.fid:.3f} sFID {result.sfid:.3f} "
            f"P {result.precision:.3f} R {result.recall:.3f}")
    return pd.DataFrame(rows)
