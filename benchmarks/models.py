"""Model efficiency: the project's U-Net against diffusers' ``UNet2DModel`` of a similar size.

The diffusers model mirrors ``ModelConfig`` (widths, residual blocks per level, attention at
the same resolutions and head width, time embedding 4x the base width, the same dropout).
MACs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix
products, attention's QK^T and AV included; elementwise work is not counted). On the CPU its
registry misses PyTorch's fused attention kernel, which diffusers calls, so that kernel's
two products are added here. diffusers is optional (``pip install -e '.[bench]'``); without
it the benchmark reports the project's model alone and says why.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.timing import figure, paired_ratio
from mdmlib.config import ModelConfig
from mdmlib.models.macs import count_parameters, forward_macs
from mdmlib.models.registry import new_model


def diffusers_counterpart(cfg: ModelConfig, channels: int, resolution: int) -> nn.Module:
    """``UNet2DModel`` shaped like the project's U-Net for ``cfg``; raises ImportError without diffusers."""
    from diffusers import UNet2DModel

    widths = [cfg.base_channels * m for m in cfg.channel_mult]
    levels = [resolution // 2**i for i in range(len(widths))]
    attn = [r in cfg.attention_resolutions for r in levels]
    # one group count for all widths: the smallest of the project's per-width counts
    groups = min(math.gcd(32, max(1, w // 4)) for w in widths)
    return UNet2DModel(
        sample_size=resolution, in_channels=channels, out_channels=channels, block_out_channels=tuple(widths),
        layers_per_block=cfg.num_res_blocks, attention_head_dim=cfg.channels_per_head, norm_num_groups=groups,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        add_attention=attn[-1], dropout=cfg.dropout, resnet_time_scale_shift="scale_shift",
    )


def _step_seconds(forward: Callable, params, x, t, noise, steps: int) -> float:
    optimizer = torch.optim.Adam(params, lr=2e-4)
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.mse_loss(forward(x, t), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def model_efficiency(cfg: ModelConfig, channels: int, resolution: int, batch: int, steps: int, repeats: int) -> dict:
    """Parameters, forward MACs per image and training-step time (paired repeats) of both models."""
    torch.manual_seed(0)
    ours = new_model(cfg, channels, resolution).train()
    x, noise = torch.randn(2, batch, channels, resolution, resolution)
    t = torch.randint(0, 1000, (batch,))
    result = {"batch": batch, "resolution": resolution, "channels": channels, "steps": steps, "repeats": repeats,
              "ours": {"parameters": count_parameters(ours), "forward_macs_per_image": forward_macs(ours, x[:1], t[:1])}}
    result["figures"] = _size_figures("ours", result["ours"])
    try:
        theirs = diffusers_counterpart(cfg, channels, resolution).train()
    except ImportError as err:
        return result | {"status": "skipped", "message": f"diffusers is not installed ({err}): pip install -e '.[bench]'"}
    forward = lambda xx, tt: theirs(xx, tt).sample  # noqa: E731
    result["diffusers"] = {"parameters": count_parameters(theirs), "forward_macs_per_image": forward_macs(forward, x[:1], t[:1]),
                           "config": {k: v for k, v in theirs.config.items() if not k.startswith("_")}}
    _step_seconds(ours, ours.parameters(), x, t, noise, 2)  # warm-up: allocator, first-call dispatch
    _step_seconds(forward, theirs.parameters(), x, t, noise, 2)
    timed = paired_ratio(lambda: _step_seconds(ours, ours.parameters(), x, t, noise, steps),
                         lambda: _step_seconds(forward, theirs.parameters(), x, t, noise, steps), repeats)
    o, d = result["ours"], result["diffusers"]
    result["figures"] += _size_figures("diffusers", d) + [
        figure("parameters, ours / diffusers", [o["parameters"] / d["parameters"]]),
        figure("forward MACs per image, ours / diffusers", [o["forward_macs_per_image"] / d["forward_macs_per_image"]]),
        figure(f"training-step time at batch {batch}, ours / diffusers", timed["ratios"]),
        figure("  ours, per step", [1000 * s for s in timed["numerator_s"]], "ms"),
        figure("  diffusers, per step", [1000 * s for s in timed["denominator_s"]], "ms"),
    ]
    return result | {"status": "ok", **timed}


def _size_figures(name: str, sizes: dict) -> list[dict]:
    return [figure(f"parameters, {name}", [sizes["parameters"] / 1e6], "M"),
            figure(f"forward MACs per image (attention included), {name}", [sizes["forward_macs_per_image"] / 1e6], "M")]
