"""DiffPruning's elastic U-Net: depth layers, gated forward, unit sorting, elastic training, prune, MACs."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from tiny_models import perturbed_unet, tiny_config

from mdmlib.config import ModelConfig
from mdmlib.models.elastic import (
    DepthLayer,
    ElasticUNet,
    SubnetGates,
    depth_layers,
    gated_forward,
    macs_table,
    prune_subnetwork,
    sampled_gates,
    sort_width_units,
    table_macs,
    unet_spec,
    unit_scores,
    width_layers,
)
from mdmlib.models.registry import build_model, model_spec, new_model
from mdmlib.models.unet import AttentionBlock, ResBlock, UNet, prunable_layers
from mdmlib.pruning.scheme import spec_macs


def tiny_unet(num_res_blocks: int = 2, seed: int = 0) -> UNet:
    """A tiny 8x8 U-Net with every weight perturbed, so all units differ and matter."""
    if num_res_blocks == 1:
        model = perturbed_unet(seed)
    else:
        torch.manual_seed(seed)
        model = build_model(model_spec(replace(tiny_config(), num_res_blocks=num_res_blocks), 1, 8))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def elastic_of(model: UNet, mode: str = "width", p: float = 0.5) -> ElasticUNet:
    spec = {"architecture": "elastic_unet",
            "arguments": {**model.spec["arguments"], "elastic": mode, "drop_probability": p}}
    elastic = build_model(spec)
    elastic.load_state_dict(model.state_dict())
    return elastic.eval()


def inputs(batch: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 8, 8, generator=generator), torch.tensor([3, 700, 250, 999][:batch])


def whole_gates(model: torch.nn.Module) -> SubnetGates:
    blocks, attentions = width_layers(model)
    return SubnetGates([None] * len(blocks), [None] * len(attentions), [None] * len(depth_layers(model)))


def hard_gates(model, keep_groups, keep_heads, drop, host: bool = True) -> SubnetGates:
    blocks, attentions = width_layers(model)

    def prefix(units: int, keep: int) -> torch.Tensor:
        return (torch.arange(units) < keep).float()

    def depth(dropped: bool) -> torch.Tensor:
        u = torch.tensor(0.0 if dropped else 1.0)
        return u if host else u.requires_grad_()  # with a gradient: Eq. 10 / 11 computed, not skipped
    return SubnetGates([prefix(b.out_norm.num_groups, k) for b, k in zip(blocks, keep_groups)],
                       [prefix(a.num_heads, k) for a, k in zip(attentions, keep_heads)], [depth(d) for d in drop])


def random_subnet(model, generator: torch.Generator) -> tuple[list[int], list[int], list[bool]]:
    blocks, attentions = width_layers(model)
    groups = [int(torch.randint(1, b.out_norm.num_groups + 1, (), generator=generator)) for b in blocks]
    heads = [int(torch.randint(1, a.num_heads + 1, (), generator=generator)) for a in attentions]
    drop = [bool(torch.rand((), generator=generator) < 0.5) for _ in depth_layers(model)]
    return groups, heads, drop


def test_the_default_unet_has_a_depth_layer_per_decoder_level():
    """Base 32, channel_mult (1, 2), one ResBlock per level: an encoder level of one layer keeps it
    (the identity would empty the level); each decoder level has two, the last keeps h's width."""
    with torch.device("meta"):
        model = new_model(ModelConfig(), 3, 8)
    assert depth_layers(model) == [DepthLayer("decoder", 0, 3, 32), DepthLayer("decoder", 1, 1, 64)]


def test_two_res_blocks_per_level_give_a_depth_layer_per_level_and_branch():
    layers = depth_layers(tiny_unet(2))
    assert [(d.branch, d.level, d.group, d.channels) for d in layers] == [
        ("decoder", 0, 5, 8), ("encoder", 0, 1, 8), ("decoder", 1, 2, 16), ("encoder", 1, 4, 16)]


@pytest.mark.parametrize("num_res_blocks", [1, 2])
def test_whole_gates_give_the_forward_pass_exactly(num_res_blocks):
    model = tiny_unet(num_res_blocks)
    x, t = inputs()
    with torch.no_grad():
        assert torch.equal(gated_forward(model, x, t, whole_gates(model)), model(x, t))


