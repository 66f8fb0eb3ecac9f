"""Loading and validating the pipeline config: the shipped files, bad values named by key, round trips."""
from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO as ROOT
from snakemake.utils import update_config

from mdmlib.config import (
    ModelConfig,
    RunConfig,
    from_dict,
    load_config,
    to_plain,
    validate,
)


def base_values() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def smoke_values() -> dict:
    """config.yaml with configs/smoke.yaml merged over it, the way `--configfile` merges (deep)."""
    values = base_values()
    update_config(values, yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text()))
    return values


def test_shipped_config_loads_with_the_paper_settings():
    cfg = load_config(ROOT / "config.yaml")
    assert isinstance(cfg, RunConfig)
    assert cfg.experts.boundaries == (0.1, 0.8)
    assert cfg.diffusion.timesteps == 1000 and cfg.diffusion.schedule == "cosine"
    assert cfg.model.channel_mult == (1, 2) and cfg.model.attention_resolutions == (4,)
    assert cfg.sampling.steps == 50 and cfg.training.batch_size == 128
    assert cfg.metrics.feature_net.width == 32


def test_smoke_config_deep_merges_over_the_default():
    cfg = load_config(smoke_values())
    assert cfg.experiment == "smoke"
    # Overridden keys take the smoke values ...
    assert cfg.model.base_channels == 16 and cfg.training.baseline_iterations == 40
    assert cfg.sampling.grid_size == 4 and cfg.metrics.feature_net.epochs == 1
    # ... and siblings the smoke file does not mention keep config.yaml's values (deep, not shallow, merge).
    assert cfg.model.channel_mult == (1, 2) and cfg.model.dropout == 0.1
    assert cfg.training.learning_rate == 0.0002 and cfg.metrics.feature_net.learning_rate == 0.001
    assert cfg.data.dataset == "digits" and cfg.data.max_train == 256


def test_empty_config_gives_the_dataclass_defaults():
    assert load_config({}) == RunConfig()


def set_key(values: dict, dotted: str, value) -> dict:
    values = copy.deepcopy(values)
    *parents, last = dotted.split(".")
    node = values
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return values


BAD = [
    ("training.batch_size", 0),
    ("data.dataset", "mnist"),
    ("experts.boundaries", [0.8, 0.1]),
    ("experts.boundaries", [0.1, 0.1]),
    ("experts.boundaries", [0.1, 0.1001]),  # both round to t = 100 at T = 1000: an empty interval
    ("experts.boundaries", [1.2]),
    ("model.attention_resolutions", [3]),
    ("model.channel_mult", [1, 2, 2, 2, 2]),  # five levels need 8 divisible by 2^4
    ("model.channels_per_head", 7),
    ("model.dropout", 1.0),
    ("training.checkpoint_every", 75),  # log_every is 50
    ("sampling.grid_size", 23),  # 23^2 = 529 > 500 samples
    ("diffusion.schedule", "sigmoid"),
    ("data.channels", 2),
    ("metrics.features", "vgg16"),
    ("metrics.inception_weights", 3),  # a path or null
    ("multistage.stage_counts", [3, 2]),
    ("multistage.stage_counts", [0, 1]),
    ("multistage.splits", [{"encoder": 0, "decoders": [1.5, 1, 0.5]}]),
    ("multistage.splits", [{"encoder": 1, "decoders": []}]),
    ("multistage.splits", [{"encoder": 1}]),
    ("multistage.ablation_iterations", 0),
    ("sampling.seed_sets", 1),  # a spread needs two sets
    ("baselines.sampling_seeds", 3),  # now sampling.seed_sets
    ("data.root", None, {"data.dataset": "cifar10"}),  # CIFAR-10 is read from a local folder
    ("data.root", "no/such/folder", {"data.dataset": "image_folder"}),
    ("data.val_size", 1797),  # the digits' every image
    ("sampling.steps", 1001),  # more DDIM steps than timesteps
    ("metrics.pr_k", 500),  # the k-th neighbour among 500 samples
    ("metrics.pr_k", 64, {"data.max_val": 64, "sampling.num_samples": 100}),  # ... among 64 references
    ("training.eval_points", 3000),  # more points than iterations
    ("convergence.max_change", "1 fid"),
    ("convergence.max_gap_to_best", 0.3, {"convergence.max_change": "1 sd"}),  # mixed units
    ("multistage.stage_count_intervals", "by_eye"),
    ("metrics.reference", "test"),  # validation, training or both
    ("tdc.groups", 1001),  # more groups than timesteps
    ("tdc.groups", 1),  # the only group's limit is F: nothing to prune
    ("tdc.pruning", ["magnitude", "gpt4"]),  # a criterion nobody registered
    ("tdc.pruning", ["taylor", "taylor"]),
    ("tdc.base_iterations", 1000),  # not one of the baseline's snapshot steps (400, 800, ..., 2400)
    ("tdc.finetune_iterations", 0),
    ("tdc.ablation_pruning", "lottery"),
    ("tdc.group_counts", [4, 4]),
    ("tdc.group_counts", [1, 4]),
    ("tdc.k_values", [0.3, 0.5, 1.0]),  # k must lie in (0, 1)
    ("tdc.k_values", [0.3, 0.5, 0.5]),
    ("tdc.k_values", [0.3, 0.7]),  # lacks the config's k (0.5), the reference
    ("tdc.k_tolerance", 0),
    ("tdc.proxy.proposer", "gpt4"),
    ("tdc.proxy.endpoint", None, {"tdc.proxy.proposer": "chat", "tdc.proxy.chat_model": "gpt-4"}),
    ("tdc.proxy.endpoint", "api.openai.com", {"tdc.proxy.proposer": "chat", "tdc.proxy.chat_model": "gpt-4"}),
    ("tdc.proxy.chat_model", None, {"tdc.proxy.proposer": "chat", "tdc.proxy.endpoint": "http://127.0.0.1:9"}),
    ("tdc.proxy.eval_images", 501),  # more than the 500 validation images
    ("intervals.snr.min_flops_ratio", 0),  # k must lie in (0, 1]
    ("intervals.snr.min_flops_ratio", 1.5),
    ("diffpruning.budgets", [0.5, 0]),  # a MACs budget must lie in (0, 1]
    ("diffpruning.budgets", [1.2]),
    ("diffpruning.budgets", [0.5, 0.5]),
    ("diffpruning.agent.temperature", 0),  # tau of the Gumbel-sigmoid
    ("diffpruning.n", 1),
    ("diffpruning.drop_probability", 1.0),  # every depth layer dropped on every batch
    ("diffpruning.single_model_pruning", "proxy"),  # TDC's search is not the paper's SP
    ("diffpruning.intervals", "by_eye"),
]


