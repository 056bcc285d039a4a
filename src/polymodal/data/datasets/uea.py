"""UEA multivariate archive datasets read from local ``.ts`` files (their official train/test split)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from polymodal.data.datasets.common import ENV_VAR, find_local
from polymodal.data.formats.ts_format import read_ts
from polymodal.data.table import Table
from polymodal.errors import DataError
from polymodal.registry import DATASETS


def uea_dir(name: str, override: str | None) -> Path | None:
    if override:
        p = Path(override)
        if not (p / f"{name}_TRAIN.ts").is_file():
            raise DataError(f"{p} has no {name}_TRAIN.ts; point uea_dir at the folder holding the .ts files")
        return p
    root = find_local("uea", name)
    return root / name if root else None


def read_uea(name: str, override: str | None) -> pd.DataFrame:
    """Rows of (series (T, C) array, label, split) from ``<name>_TRAIN.ts`` and ``<name>_TEST.ts``."""
    folder = uea_dir(name, override)
    if folder is None:
        raise DataError(f"{name} not found; set {ENV_VAR} to a folder holding uea/{name}/{name}_TRAIN.ts")
    frames = []
    for split in ("train", "test"):
        series, labels, _ = read_ts(folder / f"{name}_{split.upper()}.ts")
        frames.append(pd.DataFrame({"series": series, "label": labels, "split": split}))
    return pd.concat(frames, ignore_index=True)


@dataclass
class UEAOptions:
    """Recipe keys under ``data.options`` for a UEA dataset."""

    uea_dir: str | None = None


class UEADataset:
    """Shared status/location logic; subclasses set NAME and build their columns."""

    NAME = ""

    def __init__(self, uea_dir: str | None) -> None:
        self.uea_dir = uea_dir

    def status(self) -> str:
        folder = uea_dir(self.NAME, self.uea_dir)
        return f"local: {folder}" if folder else f"not found: put it in ${ENV_VAR}/uea/{self.NAME}"


@DATASETS.register("basicmotions", UEAOptions)
class BasicMotions(UEADataset):
    """Smart-watch accelerometer + gyroscope (100 steps, 4 activities, 40/40); columns accel, gyro."""

    NAME = "BasicMotions"

    def load(self) -> Table:
        frame = read_uea(self.NAME, self.uea_dir)
        # Dimensions 0-2 are the accelerometer and 3-5 the gyroscope: two sensors, two modalities.
        frame["accel"] = [s[:, :3] for s in frame["series"]]
        frame["gyro"] = [s[:, 3:] for s in frame["series"]]
        return Table(
            frame[["accel", "gyro", "label", "split"]], label="label", split="split", source=f"UEA {self.NAME}"
        )


@DATASETS.register("japanesevowels", UEAOptions)
class JapaneseVowels(UEADataset):
    """12 LPC cepstrum channels of a spoken vowel, variable length 7-29, 9 speakers; column series."""

    NAME = "JapaneseVowels"

    def load(self) -> Table:
        frame = read_uea(self.NAME, self.uea_dir)
        return Table(frame[["series", "label", "split"]], label="label", split="split", source=f"UEA {self.NAME}")
