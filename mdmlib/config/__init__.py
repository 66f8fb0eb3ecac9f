"""Typed configuration: one dataclass per concern, built once from the YAML.

The JSON schema in ``schemas/config.schema.yaml`` validates values and fills
defaults before these objects are built; the dataclasses only give the rest of
the library names and types instead of nested dictionaries.

The sections live in ``sections`` (the core) and ``methods`` (multi-stage, TDC, DiffPruning), the
cross-key checks in ``checks``; everything is imported from ``mdmlib.config``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mdmlib.config.checks import check_consistency, check_diffpruning_model
from mdmlib.config.methods import (
    AgentConfig,
    DiffPruningConfig,
    EncoderDecoderSplit,
    MultistageConfig,
    ProxyConfig,
    TdcConfig,
)
from mdmlib.config.plain import from_dict, to_plain
from mdmlib.config.sections import (
    BaselinesConfig,
    ConvergenceConfig,
    DataConfig,
    DiffusionConfig,
    ExpertsConfig,
    FeatureNetConfig,
    IntervalsConfig,
    IntervalStudyConfig,
    MetricsConfig,
    ModelConfig,
    SamplingConfig,
    TrainConfig,
    sd_value,
)
from mdmlib.intervals.registry import interval_method, method_names
from mdmlib.models.registry import architecture_names

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"

__all__ = ["AgentConfig", "BaselinesConfig", "ConvergenceConfig", "DataConfig", "DiffPruningConfig",
           "DiffusionConfig", "EncoderDecoderSplit", "ExpertsConfig", "FeatureNetConfig",
           "IntervalsConfig", "IntervalStudyConfig", "MetricsConfig", "ModelConfig",
           "MultistageConfig", "ProxyConfig", "RunConfig", "SamplingConfig", "TdcConfig", "TrainConfig",
           "check_diffpruning_model", "from_dict", "load_config", "load_plugins", "registered_schema", "sd_value",
           "to_plain", "validate"]


@dataclass(frozen=True)
class RunConfig:
    experiment: str = "default"  # results/<dataset>/<experiment>/
    # Python modules imported before the config is checked: they register architectures
    # (mdmlib.models.registry) and interval methods (mdmlib.intervals.registry) of their own.
    plugins: tuple[str, ...] = ()
    data: DataConfig = field(default_factory=DataConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    experts: ExpertsConfig = field(default_factory=ExpertsConfig)
    intervals: IntervalsConfig = field(default_factory=IntervalsConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    convergence: ConvergenceConfig = field(default_factory=ConvergenceConfig)
    multistage: MultistageConfig = field(default_factory=MultistageConfig)
    tdc: TdcConfig = field(default_factory=TdcConfig)
    diffpruning: DiffPruningConfig = field(default_factory=DiffPruningConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


def validate(values: dict[str, Any]) -> RunConfig:
    """Validate against the JSON schema, build the typed config, check cross-field rules.

    Defaults live only in the dataclasses above. Raises ``ValueError`` naming the key.
    """
    import jsonschema

    load_plugins(values.get("plugins") or [])
    schema = registered_schema(yaml.safe_load(SCHEMA_PATH.read_text()))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = [str(p) for p in err.absolute_path]
        if err.validator == "additionalProperties":  # name the misspelt key itself
            path += sorted(set(err.instance) - set(err.schema.get("properties", {})))[:1]
        key = ".".join(path) or "<top level>"
        raise ValueError(f"config key '{key}': {err.message}")
    cfg = from_dict(RunConfig, values)
    check_consistency(cfg)
    return cfg


def load_plugins(modules: list[str]) -> None:
    """Import each plug-in module; it registers its architectures and interval methods."""
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise ValueError(f"config key 'plugins': expected a list of module names, got {modules!r}")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"config key 'plugins': cannot import {module!r} ({err})") from err


def registered_schema(schema: dict) -> dict:
    """The schema with the registries' names as the allowed methods and architectures, and the
    schema blocks that plug-in methods carry."""
    props = schema["properties"]
    names = list(method_names())
    props["experts"]["properties"]["intervals"]["enum"] = names
    props["intervals"]["properties"]["study"]["properties"]["methods"]["items"]["enum"] = names
    props["model"]["properties"]["architecture"]["enum"] = list(architecture_names())
    for name in names:
        block = interval_method(name).schema
        if block is not None:
            props["intervals"]["properties"][name] = block
    return schema



def load_config(path: str | Path | dict) -> RunConfig:
    """Read YAML (or take a dict), validate, and build the typed config."""
    values = path if isinstance(path, dict) else yaml.safe_load(Path(path).read_text())
    return validate(values or {})
