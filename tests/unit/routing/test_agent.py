"""The Expert Routing Agent: gate shapes and order, the STE, the MACs of Eq. 12-14 and the objective of Eq. 15."""
from __future__ import annotations

import pytest
import torch

from mdmlib.models.elastic import MacsTable, SubnetGates
from mdmlib.routing.agent import (
    ExpertRoutingAgent,
    ExpertShape,
    era_objective,
    expert_macs,
    keep_probabilities,
    kept_units,
    macs_regulariser,
    mixture_macs,
    round_ste,
)

SHAPES = [ExpertShape(blocks=(8, 4, 6), heads=(4, 2), depth=3, depth_rank=(2, 0, 1)),
          ExpertShape(blocks=(5,), heads=(), depth=0)]


def small_agent(seed: int = 0, shapes=SHAPES, **kwargs) -> ExpertRoutingAgent:
    return ExpertRoutingAgent(shapes, input_dim=16, hidden=32, seed=seed, **kwargs)


def toy_table(scale: float) -> MacsTable:
    """Three ResBlocks (two in depth layers) and one attention layer in depth layer 1."""
    return MacsTable(fixed=10.0 * scale, block_fixed=(4.0 * scale, 6.0 * scale, 5.0 * scale),
                     group_macs=(2.0 * scale, 1.0 * scale, 3.0 * scale), block_groups=(8, 16, 8),
                     block_depth=(None, 0, 1), head_fixed=(3.0 * scale,), head_macs=(5.0 * scale,),
                     heads=(4,), head_depth=(1,), depth_layers=2)


def whole(table: MacsTable) -> SubnetGates:
    return SubnetGates([None] * len(table.block_groups), [None] * len(table.heads), [None] * table.depth_layers)


def is_prefix(mask: torch.Tensor) -> bool:
    count = int(mask.sum())
    return bool(mask[:count].eq(1).all() and mask[count:].eq(0).all())


def test_gate_shapes_match_the_construction():
    gates = small_agent()(torch.Generator().manual_seed(0))
    assert len(gates) == len(SHAPES)
    for shape, g in zip(SHAPES, gates):
        assert [b.shape for b in g.blocks] == [(c,) for c in shape.blocks]
        assert [h.shape for h in g.heads] == [(c,) for c in shape.heads]
        assert len(g.depth) == shape.depth and all(d.shape == () for d in g.depth)


def test_agent_from_tables_has_one_head_per_layer_plus_depth():
    agent = ExpertRoutingAgent([ExpertShape.from_table(toy_table(1.0))], input_dim=8, hidden=16)
    assert [d.parametrizations.weight.original1.shape[0] for d in agent.dense] == [8, 16, 8, 4, 2]
    assert agent.z.shape == (1, 5, 8)  # L + 1 inputs z_k


def test_keep_probabilities_start_at_one_and_decrease_strictly():
    # Strict as long as every softmax term exceeds the float spacing near 1 (float32: 6e-8); the
    # float64 case covers logits spread wide enough to break that in float32.
    for scale, dtype in [(1.0, torch.float32), (3.0, torch.float64)]:
        o = torch.randn(20, 37, generator=torch.Generator().manual_seed(3), dtype=dtype) * scale
        p = keep_probabilities(o)
        torch.testing.assert_close(p[:, 0], torch.ones(20, dtype=dtype))
        assert (p[:, :-1] > p[:, 1:]).all() and (p > 0).all()


def test_first_unit_gets_a_large_finite_logit():
    v = small_agent().logits()
    firsts = torch.stack([head[0] for per_expert in v for head in per_expert])
    assert torch.isfinite(firsts).all() and (firsts > 10).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hard_gates_keep_a_nonempty_prefix_of_every_layer(seed):
    agent = small_agent(seed)
    with torch.no_grad():  # random heads, so the prefixes are not all of one length
        for p in agent.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    for shape, gates, arch in zip(SHAPES, agent.hard_gates(), agent.architecture()):
        for mask, count in zip(gates.blocks + gates.heads, arch["groups"] + arch["heads"]):
            assert is_prefix(mask) and int(mask.sum()) == count >= 1
        in_rank_order = torch.stack([gates.depth[j] for j in shape.ranking]) if shape.depth else None
        assert shape.depth == 0 or is_prefix(in_rank_order)
        assert arch["depth"] == [bool(d) for d in gates.depth]
        assert shape.depth == 0 or arch["depth"][shape.ranking[0]]  # the top-ranked layer stays


