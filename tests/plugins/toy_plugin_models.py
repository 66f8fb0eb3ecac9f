"""The toy plug-in's model and interval method (see toy_plugin.py)."""
import torch
from torch import nn

from mdmlib.intervals.choice import IntervalChoice


class ToyDenoiser(nn.Module):
    """Two convolutions and a timestep bias: as small as a denoiser gets."""

    def __init__(self, in_channels: int, resolution: int, width: int):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.conv_in = nn.Conv2d(in_channels, width, 3, padding=1)
        self.time = nn.Linear(1, width)
        self.conv_out = nn.Conv2d(width, in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x) + self.time(t.float()[:, None] / 1000.0)[:, :, None, None]
        return self.conv_out(torch.relu(h))


def select_squares(context) -> IntervalChoice:
    """Cut points at T (k/n)^2: narrow intervals where the noise is low."""
    T, n = context.timesteps, context.n
    return IntervalChoice("squares", T, tuple(round(T * (k / n) ** 2) for k in range(1, n)), {"rule": "T (k/n)^2"})
