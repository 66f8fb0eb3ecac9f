"""Sampling throughput: images per second of DDIM sampling, timed on this machine.

Every run is built as the pipeline samples it (``mixture_from_checkpoints``: a single model is the
one-interval mixture) and times the same batch of the same noise for the same DDIM steps. One
warm-up batch per model, then ``repeats`` rounds that time every run once each (interleaved, so a
drift of the machine's speed hits all runs alike); a run keeps its fastest batch.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from mdmlib.core.schedule import NoiseSchedule
from mdmlib.routing.mixture import mixture_from_checkpoints
from mdmlib.sampling.ddim import StackedRandomGenerator, ddim_sample
from mdmlib.sampling.points import schedule_and_shape
from mdmlib.training.checkpoint import load_checkpoint


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_batch(model, schedule: NoiseSchedule, shape: Sequence[int], steps: int, eta: float, batch: int,
                seed: int, device: torch.device) -> float:
    """Seconds of DDIM sampling of one batch (seeds ``seed`` ... ``seed + batch - 1``), the noise
    drawn before the clock starts, the device synchronised before it stops."""
    rng = StackedRandomGenerator(range(seed, seed + batch), device)
    noise = rng.randn(shape)
    _synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode():
        ddim_sample(model, schedule, noise, steps, eta, rng)
    _synchronize(device)
    return time.perf_counter() - start


def _result(seconds: Sequence[float], batch: int, steps: int) -> dict:
    fastest = min(seconds)
    return {"images_per_second": batch / fastest, "seconds_per_batch": fastest, "batch": batch, "steps": steps,
            "repeats": len(seconds), "all_seconds": list(seconds)}


def time_models(models: Mapping[str, tuple], steps: int, eta: float, batch: int, repeats: int, seed: int,
                device: torch.device, log: Callable[[str], None] = lambda line: None) -> dict[str, dict]:
    """Per name of ``models`` ({name: (model, schedule, shape)}): a warm-up batch each, then
    ``repeats`` rounds timing every model once in turn; each keeps its fastest batch."""
    if repeats < 1 or batch < 1:
        raise ValueError(f"need at least one timed batch of at least one image, got {repeats} x {batch}")
    for model, schedule, shape in models.values():
        timed_batch(model, schedule, shape, steps, eta, batch, seed, device)  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(repeats):
        for name, (model, schedule, shape) in models.items():
            seconds[name].append(timed_batch(model, schedule, shape, steps, eta, batch, seed, device))
        log(f"round {round_ + 1}/{repeats}: " + ", ".join(f"{name} {s[-1]:.3f}s" for name, s in seconds.items()))
    return {name: _result(s, batch, steps) for name, s in seconds.items()}


def measure_throughput(model, schedule: NoiseSchedule, shape: Sequence[int], steps: int, eta: float, batch: int,
                       repeats: int, seed: int = 0) -> dict:
    """One model's images/s: a warm-up batch, then the fastest of ``repeats`` timed batches."""
    device = next(model.parameters()).device
    return time_models({"model": (model, schedule, shape)}, steps, eta, batch, repeats, seed, device)["model"]


def machine_context(device: torch.device) -> dict:
    """What the numbers were measured on: they compare only within one file."""
    context = {"device": str(device), "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
               "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        context["device_name"] = torch.cuda.get_device_name(device)
    return context


def run_throughputs(run_checkpoints: Mapping[str, Sequence[str | Path]], cfg, batch: int, repeats: int,
                    device: torch.device | str = "cpu", seed: int = 0,
                    log: Callable[[str], None] = print) -> dict:
    """{"runs": {run: images_per_second, seconds_per_batch, batch, steps, repeats, all_seconds},
    "machine": ...}: every run's routed model sampled with cfg.sampling's DDIM steps and eta."""
    device = torch.device(device)
    models = {}
    for run, paths in run_checkpoints.items():
        schedule, shape = schedule_and_shape(load_checkpoint(paths[0]))
        models[run] = (mixture_from_checkpoints(list(paths)).to(device), schedule, shape)
    runs = time_models(models, cfg.sampling.steps, cfg.sampling.eta, batch, repeats, seed, device, log)
    return {"runs": runs, "machine": machine_context(device) | {"eta": cfg.sampling.eta}}
