"""A recipe's image + audio split written in the AV-MNIST layout MultiBench reads (``datasets/avmnist``).

So that another toolkit trains and tests on exactly the rows polymodal does, the recipe's table is split the way
:func:`polymodal.data.dataset.build_data` splits it, and each row is written as MultiBench's AV-MNIST loader
expects::

    OUT/image/train_data.npy   (N_train + N_val, 28, 28) float32, 0..255   greyscale digit
    OUT/image/test_data.npy    (N_test, 28, 28)
    OUT/audio/train_data.npy   (N_train + N_val, 112, 112) float32, 0..255   log-mel spectrogram (mel × frame)
    OUT/audio/test_data.npy    (N_test, 112, 112)
    OUT/train_labels.npy       (N_train + N_val,) int64 class index (polymodal's encoding)
    OUT/test_labels.npy        (N_test,)
    OUT/split.json             row counts (the training rows come first, then the validation rows), table rows

MultiBench's loader takes the last rows of ``train_data`` as its validation set (5,000 of 60,000 for the
original AV-MNIST); ``split.json`` says how many they are here. The spectrogram is 112 mel bands × 112 frames
(n_fft 512, hop 64 samples: 0.9 s at 8 kHz) with per-utterance mean/variance normalisation, clipped at ±4
standard deviations and scaled to 0..255 like an image (the original AV-MNIST audio is a 112 × 112
spectrogram image).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.config import Recipe
from polymodal.data.dataset import input_cells, load_table
from polymodal.data.modalities.audio import AudioPreprocessing
from polymodal.data.modalities.image import ImagePreprocessing
from polymodal.data.table import assign_splits
from polymodal.data.targets import encode_targets
from polymodal.errors import ConfigError
from polymodal.registry import MODALITIES

IMAGE_SIDE, AUDIO_SIDE = 28, 112
CLIP = 4.0  # standard deviations kept of the normalised log-mel before scaling to 0..255


def image_array(x: torch.Tensor) -> np.ndarray:
    """(1, 28, 28) tensor on [0, 1] -> (28, 28) float32 on 0..255."""
    return (x[0].numpy() * 255.0).astype(np.float32)


def audio_array(x: torch.Tensor) -> np.ndarray:
    """(1, 112, 112) CMVN log-mel -> (112, 112) float32 on 0..255 (−CLIP σ -> 0, +CLIP σ -> 255)."""
    return ((x[0].clamp(-CLIP, CLIP) + CLIP) * (255.0 / (2 * CLIP))).numpy().astype(np.float32)


def export_avmnist(recipe: Recipe, out: str | Path) -> dict[str, Any]:
    """Write the recipe's train/val/test rows in the AV-MNIST layout under ``out``; returns ``split.json``.

    The recipe must have one image input and one audio input and a class label (e.g. ``avdigits``).
    """
    images = [s for s in recipe.inputs if s.modality == "image"]
    audios = [s for s in recipe.inputs if s.modality == "audio"]
    if len(images) != 1 or len(audios) != 1 or recipe.head.name != "classification":
        raise ConfigError("export-avmnist needs a classification recipe with one image and one audio input")
    if recipe.data.label_fraction < 1.0:
        raise ConfigError("export-avmnist writes whole splits; drop data.label_fraction")
    table = load_table(recipe)
    split_seed = recipe.seed if recipe.data.split_seed is None else recipe.data.split_seed
    split = assign_splits(table, recipe.data.val_fraction, recipe.data.test_fraction, split_seed, stratify=True)
    rows = {name: np.flatnonzero(split == name) for name in ("train", "val", "test")}
    targets, info = encode_targets(table.frame, table.label, "class", rows["train"])
    image_t = MODALITIES.build("image", ImagePreprocessing(size=IMAGE_SIDE, channels=1, mean=0.0, std=1.0))
    audio_pre = audios[0].preprocessing
    audio_t = MODALITIES.build(
        "audio",
        AudioPreprocessing(
            sample_rate=getattr(audio_pre, "sample_rate", 8000),
            n_fft=512,
            hop_length=64,
            n_mels=AUDIO_SIDE,
            max_frames=AUDIO_SIDE,
            normalize=True,
        ),
    )
    out = Path(out)
    for part, order in (("train", ("train", "val")), ("test", ("test",))):
        r = np.concatenate([rows[name] for name in order])
        img_cells = input_cells(table.frame, images[0], r, table.base_dir)
        wav_cells = input_cells(table.frame, audios[0], r, table.base_dir)
        for folder, cells, t, to_array in (
            ("image", img_cells, image_t, image_array),
            ("audio", wav_cells, audio_t, audio_array),
        ):
            (out / folder).mkdir(parents=True, exist_ok=True)
            np.save(out / folder / f"{part}_data.npy", np.stack([to_array(t(c)) for c in cells]))
        np.save(out / f"{part}_labels.npy", targets[r].astype(np.int64))
    meta = {
        "source": table.source,
        "recipe": recipe.name,
        "classes": info["classes"],
        "train": len(rows["train"]),
        "val": len(rows["val"]),
        "test": len(rows["test"]),
        "table_rows": {name: r.tolist() for name, r in rows.items()},
    }
    (out / "split.json").write_text(json.dumps(meta), encoding="utf-8")
    return meta
