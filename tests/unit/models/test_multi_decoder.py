"""The multi-decoder U-Net: a shared encoder, one decoder per stage, batches routed by stage."""
from __future__ import annotations

import pytest
import torch

from mdmlib.models.macs import count_parameters, forward_macs
from mdmlib.models.multi_decoder import MultiDecoderUNet, nfe_weighted_macs, stage_costs
from mdmlib.models.registry import build_model
from mdmlib.models.unet import UNet
from mdmlib.sampling.ddim import ddim_timesteps
from mdmlib.training.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)

SHAPE = dict(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,), channels_per_head=4,
             dropout=0.0)


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Zero-initialised output layers make every decoder give 0: perturb all weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return model.eval()


def three_stage(seed: int = 0) -> MultiDecoderUNet:
    torch.manual_seed(seed)
    return perturbed(MultiDecoderUNet(1, 8, stage_boundaries=[442, 631], decoder_channels=[12, 8, 4], **SHAPE))


def test_one_stage_at_the_encoders_width_is_the_unet():
    torch.manual_seed(0)
    single = MultiDecoderUNet(1, 8, stage_boundaries=[], decoder_channels=[8], **SHAPE).eval()
    torch.manual_seed(0)
    unet = UNet(1, 8, **SHAPE).eval()

    def as_single(key: str) -> str:
        return f"decoders.0.{key}" if key.startswith(("up.", "out.")) else key

    initial = {as_single(k): v for k, v in unet.state_dict().items()}
    assert initial.keys() == single.state_dict().keys()
    assert all(torch.equal(v, single.state_dict()[k]) for k, v in initial.items())  # same draws, same order
    perturbed(unet)
    single.load_state_dict({as_single(k): v for k, v in unet.state_dict().items()})
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 400, 999])
    with torch.no_grad():
        assert torch.allclose(single(x, t), unet(x, t), atol=1e-6)


def test_a_mixed_batch_is_split_by_stage_and_reassembled_in_order():
    model = three_stage()
    x, t = torch.randn(6, 1, 8, 8), torch.tensor([999, 0, 441, 442, 630, 631])
    assert model.stage_of(t).tolist() == [2, 0, 0, 1, 1, 2]
    with torch.no_grad():
        together = model(x, t)
        one_by_one = torch.cat([model(x[i:i + 1], t[i:i + 1]) for i in range(6)])
    assert torch.allclose(together, one_by_one, atol=1e-5)  # float32 sums differ with the batch size
    assert not torch.allclose(together[0], together[5])  # different inputs, same stage: not a constant


def test_a_stage_loss_trains_the_shared_encoder_and_its_own_decoder_only():
    model = three_stage().train()
    x, t = torch.randn(4, 1, 8, 8), torch.full((4,), 500)  # stage 2
    model(x, t).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder_parameters())
    assert all(p.grad is not None for p in model.decoders[1].parameters())
    assert all(p.grad is None for k in (0, 2) for p in model.decoders[k].parameters())


def test_the_spec_rebuilds_it_through_a_checkpoint(tmp_path):
    spec = {"architecture": "multi_decoder",
            "arguments": {"in_channels": 1, "resolution": 8, "stage_boundaries": [442, 631],
                          "decoder_channels": [12, 8, 4], **{k: list(v) if isinstance(v, tuple) else v
                                                             for k, v in SHAPE.items()}}}
    model = perturbed(build_model(spec))
    save_checkpoint(tmp_path / "m.pt", {"model_spec": model.spec, "config": {}, "name": "m", "in_channels": 1,
                                        "resolution": 8, "interval": [0, 1000], "recipe": "adm", "step": 1,
                                        "ema": model.state_dict()})
    loaded = model_from_checkpoint(load_checkpoint(tmp_path / "m.pt"))
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([1, 500, 900])
    with torch.no_grad():
        assert isinstance(loaded, MultiDecoderUNet) and torch.equal(loaded(x, t), model(x, t))


def test_stage_costs_add_up_and_wider_decoders_cost_more():
    model = three_stage()
    rows = {r["part"]: r for r in stage_costs(model, torch.randn(1, 1, 8, 8))}
    encoder = rows["encoder (shared)"]
    for k in (1, 2, 3):
        stage, decoder = rows[f"stage {k}"], rows[f"decoder {k}"]
        assert stage["parameters"] == encoder["parameters"] + decoder["parameters"]
        assert stage["macs"] == encoder["macs"] + decoder["macs"]
    assert count_parameters(model) == encoder["parameters"] + sum(rows[f"decoder {k}"]["parameters"] for k in (1, 2, 3))
    assert rows["decoder 1"]["macs"] > rows["decoder 2"]["macs"] > rows["decoder 3"]["macs"] > 0
    assert rows["stage 2"]["macs"] == forward_macs(model, torch.randn(1, 1, 8, 8), torch.tensor([500]))
    steps = ddim_timesteps(1000, 10)
    counts = [sum(1 for s in steps if lo <= s < hi) for lo, hi in ((0, 442), (442, 631), (631, 1000))]
    expected = sum(c * rows[f"stage {k + 1}"]["macs"] for k, c in enumerate(counts)) / len(steps)
    assert nfe_weighted_macs(model, list(rows.values()), steps) == pytest.approx(expected)


@pytest.mark.parametrize("kwargs, message", [
    (dict(stage_boundaries=[631, 442], decoder_channels=[8, 8, 8]), "not ascending"),
    (dict(stage_boundaries=[442], decoder_channels=[8, 8, 8]), "3 decoder widths for 2 stages"),
    (dict(stage_boundaries=[442], decoder_channels=[8, 6]), "channels_per_head 4 must divide"),
])
def test_shapes_that_cannot_be_built_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiDecoderUNet(1, 8, **kwargs, **SHAPE)
