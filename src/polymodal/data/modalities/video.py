"""Video: decode with PyAV, sample frames uniformly over the clip, resize, normalise. Output (T, C, H, W).

``read_video_audio`` decodes the audio track, so one video column can feed a video input and an audio input.
"""

from __future__ import annotations

import fractions
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import av
import numpy as np
import torch
from PIL import Image
from pydantic import Field

from polymodal.data.arrays import MAX_SECONDS
from polymodal.data.modalities.base import Transform, file_cell, pixel_noise
from polymodal.data.modalities.image import check_aspect
from polymodal.errors import DataError
from polymodal.registry import MODALITIES

FPS = 10
# Only the first MAX_FRAMES frames are decoded (about 34 s at 30 fps) and the num_frames samples are spread over
# them: decoding is the cost (a 1080p frame takes milliseconds), and an hour-long file would take minutes per example.
MAX_FRAMES = 1024
# A frame is decoded whole before it is resized, so one 8K frame (7680×4320, 33 MP) is 100 MB as RGB; a stream
# declaring more pixels per frame (a forged header says 65535×65535) is refused before any decoding.
MAX_FRAME_PIXELS = 36_000_000
CANVAS = 32  # moving_digit's frame side
DIGIT = 16  # ... and the digit's


def moving_digit(image: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, CANVAS, CANVAS, 3) uint8: the digit slides left to right along a diagonal."""
    small = np.asarray(Image.fromarray(image).resize((DIGIT, DIGIT), Image.BILINEAR))
    frames = np.zeros((n_frames, CANVAS, CANVAS, 3), np.uint8)
    for i in range(n_frames):
        x = round(i * (CANVAS - DIGIT) / max(1, n_frames - 1))
        y = round((CANVAS - DIGIT) / 2 + (i / max(1, n_frames - 1) - 0.5) * 8)
        frames[i, y : y + DIGIT, x : x + DIGIT] = small[..., None]
    return frames


def write_mp4(path: Path, frames: np.ndarray, wave: np.ndarray, sample_rate: int) -> None:
    """H.264 video at FPS + AAC mono audio, written to a temporary name and renamed when complete."""
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with av.open(str(tmp), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        audio = container.add_stream("aac", rate=sample_rate)
        audio.layout = "mono"
        for f in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(video.encode())
        step = audio.codec_context.frame_size or 1024
        for i in range(0, len(wave), step):
            chunk = av.AudioFrame.from_ndarray(
                wave[None, i : i + step].astype(np.float32), format="fltp", layout="mono"
            )
            chunk.sample_rate, chunk.pts, chunk.time_base = sample_rate, i, fractions.Fraction(1, sample_rate)
            container.mux(audio.encode(chunk))
        container.mux(audio.encode())
    os.replace(tmp, path)


@dataclass
class VideoPreprocessing:
    """Recipe keys under ``preprocessing`` for a video input."""

    # One example is (num_frames, C, size, size) floats: 256 RGB frames at 512² are 800 MB, past any batch.
    num_frames: Annotated[int, Field(ge=1, le=256)] = 8
    size: Annotated[int, Field(ge=4, le=512)] = 32
    channels: Literal[1, 3] = 1
    mean: float = 0.5
    std: Annotated[float, Field(gt=0)] = 0.5


def open_container(path: Path) -> Any:
    path = file_cell(path, "video")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"cannot open video {path}: {exc}; check it is an MP4/AVI/WebM file") from None


def check_frame_size(path: Path, width: int, height: int) -> None:
    """Refuse frames over MAX_FRAME_PIXELS or of an extreme aspect ratio, from the stream's header."""
    if width * height > MAX_FRAME_PIXELS:
        raise DataError(
            f"video {path} has {width}×{height} frames, over polymodal's limit of {MAX_FRAME_PIXELS:,} pixels a "
            "frame; downscale it (e.g. ffmpeg -vf scale=1920:-2)"
        )
    if width and height:  # 0×0: the container does not say; the decoded frames are checked instead
        check_aspect(str(path), width, height, what="video")


