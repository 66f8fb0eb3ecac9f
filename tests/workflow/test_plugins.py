"""A toy architecture and a toy interval method, registered by a plug-in written for this test
alone (tests/plugins/), run through training, the checkpoint, loading, and the pipeline's rules:
nothing in mdmlib, the rules or the config names them."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, SMOKE_OUT, copy_workflow
from snakemake.utils import update_config

from mdmlib.config import load_config
from mdmlib.core.intervals import Interval
from mdmlib.intervals import registry as interval_registry
from mdmlib.intervals.choice import read_choice
from mdmlib.intervals.selection import select_intervals
from mdmlib.models import registry as model_registry
from mdmlib.routing.mixture import mixture_from_checkpoints
from mdmlib.training.checkpoint import load_checkpoint
from mdmlib.training.job import TrainJob
from mdmlib.training.loop import run_training, snapshot_path

PLUGIN_DIR = REPO / "tests" / "plugins"
OVERRIDES = {"plugins": ["toy_plugin"], "model": {"architecture": "toy_denoiser"}, "experts": {"intervals": "squares"},
             "intervals": {"study": {"methods": ["paper", "squares"]}}}
CPU = torch.device("cpu")


@pytest.fixture
def registries(monkeypatch):
    """The plug-in registers into copies of the registries, dropped after the test."""
    monkeypatch.setattr(model_registry, "ARCHITECTURES", dict(model_registry.ARCHITECTURES))
    monkeypatch.setattr(interval_registry, "METHODS", dict(interval_registry.METHODS))
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    for name in ("toy_plugin", "toy_plugin_models"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def smoke_config(**overrides):
    values = yaml.safe_load((REPO / "config.yaml").read_text())
    for source in (yaml.safe_load((REPO / "configs/smoke.yaml").read_text()), overrides):
        update_config(values, source)  # deep merge, as --configfile does
    return load_config(values)


def test_without_the_plugin_its_names_are_refused():
    with pytest.raises(ValueError, match="config key 'model.architecture'"):
        smoke_config(model={"architecture": "toy_denoiser"})
    with pytest.raises(ValueError, match="config key 'experts.intervals'"):
        smoke_config(experts={"intervals": "squares"})
    with pytest.raises(ValueError, match="config key 'plugins': cannot import 'no_such_plugin'"):
        smoke_config(plugins=["no_such_plugin"])


def test_toy_method_and_architecture_train_checkpoint_load_and_fine_tune(registries, tmp_path):
    cfg = smoke_config(**OVERRIDES)
    choice = select_intervals("squares", cfg, CPU)
    assert choice.boundaries == (111, 444) and [i.to_list() for i in choice.intervals][0] == [0, 111]
    images = np.random.default_rng(0).integers(0, 256, size=(32, 1, 8, 8), dtype=np.uint8)
    job = TrainJob("toy", choice.intervals[0], 6, (3, 6))
    state = run_training(cfg, job, images, tmp_path / "toy", CPU, log=lambda line: None)
    assert type(state.model).__name__ == "ToyDenoiser"
    ckpt = load_checkpoint(snapshot_path(tmp_path / "toy", 6))
    assert ckpt["model_spec"] == {"architecture": "toy_denoiser",
                                  "arguments": {"in_channels": 1, "resolution": 8, "width": 16}}
    # Loading rebuilds it from the file alone and serves its interval with the EMA weights.
    mixture = mixture_from_checkpoints([snapshot_path(tmp_path / "toy", 6)])
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 50, 110])
    with torch.no_grad():
        assert torch.equal(mixture(x, t), state.ema.eval()(x, t))
    # Fine-tuning on another interval starts from its raw and EMA weights, in its architecture.
    tuned = TrainJob("toy_tuned", Interval(111, 444), 2, (1, 2))
    start = run_training(cfg, tuned, images, tmp_path / "tuned", CPU, log=lambda line: None, stop_after=0,
                         init=snapshot_path(tmp_path / "toy", 6))
    for a, b in zip(start.model.state_dict().values(), ckpt["model"].values()):
        assert torch.equal(a, b)
    for a, b in zip(start.ema.state_dict().values(), ckpt["ema"].values()):
        assert torch.equal(a, b)
    run_training(cfg, tuned, images, tmp_path / "tuned", CPU, log=lambda line: None,
                 init=snapshot_path(tmp_path / "toy", 6))
    final = load_checkpoint(tmp_path / "tuned" / "latest.pt")
    assert final["init"]["name"] == "toy" and final["init"]["step"] == 6 and final["interval"] == [111, 444]


def test_toy_plugin_runs_through_the_pipeline_rules(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "toy.yaml").write_text(yaml.safe_dump(OVERRIDES))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGIN_DIR), os.environ.get("PYTHONPATH")]))}
    target = f"{SMOKE_OUT}/samples/mdm/point_2.npz"
    proc = subprocess.run([sys.executable, "-m", "snakemake", target, "--cores", "2", "--configfile",
                           "configs/smoke.yaml", "toy.yaml"], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    choice = read_choice(workdir / SMOKE_OUT / "intervals" / "squares_n3.json")
    assert choice.method == "squares" and choice.boundaries == (111, 444)
    experts = ["t0-111_i5", "t111-444_i13", "t444-1000_i22"]  # I_e = |tau_e|/T of the 40 iterations
    for name in experts:
        ckpt = load_checkpoint(workdir / SMOKE_OUT / "models" / name / "point_2.pt")
        assert ckpt["model_spec"]["architecture"] == "toy_denoiser" and ckpt["step"] == ckpt["iterations"]
    with np.load(workdir / target) as samples:
        assert samples["images"].shape == (64, 1, 8, 8) and samples["images"].dtype == np.uint8
        assert list(samples["checkpoint_names"]) == experts


def test_diffpruning_with_a_plugin_architecture_is_refused_before_any_job_naming_the_key(tmp_path):
    """Every other target runs the plug-in's network (above); DiffPruning cuts U-Nets only, and says
    so when its jobs enter the DAG."""
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "toy.yaml").write_text(yaml.safe_dump(OVERRIDES))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGIN_DIR), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "diffpruning", "--cores", "2", "--configfile",
                           "configs/smoke.yaml", "toy.yaml"], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode != 0 and "config key 'model.architecture'" in proc.stdout + proc.stderr
    assert not (workdir / SMOKE_OUT).exists()  # no job ran