@pytest.mark.parametrize("num_res_blocks", [1, 2])
def test_sorting_keeps_the_function_and_orders_units_by_l1_norm(num_res_blocks):
    model = tiny_unet(num_res_blocks)
    layers = [m for m in model.modules() if isinstance(m, (ResBlock, AttentionBlock))]
    assert any((unit_scores(m).diff() > 0).any() for m in layers)  # something to sort
    before = [unit_scores(m).clone() for m in layers]
    ordered = sort_width_units(model)
    x, t = inputs()
    with torch.no_grad():
        assert torch.allclose(ordered(x, t), model(x, t), atol=1e-5)
    for m, scores in zip([m for m in ordered.modules() if isinstance(m, (ResBlock, AttentionBlock))], before):
        assert (unit_scores(m).diff() <= 0).all()
        assert torch.allclose(unit_scores(m), scores.sort(descending=True).values)
    assert all(torch.equal(unit_scores(m), s) for m, s in zip(layers, before))  # the input is left as it was


@pytest.mark.parametrize("drop", [[False, True, True, False], [True, False, False, True], [True] * 4])
@pytest.mark.parametrize("host", [True, False])
def test_hard_gates_are_the_physically_pruned_network(drop, host):
    model = sort_width_units(elastic_of(tiny_unet(2)))
    blocks, attentions = width_layers(model)
    keep_groups = [max(1, b.out_norm.num_groups - i % 3) for i, b in enumerate(blocks)]
    keep_heads = [max(1, a.num_heads - 1 - i % 2) for i, a in enumerate(attentions)]
    assert any(k < b.out_norm.num_groups for k, b in zip(keep_groups, blocks))
    assert any(k < a.num_heads for k, a in zip(keep_heads, attentions))
    pruned = prune_subnetwork(model, keep_groups, keep_heads, drop)
    assert pruned.spec["architecture"] == "unet" and pruned.spec["arguments"]["dropped_layers"] == [
        j for j, d in enumerate(drop) if d]
    x, t = inputs()
    with torch.no_grad():
        gated = gated_forward(model, x, t, hard_gates(model, keep_groups, keep_heads, drop, host))
        assert torch.allclose(pruned(x, t), gated, atol=1e-5)
        assert not torch.allclose(gated, model(x, t), atol=1e-3)  # the cut changes the output
        rebuilt = build_model(pruned.spec)
        rebuilt.load_state_dict(pruned.state_dict())
        assert torch.equal(rebuilt.eval()(x, t), pruned(x, t))
    layers = sum(isinstance(g[i], ResBlock) for g, i in prunable_layers(pruned))
    assert layers == len(blocks) - sum(drop)  # every depth layer here holds one ResBlock


def test_dropped_layers_become_the_identity_and_skip_concat():
    model = tiny_unet(2)
    spec = {**model.spec, "arguments": {**model.spec["arguments"], "dropped_layers": [0, 1]}}
    dropped = build_model(spec).eval()
    assert set(dropped.state_dict()) < set(model.state_dict())
    dropped.load_state_dict({k: v for k, v in model.state_dict().items() if k in dropped.state_dict()})
    assert type(dropped.up[5][0]).__name__ == "SkipConcat" and isinstance(dropped.down[1][0], torch.nn.Identity)
    assert len(depth_layers(dropped)) == 2  # the dropped ones are gone
    x, t = inputs()
    with torch.no_grad():
        gates = replace(whole_gates(model), depth=[torch.tensor(0.0), torch.tensor(0.0), None, None])
        assert torch.allclose(dropped(x, t), gated_forward(model, x, t, gates), atol=1e-5)
    with pytest.raises(ValueError, match="dropped_layers"):
        build_model({**spec, "arguments": {**spec["arguments"], "dropped_layers": [4]}})


def test_the_elastic_unet_loads_a_unet_checkpoint_and_is_it_in_eval_mode():
    model = tiny_unet(1)
    elastic = elastic_of(model, "depth", 0.5)
    assert list(elastic.state_dict()) == list(model.state_dict())
    x, t = inputs()
    with torch.no_grad():
        assert torch.equal(elastic(x, t), model(x, t))


