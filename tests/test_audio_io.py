"""WAV files read from their RIFF chunks give libsndfile's samples to the bit; log-mel/MFCC features of many
waveforms computed together give each one's features alone to the bit, and the STFT's values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from polymodal.data.datasets.fsdd import fsdd_dir
from polymodal.data.modalities import audio_io
from polymodal.data.modalities.audio import AudioPreprocessing, AudioTransform
from polymodal.data.modalities.audio_features import blocked_matmul
from polymodal.data.modalities.audio_io import read_audio, read_soundfile, read_wav
from polymodal.errors import DataError


def noise(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(-0.9, 0.9, (n, channels)).astype(np.float32)
    return x[:, 0] if channels == 1 else x


@pytest.mark.parametrize(
    "subtype, fmt, channels, rate, plain",
    [
        ("PCM_16", "WAV", 1, 8000, True),
        ("PCM_16", "WAV", 2, 16000, True),
        ("FLOAT", "WAV", 1, 8000, True),
        ("PCM_16", "WAVEX", 3, 8000, True),  # an extensible header: the sub-format names PCM
        ("PCM_24", "WAV", 1, 8000, False),  # read by soundfile
        ("PCM_U8", "WAV", 2, 11025, False),
        ("ULAW", "WAV", 1, 8000, False),
    ],
)
def test_a_wav_reads_as_libsndfile_reads_it(tmp_path, subtype, fmt, channels, rate, plain):
    p = tmp_path / "a.wav"
    sf.write(p, noise(4001, channels), rate, subtype=subtype, format=fmt)
    assert (read_wav(p, 8000) is not None) == plain
    samples, got_rate = read_wav(p, 8000) or read_soundfile(p, 8000)
    want, want_rate = read_soundfile(p, 8000)
    assert got_rate == want_rate == rate and samples.dtype == np.float32
    assert np.array_equal(samples, want)
    mono = read_audio(p, 8000)
    assert mono.dtype == np.float32 and mono.flags.c_contiguous and mono.ndim == 1


@pytest.mark.skipif(fsdd_dir(None) is None, reason="needs local FSDD WAVs")
def test_every_fsdd_recording_reads_as_libsndfile_reads_it():
    files = sorted((fsdd_dir(None) / "recordings").glob("*.wav"))
    assert len(files) == 3000
    for p in files:
        assert np.array_equal(read_audio(p, 8000), read_soundfile(p, 8000)[0][:, 0]), p


def test_a_wav_with_odd_chunks_and_a_streamed_size_still_reads(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, noise(1000), 8000, subtype="PCM_16")
    raw = p.read_bytes()
    # A 3-byte LIST chunk (padded to 4) before the data; then a data size left at 0xFFFFFFFF by a streaming writer.
    odd = raw[:36] + b"LIST" + (3).to_bytes(4, "little") + b"abc\0" + raw[36:]
    (tmp_path / "odd.wav").write_bytes(odd)
    assert read_wav(tmp_path / "odd.wav", 8000) is not None
    assert np.array_equal(read_audio(tmp_path / "odd.wav", 8000), read_audio(p, 8000))
    streamed = bytearray(raw)
    streamed[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert read_wav(tmp_path / "streamed.wav", 8000) is None  # left to libsndfile
    assert np.array_equal(read_audio(tmp_path / "streamed.wav", 8000), read_audio(p, 8000))


def test_hostile_wav_headers_are_one_line_errors(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, noise(800), 8000, subtype="PCM_16")
    raw = bytearray(p.read_bytes())
    zero = bytearray(raw)
    zero[22:24] = (0).to_bytes(2, "little")  # no channels: never divided by
    cases = {"zero_channels.wav": bytes(zero), "junk.wav": b"RIFF\x10\0\0\0WAVEjunk", "text.wav": b"hello"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError) as e:
            read_audio(tmp_path / name, 8000)
        assert name in str(e.value) and "\n" not in str(e.value)


def test_only_the_first_max_seconds_of_a_plain_wav_are_read(monkeypatch, tmp_path):
    monkeypatch.setattr(audio_io, "MAX_SECONDS", 1)
    p = tmp_path / "long.wav"
    sf.write(p, noise(3 * 8000), 8000, subtype="PCM_16")
    assert read_wav(p, 8000)[0].shape == (8000, 1)


def transform(**keys) -> AudioTransform:
    return AudioTransform(**dataclasses.asdict(AudioPreprocessing(**keys)))


@pytest.mark.parametrize(
    "keys",
    [
        {"n_mels": 32, "hop_length": 80, "max_frames": 80},
        {"features": "mfcc", "n_fft": 200, "hop_length": 64, "max_frames": 30},  # MFCC, long waves cut short
        {"n_fft": 255, "hop_length": 300, "max_frames": 5, "normalize": False},  # odd n_fft, hop past n_fft
    ],
)
def test_waveforms_computed_together_give_what_each_gives_alone(keys):
    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(n).astype(np.float32) for n in rng.integers(1, 12000, 70)] + [np.zeros(0, "f4")]
    t = transform(**keys)
    together = t.many(waves)
    for wave, x in zip(waves, together, strict=True):
        assert x.shape == (1, t.n_mfcc if t.features == "mfcc" else t.n_mels, t.max_frames)
        assert torch.equal(x, t(wave))  # bit for bit: a row computed in any batch is the row alone
    assert torch.equal(torch.stack(t.many(waves[::-1])), torch.stack(together[::-1]))


def reference(t: AudioTransform, wave: np.ndarray) -> torch.Tensor:
    """The features by torch.stft, one recording at a time (the computation before batching)."""
    x = torch.from_numpy(wave)
    if x.numel() < t.n_fft:
        x = torch.nn.functional.pad(x, (0, t.n_fft - x.numel()))
    spec = torch.stft(x, t.n_fft, t.hop_length, window=torch.hann_window(t.n_fft), return_complex=True)
    feats = torch.log(t._spectrogram.mel.double() @ spec.abs().double().pow(2) + 1e-6)
    if t.features == "mfcc":
        feats = t._spectrogram.dct.double() @ feats
    feats = feats[:, : t.max_frames]
    if t.normalize:
        feats = (feats - feats.mean(dim=1, keepdim=True)) / (feats.std(dim=1, correction=0, keepdim=True) + 1e-5)
    return torch.nn.functional.pad(feats, (0, t.max_frames - feats.shape[1])).unsqueeze(0).float()


@pytest.mark.parametrize("features", ["logmel", "mfcc"])
def test_the_batched_features_are_the_stft_features(features):
    rng = np.random.default_rng(2)
    t = transform(features=features, n_mels=32, hop_length=80, max_frames=80)
    waves = [rng.standard_normal(n).astype(np.float32) for n in (100, 256, 257, 4000, 6399, 6400, 6401, 20000)]
    for wave, x in zip(waves, t.many(waves), strict=True):
        torch.testing.assert_close(x, reference(t, wave), rtol=1e-4, atol=1e-4)


def test_a_waveform_with_nan_is_an_error_in_its_place_and_the_others_are_unchanged(tmp_path):
    t = transform(n_mels=16, max_frames=40)
    good = [noise(3000, seed=s) for s in range(3)]
    bad = good[1].copy()
    bad[500] = np.nan
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    out = t.many([good[0], bad, str(tmp_path / "junk.wav"), good[2]])
    assert isinstance(out[1], DataError) and "NaN/inf" in str(out[1])
    assert isinstance(out[2], DataError) and "junk.wav" in str(out[2])
    assert torch.equal(out[0], t(good[0])) and torch.equal(out[3], t(good[2]))
    with pytest.raises(DataError, match="NaN/inf"):
        t(bad)


def test_a_matrix_product_in_blocks_does_not_depend_on_the_rows_beside_it():
    g = torch.Generator().manual_seed(0)
    x, w = torch.rand(1000, 129, generator=g), torch.rand(32, 129, generator=g)
    whole = blocked_matmul(x, w)
    torch.testing.assert_close(whole, x @ w.T)
    for start, n in ((0, 1), (3, 37), (100, 64), (500, 333), (999, 1)):
        assert torch.equal(blocked_matmul(x[start : start + n], w), whole[start : start + n])
