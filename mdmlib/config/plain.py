"""Typed config <-> plain nested dicts (YAML, checkpoints)."""
from __future__ import annotations

from dataclasses import fields
from typing import Any


def to_plain(obj: Any) -> Any:
    """Dataclass -> nested dict of plain types (tuples become lists), e.g. for checkpoints."""
    if hasattr(obj, "to_plain"):
        return obj.to_plain()
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def from_dict(cls: type, values: dict[str, Any] | None):
    """Build dataclass ``cls`` from a dict, recursing into nested dataclasses.

    Unknown keys raise, naming the key, so a typo never silently falls back to a default.
    """
    values = dict(values or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else known[name].default
        if hasattr(default, "from_values") and isinstance(value, dict):  # a section that builds itself
            value = type(default).from_values(value)
        elif hasattr(default, "__dataclass_fields__") and isinstance(value, dict):
            value = from_dict(type(default), value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
