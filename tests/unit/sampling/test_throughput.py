"""Sampling throughput: a smaller network samples faster, and every run is timed on the same batch."""
from __future__ import annotations

import pytest
import torch

from mdmlib.config import ModelConfig, load_config
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.models.registry import new_model
from mdmlib.sampling.throughput import measure_throughput, run_throughputs, time_models
from mdmlib.training.checkpoint import save_checkpoint

RESULT_KEYS = {"images_per_second", "seconds_per_batch", "batch", "steps", "repeats"}


def unet(base_channels: int):
    return new_model(ModelConfig(base_channels=base_channels, channel_mult=(1, 2), num_res_blocks=1,
                                 attention_resolutions=(4,), channels_per_head=4, dropout=0.0), 1, 16).eval()


def checkpoint(path, model, interval, cfg):
    save_checkpoint(path, {"model_spec": model.spec, "config": cfg.to_dict(), "name": path.stem, "in_channels": 1,
                           "resolution": 16, "interval": list(interval), "recipe": "adm", "step": 1,
                           "ema": model.state_dict()})
    return path


def test_a_smaller_network_measures_more_images_per_second():
    schedule = NoiseSchedule.from_name("cosine", 1000)
    small = measure_throughput(unet(4), schedule, (1, 16, 16), steps=4, eta=0.0, batch=16, repeats=3, seed=0)
    assert RESULT_KEYS <= set(small) and (small["batch"], small["steps"], small["repeats"]) == (16, 4, 3)
    assert small["images_per_second"] == pytest.approx(16 / small["seconds_per_batch"])
    assert small["seconds_per_batch"] == min(small["all_seconds"])
    # One thread (as the pipeline's jobs), timed in alternation: with 2 threads on cores shared with
    # other work, and timed apart, the ratio fell from ~6 to 1.8 beside a pipeline run; so it is ~15.
    models = {name: (unet(width), schedule, (1, 16, 16)) for name, width in (("small", 4), ("big", 64))}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timed = time_models(models, steps=4, eta=0.0, batch=16, repeats=5, seed=0, device=torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    assert timed["small"]["images_per_second"] > 2 * timed["big"]["images_per_second"]  # ~250x fewer MACs


def test_runs_are_built_as_the_pipeline_samples_them_and_timed_alike(tmp_path):
    cfg = load_config({"sampling": {"steps": 3, "eta": 1.0}})  # eta > 0: the per-step noise is drawn too
    runs = {"baseline": [checkpoint(tmp_path / "base.pt", unet(32), (0, 1000), cfg)],
            "mixture": [checkpoint(tmp_path / "a.pt", unet(4), (0, 400), cfg),
                        checkpoint(tmp_path / "b.pt", unet(8), (400, 1000), cfg)]}
    result = run_throughputs(runs, cfg, batch=8, repeats=2, log=lambda _: None)
    assert set(result["runs"]) == {"baseline", "mixture"}
    for measured in result["runs"].values():
        assert RESULT_KEYS <= set(measured)
        assert (measured["batch"], measured["steps"], measured["repeats"]) == (8, 3, 2)
    assert result["runs"]["mixture"]["images_per_second"] > result["runs"]["baseline"]["images_per_second"]
    machine = result["machine"]
    assert machine["device"] == "cpu" and machine["torch_threads"] >= 1 and machine["cpu_count"] >= 1
    assert machine["torch_version"]


def test_no_timed_batch_is_refused():
    with pytest.raises(ValueError, match="at least one timed batch"):
        measure_throughput(unet(4), NoiseSchedule.from_name("cosine", 1000), (1, 16, 16), 2, 0.0, 4, repeats=0)