@pytest.mark.parametrize("case", BAD, ids=[f"{c[0]}={c[1]}" for c in BAD])
def test_bad_values_raise_naming_the_dotted_key(case):
    """Each case: (key, bad value[, the other values that make it bad])."""
    key, value, *context = case
    values = base_values()
    for other, other_value in (context[0] if context else {}).items():
        values = set_key(values, other, other_value)
    with pytest.raises(ValueError) as err:
        load_config(set_key(values, key, value))
    assert f"config key '{key}" in str(err.value)  # schema errors may add an item index: 'experts.boundaries.0'


def test_the_battery_holds_at_least_thirty_broken_configs():
    assert len(BAD) >= 30 and len({(c[0], str(c[1])) for c in BAD}) == len(BAD)


@pytest.mark.parametrize("key", ["training.batch_size", "sampling.grid_size", "experts.boundaries"])
def test_bad_values_are_caught_in_the_merged_smoke_config_too(key):
    bad = {"training.batch_size": 0, "sampling.grid_size": 9, "experts.boundaries": [0.5, 0.5]}[key]  # 9^2 > 64
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_config(set_key(smoke_values(), key, bad))


def test_a_misspelt_key_is_rejected_and_named():
    with pytest.raises(ValueError) as err:
        load_config(set_key(base_values(), "model.dropoutt", 0.1))
    assert "config key 'model.dropoutt'" in str(err.value)


def test_a_misspelt_key_is_named_by_its_dotted_path():
    with pytest.raises(ValueError, match=r"model\.dropoutt"):
        load_config(set_key(base_values(), "model.dropoutt", 0.1))


def test_an_unknown_section_is_rejected():
    with pytest.raises(ValueError, match="sampler"):
        load_config(set_key(base_values(), "sampler.steps", 10))


def test_from_dict_rejects_unknown_keys_without_the_schema():
    with pytest.raises(ValueError, match="dropoutt"):
        from_dict(ModelConfig, {"dropoutt": 0.1})


@pytest.mark.parametrize("values", [base_values(), smoke_values()], ids=["default", "smoke"])
def test_to_dict_round_trips_through_from_dict_and_validate(values):
    cfg = load_config(values)
    plain = cfg.to_dict()
    assert plain == to_plain(cfg)
    # Plain types only (tuples become lists), so it survives YAML / a weights_only checkpoint.
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain
    assert plain["model"]["channel_mult"] == list(cfg.model.channel_mult)
    assert from_dict(RunConfig, plain) == cfg
    assert validate(plain) == cfg
    # The shipped YAML lists every key, so the round trip reproduces it exactly.
    assert plain == values
