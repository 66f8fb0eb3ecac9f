"""Timestep samplers: small plug-in objects (improved-diffusion's ScheduleSampler).

A sampler returns timestep indices and per-sample loss weights; an expert's sampler
is uniform over its own interval. A training recipe is the choice of sampler
(``make_sampler``); every recipe combines with any interval.
"""
from __future__ import annotations

import math

import torch

from mdmlib.core.intervals import Interval
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.training.job import RECIPES


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

    The weights are not normalised, as the P2W authors trained (k = 1, gamma = 1 in MDM): with
    those, lambda_t = 1 - alpha-bar_t <= 1, so each step's loss is smaller than ADM's, most of
    all at small t.
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


class SoftTruncationSampler(UniformIntervalSampler):
    """Soft truncation (Kim et al. 2021): each mini-batch draws its smallest diffusion time
    tau from the prior P_k(tau) ~ 1 / tau^k, then trains on t uniform from tau to the top.

    The paper's setting (continuous VP SDE, time in [eps, 1]): eps = 1e-5 and k = 1, a
    log-uniform tau (official code, DDPM++ configs for ImageNet-32, which MDM follows, and
    CelebA; its deepest CIFAR-10 FID config uses k = 0.9). Weights stay 1: the softening of
    the truncation is the whole method.

    Discrete time: tau is continuous in paper steps (t = 1..T) and the smallest trainable
    time is one step, so eps = 1 step (the paper's eps/T = 1e-5 has no discrete
    counterpart). Within an interval (lo, hi] the same power law in absolute time is
    restricted to [lo + 1, hi], and the batch trains on paper steps floor(tau)..hi, i.e.
    indices ``floor(tau) - 1 .. hi - 1``. On (0, T] this is the paper's method; an expert
    keeps the baseline's preference for small truncations inside its own interval.
    """

    def __init__(self, interval: Interval, k: float = 1.0):
        super().__init__(interval)
        self.k, self.a, self.b = k, float(interval.lo + 1), float(interval.hi)

    def prior_cdf(self, tau: torch.Tensor) -> torch.Tensor:
        """P(truncation <= tau) for tau in [lo + 1, hi] (paper steps)."""
        a, b, k = self.a, self.b, self.k
        if a == b:
            return (tau >= a).double()
        if k == 1.0:
            return torch.log(tau / a) / math.log(b / a)
        return (tau ** (1 - k) - a ** (1 - k)) / (b ** (1 - k) - a ** (1 - k))

    def draw_truncation(self, generator: torch.Generator) -> float:
        """One tau from the prior by inverse CDF (paper steps, continuous)."""
        u = torch.rand(1, generator=generator, dtype=torch.float64).item()
        a, b, k = self.a, self.b, self.k
        if k == 1.0:
            return a * (b / a) ** u
        return (a ** (1 - k) + u * (b ** (1 - k) - a ** (1 - k))) ** (1 / (1 - k))

    def sample_with_truncation(self, batch_size: int, generator: torch.Generator
                               ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(t, weights, tau): t are indices, none below the truncation index floor(tau) - 1."""
        tau = self.draw_truncation(generator)
        lowest = min(int(math.floor(tau)) - 1, self.interval.hi - 1)
        t = torch.randint(lowest, self.interval.hi, (batch_size,), generator=generator)
        return t, torch.ones(batch_size), tau

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        t, weights, _ = self.sample_with_truncation(batch_size, generator)
        return t, weights


class StagedSampler(UniformIntervalSampler):
    """The multi-stage paper's Algorithm 4: every step trains each stage on its share of the batch
    (``batch_size / n`` samples each, the first stages one more when it does not divide; t uniform
    inside the stage), stage-major (stage 1 first), so
    a step sees as many samples as a unified model's step and all parameters update once.

    Data-parallel with N processes (N a multiple of the n stages), the even split of that batch
    hands each process samples of one stage only: Algorithm 3 (process p trains stage p // (N/n)).
    DDP then averages every gradient over all N processes, so the shared encoder gets the mean
    over stages and each decoder its own stage's gradient over n, exactly as the single-process
    step on the mean loss of the whole staged batch: the two algorithms take the same steps.
    """

    def __init__(self, stages: list[Interval]):
        super().__init__(Interval(stages[0].lo, stages[-1].hi))
        self.stages = list(stages)

    def stage_index(self, t: int) -> int:
        return next(k for k, s in enumerate(self.stages) if s.lo <= t < s.hi)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.stages)
        shares = [batch_size // n + (k < batch_size % n) for k in range(n)]
        t = torch.cat([torch.randint(s.lo, s.hi, (share,), generator=generator) for s, share in zip(self.stages, shares)])
        return t, torch.ones(batch_size)


def make_sampler(recipe: str, interval: Interval, schedule: NoiseSchedule) -> UniformIntervalSampler:
    """The timestep sampler of a training recipe, with the papers' settings.

    adm: uniform t. p2w: uniform t, unnormalised weights 1 / (1 + SNR(t)) (k = gamma = 1,
    as MDM sets them). soft_truncation: k = 1. importance: 10 losses per timestep, 0.1 %
    uniform share (improved-diffusion's values).
    """
    if recipe == "adm":
        return UniformIntervalSampler(interval)
    if recipe == "p2w":
        return P2WeightedSampler(interval, schedule.snr(), k=1.0, gamma=1.0)
    if recipe == "soft_truncation":
        return SoftTruncationSampler(interval, k=1.0)
    if recipe == "importance":
        return LossAwareSampler(interval, history=10, uniform_share=0.001)
    raise ValueError(f"unknown training recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
