"""Structural pruning of the U-Net: schemes and their widths and MACs, importance scores, the physical prune."""
from __future__ import annotations

import copy
from typing import NamedTuple

import pytest
import torch
import torch_pruning as tp

from mdmlib.core.intervals import Interval
from mdmlib.core.schedule import NoiseSchedule, epsilon_loss_per_sample
from mdmlib.models.macs import count_parameters, forward_macs
from mdmlib.models.registry import build_model
from mdmlib.models.unet import AttentionBlock, ResBlock, layer_widths, prunable_layers
from mdmlib.pruning.importance import LayerScores, accumulate_gradients, layer_scores
from mdmlib.pruning.prune import prune_unet
from mdmlib.pruning.scheme import (
    PruningScheme,
    UNetShape,
    fit_to_limit,
    kept_indices,
    macs_counter,
    scheme_widths,
    smallest_scheme,
    spec_macs,
    unet_shape,
    uniform_scheme,
)

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# A one-level U-Net at 8x8: base width C = 8, time embedding width 4C = 32, heads of d = 4 channels.
# Prunable layers in order: ResBlocks down, middle-1, middle-2, up-1, up-2 (hidden width 8 = two
# norm groups of 4) and attention layers down, middle, up-1, up-2 (two heads each).
# ---------------------------------------------------------------------------------------------
def tiny_spec(attention: bool = True, dropout: float = 0.0, **widths) -> dict:
    return {"architecture": "unet", "arguments": {
        "in_channels": 1, "resolution": 8, "base_channels": 8, "channel_mult": [1], "num_res_blocks": 1,
        "attention_resolutions": [8] if attention else [], "channels_per_head": 4, "dropout": dropout, **widths}}


def perturbed(spec: dict, seed: int = 0, std: float = 0.2) -> torch.nn.Module:
    """The spec's model with every parameter (ADM's zero-initialised layers included) drawn from
    N(0, std^2), so every channel and head reaches the output."""
    torch.manual_seed(seed)
    model = build_model(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model.eval()


def inputs(batch: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 8, 8, generator=g), torch.tensor([5, 480, 999][:batch])


ONE = (torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long))


def test_tiny_unet_builds_with_the_expected_prunable_layers():
    model = build_model(tiny_spec())
    assert unet_shape(model) == UNetShape(block_widths=(8,) * 5, group_sizes=(4,) * 5, attention_heads=(2,) * 4)
    assert model(*inputs()).shape == (3, 1, 8, 8)


# ----- hand counts: every layer of the tiny U-Net, from its shapes --------------------------------
HW = 8 * 8  # spatial positions (also the attention sequence length S)
C, EMB, D = 8, 32, 4


class Count(NamedTuple):
    macs: int  # what mdmlib counts: conv and linear multiply-accumulates, attention's two matmuls
    params: int
    tp_extra: int  # what torch-pruning's op counter adds on top: bias adds and 2 ops per norm element

    def __add__(self, other):
        return Count(*(a + b for a, b in zip(self, other)))


NOTHING = Count(0, 0, 0)


def conv(k: int, cin: int, cout: int) -> Count:
    # k*k*cin MACs per output element, cout*HW output elements; + a bias add per output element
    return Count(k * k * cin * cout * HW, k * k * cin * cout + cout, cout * HW)


def linear(fan_in: int, fan_out: int) -> Count:
    return Count(fan_in * fan_out, fan_in * fan_out + fan_out, fan_out)


def norm(ch: int) -> Count:
    # GroupNorm: no MACs for us; weight and bias; torch-pruning counts 2 ops per element (affine)
    return Count(0, 2 * ch, 2 * ch * HW)


def attention(heads: int) -> Count:
    # per head: Q K^T is S x S x d MACs and softmax(.) V another S x S x d: 2 * S^2 * d
    matmuls = Count(2 * HW * HW * D * heads, 0, 0)
    return norm(C) + conv(1, C, 3 * D * heads) + matmuls + conv(1, D * heads, C)


def resblock(cin: int, hidden: int) -> Count:
    skip = conv(1, cin, C) if cin != C else NOTHING
    return norm(cin) + conv(3, cin, hidden) + linear(EMB, 2 * hidden) + norm(hidden) + conv(3, hidden, C) + skip


