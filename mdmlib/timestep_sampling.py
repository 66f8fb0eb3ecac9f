"""Timestep samplers: small plug-in objects (improved-diffusion's ScheduleSampler).

A sampler returns timestep indices and per-sample loss weights; an expert's sampler
is uniform over its own interval.
"""
from __future__ import annotations

import torch

from .experts import Interval


class UniformIntervalSampler:
    """t uniform over the interval's indices, every weight 1."""

    def __init__(self, interval: Interval):
        self.interval = interval

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.randint(self.interval.lo, self.interval.hi, (batch_size,), generator=generator)
        return t, torch.ones(batch_size)

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Loss-aware samplers learn from the losses; the uniform one ignores them."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
