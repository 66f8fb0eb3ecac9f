"""Tiny U-Nets for tests whose answers must depend on x and t."""
from __future__ import annotations

import torch

from mdmlib.config import ModelConfig
from mdmlib.models.registry import new_model
from mdmlib.models.unet import AttentionBlock, ResBlock, UNet


def tiny_config(dropout: float = 0.0) -> ModelConfig:
    return ModelConfig(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                       channels_per_head=4, dropout=dropout)


def perturbed_unet(seed: int = 0, scale: float = 0.1, dropout: float = 0.0, eval_mode: bool = True) -> UNet:
    """A tiny 8x8 U-Net with its zero-initialised layers (ADM's zero_module) drawn from N(0, scale^2),
    so its output and attention depend on the input."""
    torch.manual_seed(seed)
    model = new_model(tiny_config(dropout), 1, 8)
    layers = [model.out[-1]] + [m.out_layers[-1] for m in model.modules() if isinstance(m, ResBlock)]
    layers += [m.proj for m in model.modules() if isinstance(m, AttentionBlock)]
    with torch.no_grad():
        for layer in layers:
            for p in layer.parameters():
                p.normal_(0.0, scale)
    return model.eval() if eval_mode else model
