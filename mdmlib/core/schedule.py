"""Noise schedules as data, and the epsilon-prediction loss.

Timesteps are indexed 0..T-1 internally; index i is the paper's t = i + 1, so the
paper's interval (a, b] is the index range [a, b).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def linear_betas(timesteps: int) -> torch.Tensor:
    """Ho et al. (2020): betas linear from 1e-4 to 0.02, rescaled to T (improved-diffusion)."""
    scale = 1000 / timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)


def cosine_alphas_cumprod(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal (2021) Eq. 17, betas clipped at 0.999 as in their code."""
    f = lambda u: math.cos((u / timesteps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    betas = torch.tensor(
        [min(1 - f(i + 1) / f(i), 0.999) for i in range(timesteps)], dtype=torch.float64
    )
    return torch.cumprod(1 - betas, dim=0)


@dataclass(frozen=True)
class NoiseSchedule:
    """alpha-bar per timestep index; everything else derives from it."""

    alphas_cumprod: torch.Tensor  # float64, shape (T,)

    @classmethod
    def from_name(cls, name: str, timesteps: int) -> "NoiseSchedule":
        if name == "linear":
            return cls(torch.cumprod(1 - linear_betas(timesteps), dim=0))
        if name == "cosine":
            return cls(cosine_alphas_cumprod(timesteps))
        raise ValueError(f"unknown noise schedule {name!r}; expected 'linear' or 'cosine'")

    @property
    def timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    def snr(self) -> torch.Tensor:
        a = self.alphas_cumprod
        return a / (1 - a)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
        abar = self.alphas_cumprod.to(x0.device)[t].float().view(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def epsilon_loss_per_sample(model, schedule: NoiseSchedule, x0, t, noise) -> torch.Tensor:
    """MSE between the true and predicted noise, averaged per sample (shape (N,))."""
    x_t = schedule.q_sample(x0, t, noise)
    eps = model(x_t, t)
    return (eps - noise).pow(2).flatten(1).mean(dim=1)
