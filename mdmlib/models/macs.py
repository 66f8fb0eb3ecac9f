"""Model size: parameters and forward multiply-accumulates per image, attention matmuls included.

MACs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix
products, attention's QK^T and AV included; elementwise work is not counted). On the CPU its
registry misses PyTorch's fused attention kernel, so that kernel's two products are added here.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _fused_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """2 x (QK^T + AV) multiply-adds for (batch, heads, length, dim) shapes."""
    *lead, lq, d = query
    lk, dv = key[-2], value[-1]
    return 2 * math.prod(lead) * lq * lk * (d + dv)


def _fused_attention_ops() -> dict:
    ops = {}
    for name in ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_fused_attention_overrideable"):
        op = getattr(torch.ops.aten, name, None)
        if op is not None:
            ops[op] = _fused_attention_flops
    return ops


def forward_macs(model: Callable, x: torch.Tensor, t: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass per image."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_fused_attention_ops()) as counter:
        model(x, t)
    return counter.get_total_flops() // 2 // len(x)