def test_architecture_is_plain_python():
    arch = small_agent().architecture()
    assert set(arch[0]) == {"groups", "heads", "depth"}
    assert all(type(c) is int for c in arch[0]["groups"] + arch[0]["heads"])
    assert all(type(d) is bool for d in arch[0]["depth"]) and arch[1]["depth"] == []


def test_soft_gates_are_in_the_unit_interval_and_differentiable():
    agent = small_agent()
    gates = agent(torch.Generator().manual_seed(0))
    flat = torch.cat([t.reshape(-1) for g in gates for t in g.blocks + g.heads + g.depth])
    assert ((flat >= 0) & (flat <= 1)).all()  # at tau = 0.4 the first unit's gate rounds to 1.0 in float32
    wide = small_agent(tau=10.0)(torch.Generator().manual_seed(0))  # no float saturation: open interval
    flat_wide = torch.cat([t.reshape(-1) for g in wide for t in g.blocks + g.heads + g.depth])
    assert ((flat_wide > 0) & (flat_wide < 1)).all()
    (flat * torch.linspace(-1, 1, flat.numel())).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.gru.parameters())
    assert all(d.parametrizations.weight.original1.grad.abs().sum() > 0 for d in agent.dense[:-1])


def test_noise_follows_the_generator():
    agent = small_agent()
    a, b = (agent(torch.Generator().manual_seed(5)) for _ in range(2))
    c = agent(torch.Generator().manual_seed(6))
    assert torch.equal(a[0].blocks[0], b[0].blocks[0]) and not torch.equal(a[0].blocks[0], c[0].blocks[0])


def test_ste_counts_rounded_units_and_passes_gradients_to_the_agent():
    agent = small_agent()
    gate = agent(torch.Generator().manual_seed(0))[0].blocks[0]
    count = kept_units(gate)
    assert count.item() == gate.detach().round().sum().item()
    count.backward()
    assert agent.dense[0].parametrizations.weight.original1.grad.abs().sum() > 0
    g = torch.tensor([0.2, 0.7, 0.5, 0.9], requires_grad=True)
    r = round_ste(g)
    assert r.tolist() == [0.0, 1.0, 0.0, 1.0]
    (r * torch.arange(4.0)).sum().backward()
    assert g.grad.tolist() == [0.0, 1.0, 2.0, 3.0]  # identity gradient


def test_mixture_macs_matches_a_hand_computation():
    t1, t2 = toy_table(1.0), toy_table(2.0)
    # Expert 1: block 0 keeps 2 of 8, block 1 3 of 16 (depth 0 kept), block 2 and the attention
    # layer are whole but in depth layer 1, which is dropped.
    g1 = SubnetGates(blocks=[torch.tensor([0.9, 0.6, 0.4] + [0.1] * 5), torch.tensor([0.8] * 3 + [0.2] * 13), None],
                     heads=[None], depth=[torch.tensor(0.7), torch.tensor(0.3)])
    e1 = 10 + (4 + 2 * 2) + 1 * (6 + 3 * 1) + 0 * (5 + 8 * 3) + 0 * (3 + 4 * 5)
    e2 = 2 * (10 + (4 + 8 * 2) + (6 + 16 * 1) + (5 + 8 * 3) + (3 + 4 * 5))  # whole
    assert expert_macs(g1, t1).item() == pytest.approx(e1)
    assert expert_macs(whole(t2), t2).item() == pytest.approx(e2)
    macs = mixture_macs([g1, whole(t2)], [t1, t2], [300, 700])
    assert macs.item() == pytest.approx(0.3 * e1 + 0.7 * e2)


def test_expert_macs_rejects_a_foreign_table():
    with pytest.raises(ValueError):
        expert_macs(SubnetGates([None], [], []), toy_table(1.0))


