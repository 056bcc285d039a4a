"""BasicMotions QA: "what is the person doing?" and "is the person moving?" about a smart watch's
accelerometer and gyroscope series (UEA BasicMotions, its official 40/40 split; val carved from training)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field

from polymodal.data.datasets.qa_rows import qa_rows
from polymodal.data.datasets.uea import BasicMotions
from polymodal.data.table import Table, stratified_split
from polymodal.registry import DATASETS

PARAPHRASES = {
    "activity": [
        "What is the person doing?",
        "Which activity is this?",
        "What activity do the sensors show?",
        "What is the wearer doing?",
        "Which activity is the person doing?",
    ],
    "moving": [
        "Is the person moving?",
        "Is the wearer in motion?",
        "Does the watch show movement?",
        "Is the person moving around?",
    ],
}


@dataclass
class BasicMotionsQAOptions:
    """Recipe keys under ``data.options`` for ``basicmotions_qa``."""

    uea_dir: str | None = None
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    seed: int = 0


@DATASETS.register("basicmotions_qa", BasicMotionsQAOptions)
class BasicMotionsQA:
    """Questions about BasicMotions recordings (inputs ``accel`` and ``gyro``)."""

    def __init__(self, uea_dir: str | None, val_fraction: float, seed: int) -> None:
        self.base, self.val_fraction, self.seed = BasicMotions(uea_dir), val_fraction, seed

    def status(self) -> str:
        return self.base.status()

    def load(self) -> Table:
        frame = self.base.load().frame
        split = frame["split"].to_numpy().astype(object)
        train = np.flatnonzero(split == "train")
        split[train] = stratified_split(frame["label"].to_numpy()[train], self.val_fraction, 0.0, self.seed)
        labels = [str(v).lower() for v in frame["label"]]
        answers = {"activity": labels, "moving": ["no" if v == "standing" else "yes" for v in labels]}
        columns = {"accel": "accel", "gyro": "gyro", "accel_label": "label", "gyro_label": "label"}
        out = qa_rows(frame, split, columns, answers, PARAPHRASES, self.seed)
        return Table(out, label="answer", split="split", source="basicmotions_qa: UEA BasicMotions")