def hand_count(block_widths=(8,) * 5, heads=(2,) * 4, with_attention: bool = True) -> Count:
    att = attention if with_attention else (lambda h: NOTHING)
    w, h = block_widths, heads
    time_embed = linear(C, EMB) + linear(EMB, EMB)
    down = resblock(C, w[0]) + att(h[0])
    middle = resblock(C, w[1]) + att(h[1]) + resblock(C, w[2])
    up = resblock(2 * C, w[3]) + att(h[2]) + resblock(2 * C, w[4]) + att(h[3])  # input: width + skip
    return time_embed + conv(3, 1, C) + down + middle + up + norm(C) + conv(3, C, 1)


def masked_scores(keep_group: int, keep_head: int) -> LayerScores:
    """Scores that keep norm group ``keep_group`` of the down ResBlock and head ``keep_head`` of the
    middle attention layer (the other layers are not pruned)."""
    block = torch.zeros(8)
    block[4 * keep_group:4 * keep_group + 4] = 1.0
    head = torch.zeros(2)
    head[keep_head] = 1.0
    return LayerScores([block] + [torch.ones(8)] * 4, [torch.ones(2), head, torch.ones(2), torch.ones(2)])


PRUNED = {"block_widths": [4, 8, 8, 8, 8], "attention_heads": [2, 1, 2, 2]}


def test_hand_count_matches_the_unpruned_tiny_unet():
    model = build_model(tiny_spec())
    expected = hand_count()
    assert forward_macs(model, *ONE) == expected.macs == 799_488
    assert spec_macs(model.spec) == expected.macs
    assert count_parameters(model) == expected.params == 12_825


def test_pruned_parameters_and_macs_equal_the_hand_count_from_layer_shapes():
    model = perturbed(tiny_spec())
    pruned = prune_unet(model, PRUNED, masked_scores(keep_group=1, keep_head=0))
    assert layer_widths(pruned) == PRUNED
    expected = hand_count(PRUNED["block_widths"], PRUNED["attention_heads"])
    assert forward_macs(pruned, *ONE) == expected.macs
    assert spec_macs(pruned.spec) == expected.macs
    assert count_parameters(pruned) == expected.params
    # the same, spelled out as what the prune removed:
    # down ResBlock 8 -> 4 hidden: conv1 3*3*8*4*64 + time projection 32*(2*4) + conv2 3*3*4*8*64 MACs
    block_macs = 9 * 8 * 4 * 64 + 32 * 8 + 9 * 4 * 8 * 64  # = 37_120
    # middle attention 2 -> 1 head of d=4: qkv 8*12*64 + QK^T and AV 2*64^2*4 + proj 4*8*64 MACs
    head_macs = 8 * 12 * 64 + 2 * 64 * 64 * 4 + 4 * 8 * 64  # = 40_960
    assert hand_count().macs - forward_macs(pruned, *ONE) == block_macs + head_macs == 78_080
    # parameters: conv1 (9*8*4 + 4) + time projection (32*8 + 8) + hidden norm 2*4 + conv2 inputs 9*4*8,
    # and the head: qkv rows (8*12 + 12) + proj columns 4*8
    removed = (9 * 8 * 4 + 4) + (32 * 8 + 8) + 2 * 4 + 9 * 4 * 8 + (8 * 12 + 12) + 4 * 8
    assert count_parameters(model) - count_parameters(pruned) == removed == 992


@pytest.mark.parametrize("widths", [{"block_widths": [8] * 5}, PRUNED], ids=["full", "pruned"])
def test_torch_pruning_op_count_is_ours_plus_bias_adds_and_norm_elements_without_attention(widths):
    # torch-pruning's counter (a ptflops-style module hook counter) counts per module: conv and
    # linear MACs PLUS one add per output element for their biases, 2 ops per element for an affine
    # GroupNorm, nothing for SiLU / Dropout / Identity. Ours (FlopCounterMode) counts conv and
    # linear MACs without bias adds and no norms. So exactly: tp = ours + bias adds + 2 x norm elements.
    # (At batch 1: torch-pruning adds a Linear's bias once per call, not per sample.)
    spec = tiny_spec(attention=False, block_widths=widths["block_widths"])
    model = build_model(spec)
    ops, params = tp.utils.count_ops_and_params(model, example_inputs=ONE)
    expected = hand_count(widths["block_widths"], with_attention=False)
    assert forward_macs(model, *ONE) == expected.macs
    assert ops == expected.macs + expected.tp_extra
    assert params == count_parameters(model) == expected.params
    if widths is not PRUNED:
        # conv bias adds: output channels of input conv 8, 5 ResBlocks x (conv1 8 + conv2 8), 2 up skips 8,
        # output conv 1 = 105, x 64 positions = 6720;
        # linear bias adds 32+32 + 5 x 16 = 144; GroupNorm 2 x (ResBlock inputs 8+8+8+16+16, hidden norms 5 x 8,
        # output norm 8 = 104 channels) x 64 = 13312
        assert ops - forward_macs(model, *ONE) == 105 * 64 + 144 + 2 * 104 * 64 == 20_176


