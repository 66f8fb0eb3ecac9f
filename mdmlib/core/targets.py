"""Named import targets: ``"package.module:attribute"`` resolved on first use, as the registries
name classes and functions, so that registering one imports nothing heavy (no torch at DAG time)."""
from __future__ import annotations

import importlib
from typing import Any


def resolve(target: str) -> Any:
    module, colon, attr = target.partition(":")
    if not colon or not module or not attr:
        raise ValueError(f"import target {target!r} is not 'module:attribute'")
    return getattr(importlib.import_module(module), attr)
