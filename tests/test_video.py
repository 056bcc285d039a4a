"""Video: real MP4 round trips through PyAV (frames and audio track), bad files, the generated
video_digits dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.data.datasets.fsdd import fsdd_dir
from polymodal.data.datasets.video_digits import VideoDigits
from polymodal.data.modalities.audio import AudioTransform
from polymodal.data.modalities.video import VideoTransform, moving_digit, read_video_audio, write_mp4
from polymodal.errors import DataError


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """12 frames of a white square moving right, with one second of a 440 Hz tone."""
    frames = np.zeros((12, 32, 32, 3), np.uint8)
    for i in range(12):
        frames[i, 12:20, 2 * i : 2 * i + 8] = 255
    t = np.arange(8000) / 8000
    path = tmp_path_factory.mktemp("video") / "square.mp4"
    write_mp4(path, frames, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    return path


def video(**kw) -> VideoTransform:
    return VideoTransform(**{"num_frames": 6, "size": 32, "channels": 1, "mean": 0.5, "std": 0.5, **kw})


def test_frames_are_sampled_across_the_clip(clip):
    x = video()(str(clip))
    assert x.shape == (6, 1, 32, 32)
    # the bright square's centre of mass moves right from the first to the last sampled frame
    cols = torch.arange(32, dtype=torch.float32)
    centre = [(((f[0] + 1) / 2).sum(0) * cols).sum() / ((f[0] + 1) / 2).sum() for f in x]
    assert centre[-1] > centre[0] + 10
    assert video(channels=3, num_frames=20)(str(clip)).shape == (20, 3, 32, 32)  # more than the clip has


def test_audio_track_through_the_audio_transform(clip):
    wave = read_video_audio(clip, 8000)
    assert 7000 < len(wave) < 9500
    peak = np.abs(np.fft.rfft(wave)).argmax() * 8000 / len(wave)
    assert abs(peak - 440) < 10
    feats = AudioTransform(8000, "logmel", 256, 80, 32, 13, 80, True)(str(clip))
    assert feats.shape == (1, 32, 80) and torch.isfinite(feats).all()


def test_truncated_and_non_video_files(clip, tmp_path):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:300])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"definitely not a video" * 50)
    for bad in (cut, junk, tmp_path / "missing.mp4"):
        with pytest.raises(DataError) as e:
            video()(str(bad))
        assert bad.name in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="junk.mp4"):
        read_video_audio(junk, 8000)


def test_moving_digit_frames():
    digit = np.full((28, 28), 255, np.uint8)
    frames = moving_digit(digit, 5)
    assert frames.shape == (5, 32, 32, 3)
    first, last = (np.flatnonzero(f[..., 0].sum(0)) for f in (frames[0], frames[-1]))
    assert first[0] == 0 and last[-1] == 31


@pytest.mark.skipif(fsdd_dir() is None, reason="video_digits is generated from local FSDD WAVs")
def test_video_digits_generates_readable_files(tmp_path):
    table = VideoDigits(str(tmp_path), max_index=6, fsdd_dir=None).load()
    assert len(table.frame) == 10 * 6 * 6 and set(table.frame["split"]) == {"train", "test"}
    path = table.frame["video"].iloc[0]
    assert video()(path).shape == (6, 1, 32, 32)
    assert len(read_video_audio(Path(path), 8000)) > 1000
    mtime = Path(path).stat().st_mtime_ns
    VideoDigits(str(tmp_path), max_index=6, fsdd_dir=None).load()
    assert Path(path).stat().st_mtime_ns == mtime  # reused, not rewritten
