"""The model registry: architecture name -> class, and the constructor arguments a config gives it.

A model is described by a spec, ``{"architecture": name, "arguments": {...}}``, of plain
values only (per-layer widths included), which every checkpoint stores; ``build_model``
rebuilds any registered architecture from a spec alone (EDM's class name + kwargs,
nanoGPT's ``model_args``), so checkpoints load with ``weights_only=True`` and never
depend on the config that trained them. Classes are named by import path and imported
on first build, so this module stays torch-free. A plug-in (config key ``plugins``)
adds an architecture with ``register_architecture``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mdmlib.core.targets import resolve


@dataclass(frozen=True)
class Architecture:
    """A registered class takes its spec's arguments as keywords, exposes ``in_channels`` and
    ``resolution``, and is called as ``model(x, t)`` with timestep indices ``t``."""

    name: str
    target: str  # "package.module:Class"; the class takes the spec's arguments as keywords
    # (model config, image channels, resolution) -> the constructor's keyword arguments; None: the
    # architecture needs more than the model config (e.g. stage boundaries) and is built from a spec
    arguments: Callable[[Any, int, int], dict] | None


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(architecture: Architecture) -> Architecture:
    if architecture.name in ARCHITECTURES and ARCHITECTURES[architecture.name] != architecture:
        raise ValueError(f"architecture {architecture.name!r} is already registered")
    ARCHITECTURES[architecture.name] = architecture
    return architecture


def architecture_names() -> tuple[str, ...]:
    return tuple(ARCHITECTURES)


def plain(value: Any) -> Any:
    """Tuples -> lists, recursively: a spec holds only what ``weights_only`` loading accepts."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def model_spec(model_cfg: Any, in_channels: int, resolution: int) -> dict:
    """The spec of the model that ``model_cfg`` (a ``ModelConfig``) asks for."""
    arch = architecture(model_cfg.architecture)
    if arch.arguments is None:
        raise ValueError(f"architecture {arch.name!r} is built from an explicit spec (its arguments need more than "
                         "the model config), not from model.architecture")
    return {"architecture": arch.name, "arguments": plain(arch.arguments(model_cfg, in_channels, resolution))}


def build_model(spec: dict):
    """A freshly initialised model of a spec; ValueError naming what does not fit."""
    arch = architecture(spec["architecture"])
    cls = resolve(arch.target)
    try:
        model = cls(**spec["arguments"])
    except TypeError as err:
        raise ValueError(f"architecture {arch.name!r}: arguments {sorted(spec['arguments'])} do not fit "
                         f"{arch.target} ({err})") from err
    model.spec = {"architecture": arch.name, "arguments": plain(spec["arguments"])}
    return model


def new_model(model_cfg: Any, in_channels: int, resolution: int):
    """A freshly initialised model as the config asks for it."""
    return build_model(model_spec(model_cfg, in_channels, resolution))


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; registered: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def unet_arguments(cfg: Any, in_channels: int, resolution: int) -> dict:
    return {"in_channels": in_channels, "resolution": resolution, "base_channels": cfg.base_channels,
            "channel_mult": cfg.channel_mult, "num_res_blocks": cfg.num_res_blocks,
            "attention_resolutions": cfg.attention_resolutions, "channels_per_head": cfg.channels_per_head,
            "dropout": cfg.dropout}


register_architecture(Architecture("unet", "mdmlib.models.unet:UNet", unet_arguments))
# Stage boundaries come from an interval choice: its spec is written by the multi-stage target.
register_architecture(Architecture("multi_decoder", "mdmlib.models.multi_decoder:MultiDecoderUNet", None))
# DiffPruning's elastic experts: a U-Net spec plus its elastic mode, written by the training job.
register_architecture(Architecture("elastic_unet", "mdmlib.models.elastic:ElasticUNet", None))
