"""Attention recording: a context manager that keeps every attention block's weights of a forward pass."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from mdmlib.models.unet import AttentionBlock


def attention_blocks(model: nn.Module) -> list[AttentionBlock]:
    return [m for m in model.modules() if isinstance(m, AttentionBlock)]


@contextmanager
def record_attention(model: nn.Module):
    """Record the softmax weights of every attention layer while the block runs.

    Yields {label: list of (B, heads, HW, HW) tensors, one per forward call}. Labels
    repeat across experts of a mixture; each expert's calls are appended in order.
    """
    blocks = attention_blocks(model)
    recorded: dict[str, list[torch.Tensor]] = {}
    for block in blocks:
        block.recorded = recorded.setdefault(block.label, [])
    try:
        yield recorded
    finally:
        for block in blocks:
            block.recorded = None