@pytest.mark.parametrize("mode", ["depth", "width"])
def test_training_draws_one_subnetwork_per_batch_from_the_global_rng(mode):
    model = elastic_of(tiny_unet(2), mode, 0.5).train()  # dropout 0: the sub-network is the only randomness
    x, t = inputs()
    outputs = []
    with torch.no_grad():
        for seed in (5, 5, 6):
            torch.manual_seed(seed)
            outputs.append(model(x, t))
        torch.manual_seed(5)
        expected = gated_forward(model, x, t, sampled_gates(model, mode, 0.5))
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], expected)
    assert not torch.equal(outputs[0], outputs[2])


def test_sampled_gates_follow_eq_4_and_the_supplement():
    model = tiny_unet(2)
    torch.manual_seed(0)
    depth = torch.stack([torch.stack(sampled_gates(model, "depth", 0.3).depth) for _ in range(400)])
    assert set(depth.unique().tolist()) == {0.0, 1.0}
    assert abs(1 - depth.mean().item() - 0.3) < 0.05
    blocks, _ = width_layers(model)
    kept = {b: set() for b in range(len(blocks))}
    for _ in range(200):
        gates = sampled_gates(model, "width", 0.3)
        assert all(u is None for u in gates.depth)
        for b, gate in enumerate(gates.blocks + gates.heads):
            count = int(gate.sum())
            assert count >= 1 and torch.equal(gate[:count], torch.ones(count)) and not gate[count:].any()
        for b, gate in enumerate(gates.blocks):
            kept[b].add(int(gate.sum()))
    assert all(kept[b] == set(range(1, blocks[b].out_norm.num_groups + 1)) for b in kept)


def test_soft_gates_pass_gradients_to_every_gate():
    model = tiny_unet(2)
    blocks, attentions = width_layers(model)
    gates = SubnetGates([torch.full((b.out_norm.num_groups,), 0.7, requires_grad=True) for b in blocks],
                        [torch.full((a.num_heads,), 0.6, requires_grad=True) for a in attentions],
                        [torch.tensor(0.5, requires_grad=True) for _ in depth_layers(model)])
    x, t = inputs()
    gated_forward(model, x, t, gates).square().mean().backward()
    for gate in gates.blocks + gates.heads + gates.depth:
        assert gate.grad is not None and torch.isfinite(gate.grad).all() and gate.grad.abs().sum() > 0


@pytest.mark.parametrize("num_res_blocks", [1, 2])
def test_the_macs_table_is_exact_for_every_subnetwork(num_res_blocks):
    model = sort_width_units(elastic_of(tiny_unet(num_res_blocks)))
    table = macs_table(model)
    blocks, attentions = width_layers(model)
    assert table.block_groups == tuple(b.out_norm.num_groups for b in blocks)
    assert table.depth_layers == len(depth_layers(model))
    whole = table_macs(table, table.block_groups, table.heads, [True] * table.depth_layers)
    assert whole == spec_macs(unet_spec(model))
    generator = torch.Generator().manual_seed(num_res_blocks)
    for _ in range(4):
        groups, heads, drop = random_subnet(model, generator)
        pruned = prune_subnetwork(model, groups, heads, drop)
        assert table_macs(table, groups, heads, [not d for d in drop]) == spec_macs(pruned.spec)


def test_the_default_unets_macs_table_equals_torchs_flop_counter_on_its_subnetworks():
    """The agent's MACs formula (Eq. 12-13) against torch.utils.flop_counter (attention's two
    matmuls included) run on the physically cut networks of the default U-Net."""
    from mdmlib.models.macs import forward_macs

    torch.manual_seed(0)
    model = sort_width_units(new_model(ModelConfig(), 1, 8))  # the default digits: 1 channel, 8 x 8
    table = macs_table(model)
    x, t = torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long)
    assert table_macs(table, table.block_groups, table.heads, [True] * table.depth_layers) \
        == forward_macs(model, x, t) == 16_236_544
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        groups, heads, drop = random_subnet(model, generator)
        pruned = prune_subnetwork(model, groups, heads, drop)
        assert table_macs(table, groups, heads, [not d for d in drop]) == forward_macs(pruned, x, t)
