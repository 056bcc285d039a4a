"""Reading audio files: mono float32 waveforms at a sample rate, every failure one DataError line.

WAV files of 16-bit PCM or 32-bit float samples, the usual output of recorders and of ``soundfile.write``, are read
here straight from their RIFF chunks (one open, two reads, ``numpy.frombuffer``: 0.03 ms for a 0.5 s FSDD
recording, against 0.19 ms through libsndfile, whose open and checks cost more than the samples); the values are
libsndfile's to the bit (tests/test_audio_io.py). Any other file (FLAC, OGG, 8/24/32-bit integer or A-law WAV, a
WAV that is not plain) goes to soundfile; a video's soundtrack to PyAV.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from polymodal.data.arrays import MAX_SECONDS
from polymodal.data.modalities.base import file_cell
from polymodal.errors import DataError, printable

# Source files are accepted at 1 kHz to 384 kHz (the highest rate common audio interfaces record), and only their
# first MAX_SECONDS are decoded, before any resampling: a header claiming 1 Hz would otherwise be resampled
# thousands of times over, and an hour-long file decoded whole for a window of a second or two.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384_000
VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov")
PCM, IEEE_FLOAT, EXTENSIBLE = 1, 3, 0xFFFE  # WAVE format tags
STREAMED = (0, 0xFFFFFFFF)  # data sizes streaming writers put before they know the size
# The sample types read here, by (format, bits): dtype and the scale libsndfile gives them as float32.
PLAIN = {(PCM, 16): (np.dtype("<i2"), np.float32(1 / 32768)), (IEEE_FLOAT, 32): (np.dtype("<f4"), None)}


@dataclass
class WavLayout:
    """Where a RIFF/WAVE file's samples are and what they are."""

    format: int  # PCM or IEEE_FLOAT (the sub-format of an extensible header)
    channels: int
    rate: int
    block: int  # bytes per frame (all channels)
    bits: int
    data_at: int  # offset of the data chunk's first byte
    declared: int  # the data chunk's size as declared


def wav_layout(f: BinaryIO) -> WavLayout | None:
    """The layout of the RIFF/WAVE file open in ``f`` (left at its data chunk), or None when it is not one or its
    header is cut short (soundfile then reports the file)."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    fmt = None
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        size = struct.unpack("<I", chunk[4:])[0]
        if chunk[:4] == b"data":
            return None if fmt is None else WavLayout(*fmt, data_at=f.tell(), declared=size)
        if chunk[:4] == b"fmt ":
            body = f.read(size)
            if len(body) < 16:
                return None
            tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID starts with the plain tag
            fmt = (tag, channels, rate, block, bits)
            f.seek(size & 1, 1)
        else:
            f.seek(size + (size & 1), 1)  # chunks are word-aligned


def check_rate(path: Path, rate: int, sample_rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise DataError(
            f"audio file {printable(path)} declares a sample rate of {rate} Hz; polymodal reads {MIN_SAMPLE_RATE}-"
            f"{MAX_SAMPLE_RATE} Hz files: re-encode it (e.g. ffmpeg -ar {sample_rate})"
        )


def read_wav(path: Path, sample_rate: int) -> tuple[np.ndarray, int] | None:
    """``(samples (frames, channels) float32, rate)`` of a plain 16-bit PCM or float WAV, None for another file
    (read it with soundfile); a WAV whose data chunk the file ends inside is a DataError (libsndfile would read
    what is there as a shorter recording)."""
    with path.open("rb") as f:
        layout = wav_layout(f)
        if layout is None:
            return None
        present = os.fstat(f.fileno()).st_size - layout.data_at
        if layout.declared not in STREAMED and present < layout.declared:
            raise DataError(
                f"audio file {printable(path)} is truncated: its data chunk declares {layout.declared} bytes but "
                f"{present} are present; copy the file again or drop its row"
            )
        kind = PLAIN.get((layout.format, layout.bits))
        plain = kind is not None and layout.channels > 0 and layout.block == layout.channels * kind[0].itemsize
        if not plain or layout.declared in STREAMED:
            return None  # soundfile reads it, or says what is wrong with it
        check_rate(path, layout.rate, sample_rate)
        frames = min(layout.declared // layout.block, MAX_SECONDS * layout.rate)
        raw = f.read(frames * layout.block)
    samples = np.frombuffer(raw, kind[0]).reshape(-1, layout.channels)
    return (samples * kind[1] if kind[1] is not None else samples.astype(np.float32)), layout.rate


def resample(wav: np.ndarray, up: int, down: int) -> np.ndarray:
    """``wav`` resampled by ``up / down`` (polyphase, float32). scipy.signal is imported here, on first use: at
    module level it cost every ``polymodal`` command and import about a second."""
    from scipy.signal import resample_poly

    return resample_poly(wav, up, down).astype(np.float32)


def read_soundfile(path: Path, sample_rate: int) -> tuple[np.ndarray, int]:
    """``(samples (frames, channels) float32, rate)`` through libsndfile, its first MAX_SECONDS."""
    try:
        with sf.SoundFile(str(path)) as f:  # opened once: its header gives the rate, then the samples are read
            check_rate(path, f.samplerate, sample_rate)
            return f.read(frames=MAX_SECONDS * f.samplerate, dtype="float32", always_2d=True), f.samplerate
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise DataError(
            f"cannot decode audio {printable(path)}: {printable(exc)}; check it is a WAV/FLAC/OGG file"
        ) from None


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Decode to mono float32 at ``sample_rate`` (a video file's audio track via PyAV); every failure is a
    one-line DataError."""
    path = file_cell(path, "audio")
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        from polymodal.data.modalities.video import read_video_audio

        return read_video_audio(path, sample_rate)
    read = read_wav(path, sample_rate) if suffix == ".wav" else None
    wav, rate = read if read is not None else read_soundfile(path, sample_rate)
    if wav.shape[0] == 0:
        raise DataError(f"audio file {printable(path)} has no samples; remove it from the table or re-record it")
    wav = wav[:, 0] if wav.shape[1] == 1 else wav.mean(axis=1)
    if rate != sample_rate:
        g = math.gcd(rate, sample_rate)
        wav = resample(wav, sample_rate // g, rate // g)
    return np.ascontiguousarray(wav)
