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


class P2WeightedSampler(UniformIntervalSampler):
    """Perception-prioritised weighting (Choi et al. 2022): lambda_t = 1 / (k + SNR(t))^gamma.

    The weights are not normalised, as the P2W authors trained (k = 1, gamma = 1 in MDM).
    """

    def __init__(self, interval: Interval, snr: torch.Tensor, k: float = 1.0, gamma: float = 1.0):
        super().__init__(interval)
        self.lambdas = (1.0 / (k + snr.double()) ** gamma).float()

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        t, _ = super().sample(batch_size, generator)
        return t, self.lambdas[t]


class LossAwareSampler(UniformIntervalSampler):
    """Importance sampling of t (Nichol & Dhariwal 2021, improved-diffusion's loss-second-moment
    resampler): uniform until every timestep has ``history`` losses, then p_t proportional to the
    RMS of its recent losses, mixed with a ``uniform_share`` of uniform; weights 1 / (N p_t) keep
    the loss an unbiased estimate of the uniform-t loss (N = timesteps in the interval).
    """

    def __init__(self, interval: Interval, history: int = 10, uniform_share: float = 0.001):
        super().__init__(interval)
        self.uniform_share = uniform_share
        self.losses = torch.zeros(interval.size, history, dtype=torch.float64)
        self.counts = torch.zeros(interval.size, dtype=torch.long)

    def warmed_up(self) -> bool:
        return bool((self.counts == self.losses.shape[1]).all())

    def probabilities(self) -> torch.Tensor:
        n = self.interval.size
        if not self.warmed_up():
            return torch.full((n,), 1.0 / n, dtype=torch.float64)
        rms = self.losses.pow(2).mean(dim=1).sqrt()
        p = rms / rms.sum()
        return p * (1 - self.uniform_share) + self.uniform_share / n

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.probabilities()
        offsets = torch.multinomial(p, batch_size, replacement=True, generator=generator)
        weights = 1.0 / (self.interval.size * p[offsets])
        return offsets + self.interval.lo, weights.float()

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        for offset, loss in zip((t.cpu() - self.interval.lo).tolist(), losses.detach().cpu().double().tolist()):
            if self.counts[offset] == self.losses.shape[1]:  # full: drop the oldest
                self.losses[offset, :-1] = self.losses[offset, 1:].clone()
                self.losses[offset, -1] = loss
            else:
                self.losses[offset, self.counts[offset]] = loss
                self.counts[offset] += 1

    def state_dict(self) -> dict:
        return {"losses": self.losses.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.losses, self.counts = state["losses"].clone(), state["counts"].clone()
