"""Importing this module registers every built-in component (one import line per component file)."""

from polymodal.data.datasets import avdigits, fsdd, mnist  # noqa: F401
from polymodal.data.modalities import audio, image  # noqa: F401
from polymodal.encoders import audio_cnn, image_cnn  # noqa: F401
from polymodal.fusion import concat, late  # noqa: F401
from polymodal.heads import classification  # noqa: F401
