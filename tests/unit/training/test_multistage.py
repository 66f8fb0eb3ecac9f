"""The multi-stage paper's training: Algorithm 4 (every step trains every stage on its own batch)
in one process, Algorithm 3 (each process one stage) under torchrun, and their equivalence."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_training import states_equal

from mdmlib.config import EncoderDecoderSplit, load_config
from mdmlib.core.intervals import Interval
from mdmlib.models.multi_decoder import MultiDecoderUNet
from mdmlib.training.checkpoint import load_checkpoint
from mdmlib.training.distributed import DataParallel, launch_data_parallel
from mdmlib.training.job import (
    decoder_widths,
    multistage_model,
    resampled,
    snapshot_source,
    split_widths,
    staged_model_name,
    train_job,
)
from mdmlib.training.loop import run_training, snapshot_path
from mdmlib.training.samplers import StagedSampler

CPU = torch.device("cpu")
# Dropout off, so two processes and one draw the same networks' outputs (dropout masks are per slice).
TINY = {
    "model": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [4],
              "channels_per_head": 4, "dropout": 0.0},
    "training": {"baseline_iterations": 8, "batch_size": 4, "log_every": 2, "checkpoint_every": 4,
                 "eval_points": 2, "loss_bins": 4, "threads": 2},
    "multistage": {"decoder_channels": [12, 4]},
    "experts": {"n": 2, "boundaries": [0.5]},
}
STAGES = [Interval(0, 500), Interval(500, 1000)]
MODEL = staged_model_name(STAGES, 8, 8, [12, 4])


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(32, 1, 8, 8), dtype=np.uint8)


def test_a_staged_step_draws_one_batch_per_stage_inside_it():
    sampler = StagedSampler([Interval(0, 100), Interval(100, 700), Interval(700, 1000)])
    t, weights = sampler.sample(48, torch.Generator().manual_seed(0))  # 16 per stage
    assert (t[:16] < 100).all() and ((t[16:32] >= 100) & (t[16:32] < 700)).all() and (t[32:] >= 700).all()
    assert torch.equal(weights, torch.ones(48))
    # Data-parallel over 6 processes (a multiple of the 3 stages), each process's slice is one stage's.
    slices = [DataParallel(rank, 6).part(48) for rank in range(6)]
    assert [sorted({int(sampler.stage_index(x)) for x in t[s]}) for s in slices] == [[0], [0], [1], [1], [2], [2]]
    t, _ = sampler.sample(8, torch.Generator().manual_seed(0))  # 3 + 3 + 2
    assert [sampler.stage_index(int(x)) for x in t] == [0, 0, 0, 1, 1, 1, 2, 2]


def test_a_staged_model_name_gives_its_stages_and_multi_decoder_spec():
    cfg = load_config(TINY)
    job = train_job(MODEL, cfg)
    assert MODEL == "ms_t0-500-1000_e8_d12-4_i8" and job.stages == tuple(STAGES) and job.interval == Interval(0, 1000)
    assert MODEL == multistage_model(cfg, STAGES, 8)  # the config's encoder width and decoder widths
    assert job.model_spec["architecture"] == "multi_decoder"
    assert job.model_spec["arguments"]["stage_boundaries"] == [500]
    assert job.model_spec["arguments"]["decoder_channels"] == [12, 4]
    # a Table 7 split: the name alone rebuilds another encoder width
    split = train_job(multistage_model(cfg, STAGES, 8, (4, [16, 8])), cfg)
    assert split.model_spec["arguments"]["base_channels"] == 4 and split.model_spec["arguments"]["decoder_channels"] == [16, 8]
    with pytest.raises(ValueError, match="does not tile"):
        train_job("ms_t0-500-900_e8_d12-4_i8", cfg)
    with pytest.raises(ValueError, match="3 decoder widths for 2 stages"):
        train_job("ms_t0-500-1000_e8_d12-4-4_i8", cfg)
    three = load_config({**TINY, "training": {**TINY["training"], "data_parallel": 2}})
    with pytest.raises(ValueError, match="2 processes and a batch of 4 for 3 stages"):
        train_job("ms_t0-300-600-1000_e8_d8-8-8_i8", three)


def test_a_split_gives_widths_in_head_multiples_for_any_stage_count():
    cfg = load_config({**TINY, "model": {**TINY["model"], "base_channels": 128, "channels_per_head": 16},
                       "multistage": {}})
    split = EncoderDecoderSplit(1.25, (1.375, 0.75, 0.125))
    assert split_widths(cfg, split, 3) == (160, [176, 96, 16])
    assert resampled((2.0, 1.0, 0.5), 5) == [2.0, 1.5, 1.0, 0.75, 0.5] and resampled((2.0, 1.0, 0.5), 2) == [2.0, 0.5]
    assert split_widths(cfg, EncoderDecoderSplit(0.1, (0.01,)), 2) == (16, [16, 16])  # at least one head


def test_a_shorter_multi_stage_model_is_a_snapshot_of_the_longer_one_with_the_same_architecture():
    longer = staged_model_name(STAGES, 12, 8, [12, 4])
    assert snapshot_source(staged_model_name(STAGES, 6, 8, [12, 4]), [longer], 2) == (longer, 1)
    assert snapshot_source(staged_model_name(STAGES, 6, 4, [12, 4]), [longer], 2) is None  # another encoder
    assert snapshot_source(staged_model_name(STAGES, 5, 8, [12, 4]), [longer], 2) is None  # not a snapshot step


def test_algorithm_4_trains_every_decoder_and_resumes_bit_identically(tmp_path, images):
    cfg = load_config(TINY)
    job = train_job(MODEL, cfg)
    whole = run_training(cfg, job, images, tmp_path / "whole", CPU, log=lambda s: None)
    assert isinstance(whole.model, MultiDecoderUNet) and whole.step == 8
    assert {r["t_lo"] for r in whole.loss_rows} == {0, 250, 500, 750}  # both stages in every logged interval
    assert sum(r["count"] for r in whole.loss_rows if r["step"] == 2) == 2 * 4  # 2 steps of 4 samples
    torch.manual_seed(cfg.training.seed)
    fresh = MultiDecoderUNet(**job.model_spec["arguments"])
    for k in range(2):  # each decoder moved away from its initial weights
        before, after = fresh.decoders[k].state_dict(), whole.model.decoders[k].state_dict()
        assert any(not torch.equal(before[n], after[n]) for n in before)
    run_training(cfg, job, images, tmp_path / "killed", CPU, log=lambda s: None, stop_after=4)
    resumed = run_training(cfg, job, images, tmp_path / "killed", CPU, log=lambda s: None)
    assert states_equal(resumed.model.state_dict(), whole.model.state_dict())
    assert states_equal(resumed.ema.state_dict(), whole.ema.state_dict())
    snapshot = load_checkpoint(snapshot_path(tmp_path / "whole", 8))
    assert snapshot["model_spec"] == job.model_spec


def test_algorithm_3_on_two_gloo_processes_takes_algorithm_4s_steps(tmp_path, images):
    """One process per stage: the encoder's gradients averaged over both, each decoder's from its
    own process (DDP's average with the other process's zero): the same steps within 1e-4."""
    cfg = load_config({**TINY, "training": {**TINY["training"], "data_parallel": 2}})
    train = tmp_path / "train.npz"
    np.savez(train, images=images, labels=np.zeros(len(images), dtype=np.int64))
    launch_data_parallel(cfg.to_dict(), MODEL, train, tmp_path / "alg3", processes=2, threads=2,
                         log_path=tmp_path / "alg3.log")
    torch.set_num_threads(1)
    alg4 = run_training(cfg, train_job(MODEL, cfg), images, tmp_path / "alg4", CPU, log=lambda s: None)
    alg3 = load_checkpoint(tmp_path / "alg3" / "latest.pt")
    assert alg3["step"] == alg4.step == 8
    np.testing.assert_allclose([r["loss"] for r in alg3["loss_rows"]], [r["loss"] for r in alg4.loss_rows],
                               rtol=1e-4)
    for key, value in alg4.model.state_dict().items():
        torch.testing.assert_close(alg3["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_default_decoder_widths_ramp_and_fit_every_config_head_width():
    cfg = load_config({})
    assert decoder_widths(cfg, 3) == [48, 32, 16]  # 1.5x, 1x, 0.5x the encoder's 32
    wide_heads = load_config({"model": {"base_channels": 128, "channel_mult": [1, 2, 2, 2],
                                        "attention_resolutions": [4], "channels_per_head": 32}})
    assert decoder_widths(wide_heads, 3) == [192, 128, 64]  # rounded up to multiples of 32
    with pytest.raises(ValueError, match="config key 'multistage.decoder_channels': one width per stage"):
        load_config({"multistage": {"decoder_channels": [32, 16]}})


def test_a_short_multi_stage_run_is_the_snapshot_of_a_longer_one(tmp_path, images):
    """Why Tables 7 and 9 may take the main multi-stage model's snapshot as their model at the
    ablation budget: staged training, like single-interval training, has no budget-dependent part."""
    cfg = load_config(TINY)
    short = run_training(cfg, train_job(staged_model_name(STAGES, 4, 8, [12, 4]), cfg), images, tmp_path / "short",
                         CPU, log=lambda s: None)
    run_training(cfg, train_job(staged_model_name(STAGES, 8, 8, [12, 4]), cfg), images, tmp_path / "long", CPU,
                 log=lambda s: None)
    snapshot = load_checkpoint(snapshot_path(tmp_path / "long", 4))
    assert snapshot["step"] == short.step == 4
    assert states_equal(snapshot["ema"], short.ema.state_dict())
    assert states_equal(snapshot["model"], short.model.state_dict())
