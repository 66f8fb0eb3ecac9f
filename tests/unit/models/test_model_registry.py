"""The model registry: a checkpoint's spec alone rebuilds the model; what does not fit is refused."""
from __future__ import annotations

import pytest
import torch

from mdmlib.config import ModelConfig
from mdmlib.models import registry
from mdmlib.models.registry import (
    Architecture,
    build_model,
    model_spec,
    new_model,
    register_architecture,
)
from mdmlib.models.unet import UNet
from mdmlib.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)

TINY = ModelConfig(base_channels=8, channel_mult=(1, 2), attention_resolutions=(4,), channels_per_head=8)


def test_spec_holds_every_constructor_argument_as_plain_values():
    spec = model_spec(TINY, 3, 8)
    assert spec == {"architecture": "unet", "arguments": {
        "in_channels": 3, "resolution": 8, "base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
        "attention_resolutions": [4], "channels_per_head": 8, "dropout": 0.1}}
    model = build_model(spec)
    assert isinstance(model, UNet) and model.spec == spec and model.in_channels == 3


def test_new_model_draws_the_same_weights_as_the_class_itself():
    torch.manual_seed(0)
    built = new_model(TINY, 1, 8)
    torch.manual_seed(0)
    direct = UNet(**model_spec(TINY, 1, 8)["arguments"])
    for a, b in zip(built.state_dict().values(), direct.state_dict().values()):
        assert torch.equal(a, b)


def test_a_checkpoint_rebuilds_its_model_from_the_spec_alone(tmp_path):
    model = new_model(TINY, 1, 8).eval()
    for p in model.parameters():
        p.data.normal_()
    payload = {"model_spec": model.spec, "config": {}, "name": "m", "in_channels": 1, "resolution": 8,
               "interval": [0, 10], "recipe": "adm", "step": 1, "ema": model.state_dict()}
    save_checkpoint(tmp_path / "m.pt", payload)
    loaded = model_from_checkpoint(load_checkpoint(tmp_path / "m.pt"))  # config is empty: not read
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([1, 9])
    with torch.no_grad():
        assert torch.equal(loaded(x, t), model(x, t))


@pytest.mark.parametrize("spec, message", [
    ({"architecture": "no_such_net", "arguments": {}}, "unknown architecture 'no_such_net'"),
    ({"architecture": "unet", "arguments": {"in_channels": 1, "resolution": 8, "depth": 3}}, "do not fit"),
])
def test_an_unknown_or_unfitting_spec_is_refused(tmp_path, spec, message):
    payload = {"model_spec": spec, "config": {}, "name": "m", "in_channels": 1, "resolution": 8,
               "interval": [0, 10], "recipe": "adm", "step": 1, "ema": {}}
    save_checkpoint(tmp_path / "m.pt", payload)
    with pytest.raises(CheckpointError, match=message):
        model_from_checkpoint(load_checkpoint(tmp_path / "m.pt"))


def test_a_malformed_spec_is_refused_at_load_with_the_file_named(tmp_path):
    save_checkpoint(tmp_path / "m.pt", {"model_spec": "unet", "config": {}, "name": "m", "in_channels": 1,
                                        "resolution": 8, "interval": [0, 10], "recipe": "adm", "step": 1, "ema": {}})
    with pytest.raises(CheckpointError, match="m.pt: model_spec is not"):
        load_checkpoint(tmp_path / "m.pt")


def test_a_name_is_registered_once(monkeypatch):
    monkeypatch.setattr(registry, "ARCHITECTURES", dict(registry.ARCHITECTURES))
    with pytest.raises(ValueError, match="'unet' is already registered"):
        register_architecture(Architecture("unet", "elsewhere:Net", lambda cfg, c, r: {}))
