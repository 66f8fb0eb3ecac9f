"""The interval-method registry: entries drive the config, the schema and what the rules give a method."""
from __future__ import annotations

import dataclasses

import pytest
from conftest import REPO

from mdmlib.config import IntervalsConfig, load_config
from mdmlib.intervals import registry
from mdmlib.intervals.registry import (
    IntervalMethod,
    interval_method,
    method_names,
    register_method,
)


def test_the_built_in_methods_and_what_each_reads():
    assert method_names()[:6] == ("paper", "attention", "gradient", "optimal_denoiser", "snr", "uniform")
    reads = {m: (interval_method(m).inputs, interval_method(m).gpu) for m in method_names()[:6]}
    assert reads == {"paper": ((), False), "attention": (("model",), True), "gradient": (("train", "model"), True),
                     "optimal_denoiser": (("train",), False), "snr": ((), False), "uniform": ((), False)}


def test_settings_come_from_the_entries_and_round_trip_in_the_yaml_shape():
    cfg = load_config(REPO / "config.yaml")
    assert cfg.intervals.settings("attention").checkpoint_fraction == 0.1
    assert cfg.intervals.settings("paper") is None
    plain = cfg.intervals.to_plain()
    assert list(plain) == ["attention", "gradient", "optimal_denoiser", "snr", "study", "seed"]
    assert IntervalsConfig.from_values(plain) == cfg.intervals


def test_an_unknown_settings_key_is_named():
    with pytest.raises(ValueError, match="intervals.attention"):
        load_config({"intervals": {"attention": {"image": 3}}})


def test_a_method_check_names_its_key():
    with pytest.raises(ValueError, match="config key 'intervals.gradient.grid': 2 is too few for 3 intervals"):
        load_config({"experts": {"intervals": "gradient"}, "intervals": {"gradient": {"grid": 2}}})


def test_entries_are_checked_when_made():
    with pytest.raises(ValueError, match="unknown inputs"):
        IntervalMethod("x", "m:f", inputs=("images",))
    with pytest.raises(ValueError, match="not 'module:function'"):
        IntervalMethod("x", "m.f")
    with pytest.raises(ValueError, match="checkpoint_fraction"):
        IntervalMethod("x", "m:f", inputs=("model",))


def test_a_registered_method_with_settings_gets_its_config_block_and_schema(monkeypatch):
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))

    @dataclasses.dataclass(frozen=True)
    class HalvesSettings:
        ratio: float = 0.5

    register_method(IntervalMethod("halves", "m:f", settings=HalvesSettings, schema={
        "type": "object", "additionalProperties": False, "properties": {"ratio": {"type": "number", "maximum": 1}}}))
    cfg = load_config({"experts": {"intervals": "halves"}, "intervals": {"halves": {"ratio": 0.25}}})
    assert cfg.intervals.settings("halves") == HalvesSettings(0.25)
    assert cfg.intervals.study.methods[-1] == "halves"  # the default studies every registered method
    with pytest.raises(ValueError, match="config key 'intervals.halves.ratio'"):
        load_config({"intervals": {"halves": {"ratio": 2}}})
