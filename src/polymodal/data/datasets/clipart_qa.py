"""OpenClipArt QA: "what category is this picture in?" and "what is the first word of its title?" about one
clip-art image. Splits keep every copy of a drawing together (the ``clipart`` loader's grouping); the last
paraphrase of each question is held out of training and asked of every test image besides a training one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from polymodal.data.datasets.clipart import Clipart
from polymodal.data.datasets.qa_rows import qa_rows
from polymodal.data.table import Table, stratified_split
from polymodal.registry import DATASETS

PARAPHRASES = {
    "category": [
        "What category is this picture in?",
        "Which category does this clip art belong to?",
        "What kind of picture is this?",
        "Name the category of the drawing.",
        "What is the category of this image?",
    ],
    "title": [
        "What is the first word of its title?",
        "How does its title begin?",
        "Say the first word of the title.",
        "What word starts the title?",
    ],
}


def first_word(title: str) -> str:
    words = re.findall(r"[a-z]+", str(title).lower())
    return words[0] if words else ""


@dataclass
class ClipartQAOptions:
    """Recipe keys under ``data.options`` for ``clipart_qa``."""

    clipart_dir: str | None = None
    min_per_class: Annotated[int, Field(ge=1)] = 20
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.15
    seed: int = 0


@DATASETS.register("clipart_qa", ClipartQAOptions)
class ClipartQA:
    """Questions about OpenClipArt images: their category and the first word of their title."""

    def __init__(
        self, clipart_dir: str | None, min_per_class: int, val_fraction: float, test_fraction: float, seed: int
    ) -> None:
        self.base = Clipart(clipart_dir, min_per_class, drop_category_words=False)
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed

    def status(self) -> str:
        return self.base.status()

    def load(self) -> Table:
        table = self.base.load()
        frame = table.frame
        frame = frame[[bool(first_word(t)) for t in frame["title"]]].reset_index(drop=True)
        frame["image"] = [str(table.base_dir / p) for p in frame["image"]]
        split = stratified_split(
            frame["category"].to_numpy(), self.val_fraction, self.test_fraction, self.seed, groups=frame["drawing"]
        )
        answers = {
            "category": [c.replace("_", " ").lower() for c in frame["category"]],
            "title": [first_word(t) for t in frame["title"]],
        }
        out = qa_rows(frame, split, {"image": "image", "image_label": "category"}, answers, PARAPHRASES, self.seed)
        return Table(out, label="answer", split="split", source=f"clipart_qa: {table.source}")
