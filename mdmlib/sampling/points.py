"""Sampling one evaluation point of a run, and reading the sample files back.

A run is the baseline (one checkpoint per point) or MDM (one checkpoint per expert per
point). Each sample file carries the steps and measured training seconds of the
checkpoints it came from, so cost accounting needs nothing else.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from mdmlib.config import SamplingConfig
from mdmlib.core.io import atomic_savez
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.routing.mixture import mixture_from_checkpoints
from mdmlib.sampling.ddim import generate_images
from mdmlib.training.checkpoint import load_checkpoint

SAMPLE_KEYS = ("images", "checkpoint_names", "checkpoint_steps", "checkpoint_iterations", "checkpoint_seconds", "seeds")


def set_seeds(cfg: SamplingConfig, seed_set: int) -> list[int]:
    """Sample set s draws seeds ``seed + s * num_samples + i``: disjoint from every other set, and
    the same for every run, so two runs' set s start from the same noise."""
    first = cfg.seed + seed_set * cfg.num_samples
    return list(range(first, first + cfg.num_samples))


def schedule_and_shape(ckpt: dict) -> tuple[NoiseSchedule, tuple[int, int, int]]:
    """What sampling a checkpoint's model needs besides it: its noise schedule and image shape."""
    diffusion = ckpt["config"]["diffusion"]
    return (NoiseSchedule.from_name(diffusion["schedule"], diffusion["timesteps"]),
            (ckpt["in_channels"], ckpt["resolution"], ckpt["resolution"]))


def sample_point(checkpoint_paths: Sequence[str | Path], cfg: SamplingConfig, out_path: str | Path,
                 device: torch.device, log: Callable[[str], None] = print,
                 intervals: list[list[int]] | None = None, seed_sets: Sequence[int] = (0,)) -> None:
    """DDIM samples from the EMA weights of the given checkpoints (routed as experts), one
    ``num_samples`` set per entry of ``seed_sets`` (``set_seeds``), in one file.

    ``intervals`` overrides the routing (see ``mixture_from_checkpoints``).
    """
    ckpts = [load_checkpoint(p) for p in checkpoint_paths]
    schedule, shape = schedule_and_shape(ckpts[0])
    model = mixture_from_checkpoints(checkpoint_paths, intervals).to(device)
    images, seeds, sets = [], [], []
    for seed_set in seed_sets:
        set_seed_list = set_seeds(cfg, seed_set)
        log(f"sampling set {seed_set}: {len(set_seed_list)} images, DDIM {cfg.steps} steps, eta {cfg.eta}, "
            f"{len(ckpts)} expert(s): {[c['name'] + '@' + str(c['step']) for c in ckpts]}")
        images.append(generate_images(model, schedule, shape, set_seed_list, cfg.steps, cfg.eta, cfg.batch_size,
                                      device, log))
        seeds += set_seed_list
        sets += [seed_set] * len(set_seed_list)
    atomic_savez(out_path, images=np.concatenate(images), seeds=np.asarray(seeds), seed_sets=np.asarray(sets),
                 checkpoint_names=np.asarray([c["name"] for c in ckpts]),
                 checkpoint_steps=np.asarray([c["step"] for c in ckpts]),
                 checkpoint_iterations=np.asarray([c["iterations"] for c in ckpts]),
                 checkpoint_seconds=np.asarray([c["elapsed_seconds"] for c in ckpts], dtype=np.float64))


def load_samples(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:
        raise ValueError(f"sample file {path}: unreadable ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in SAMPLE_KEYS if k not in data]
    if missing or data["images"].dtype != np.uint8 or data["images"].ndim != 4:
        raise ValueError(f"sample file {path}: malformed (missing {missing} or images not uint8 NCHW)")
    data.setdefault("seed_sets", np.zeros(len(data["images"]), dtype=np.int64))  # files of one set
    if len(data["seed_sets"]) != len(data["images"]):
        raise ValueError(f"sample file {path}: {len(data['seed_sets'])} set labels for {len(data['images'])} images")
    return data


def split_sets(samples: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """Seed set -> its images, in set order."""
    sets = samples["seed_sets"]
    return {int(s): samples["images"][sets == s] for s in np.unique(sets)}


