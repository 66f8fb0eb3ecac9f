"""The training loop of one model: the baseline or one expert.

Resumable: the running state (latest checkpoint, with the logs so far) lives in a
state folder; a killed job started again continues from it exactly. Declared outputs
(snapshots for the evaluation series, loss and timing CSVs) are written at the end.
The job's recipe picks its timestep sampler and loss weights (``make_sampler``). A job
starts from a fresh model of the config's architecture, or from another model's checkpoint
(its raw and EMA weights, its architecture), e.g. a base model fine-tuned on one interval.
"""
from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from mdmlib.config import RunConfig
from mdmlib.core.adam import Adam
from mdmlib.core.images import to_model_range
from mdmlib.core.io import atomic_write_text
from mdmlib.core.schedule import NoiseSchedule, epsilon_loss_per_sample
from mdmlib.models.registry import build_model, new_model
from mdmlib.training.checkpoint import load_checkpoint, save_checkpoint
from mdmlib.training.distributed import DataParallel
from mdmlib.training.job import TrainJob
from mdmlib.training.samplers import StagedSampler, UniformIntervalSampler, make_sampler


@dataclass
class TrainState:
    model: torch.nn.Module  # built by mdmlib.models.registry: carries its spec
    ema: torch.nn.Module
    optimizer: Adam
    generator: torch.Generator  # data indices, timesteps and noise
    sampler: UniformIntervalSampler  # the recipe's timestep sampler; loss-aware ones hold a history
    step: int = 0
    elapsed_seconds: float = 0.0  # measured training wall time, summed over logged intervals
    restarts: int = 0
    loss_rows: list[dict] = field(default_factory=list)
    timing_rows: list[dict] = field(default_factory=list)
    forward: torch.nn.Module | None = None  # the DDP wrapper of ``model`` when data-parallel


def new_state(cfg: RunConfig, in_channels: int, device: torch.device, sampler: UniformIntervalSampler,
              init: dict | None = None, spec: dict | None = None) -> TrainState:
    """A fresh model of ``spec`` (default: the config's architecture), or ``init`` (a loaded
    checkpoint): its architecture, its raw weights as the model and its EMA weights as the EMA."""
    torch.manual_seed(cfg.training.seed)  # dropout draws from the global generator
    if init is not None:  # ``spec``: the init's weights in another architecture of the same parameters
        model = build_model(init["model_spec"] if spec is None else spec)
    else:
        model = new_model(cfg.model, in_channels, cfg.data.resolution) if spec is None else build_model(spec)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    if init is not None:
        model.load_state_dict(init["model"])
        ema.load_state_dict(init["ema"])
    model, ema = model.to(device), ema.to(device)
    optimizer = Adam(model.parameters(), lr=cfg.training.learning_rate)
    generator = torch.Generator().manual_seed(cfg.training.seed)
    return TrainState(model, ema, optimizer, generator, sampler)


def init_record(init: dict | None, path: str | Path | None) -> dict | None:
    """What a checkpoint says of the checkpoint its training started from."""
    return None if init is None else {"path": str(path), "name": init["name"], "step": init["step"]}


def checkpoint_payload(cfg: RunConfig, job: TrainJob, state: TrainState, with_optimizer: bool = True,
                       init: dict | None = None) -> dict:
    payload = {
        "model_spec": state.model.spec, "init": init, "config": cfg.to_dict(), "name": job.name, "interval": job.interval.to_list(), "recipe": job.recipe,
        "iterations": job.iterations, "in_channels": state.model.in_channels,
        "resolution": state.model.resolution, "step": state.step,
        "elapsed_seconds": state.elapsed_seconds, "restarts": state.restarts,
        "model": state.model.state_dict(), "ema": state.ema.state_dict(),
    }
    if with_optimizer:
        payload |= {
            "optimizer": state.optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "generator": state.generator.get_state()},
            "sampler": state.sampler.state_dict(),
            "loss_rows": state.loss_rows, "timing_rows": state.timing_rows,
        }
    return payload


