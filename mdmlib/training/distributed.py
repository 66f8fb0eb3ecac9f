"""Data-parallel training of one model over several processes (``torchrun``).

For one large expert on several GPUs (``training.data_parallel`` > 1). Every process
draws the whole global batch (indices, timesteps, noise) from the same seeded generator
and trains on its own slice; DDP averages the gradients, so a step equals the
single-process step on the global batch up to float summation order (dropout masks
differ: each process draws them for its slice). Losses are gathered so that the
loss-aware sampler and the logs see the global batch on every process. Rank 0 alone
writes checkpoints; a restarted job resumes from them like a single-process one.

Run as ``torchrun --standalone --nproc_per_node N -m mdmlib.training ...``; the
workflow calls ``launch_data_parallel``. NCCL on GPUs, gloo on the CPU.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from mdmlib.core.io import atomic_write_text


@dataclass(frozen=True)
class DataParallel:
    rank: int
    world_size: int

    def part(self, batch_size: int) -> slice:
        """This process's slice of a global batch (the batch size divides evenly: checked in config)."""
        per = batch_size // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """The global batch's values, in rank order, on every process."""
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(parts, local.contiguous())
        return torch.cat(parts)

    @property
    def writes(self) -> bool:
        return self.rank == 0


def launch_data_parallel(config: dict, model: str, train_path: str | Path, state_dir: str | Path,
                         processes: int, threads: int, log_path: str | Path | None = None,
                         init: str | Path | None = None) -> None:
    """Train ``model`` with ``processes`` torchrun workers (from checkpoint ``init`` when given);
    returns when all have finished."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    config_path = state_dir / "config.json"
    atomic_write_text(config_path, json.dumps(config))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "mdmlib.training", "--config", str(config_path), "--model", model,
           "--train", str(train_path), "--state-dir", str(state_dir),
           "--threads", str(max(1, threads // processes))] + (["--init", str(init)] if init else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, threads // processes)))
    with open(log_path, "a") if log_path else open(os.devnull, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"data-parallel training of {model} failed (exit {proc.returncode}): "
                           f"{' '.join(cmd)}" + (f"; see {log_path}" if log_path else ""))

