"""OpenClipArt: 64×64 clip-art images with titles, keywords and a category (22 classes), from a local copy."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pandas as pd
from pydantic import Field

from polymodal.data.datasets.common import ENV_VAR, find_local
from polymodal.data.table import Table
from polymodal.errors import DataError
from polymodal.registry import DATASETS


def clipart_dir(override: str | None) -> Path | None:
    if override:
        p = Path(override)
        if not (p / "captions.csv").is_file():
            raise DataError(f"{p} has no captions.csv; point clipart_dir at the clipart folder")
        return p
    return find_local("clipart", "captions.csv")


def category_words(category: str) -> set[str]:
    """The category's own words and their singulars: 'signs_and_symbols' -> signs, sign, symbols, symbol."""
    words = {w for w in re.split(r"[_\s]+", category.lower()) if w and w != "and"}
    return words | {w[:-1] for w in words if w.endswith("s")} | {category.lower()}


def clean_keywords(keywords: str, category: str) -> str:
    """Space-separated keyword words without the words that restate the category label (also inside
    phrases such as 'computer mouse')."""
    leak = category_words(category)
    words = (w for k in str(keywords).split(";") for w in k.split())
    return " ".join(w for w in words if w.lower().strip(".,-") not in leak)


@dataclass
class ClipartOptions:
    """Recipe keys under ``data.options`` for ``clipart``.

    drop_category_words: many images carry their category as a keyword ('animal' on every animal); kept,
    text-only accuracy measures a label lookup, not understanding, so by default those keywords are removed.
    """

    clipart_dir: str | None = None
    min_per_class: Annotated[int, Field(ge=1)] = 20
    drop_category_words: bool = True


@DATASETS.register("clipart", ClipartOptions)
class Clipart:
    """OpenClipArt images (64×64 RGB) with title/keywords/description text; label: category."""

    def __init__(self, clipart_dir: str | None, min_per_class: int, drop_category_words: bool) -> None:
        self.clipart_dir, self.min_per_class, self.drop_category_words = clipart_dir, min_per_class, drop_category_words

    def status(self) -> str:
        root = clipart_dir(self.clipart_dir)
        return f"local: {root}" if root else f"not found: put it in ${ENV_VAR}/clipart or ../shared/data/clipart"

    def load(self) -> Table:
        root = clipart_dir(self.clipart_dir)
        if root is None:
            raise DataError(f"clipart not found; set {ENV_VAR} to a folder holding clipart/captions.csv")
        frame = pd.read_csv(root / "captions.csv", keep_default_na=False)
        counts = frame["category"].value_counts()
        frame = frame[frame["category"].map(counts) >= self.min_per_class].reset_index(drop=True)
        if self.drop_category_words:
            frame["keywords"] = [
                clean_keywords(k, c) for k, c in zip(frame["keywords"], frame["category"], strict=True)
            ]
        else:
            frame["keywords"] = frame["keywords"].str.replace(";", " ")
        # One drawing is often filed under several categories or sub-folders (8,118 rows, 6,814 distinct
        # images): rows of the same image share a split so that no test image was seen in training.
        frame["drawing"] = [hashlib.md5((root / p).read_bytes()).hexdigest() for p in frame["image"]]
        return Table(frame, label="category", base_dir=root, source=f"OpenClipArt ({root})", group="drawing")