def test_regulariser_is_symmetric_and_zero_on_target():
    x, y = torch.tensor(3.0), torch.tensor(12.0)
    assert macs_regulariser(x, y).item() == pytest.approx(macs_regulariser(y, x).item())
    assert macs_regulariser(x, y).item() == pytest.approx(torch.log(torch.tensor(4.0)).item())
    assert macs_regulariser(x, 3.0).item() == 0.0
    x = torch.tensor(6.0, requires_grad=True)
    macs_regulariser(x, 3.0).backward()
    assert x.grad.item() == pytest.approx(1 / 6)


def test_era_objective_is_mean_loss_plus_regulariser():
    total, loss, r = era_objective([torch.tensor(1.0), torch.tensor(3.0)], torch.tensor(20.0), 10.0)
    assert loss.item() == 2.0 and r.item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert total.item() == pytest.approx(loss.item() + r.item())


def test_macs_term_alone_drives_the_hard_architecture_to_the_budget():
    """No loss signal: only R and the STE steer the agent to half the full MACs."""
    tables, sizes = [toy_table(1.0), toy_table(2.0)], [300, 700]
    agent = ExpertRoutingAgent([ExpertShape.from_table(t) for t in tables], input_dim=16, hidden=32, tau=0.4)
    full = mixture_macs([whole(t) for t in tables], tables, sizes).item()
    budget = 0.5 * full
    start = mixture_macs(agent.hard_gates(), tables, sizes).item()
    # lr 1e-2 rather than the paper's 1e-3 so that it converges within 300 steps.
    optimiser = torch.optim.AdamW(agent.parameters(), lr=1e-2, weight_decay=0.01)
    generator = torch.Generator().manual_seed(1)
    for _ in range(300):
        macs = mixture_macs(agent(generator), tables, sizes)
        total, _, _ = era_objective([torch.tensor(1.0)] * 2, macs, budget)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
    final = mixture_macs(agent.hard_gates(), tables, sizes).item()
    assert abs(start - budget) > 0.2 * budget  # it had to move
    assert abs(final - budget) < 0.02 * budget  # the bar: within 2%


def test_same_seed_same_agent():
    a, b, c = small_agent(7), small_agent(7), small_agent(8)
    assert torch.equal(a.z, b.z) and not torch.equal(a.z, c.z)
    for p, q in zip(a.outputs(), b.outputs()):
        assert torch.equal(p, q)
    ga, gb = a(torch.Generator().manual_seed(0)), b(torch.Generator().manual_seed(0))
    assert all(torch.equal(x, y) for x, y in zip(ga[0].blocks + ga[0].depth, gb[0].blocks + gb[0].depth))


def test_construction_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    small_agent(3)
    assert torch.equal(state, torch.random.get_rng_state())


def test_invalid_shapes_are_rejected():
    with pytest.raises(ValueError):
        ExpertShape(blocks=(0,), heads=())
    with pytest.raises(ValueError):
        ExpertShape(blocks=(4,), heads=(), depth=2, depth_rank=(0, 0))


def test_parameter_count_at_the_paper_sizes():
    """input 128, hidden 256 (Table 1); per expert 16 ResBlocks of 32 norm groups, 6 attention layers
    of 8 heads, 8 depth layers; two experts. Bidirectional GRU with 128 units per direction:
    2 * 3 * (128 * 128 + 128 * 128 + 2 * 128); LayerNorm 2 * 256; each weight-normed Dense_k
    256 * C_k + C_k (bias) + C_k (norm g)."""
    shape = ExpertShape(blocks=(32,) * 16, heads=(8,) * 6, depth=8)
    agent = ExpertRoutingAgent([shape, shape], input_dim=128, hidden=256)
    units = 2 * sum(shape.outputs)
    expected = 2 * 3 * (2 * 128 * 128 + 2 * 128) + 2 * 256 + units * (256 + 2)
    count = sum(p.numel() for p in agent.parameters())
    print(f"ERA parameters at the paper's sizes ({units} units in all): {count}")
    assert count == expected  # 491,744: the paper's ~0.5M
