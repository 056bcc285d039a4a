"""Pretrained speech features: Google's speech embedding (Lin et al. 2020, "Training keyword spotters with limited
and synthesized speech data"), trained on a large speech corpus for keyword spotting, as the two ONNX files the
``openwakeword`` 0.4 wheel ships (its mel front end and the embedding network; run with onnxruntime, offline).

16 kHz audio → 32-band mel frames every 10 ms → one 96-d embedding per window of 76 frames (0.775 s), windows
8 frames (80 ms) apart. A recording is centred in (or cut to its first) ``samples_for(windows)`` samples, so
every recording gives exactly ``windows`` embeddings: no padded embeddings for a pooling encoder to average in.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from pathlib import Path

import numpy as np
import torch

from polymodal.errors import ConfigError

SAMPLE_RATE = 16000
WIDTH = 96  # embedding size
N_FFT, HOP = 512, 160  # the mel front end's window and hop in samples
WINDOW, STEP = 76, 8  # mel frames per embedding window, and between windows
FILES = ("melspectrogram.onnx", "embedding_model.onnx")


def samples_for(windows: int) -> int:
    """Samples of 16 kHz audio that give exactly ``windows`` embeddings."""
    frames = WINDOW + STEP * (windows - 1)
    return N_FFT + HOP * (frames - 1)


def model_dir() -> Path:
    """The folder of openwakeword's ONNX files, found without importing the package (its import pulls more)."""
    spec = importlib.util.find_spec("openwakeword")
    folder = Path(spec.origin).parent / "resources" / "models" if spec and spec.origin else None
    if folder is None or not all((folder / f).is_file() for f in FILES):
        raise ConfigError(
            "audio features speech_embedding need the offline model files: pip install 'polymodal[pretrained]' "
            "(it pins openwakeword==0.4.0, the last release that ships them)"
        )
    return folder


@cache
def _sessions(pid: int, threads: int) -> tuple:
    """(mel, embedding) onnxruntime sessions, one pair per process (a forked DataLoader worker makes its own)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3  # errors only
    folder = model_dir()
    return tuple(ort.InferenceSession(str(folder / f), options, providers=["CPUExecutionProvider"]) for f in FILES)


def speech_embeddings(wav: np.ndarray, windows: int) -> torch.Tensor:
    """(samples,) float audio in [-1, 1] at 16 kHz -> (96, windows) embeddings."""
    n = samples_for(windows)
    wav = wav[:n]
    pad = n - len(wav)
    wav = np.pad(wav, (pad // 2, pad - pad // 2))
    mel, emb = _sessions(os.getpid(), torch.get_num_threads())
    # openWakeWord's front end takes int16-scaled samples and rescales its log-mel output by /10 + 2.
    spec = mel.run(None, {"input": (wav * 32767.0).astype(np.float32)[None]})[0].reshape(-1, 32) / 10.0 + 2.0
    frames = np.lib.stride_tricks.sliding_window_view(spec, WINDOW, axis=0)[::STEP]  # (windows, 32, WINDOW)
    batch = np.ascontiguousarray(frames.transpose(0, 2, 1)[..., None], dtype=np.float32)  # (windows, 76, 32, 1)
    out = emb.run(None, {"input_1": batch})[0].reshape(len(batch), WIDTH)
    return torch.from_numpy(np.ascontiguousarray(out.T))  # (96, windows)
