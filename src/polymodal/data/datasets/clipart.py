"""OpenClipArt: 64×64 clip-art images with titles, keywords and a category (22 classes), from a local copy."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pandas as pd
from PIL import Image
from pydantic import Field

from polymodal.data.datasets.common import ENV_VAR, find_local
from polymodal.data.leak import WordRemover, label_words
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


def is_blank(content: bytes) -> bool:
    """Whether an image file's pixels are all one colour (every band's minimum equals its maximum)."""
    with Image.open(io.BytesIO(content)) as im:
        extrema = im.getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    return all(lo == hi for lo, hi in bands)


def category_words(category: str) -> set[str]:
    """The category's own words and their singulars: 'signs_and_symbols' -> signs, sign, symbols, symbol."""
    return label_words(category)


def clean_keywords(keywords: str, *categories: str) -> str:
    """Space-separated keyword words without the words of ``categories`` (also inside phrases such as
    'computer mouse'); the loader passes every category, as the text option ``drop_label_words`` does."""
    return WordRemover(label_words(*categories))(str(keywords).replace(";", " "))


@dataclass
class ClipartOptions:
    """Recipe keys under ``data.options`` for ``clipart``.

    drop_category_words: many images carry their category as a keyword ('animal' on every animal); kept,
    text-only accuracy measures a label lookup, not understanding, so by default the words of every category
    name are removed from every row's keywords (the mechanism of any table's text option
    ``preprocessing.drop_label_words``, see polymodal.data.leak).

    drop_blank_images: 125 of the 8,118 images are one flat white square (failed renders, one file content
    shared by rows of several categories, 118 of them 'special'). They carry nothing about the drawing; kept,
    a split that draws them into its test rows measures how the model guesses on a blank, so they are dropped.
    """

    clipart_dir: str | None = None
    min_per_class: Annotated[int, Field(ge=1)] = 20
    drop_category_words: bool = True
    drop_blank_images: bool = True


@DATASETS.register("clipart", ClipartOptions)
class Clipart:
    """OpenClipArt images (64×64 RGB) with title/keywords/description text; label: category."""

    def __init__(
        self, clipart_dir: str | None, min_per_class: int, drop_category_words: bool, drop_blank_images: bool = True
    ) -> None:
        self.clipart_dir, self.min_per_class, self.drop_category_words = clipart_dir, min_per_class, drop_category_words
        self.drop_blank_images = drop_blank_images

    def status(self) -> str:
        root = clipart_dir(self.clipart_dir)
        return f"local: {root}" if root else f"not found: put it in ${ENV_VAR}/clipart or ../shared/data/clipart"

    def load(self) -> Table:
        root = clipart_dir(self.clipart_dir)
        if root is None:
            raise DataError(f"clipart not found; set {ENV_VAR} to a folder holding clipart/captions.csv")
        frame = pd.read_csv(root / "captions.csv", keep_default_na=False)
        contents = [(root / p).read_bytes() for p in frame["image"]]
        if self.drop_blank_images:
            keep = [not is_blank(c) for c in contents]
            if not any(keep):
                raise DataError(f"every image in {root} is one flat colour; set data.options.drop_blank_images: false")
            frame, contents = (
                frame.loc[keep].reset_index(drop=True),
                [c for c, k in zip(contents, keep, strict=True) if k],
            )
        counts = frame["category"].value_counts()
        enough = (frame["category"].map(counts) >= self.min_per_class).to_numpy()
        frame, contents = (
            frame.loc[enough].reset_index(drop=True),
            [c for c, k in zip(contents, enough, strict=True) if k],
        )
        if self.drop_category_words:
            # Every category's words, not only the row's own: what is left must not say "not that category".
            remove = WordRemover(label_words(*frame["category"].unique()))
            frame["keywords"] = [remove(str(k).replace(";", " ")) for k in frame["keywords"]]
        else:
            frame["keywords"] = frame["keywords"].str.replace(";", " ")
        # One drawing is often filed under several categories or sub-folders (8,118 rows, 6,814 distinct
        # images): rows of the same image share a split so that no test image was seen in training.
        frame["drawing"] = [hashlib.md5(c).hexdigest() for c in contents]
        return Table(frame, label="category", base_dir=root, source=f"OpenClipArt ({root})", group="drawing")
