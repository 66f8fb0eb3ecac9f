"""Training the Expert Routing Agent (supp. Alg. 1) on two frozen tiny experts."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from tiny_models import perturbed_unet

from mdmlib.config import load_config
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.models.elastic import depth_layers, gated_forward, prune_subnetwork
from mdmlib.pruning.scheme import spec_macs
from mdmlib.routing.agent import ExpertRoutingAgent, ExpertShape, era_objective
from mdmlib.routing.agent_training import (
    TIMING_COLUMNS,
    AgentTrainer,
    load_experts,
    smallest_macs,
    train_routing_agent,
    write_agent_outputs,
)
from mdmlib.training.checkpoint import save_checkpoint

INTERVALS = ([0, 400], [400, 1000])
CPU = torch.device("cpu")


def quiet(line: str) -> None:
    pass


def agent_config(iterations: int, learning_rate: float = 0.01):
    cfg = load_config("config.yaml")
    agent = replace(cfg.diffpruning.agent, iterations=iterations, batch_size=4, learning_rate=learning_rate,
                    input_dim=8, hidden=16)
    return replace(cfg, diffpruning=replace(cfg.diffpruning, agent=agent))


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    """Two tiny elastic width experts (3 depth layers each) as checkpoints, and training images."""
    folder, cfg, paths = tmp_path_factory.mktemp("experts"), load_config("config.yaml"), []
    for k, interval in enumerate(INTERVALS):
        model = perturbed_unet(seed=k)
        spec = {"architecture": "elastic_unet", "arguments": {**model.spec["arguments"], "elastic": "width"}}
        weights = model.state_dict()
        paths.append(folder / f"expert_{k}.pt")
        save_checkpoint(paths[-1], {"model_spec": spec, "config": cfg.to_dict(), "name": f"expert_{k}",
                                    "in_channels": 1, "resolution": 8, "interval": interval, "recipe": "adm",
                                    "step": 5, "model": weights, "ema": weights})
    images = np.random.default_rng(0).integers(0, 256, (16, 1, 8, 8), dtype=np.uint8)
    return paths, images


@pytest.fixture(scope="module")
def trained(experts):
    paths, images = experts
    return train_routing_agent(paths, images, 0.5, agent_config(iterations=30), log=quiet,
                               names=["expert_0", "expert_1"])


def test_the_hard_mixture_moves_to_the_budget(trained):
    curve = pd.DataFrame(trained["curve"])
    assert len(curve) == trained["iterations"] == 30
    assert abs(curve.hard_macs_ratio.iloc[0] - 0.5) > abs(trained["macs_ratio"] - 0.5)
    assert trained["macs_ratio"] == pytest.approx(0.5, abs=0.04)
    assert curve.macs_term.iloc[-5:].mean() < curve.macs_term.iloc[:5].mean()
    assert curve.hard_macs_ratio.iloc[-1] == pytest.approx(trained["macs_ratio"])  # the final architecture's


def test_the_architecture_is_each_experts_pruned_network(experts, trained):
    paths, _ = experts
    full = spec_macs(perturbed_unet().spec)
    assert trained["full_macs"] == full and trained["budget"] == 0.5
    for path, interval, chosen in zip(paths, INTERVALS, trained["experts"]):
        model = load_experts([path], CPU)[0].model
        pruned = prune_subnetwork(model, chosen["groups"], chosen["heads"], [not d for d in chosen["depth"]])
        assert chosen["macs"] == spec_macs(pruned.spec)
        assert chosen["macs_ratio"] == chosen["macs"] / full and chosen["interval"] == interval
        assert len(chosen["depth"]) == len(depth_layers(model)) and chosen["depth"][0]  # the first is always kept
    mixture = (400 * trained["experts"][0]["macs"] + 600 * trained["experts"][1]["macs"]) / 1000
    assert trained["mixture_macs"] == pytest.approx(mixture) and trained["macs_ratio"] == pytest.approx(mixture / full)
    assert trained["agent_seconds"] > 0 and trained["expert_seconds"] > 0
    assert trained["agent_share"] == pytest.approx(
        trained["agent_seconds"] / (trained["agent_seconds"] + trained["expert_seconds"]))
    assert trained["seconds"] >= trained["agent_seconds"] + trained["expert_seconds"]


def test_two_runs_are_identical(experts):
    paths, images = experts
    runs = [train_routing_agent(paths, images, 0.6, agent_config(iterations=4), log=quiet) for _ in range(2)]
    curves = [pd.DataFrame(r["curve"]).drop(columns=list(TIMING_COLUMNS)) for r in runs]
    pd.testing.assert_frame_equal(*curves, check_exact=True)
    assert runs[0]["experts"] == runs[1]["experts"]



def test_a_killed_agent_resumes_to_the_uninterrupted_result(experts, tmp_path):
    paths, images = experts
    cfg = agent_config(iterations=20)  # a state at every 2nd iteration (every progress line)
    whole = train_routing_agent(paths, images, 0.6, cfg, log=quiet)
    state = tmp_path / "agent" / "latest.pt"
    assert train_routing_agent(paths, images, 0.6, cfg, log=quiet, state_path=state, stop_after=8) is None
    logs = []
    resumed = train_routing_agent(paths, images, 0.6, cfg, log=logs.append, state_path=state)
    assert "routing agent resumed at iteration 8" in logs
    curves = [pd.DataFrame(r["curve"]).drop(columns=list(TIMING_COLUMNS)) for r in (whole, resumed)]
    pd.testing.assert_frame_equal(*curves, check_exact=True)
    assert resumed["experts"] == whole["experts"]
    logs.clear()  # another budget's state is not resumed
    train_routing_agent(paths, images, 0.7, cfg, log=logs.append, state_path=state, stop_after=2)
    assert any("other settings, starting afresh" in line for line in logs)
    state.write_bytes(b"truncated")  # a corrupt state is refused, never silently replaced
    with pytest.raises(ValueError, match="unreadable"):
        train_routing_agent(paths, images, 0.7, cfg, log=quiet, state_path=state)
    assert state.read_bytes() == b"truncated"

def trainer_of(paths, cfg, budget: float = 0.5):
    experts = load_experts(paths, CPU)
    shapes = [ExpertShape.from_table(e.table, range(e.table.depth_layers)) for e in experts]
    agent = ExpertRoutingAgent(shapes, 8, 16, seed=cfg.training.seed, tau=cfg.diffpruning.agent.temperature)
    full = float(spec_macs(experts[0].model.spec))
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    return AgentTrainer(experts, agent, schedule, budget * full, full, cfg, CPU)


def test_only_the_agent_learns(experts):
    paths, images = experts
    trainer = trainer_of(paths, agent_config(iterations=3))
    before = [{k: v.clone() for k, v in e.model.state_dict().items()} for e in trainer.experts]
    agent_before = [p.detach().clone() for p in trainer.agent.parameters()]
    for _ in range(3):
        trainer.step(images)
    for expert, state in zip(trainer.experts, before):
        assert all(torch.equal(v, state[k]) for k, v in expert.model.state_dict().items())
        assert all(not p.requires_grad and p.grad is None for p in expert.model.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(trainer.agent.parameters(), agent_before))


def test_the_split_gradient_is_the_objectives_gradient(experts):
    """The experts' pass and the agent's pass together give the gradient of J (Eq. 15) at beta."""
    paths, images = experts
    cfg = agent_config(iterations=1, learning_rate=0.0)  # AdamW with lr 0 leaves beta and its gradient
    split = trainer_of(paths, cfg)
    split.step(images)
    joint = trainer_of(paths, cfg)
    batch = joint._batch(images)
    soft = joint.agent(joint.gumbel)
    losses = [F.mse_loss(gated_forward(e.model, x_t, t, g), noise)
              for e, g, (x_t, t, noise) in zip(joint.experts, soft, batch)]
    total, _, _ = era_objective(losses, joint.mixture(soft), joint.budget)
    total.backward()
    for a, b in zip(split.agent.parameters(), joint.agent.parameters()):
        assert a.grad is not None and torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7)


def test_an_unreachable_budget_is_refused_before_training(experts, tmp_path):
    paths, images = experts
    table = load_experts(paths[:1], CPU)[0].table
    floor = smallest_macs(table) / spec_macs(perturbed_unet().spec)
    assert 0 < floor < 0.5
    cfg = agent_config(iterations=10**9)  # refused at once, or this test would not end
    with pytest.raises(ValueError, match=r"diffpruning\.budgets"):
        train_routing_agent(paths, images, floor * 0.9, cfg, log=quiet)
    assert list(tmp_path.iterdir()) == []


def test_the_outputs_round_trip(trained, tmp_path):
    architecture, curve = tmp_path / "agent" / "architecture.json", tmp_path / "agent" / "curve.csv"
    write_agent_outputs(trained, architecture, curve)
    stored = json.loads(architecture.read_text())
    assert stored == {k: v for k, v in trained.items() if k != "curve"}
    assert set(stored) == {"budget", "full_macs", "mixture_macs", "macs_ratio", "iterations", "seconds",
                           "agent_seconds", "expert_seconds", "agent_share", "experts"}
    assert set(stored["experts"][0]) == {"name", "interval", "groups", "heads", "depth", "macs", "macs_ratio"}
    table = pd.read_csv(curve)
    assert list(table.columns) == ["iteration", "loss_term", "macs_term", "total", "soft_macs_ratio",
                                   "hard_macs_ratio", *TIMING_COLUMNS]
    pd.testing.assert_frame_equal(table, pd.DataFrame(trained["curve"]), check_exact=False, rtol=1e-12)
    assert sorted(p.name for p in architecture.parent.iterdir()) == ["architecture.json", "curve.csv"]


def test_the_configs_budgets_are_checked_against_the_agents_floor_on_the_meta_device():
    from mdmlib.config import load_config
    from mdmlib.routing.agent_training import check_budgets

    default = load_config({})  # the default U-Net: the agent's floor is 0.262 of its MACs
    check_budgets(default)  # 0.7, 0.5, 0.3: all reachable
    with pytest.raises(ValueError, match=r"config key 'diffpruning.budgets': \[0.25\] below 0.262"):
        check_budgets(load_config({"diffpruning": {"budgets": [0.5, 0.25]}}))