def restore_state(state: TrainState, ckpt: dict) -> None:
    state.model.load_state_dict(ckpt["model"])
    state.ema.load_state_dict(ckpt["ema"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    state.generator.set_state(ckpt["rng"]["generator"])
    state.sampler.load_state_dict(ckpt.get("sampler", {}))  # absent before recipes: uniform t, no state
    state.step, state.elapsed_seconds = ckpt["step"], ckpt["elapsed_seconds"]
    state.restarts = ckpt["restarts"] + 1
    state.loss_rows, state.timing_rows = list(ckpt["loss_rows"]), list(ckpt["timing_rows"])


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    # Warm-up (as diffusers' EMAModel): short expert budgets would otherwise keep the init.
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - d)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


class IntervalLossMeter:
    """Sum and count of the per-sample loss in ``bins`` equal timestep bins."""

    def __init__(self, timesteps: int, bins: int):
        self.timesteps, self.bins = timesteps, bins
        self.reset()

    def reset(self) -> None:
        self.sums, self.counts = np.zeros(self.bins), np.zeros(self.bins, dtype=np.int64)

    def add(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        b = (t.cpu().numpy() * self.bins) // self.timesteps
        np.add.at(self.sums, b, losses.detach().cpu().double().numpy())
        np.add.at(self.counts, b, 1)

    def rows(self, step: int) -> list[dict]:
        width = self.timesteps / self.bins
        return [
            {"step": step, "t_lo": round(k * width), "t_hi": round((k + 1) * width),
             "loss": float(self.sums[k] / self.counts[k]), "count": int(self.counts[k])}
            for k in range(self.bins) if self.counts[k]
        ]


def train_step(state: TrainState, schedule: NoiseSchedule, images: torch.Tensor,
               sampler: UniformIntervalSampler, batch_size: int,
               parallel: DataParallel | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on the sampler's timesteps, the loss scaled by the sampler's weights.

    Returns the unweighted per-sample epsilon MSE of the global batch: the logged loss curves
    then compare across recipes, and the loss-aware sampler learns from the same quantity.
    Data-parallel, each process draws the global batch and trains on its slice.
    """
    idx = torch.randint(len(images), (batch_size,), generator=state.generator)
    t, weights = sampler.sample(batch_size, state.generator)
    noise = torch.randn((batch_size, *images.shape[1:]), generator=state.generator)
    device = next(state.model.parameters()).device
    t = t.to(device)
    mine = parallel.part(batch_size) if parallel else slice(None)
    x0, noise, weights = images[idx[mine]].to(device), noise[mine].to(device), weights[mine].to(device)
    losses = epsilon_loss_per_sample(state.forward or state.model, schedule, x0, t[mine], noise)
    state.optimizer.zero_grad(set_to_none=True)
    (losses * weights).mean().backward()  # DDP averages the slices' gradients: the global mean
    state.optimizer.step()
    losses = parallel.gather(losses.detach()) if parallel else losses.detach()
    sampler.update(t, losses)
    return t, losses


def resume_mismatch(ckpt: dict, cfg: RunConfig, job: TrainJob, init: dict | None = None,
                    spec: dict | None = None) -> str | None:
    """Name of the first setting that differs between a saved run and this job, else None."""
    if spec is not None and ckpt["model_spec"] != spec:
        return "model (its spec)"
    if ckpt.get("init") != init:
        return f"initial checkpoint ({ckpt.get('init')} before, {init} now)"
    saved, now = ckpt["config"], cfg.to_dict()
    for section in ("data", "diffusion", "model"):
        if saved[section] != now[section]:
            return section
    # Neither changes the global batch a step trains on (data-parallel processes split it).
    ignore = {"threads", "data_parallel"}
    if {k: v for k, v in saved["training"].items() if k not in ignore} != \
            {k: v for k, v in now["training"].items() if k not in ignore}:
        return "training"
    if ckpt["recipe"] != job.recipe:
        return f"recipe ({ckpt['recipe']} before, {job.recipe} now)"
    if ckpt["interval"] != job.interval.to_list() or ckpt["iterations"] != job.iterations:
        return "interval or budget"
    return None


def snapshot_path(state_dir: Path, step: int) -> Path:
    return Path(state_dir) / f"snapshot_step{step:08d}.pt"


def run_training(cfg: RunConfig, job: TrainJob, train_images: np.ndarray, state_dir: str | Path,
                 device: torch.device, log: Callable[[str], None] = print,
                 stop_after: int | None = None, parallel: DataParallel | None = None,
                 init: str | Path | None = None) -> TrainState:
    """Train ``job`` to its budget with its recipe, resuming from ``state_dir/latest.pt`` when present.

    The checkpoint holds the sampler's state (the importance sampler's loss history) next
    to the generator it draws from, so a resumed run ends bit-identical to an uninterrupted one.

    ``stop_after`` ends the run early once that step's checkpoint is written (tests use
    it to stand for a kill). ``parallel``: this process's part in data-parallel training
    (``mdmlib.training.distributed``); only its rank 0 writes. ``init``: a checkpoint to start
    from instead of a fresh model (its architecture, raw and EMA weights); the optimizer starts afresh.
    """
    tc, state_dir = cfg.training, Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    latest = state_dir / "latest.pt"
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    start = None if init is None else load_checkpoint(init)
    if start is not None and start["in_channels"] != train_images.shape[1]:
        raise ValueError(f"[{job.name}] {init} has {start['in_channels']} image channels, the data "
                         f"{train_images.shape[1]}")
    started_from = init_record(start, init)
    sampler = StagedSampler(list(job.stages)) if job.stages else make_sampler(job.recipe, job.interval, schedule)
    state = new_state(cfg, train_images.shape[1], device, sampler, start, job.model_spec)
    if latest.exists():
        ckpt = load_checkpoint(latest)
        mismatch = resume_mismatch(ckpt, cfg, job, started_from, state.model.spec)
        if mismatch:
            log(f"[{job.name}] not resuming {latest}: it was trained with a different {mismatch}; starting afresh")
            for stale in state_dir.glob("*.pt"):
                stale.unlink(missing_ok=True)  # data-parallel: every process clears
        else:
            restore_state(state, ckpt)
            log(f"[{job.name}] resumed at step {state.step}/{job.iterations} (restart {state.restarts})")
    if parallel:
        from torch.nn.parallel import DistributedDataParallel
        # A multi-decoder model trains one stage per process: the other decoders go unused there.
        state.forward = DistributedDataParallel(state.model, device_ids=[device] if device.type == "cuda" else None,
                                                find_unused_parameters=bool(job.stages))
    writes = parallel is None or parallel.writes
    images = to_model_range(train_images)
    meter = IntervalLossMeter(cfg.diffusion.timesteps, tc.loss_bins)
    snapshots = set(job.snapshot_steps)
    started, last_logged = time.perf_counter(), state.step
    while state.step < job.iterations and (stop_after is None or state.step < stop_after):
        state.model.train()
        t, losses = train_step(state, schedule, images, state.sampler, tc.batch_size, parallel)
        state.step += 1
        update_ema(state.ema, state.model, tc.ema_decay, state.step)
        meter.add(t, losses)
        if state.step % tc.log_every == 0 or state.step == job.iterations:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - started
            state.elapsed_seconds += seconds
            state.loss_rows += meter.rows(state.step)
            state.timing_rows.append({"step": state.step, "interval_steps": state.step - last_logged,
                                      "interval_seconds": seconds, "elapsed_seconds": state.elapsed_seconds,
                                      "restarts": state.restarts,
                                      "wall_clock": time.time()})  # when: spans of jobs run side by side
            log_progress(log, job, state, seconds, meter)
            meter.reset()
            started, last_logged = time.perf_counter(), state.step
        if state.step in snapshots and writes:
            payload = checkpoint_payload(cfg, job, state, with_optimizer=False, init=started_from)
            unlogged = time.perf_counter() - started if last_logged != state.step else 0.0
            payload["elapsed_seconds"] = state.elapsed_seconds + unlogged
            save_checkpoint(snapshot_path(state_dir, state.step), payload)
        if writes and (state.step % tc.checkpoint_every == 0 or state.step == job.iterations):
            save_checkpoint(latest, checkpoint_payload(cfg, job, state, init=started_from))
    return state


def log_progress(log, job: TrainJob, state: TrainState, seconds: float, meter: IntervalLossMeter) -> None:
    rows = meter.rows(state.step)
    loss = sum(r["loss"] * r["count"] for r in rows) / max(1, sum(r["count"] for r in rows))
    rate = state.timing_rows[-1]["interval_steps"] / max(seconds, 1e-9)
    eta = (job.iterations - state.step) / max(rate, 1e-9)
    log(f"[{job.name}] step {state.step}/{job.iterations} loss {loss:.4f} "
        f"{rate:.1f} it/s elapsed {state.elapsed_seconds:.0f}s eta {eta:.0f}s")


def write_training_outputs(state_dir: str | Path, job: TrainJob, snapshot_outputs: list[str | Path],
                           loss_csv: str | Path, timing_csv: str | Path) -> None:
    """Copy the snapshots to the declared outputs and write the logs of the finished run."""
    final = load_checkpoint(Path(state_dir) / "latest.pt")
    if final["step"] < job.iterations:
        raise RuntimeError(f"[{job.name}] run stopped at step {final['step']} of {job.iterations}")
    if len(snapshot_outputs) != len(job.snapshot_steps):
        raise ValueError(f"{len(snapshot_outputs)} snapshot outputs for {len(job.snapshot_steps)} snapshot steps")
    for step, out in zip(job.snapshot_steps, snapshot_outputs):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(snapshot_path(state_dir, step), out)
    loss = pd.DataFrame(final["loss_rows"]).assign(model=job.name)
    timing = pd.DataFrame(final["timing_rows"]).assign(model=job.name)
    atomic_write_text(loss_csv, loss.to_csv(index=False))
    atomic_write_text(timing_csv, timing.to_csv(index=False))
