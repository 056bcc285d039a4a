"""polymodal: multimodal deep learning from validated recipes.

The names here are the public API (see :mod:`polymodal.api`, which also has ``report`` and ``export``: those
names are subpackages of polymodal, so they are reached as ``polymodal.api.report`` and ``polymodal.api.export``).
No public name is also a subpackage's name, so importing any module cannot replace one.
"""

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
