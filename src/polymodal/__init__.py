"""polymodal: multimodal deep learning from validated recipes.

The names here are the public API (see :mod:`polymodal.api`, which also has ``report`` and ``export``: those
names are subpackages of polymodal, so they are reached as ``polymodal.api.report`` and ``polymodal.api.export``).
No public name is also a subpackage's name, so importing any module cannot replace one.

They are imported on first use (PEP 562), not with the package: ``import polymodal.cli`` for ``polymodal
--help`` or ``polymodal.errors`` in a server need not load torch (about 2 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polymodal.api import (
        RunPredictor,
        RunResult,
        compare_modalities,
        evaluate,
        load,
        load_recipe,
        sample_gan,
        train,
    )
    from polymodal.config import Recipe, parse_recipe
    from polymodal.errors import CheckpointError, ConfigError, DataError, PolymodalError
    from polymodal.predictor import Predictor

__version__ = "0.1.0"
_WHERE = {
    "polymodal.api": (
        "train",
        "compare_modalities",
        "evaluate",
        "sample_gan",
        "load",
        "RunPredictor",
        "RunResult",
        "load_recipe",
    ),
    "polymodal.predictor": ("Predictor",),
    "polymodal.config": ("Recipe", "parse_recipe"),
    "polymodal.errors": ("PolymodalError", "ConfigError", "DataError", "CheckpointError"),
}
_MODULE = {name: module for module, names in _WHERE.items() for name in names}
__all__ = [
    "train",
    "compare_modalities",
    "evaluate",
    "sample_gan",
    "load",
    "Predictor",
    "RunPredictor",
    "RunResult",
    "Recipe",
    "load_recipe",
    "parse_recipe",
    "PolymodalError",
    "ConfigError",
    "DataError",
    "CheckpointError",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE:
        raise AttributeError(f"module 'polymodal' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE[name]), name)
    globals()[name] = value  # later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
