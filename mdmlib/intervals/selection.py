"""Running one interval method as the pipeline does: what a method may read, and the call.

Each method's ``select_<name>(context)`` gets only what its registry entry asks for: the
training images, the analysed baseline snapshot, or nothing but the noise schedule.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mdmlib.config import RunConfig
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.data.splits import load_split
from mdmlib.intervals.choice import IntervalChoice
from mdmlib.intervals.registry import interval_method
from mdmlib.training.checkpoint import load_checkpoint, model_from_checkpoint


@dataclass(frozen=True)
class SelectionContext:
    method: str
    cfg: RunConfig
    device: torch.device
    train_path: Path | None = None  # given when the entry's inputs hold "train"
    model_path: Path | None = None  # given when they hold "model"
    figure_dir: Path | None = None  # where the method's figures go
    intervals: int | None = None  # how many to choose; None: experts.n (other counts: multi-stage Table 9)

    @property
    def n(self) -> int:
        return self.intervals or self.cfg.experts.n

    @property
    def timesteps(self) -> int:
        return self.cfg.diffusion.timesteps

    @property
    def settings(self):
        return self.cfg.intervals.settings(self.method)

    @property
    def seed(self) -> int:
        return self.cfg.intervals.seed

    def schedule(self) -> NoiseSchedule:
        return NoiseSchedule.from_name(self.cfg.diffusion.schedule, self.timesteps)

    def train_images(self) -> np.ndarray:
        if self.train_path is None:
            raise ValueError(f"interval method {self.method!r} reads the training split: add 'train' to its inputs")
        return load_split(self.train_path)[0]

    def analysed_model(self) -> torch.nn.Module:
        """The EMA weights of the baseline snapshot the analyses look inside."""
        if self.model_path is None:
            raise ValueError(f"interval method {self.method!r} reads a model: add 'model' to its inputs")
        return model_from_checkpoint(load_checkpoint(self.model_path)).to(self.device)


def select_intervals(method: str, cfg: RunConfig, device: torch.device, train_path: str | Path | None = None,
                     model_path: str | Path | None = None, figure_dir: str | Path | None = None,
                     n: int | None = None) -> IntervalChoice:
    """The ``n`` (default ``cfg.experts.n``) intervals that ``method`` chooses; figures go to ``figure_dir``."""
    if figure_dir is not None:
        Path(figure_dir).mkdir(parents=True, exist_ok=True)
    context = SelectionContext(method, cfg, device, *(None if p is None else Path(p)
                                                      for p in (train_path, model_path, figure_dir)), n)
    choice = interval_method(method).run(context)
    if not isinstance(choice, IntervalChoice) or choice.timesteps != cfg.diffusion.timesteps or choice.n != context.n:
        raise ValueError(f"interval method {method!r} returned {choice!r}, not {context.n} intervals of "
                         f"T={cfg.diffusion.timesteps}")
    return choice