def test_torch_pruning_op_count_misses_the_attention_matmuls():
    # with attention: torch-pruning sees qkv and proj (Conv1d) but not the einsum products Q K^T and
    # softmax(.) V, which ours counts: tp = ours - 4 layers x 2 heads x 2 S^2 d + bias/norm terms
    model = build_model(tiny_spec())
    ops, _ = tp.utils.count_ops_and_params(model, example_inputs=ONE)
    expected = hand_count()
    matmuls = 4 * 2 * (2 * HW * HW * D)
    assert ops == forward_macs(model, *ONE) - matmuls + expected.tp_extra


# ----- the physical prune ------------------------------------------------------------------------
def test_prune_unet_at_full_widths_gives_the_same_outputs():
    model = perturbed(tiny_spec(dropout=0.1), seed=3)
    full = layer_widths(model)
    scores, _ = layer_scores(model, "magnitude", None, torch.zeros(1, 1, 8, 8), Interval(0, 1000))
    pruned = prune_unet(model, full, scores)
    assert not pruned.training
    assert layer_widths(pruned) == full
    x, t = inputs()
    with torch.no_grad():
        assert torch.equal(pruned(x, t), model(x, t))


@pytest.mark.parametrize("keep_group,keep_head", [(1, 0), (0, 1)])
def test_pruned_model_equals_the_original_with_the_removed_channels_and_heads_masked(keep_group, keep_head):
    # Pruning whole norm groups keeps each kept group normalised as before, and a head's output only
    # reaches the model through its columns of proj: the pruned model must compute exactly what the
    # original computes with the removed hidden channels' conv2 inputs and the removed head's proj
    # columns zeroed (which also checks torch-pruning cut the time projection's scale and shift rows
    # of the same channels).
    model = perturbed(tiny_spec(), seed=4)
    pruned = prune_unet(model, PRUNED, masked_scores(keep_group, keep_head))
    masked = copy.deepcopy(model)
    layers = [g[i] for g, i in prunable_layers(masked)]
    block = [m for m in layers if isinstance(m, ResBlock)][0]
    middle_attention = [m for m in layers if isinstance(m, AttentionBlock)][1]
    removed_group, removed_head = 1 - keep_group, 1 - keep_head
    with torch.no_grad():
        block.out_layers[-1].weight[:, 4 * removed_group:4 * removed_group + 4] = 0
        middle_attention.proj.weight[:, D * removed_head:D * removed_head + D] = 0
    x, t = inputs()
    with torch.no_grad():
        out, reference, original = pruned(x, t), masked(x, t), model(x, t)
    assert torch.allclose(out, reference, atol=1e-5)
    assert not torch.allclose(out, original, atol=1e-3)  # the pruned channels mattered


