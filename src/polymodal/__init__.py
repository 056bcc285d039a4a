"""polymodal: multimodal deep learning from validated recipes."""

from polymodal.api import Predictor, RunResult, compare_modalities, evaluate, load, train
from polymodal.config import Recipe, load_recipe, parse_recipe
from polymodal.errors import CheckpointError, ConfigError, DataError, PolymodalError

__version__ = "0.1.0"
__all__ = [
    "train",
    "compare_modalities",
    "evaluate",
    "load",
    "Predictor",
    "RunResult",
    "Recipe",
    "load_recipe",
    "parse_recipe",
    "PolymodalError",
    "ConfigError",
    "DataError",
    "CheckpointError",
]
