"""mdmlib's Adam against torch.optim's: the same weights bit for bit, and state dicts either way."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import REPO
from tiny_models import perturbed_unet

from mdmlib.core.adam import Adam


def losses_of(model: torch.nn.Module, step: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(step)
    x, t = torch.randn(4, 1, 8, 8, generator=gen), torch.randint(0, 1000, (4,), generator=gen)
    return (model(x, t) - x).square().mean()


def train(model: torch.nn.Module, optimizer, steps: range) -> None:
    for step in steps:
        optimizer.zero_grad(set_to_none=True)
        losses_of(model, step).backward()
        optimizer.step()


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


OPTIMIZERS = {  # name -> (mdmlib's, torch.optim's): the training loop's Adam, the routing agent's AdamW
    "adam": (lambda p: Adam(p, lr=1e-3), lambda p, **kw: torch.optim.Adam(p, lr=1e-3, **kw)),
    "adamw": (lambda p: Adam(p, lr=1e-3, weight_decay=0.1, decoupled_weight_decay=True),
              lambda p, **kw: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.1, **kw)),
    "adam_l2": (lambda p: Adam(p, lr=1e-3, weight_decay=0.1),
                lambda p, **kw: torch.optim.Adam(p, lr=1e-3, weight_decay=0.1, **kw)),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("foreach", [None, True])  # None: torch's CPU default, the single-tensor loop
def test_the_weights_equal_torch_optims_bit_for_bit(name, foreach):
    ours, theirs = OPTIMIZERS[name]
    a, b = perturbed_unet(seed=1), perturbed_unet(seed=1)
    train(a, ours(a.parameters()), range(12))
    train(b, theirs(b.parameters(), foreach=foreach), range(12))
    changed = [not torch.equal(w, w0) for w, w0 in zip(weights(a), weights(perturbed_unet(seed=1)))]
    assert sum(changed) > len(changed) // 2  # the steps moved the weights
    assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b)))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_state_dict_resumes_under_the_other_to_the_same_weights(name):
    """Five steps under one, its state dict into the other, five more: the same as ten under torch's."""
    ours, theirs = OPTIMIZERS[name]
    reference = perturbed_unet(seed=2)
    train(reference, theirs(reference.parameters()), range(10))
    for first, second in ((ours, theirs), (theirs, ours)):
        model = perturbed_unet(seed=2)
        before = first(model.parameters())
        train(model, before, range(5))
        after = second(model.parameters())
        after.load_state_dict(before.state_dict())
        train(model, after, range(5, 10))
        assert all(torch.equal(x, y) for x, y in zip(weights(model), weights(reference)))
    saved = ours(reference.parameters()).state_dict()
    assert saved["param_groups"][0]["params"] == list(range(len(list(reference.parameters()))))


def test_a_state_dict_of_another_model_is_refused():
    small, big = torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    saved = Adam(small.parameters()).state_dict()
    with pytest.raises(ValueError, match="holds 2 parameters, this model 4"):
        Adam(big.parameters()).load_state_dict(saved)


def test_a_training_run_imports_no_dynamo(tmp_path):
    """What the optimizer is for: the training loop's steps without torch.optim's import of
    torch._dynamo (seconds of every training job's start on a 2-core CPU)."""
    code = f"""import sys, numpy as np, torch
from mdmlib.config import load_config
from mdmlib.core.intervals import Interval
from mdmlib.training.job import TrainJob, snapshot_steps
from mdmlib.training.loop import run_training
cfg = load_config({str(REPO / "configs/smoke.yaml")!r})
images = np.random.default_rng(0).integers(0, 256, (32, 1, 8, 8), dtype=np.uint8)
state = run_training(cfg, TrainJob("t", Interval(0, 1000), 3, snapshot_steps(3, 1)), images, {str(tmp_path)!r},
                     torch.device("cpu"), log=lambda line: None)
print(state.step, sorted(k for k in sys.modules if k.startswith("torch._dynamo")))"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "3 []"


def test_a_state_dict_that_does_not_name_the_decay_kind_keeps_the_optimizers():
    """Older torch.optim.AdamW dicts lack 'decoupled_weight_decay': AdamW must stay AdamW on resume."""
    model = torch.nn.Linear(2, 2)
    saved = Adam(model.parameters(), weight_decay=0.1, decoupled_weight_decay=True).state_dict()
    del saved["param_groups"][0]["decoupled_weight_decay"]
    resumed = Adam(model.parameters(), weight_decay=0.1, decoupled_weight_decay=True)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["decoupled_weight_decay"] is True
