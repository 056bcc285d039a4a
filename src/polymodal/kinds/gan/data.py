"""GAN training data: every training image decoded once into one tensor, with its condition tensor.

The split is the one classification recipes get for the same dataset, fractions and seed
(:func:`polymodal.data.table.assign_splits`), so a classifier trained by a recipe on that data never saw the
test images the GAN is compared against, and the GAN trains on train + val (it has no use for validation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from polymodal.data.dataset import resolve_cell
from polymodal.data.modalities.image import ImageTransform
from polymodal.data.table import Table, assign_splits
from polymodal.errors import DataError
from polymodal.gan.condition import BagOfWords
from polymodal.kinds.gan.recipe import GANRecipe
from polymodal.registry import DATASETS


@dataclass
class GANData:
    """Training images (N, C, H, W) in [-1, 1] and conditions (N,) long or (N, V) float; the held-out rows'
    captions (text) for grids; the class names (label); the fitted bag of words (text)."""

    images: torch.Tensor
    conds: torch.Tensor
    classes: list[str]
    bow: BagOfWords | None
    test_captions: list[str]
    test_images: torch.Tensor  # (grid_rows, C, H, W): the real image of each grid caption (text), else empty
    source: str
    data_hash: str = ""  # Table.content_hash of the dataset the images came from

    @property
    def cond_dim(self) -> int:
        return self.bow.dim if self.bow is not None else len(self.classes)


def caption(frame: Any, row: int, columns: list[str]) -> str:
    return " ".join(str(frame[c].iat[row]).replace(";", " ") for c in columns)


def load_gan_data(recipe: GANRecipe, bow_state: dict[str, Any] | None = None) -> GANData:
    """Load, split and decode the recipe's data; ``bow_state`` reuses a saved vocabulary (resume)."""
    cfg = recipe.data
    table: Table = DATASETS.get(cfg.dataset).factory(**dataclasses.asdict(cfg.options)).load()
    if cfg.label is not None:
        table.label = cfg.label
    needed = [cfg.image_column, table.label] + (cfg.text_columns if cfg.condition == "text" else [])
    table.require(needed, f"dataset '{cfg.dataset}'")
    frame = table.frame
    split = assign_splits(table, cfg.val_fraction, cfg.test_fraction, recipe.seed)
    train = np.flatnonzero(split != "test")
    if cfg.max_train and len(train) > cfg.max_train:
        train = np.sort(np.random.default_rng(recipe.seed).permutation(train)[: cfg.max_train])
    test = np.flatnonzero(split == "test")
    if len(train) == 0:
        raise DataError(f"dataset '{cfg.dataset}' has no training rows; lower data.test_fraction")
    transform = ImageTransform(cfg.image_size, cfg.channels, 0.5, 0.5, 40_000_000)  # [0, 1] -> [-1, 1] as tanh

    def decode(rows: np.ndarray) -> torch.Tensor:
        cells = (resolve_cell(frame[cfg.image_column].iat[i], table.base_dir) for i in rows)
        return torch.stack([transform(c) for c in cells]) if len(rows) else torch.empty(0)

    labels = frame[table.label].astype(str).to_numpy()
    classes = sorted(set(labels[train].tolist()), key=str)
    bow, test_captions, test_images = None, [], torch.empty(0)
    if cfg.condition == "label":
        index = {c: i for i, c in enumerate(classes)}
        conds = torch.tensor([index[lab] for lab in labels[train]], dtype=torch.long)
    else:
        texts = [caption(frame, i, cfg.text_columns) for i in train]
        bow = BagOfWords.from_state(bow_state) if bow_state else BagOfWords(cfg.vocab_size, cfg.min_count).fit(texts)
        conds = bow.encode(texts)
        # Grid rows: held-out captions with at least two known words, so the condition says something.
        shown = [i for i in test if len(bow.known(caption(frame, i, cfg.text_columns))) >= 2]
        shown = list(np.random.default_rng(recipe.seed).permutation(shown)[: recipe.evaluation.grid_rows])
        test_captions = [caption(frame, i, cfg.text_columns) for i in shown]
        test_images = decode(np.asarray(shown, dtype=np.int64))
    source = table.source or cfg.dataset
    return GANData(decode(train), conds, classes, bow, test_captions, test_images, source, table.content_hash())