def test_pruning_does_not_change_the_original_model():
    model = perturbed(tiny_spec(), seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prune_unet(model, PRUNED, masked_scores(0, 0))
    assert layer_widths(model) == {"block_widths": [8] * 5, "attention_heads": [2] * 4}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----- importance criteria -----------------------------------------------------------------------
class ScaledInput(torch.nn.Module):
    """eps_hat = w * x_t with w = 1: at t near 0 (x_t ~ x0) the epsilon loss is large, near T (x_t ~
    noise) it goes to 0, so along ascending timesteps it strictly falls."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, t):
        return self.w * x


SCHEDULE = NoiseSchedule.from_name("cosine", 1000)


def reference_ascending(model, images, interval, seed, threshold, steps=20):
    """The timesteps and summed gradient Diff-Pruning's rule gives, computed loss by loss."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    grid = torch.linspace(interval.lo, interval.hi - 1, min(steps, interval.size)).round().long().unique()
    used, largest, grad = [], 0.0, torch.zeros(())
    for t in grid.tolist():
        loss = epsilon_loss_per_sample(model, SCHEDULE, images, torch.full((len(images),), t), noise).mean()
        grad = grad + torch.autograd.grad(loss, model.w)[0]
        used.append(t)
        value = float(loss.detach())
        largest = max(largest, value)
        if value < threshold * largest:
            break
    return used, grad


def test_ascending_gradients_stop_at_the_first_loss_below_threshold_times_the_largest():
    model, images = ScaledInput(), torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    interval = Interval(100, 900)
    # threshold 1.0: the loss falls from the first timestep to the second, so it stops after two
    used = accumulate_gradients(model, SCHEDULE, images, interval, "ascending", torch.Generator().manual_seed(7),
                                threshold=1.0)
    assert used == [100, 142]  # linspace(100, 899, 20) rounded: 100, 142.05, ...
    expected_used, expected_grad = reference_ascending(model, images, interval, 7, threshold=1.0)
    assert used == expected_used
    assert torch.allclose(model.w.grad, expected_grad)  # the two backwards accumulated, nothing more
    # Diff-Pruning's 0.05: more timesteps, ascending within the interval, stopped where the rule says
    used = accumulate_gradients(model, SCHEDULE, images, interval, "ascending", torch.Generator().manual_seed(7))
    expected_used, expected_grad = reference_ascending(model, images, interval, 7, threshold=0.05)
    assert used == expected_used and 2 < len(used) < 20
    assert used == sorted(used) and all(100 <= t < 900 for t in used)
    assert torch.allclose(model.w.grad, expected_grad)


def test_batch_gradients_draw_timesteps_inside_the_interval():
    model, images = ScaledInput(), torch.randn(16, 1, 8, 8)
    used = accumulate_gradients(model, SCHEDULE, images, Interval(250, 260), "batch", torch.Generator().manual_seed(0))
    assert used == sorted(set(used)) and all(250 <= t < 260 for t in used)
    assert model.w.grad is not None and float(model.w.grad) != 0.0


def test_taylor_and_diff_pruning_scores_read_gradients_and_differ_from_magnitude():
    model = perturbed(tiny_spec(), seed=6, std=0.1)
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    interval = Interval(0, 250)
    scores = {name: layer_scores(model, name, SCHEDULE, images, interval, seed=0)
              for name in ("magnitude", "taylor", "diff_pruning", "random")}
    for name, (s, record) in scores.items():
        assert [len(b) for b in s.blocks] == [8] * 5 and [len(h) for h in s.heads] == [2] * 4
        assert all(torch.isfinite(b).all() for b in s.blocks + s.heads)
        assert record["criterion"] == name
    magnitude, taylor = scores["magnitude"][0], scores["taylor"][0]
    assert not any(torch.allclose(a, b) for a, b in zip(magnitude.blocks, taylor.blocks))
    assert not any(torch.allclose(a, b) for a, b in zip(magnitude.heads, taylor.heads))
    assert "timesteps" not in scores["magnitude"][1]
    assert all(0 <= t < 250 for t in scores["taylor"][1]["timesteps"])
    diff_t = scores["diff_pruning"][1]["timesteps"]
    assert diff_t == sorted(diff_t) and diff_t[0] == 0 and all(t < 250 for t in diff_t)
    # the model is left without gradients
    assert all(p.grad is None for p in model.parameters())


def test_magnitude_block_scores_rank_the_heavier_channels_higher():
    model = perturbed(tiny_spec(), seed=7, std=0.05)
    block = [g[i] for g, i in prunable_layers(model) if isinstance(g[i], ResBlock)][0]
    with torch.no_grad():
        block.in_layers[-1].weight[4:8] *= 20  # group 1's filters much heavier
    scores, _ = layer_scores(model, "magnitude", SCHEDULE, torch.zeros(1, 1, 8, 8), Interval(0, 1000))
    assert kept_indices(scores.blocks[0], 1, 4) == [4, 5, 6, 7]


# ----- schemes -----------------------------------------------------------------------------------
def test_kept_indices_keeps_whole_groups_by_mean_in_ascending_order():
    scores = torch.tensor([1.0, 1.0, 0.0, 10.0, 4.0, 4.0, 3.0, 3.0])  # group means 1, 5, 4, 3
    assert kept_indices(scores, 2, 2) == [2, 3, 4, 5]  # groups 1 and 2: the highest mean, not max
    assert kept_indices(scores, 1, 4) == [4, 5, 6, 7]  # means 3.0 and 3.5
    assert kept_indices(torch.tensor([1.0, 9.0, 5.0, 9.0]), 2) == [1, 3]  # ascending, not by score
    assert kept_indices(torch.tensor([2.0, 2.0, 2.0]), 2) == [0, 1]  # ties go to the earlier


def test_pruning_scheme_refuses_ratios_outside_zero_one():
    PruningScheme((1.0, 0.01), (1,))
    for bad in (0.0, -0.5, 1.5, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="block_keep"):
            PruningScheme((1.0, bad), (1.0,))
        with pytest.raises(ValueError, match="head_keep"):
            PruningScheme((1.0, 1.0), (bad,))


SHAPE = UNetShape(block_widths=(8, 8, 16), group_sizes=(4, 4, 4), attention_heads=(2, 4))


def test_scheme_from_dict_refuses_wrong_lengths_naming_the_key():
    good = {"block_keep": [1.0, 0.5, 0.25], "head_keep": [0.5, 1.0]}
    assert PruningScheme.from_dict(good, SHAPE) == PruningScheme((1.0, 0.5, 0.25), (0.5, 1.0))
    with pytest.raises(ValueError, match="block_keep: need 3"):
        PruningScheme.from_dict({**good, "block_keep": [1.0, 0.5]}, SHAPE)
    with pytest.raises(ValueError, match="head_keep: need 2"):
        PruningScheme.from_dict({**good, "head_keep": [1.0, 0.5, 0.5]}, SHAPE)
    with pytest.raises(ValueError, match="block_keep"):
        PruningScheme.from_dict({"block_keep": [1.0] * 3}, SHAPE)  # a key missing
    with pytest.raises(ValueError, match="block_keep"):
        PruningScheme.from_dict({**good, "extra": 1}, SHAPE)


def test_scheme_widths_are_whole_norm_groups_and_heads_at_least_one():
    widths = scheme_widths(SHAPE, PruningScheme((0.01, 0.5, 0.75), (0.01, 0.5)))
    assert widths == {"block_widths": [4, 4, 12], "attention_heads": [1, 2]}
    with pytest.raises(ValueError, match="2 blocks"):
        scheme_widths(SHAPE, PruningScheme((1.0, 1.0), (1.0, 1.0)))


@pytest.fixture(scope="module")
def counted():
    spec = tiny_spec()
    shape = unet_shape(build_model(spec))
    return spec, shape, macs_counter(spec, shape), spec_macs(spec)


def test_macs_counter_equals_the_hand_count(counted):
    spec, shape, count, full = counted
    scheme = PruningScheme((0.5, 1.0, 1.0, 1.0, 1.0), (1.0, 0.5, 1.0, 1.0))
    assert scheme_widths(shape, scheme) == PRUNED
    assert count(scheme) == hand_count(PRUNED["block_widths"], PRUNED["attention_heads"]).macs
    assert count(PruningScheme.uniform(shape, 1.0)) == full == hand_count().macs


def test_fit_to_limit_keeps_the_proportions_and_meets_the_limit(counted):
    spec, shape, count, full = counted
    scheme = PruningScheme((1.0, 0.5, 1.0, 0.75, 1.0), (1.0, 0.5, 1.0, 1.0))
    limit = 0.7 * full
    assert count(scheme) > limit
    fitted = fit_to_limit(scheme, limit, count, shape)
    assert count(fitted) <= limit
    factors = [f / r for f, r in zip(fitted.block_keep + fitted.head_keep, scheme.block_keep + scheme.head_keep)]
    assert max(factors) - min(factors) < 1e-9  # one common factor: the proportions between layers kept
    factor = factors[0]
    assert 0 < factor < 1
    # as much width as the limit allows: a slightly larger factor goes over it
    assert count(scheme.scaled(factor + 1e-5)) > limit
    # a scheme within the limit is returned unchanged
    assert fit_to_limit(scheme, full, count, shape) is scheme


def test_uniform_scheme_meets_the_limit_and_refuses_an_unreachable_one(counted):
    spec, shape, count, full = counted
    uniform = uniform_scheme(0.75 * full, count, shape)
    assert count(uniform) <= 0.75 * full
    assert len(set(uniform.block_keep + uniform.head_keep)) == 1
    floor = count(smallest_scheme(shape))
    with pytest.raises(ValueError, match="the test's key"):
        uniform_scheme(floor - 1, count, shape, key="the test's key")
    assert count(uniform_scheme(floor, count, shape)) == floor
