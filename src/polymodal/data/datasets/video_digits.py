"""Video-Digits: MP4 files the project writes itself — an MNIST digit moving across the frame, with the
matching spoken digit (FSDD) as the audio track — read back through the video and audio paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from polymodal.data.datasets.avdigits import pair_images
from polymodal.data.datasets.common import ENV_VAR
from polymodal.data.datasets.fsdd import fsdd_dir, fsdd_wav_frame
from polymodal.data.modalities.audio import read_audio
from polymodal.data.modalities.video import FPS, moving_digit, write_mp4
from polymodal.data.prepare import default_workers, pool_map
from polymodal.data.table import Table
from polymodal.errors import DataError
from polymodal.registry import DATASETS


def write_video(job: tuple[str, str, np.ndarray]) -> None:
    """One MP4: the digit image moving for as long as the recording lasts, the recording as its sound."""
    path, audio, image = job
    wave = read_audio(Path(audio), 8000)
    n_frames = max(4, round(len(wave) / 8000 * FPS))
    write_mp4(Path(path), moving_digit(image, n_frames), wave, 8000)


@dataclass
class VideoDigitsOptions:
    """Recipe keys under ``data.options`` for ``video_digits``.

    max_index: FSDD recordings with index < max_index are used (0-4 are FSDD's official test split).
    """

    out_dir: str | None = None
    max_index: Annotated[int, Field(ge=6, le=50)] = 15
    fsdd_dir: str | None = None


@DATASETS.register("video_digits", VideoDigitsOptions)
class VideoDigits:
    """Generated MP4s: a moving MNIST digit with the same digit spoken (FSDD) as the audio track."""

    def __init__(self, out_dir: str | None, max_index: int, fsdd_dir: str | None) -> None:
        cache = Path(os.environ.get("POLYMODAL_CACHE") or Path.home() / ".cache" / "polymodal")
        self.out_dir = Path(out_dir) if out_dir else cache / "video_digits"
        self.max_index, self.fsdd_dir = max_index, fsdd_dir

    def status(self) -> str:
        if fsdd_dir(self.fsdd_dir) is None:
            return f"needs FSDD WAVs: put them in ${ENV_VAR}/fsdd or ../shared/data/fsdd"
        return f"generated from FSDD + MNIST into {self.out_dir}"

    def load(self) -> Table:
        root = fsdd_dir(self.fsdd_dir)
        if root is None:
            raise DataError(f"video_digits is generated from FSDD WAVs; set {ENV_VAR} to a folder holding fsdd/")
        frame = fsdd_wav_frame(root)
        frame = frame[frame["index"] < self.max_index].reset_index(drop=True)
        images = pair_images(frame["digit"].to_numpy(), frame["split"].to_numpy(), seed=0)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        mp4s = [str(self.out_dir / f"{Path(a).stem}.mp4") for a in frame["audio"]]
        jobs = list(zip(mp4s, frame["audio"], images, strict=True))
        todo = [job for job in jobs if not Path(job[0]).is_file()]  # generated once, then reused
        what = lambda job: f"writing {job[0]}"  # noqa: E731
        pool_map(write_video, todo, default_workers() if len(todo) >= 16 else 1, what)
        paths = [job[0] for job in jobs]
        table = pd.DataFrame({"video": paths, "label": frame["digit"], "split": frame["split"]})
        return Table(table, label="label", split="split", source=f"video_digits ({self.out_dir})")