def read_video_audio(path: Path, sample_rate: int) -> np.ndarray:
    """The audio track of a video file as mono float32 at ``sample_rate``."""
    with open_container(path) as container:
        if not container.streams.audio:
            raise DataError(f"video {path} has no audio track; use it as a video input only")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks, limit, n = [], MAX_SECONDS * sample_rate, 0  # as for audio files: only the first MAX_SECONDS
        try:
            for frame in container.decode(audio=0):
                new = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
                chunks, n = chunks + new, n + sum(map(len, new))
                if n >= limit:
                    break
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]  # flush
        except (av.error.FFmpegError, ValueError) as exc:
            raise DataError(f"cannot decode the audio of {path}: {exc}; the file may be truncated") from None
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise DataError(f"video {path} has an empty audio track")
    return np.concatenate(chunks)[:limit].astype(np.float32)


@MODALITIES.register("video", VideoPreprocessing)
class VideoTransform(Transform):
    """Turn a video file into ``num_frames`` evenly spaced frames, (T, C, size, size)."""

    def __init__(self, num_frames: int, size: int, channels: int, mean: float, std: float) -> None:
        self.num_frames, self.size, self.channels, self.mean, self.std = num_frames, size, channels, mean, std

    def frames(self, path: Path) -> list[np.ndarray]:
        """The first MAX_FRAMES frames, each resized to size×size as it is decoded (uint8, (H, W[, C]))."""
        mode = "L" if self.channels == 1 else "RGB"
        with open_container(path) as container:
            if not container.streams.video:
                raise DataError(f"{path} has no video stream; use it as an audio input instead")
            codec = container.streams.video[0].codec_context
            if codec is None:  # a damaged header can leave the stream without a decoder (found by the fuzz campaign)
                raise DataError(f"video {path}: its video stream has no codec that can be opened; re-encode the file")
            check_frame_size(path, codec.width, codec.height)  # the declared size
            frames = []
            try:
                for frame in container.decode(video=0):
                    check_frame_size(path, frame.width, frame.height)  # a stream may change size mid-way
                    img = frame.to_image().convert(mode).resize((self.size, self.size), Image.BILINEAR)
                    frames.append(np.asarray(img))
                    if len(frames) == MAX_FRAMES:
                        break
            except (av.error.FFmpegError, ValueError) as exc:
                raise DataError(f"cannot decode video {path}: {exc}; the file may be truncated") from None
        if not frames:
            raise DataError(f"video {path} has no decodable frames; re-encode or remove it")
        return frames

    @classmethod
    def example_cells(cls, n: int, folder: Path) -> list[Any]:
        """MP4 files of real MNIST digits moving across the frame (H.264 written with PyAV)."""
        from polymodal.data.datasets.mnist import mnist_arrays

        paths = []
        for i, img in enumerate(mnist_arrays()[0][:n]):
            path = folder / f"digit-{i}.mp4"
            write_mp4(path, moving_digit(img, 8), np.zeros(800, np.float32), 8000)
            paths.append(str(path))
        return paths

    def corrupt(self, value: Any, x: torch.Tensor, level: float, rng: np.random.Generator) -> torch.Tensor:
        """Gaussian pixel noise of standard deviation ``level`` on the [0, 1] scale in every frame, clipped."""
        return pixel_noise(x, self.mean, self.std, level, rng)

    def __call__(self, value: Any) -> torch.Tensor:
        frames = self.frames(file_cell(value, "video"))
        # Evenly spaced over the decoded frames (the whole clip up to MAX_FRAMES); a short clip repeats frames.
        picks = np.linspace(0, len(frames) - 1, self.num_frames).round().astype(int)
        x = torch.from_numpy(np.stack([frames[i] for i in picks]).astype(np.float32) / 255.0)  # (T, H, W[, C])
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (T, C, H, W)
        return ((x - self.mean) / self.std).float()
