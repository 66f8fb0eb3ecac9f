"""The ADM-style U-Net on 8x8 inputs: shapes, attention labels and recording, init, gradients."""
from __future__ import annotations

import re

import pytest
import torch

from mdmlib.config import ModelConfig
from mdmlib.models.hooks import attention_blocks, record_attention
from mdmlib.models.registry import new_model
from mdmlib.models.unet import AttentionBlock, ResBlock, UNet

TINY = ModelConfig(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                   channels_per_head=4, dropout=0.0)
THREE_LEVELS = ModelConfig(base_channels=8, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(4, 2),
                           channels_per_head=4, dropout=0.0)


def zero_initialised(model: UNet) -> list[torch.nn.Parameter]:
    """The layers ADM zero-initialises: the output conv, each ResBlock's last conv, each attention projection."""
    layers = [model.out[-1]]
    layers += [m.out_layers[-1] for m in model.modules() if isinstance(m, ResBlock)]
    layers += [m.proj for m in model.modules() if isinstance(m, AttentionBlock)]
    return [p for layer in layers for p in layer.parameters()]


def perturbed(cfg: ModelConfig = TINY, in_channels: int = 1, seed: int = 0, only_out: bool = False) -> UNet:
    torch.manual_seed(seed)
    model = new_model(cfg, in_channels, 8)
    params = list(model.out[-1].parameters()) if only_out else zero_initialised(model)
    with torch.no_grad():
        for p in params:
            p.normal_(0.0, 0.2)
    return model.eval()


def inputs(batch=2, channels=1, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, 8, 8, generator=gen), torch.tensor([3, 700, 250, 999][:batch])


@pytest.mark.parametrize("cfg,channels", [(TINY, 1), (TINY, 3), (THREE_LEVELS, 1), (THREE_LEVELS, 3)])
def test_output_shape_equals_input_shape(cfg, channels):
    model = perturbed(cfg, channels)
    x, t = inputs(batch=3, channels=channels)
    out = model(x, t)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


def forward_order_labels(model: UNet, in_channels: int = 1) -> list[str]:
    """Labels of the attention blocks in the order a forward pass runs them."""
    order: list[str] = []
    hooks = [b.register_forward_hook(lambda m, i, o: order.append(m.label)) for b in attention_blocks(model)]
    with torch.no_grad():
        model(torch.zeros(1, in_channels, 8, 8), torch.tensor([0]))
    for h in hooks:
        h.remove()
    return order


def test_attention_labels_are_resolution_ordinal_and_unique():
    model = new_model(THREE_LEVELS, 1, 8)
    labels = [b.label for b in attention_blocks(model)]
    assert all(re.fullmatch(r"\d+-\d+", label) for label in labels)
    assert len(set(labels)) == len(labels)
    # 8 -> 4 -> 2: down at 4 then 2, middle at 2, two up blocks at 2, then two up blocks at 4; the
    # ordinal counts blocks of one resolution in the order the forward pass meets them.
    assert forward_order_labels(model) == ["4-1", "2-1", "2-2", "2-3", "2-4", "4-2", "4-3"]


def test_attention_sits_only_at_the_listed_resolutions():
    model = new_model(TINY, 1, 8)
    assert forward_order_labels(model) == ["4-1", "4-2", "4-3", "4-4"]
    # Heads follow channels_per_head: 16 channels at resolution 4 / 4 per head = 4 heads.
    assert {b.num_heads for b in attention_blocks(model)} == {4}


def test_recorded_attention_is_a_softmax_over_keys_and_changes_nothing():
    model = perturbed(THREE_LEVELS)
    x, t = inputs(batch=2)
    with torch.no_grad():
        plain = model(x, t)
        with record_attention(model) as recorded:
            recording = model(x, t)
    assert torch.equal(plain, recording)
    assert sorted(recorded) == sorted(b.label for b in attention_blocks(model))
    for label, calls in recorded.items():
        assert len(calls) == 1
        hw = int(label.split("-")[0]) ** 2
        heads = 16 // 4
        weights = calls[0]
        assert weights.shape == (2, heads, hw, hw)
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(dim=-1), torch.ones(2, heads, hw))
    # After the block the hooks are gone: another forward appends nothing anywhere.
    with torch.no_grad():
        model(x, t)
    assert all(len(calls) == 1 for calls in recorded.values())
    assert all(b.recorded is None for b in attention_blocks(model))


def test_recording_appends_one_entry_per_forward_call():
    model = perturbed()
    x, t = inputs(batch=1)
    with torch.no_grad(), record_attention(model) as recorded:
        model(x, t)
        model(x, t)
    assert {label: len(calls) for label, calls in recorded.items()} == {f"4-{k}": 2 for k in (1, 2, 3, 4)}


def test_recording_is_switched_off_even_when_the_block_raises():
    model = perturbed()
    with pytest.raises(RuntimeError, match="boom"):
        with record_attention(model):
            raise RuntimeError("boom")
    assert all(b.recorded is None for b in attention_blocks(model))


def test_output_is_exactly_zero_at_init():
    torch.manual_seed(0)
    model = new_model(TINY, 3, 8)
    # The code zero-initialises the output conv (weight and bias): check that first.
    assert torch.count_nonzero(model.out[-1].weight) == 0 and torch.count_nonzero(model.out[-1].bias) == 0
    x, t = inputs(batch=2, channels=3)
    assert torch.equal(model(x, t), torch.zeros_like(x))


def test_every_parameter_takes_part_in_the_graph_with_only_the_out_conv_perturbed():
    model = perturbed(only_out=True).train()
    x, t = inputs(batch=2)
    model(x, t).pow(2).mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert model.out[-1].weight.grad.abs().sum() > 0


def test_gradients_reach_every_parameter_once_zero_initialised_layers_are_perturbed():
    # With only the out conv perturbed, every layer inside a still-zero ResBlock branch or attention
    # projection gets an exactly-zero gradient (ADM's zero_module), so perturb all zero-initialised layers.
    model = perturbed().train()
    x, t = inputs(batch=2)
    model(x, t).pow(2).mean().backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_timestep_changes_the_output_and_each_sample_uses_its_own_timestep():
    model = perturbed()
    x, _ = inputs(batch=1)
    with torch.no_grad():
        early = model(x, torch.tensor([10]))
        late = model(x, torch.tensor([900]))
        both = model(x.repeat(2, 1, 1, 1), torch.tensor([10, 900]))
    assert (early - late).abs().max() > 1e-3
    torch.testing.assert_close(both[0:1], early)
    torch.testing.assert_close(both[1:2], late)
