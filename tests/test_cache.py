"""The on-disk feature cache: hits on the second pass, misses when the file or the settings change."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from polymodal.data.cache import FeatureCache
from polymodal.data.modalities.audio import AudioTransform


def make_wav(path, freq: float) -> str:
    t = np.arange(4000) / 8000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 8000)
    return str(path)


def audio(n_mels: int = 16) -> AudioTransform:
    return AudioTransform(8000, "logmel", 256, 80, n_mels, 13, 50, True)


def test_second_pass_is_served_from_disk_and_equal(tmp_path):
    wav = make_wav(tmp_path / "a.wav", 440)
    first = FeatureCache(tmp_path / "cache")
    x1 = first.get_or_compute(wav, audio())
    second = FeatureCache(tmp_path / "cache")  # a new run: nothing in memory
    x2 = second.get_or_compute(wav, audio())
    assert (first.misses, first.hits, second.misses, second.hits) == (1, 0, 0, 1)
    assert torch.equal(x1, x2)


def test_changed_content_or_settings_miss(tmp_path):
    wav = make_wav(tmp_path / "a.wav", 440)
    cache = FeatureCache(tmp_path / "cache")
    cache.get_or_compute(wav, audio())
    cache.get_or_compute(wav, audio(n_mels=24))  # other preprocessing
    make_wav(tmp_path / "a.wav", 880)  # same path, new content
    x = FeatureCache(tmp_path / "cache").get_or_compute(wav, audio())
    assert cache.misses == 2 and cache.hits == 0
    assert torch.equal(x, audio()(wav))


def test_corrupt_entry_is_recomputed(tmp_path):
    wav = make_wav(tmp_path / "a.wav", 440)
    cache = FeatureCache(tmp_path / "cache")
    cache.get_or_compute(wav, audio())
    for entry in (tmp_path / "cache").rglob("*.safetensors"):
        entry.write_bytes(b"garbage")
    again = FeatureCache(tmp_path / "cache")
    assert torch.equal(again.get_or_compute(wav, audio()), audio()(wav))
    assert again.misses == 1


def test_non_file_cells_bypass_the_cache(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    feats = np.random.default_rng(0).normal(size=(20, 13)).astype(np.float32)
    cache.get_or_compute(feats, audio())
    assert cache.hits == cache.misses == 0 and not (tmp_path / "cache").exists()


class CostlyFrontEnd(AudioTransform):
    """A log-mel standing in for a transform whose work on an array costs more than a disk entry (a pretrained
    front end, e.g. ``features: speech_embedding``)."""

    cache_arrays = True


def test_a_transform_decides_whether_its_array_features_get_a_disk_entry(tmp_path):
    wave = np.random.default_rng(1).normal(size=8000).astype(np.float32)  # above MIN_ARRAY samples
    cheap = audio()
    assert not cheap.cache_arrays  # an STFT costs what hashing the array and its entry would
    assert AudioTransform(16000, "speech_embedding", 256, 80, 16, 13, 50, None).cache_arrays
    cache = FeatureCache(tmp_path / "cache")
    torch.testing.assert_close(cache.get_or_compute(wave, cheap), cheap(wave))
    assert cache.misses == 0 and not (tmp_path / "cache").exists()
    costly = CostlyFrontEnd(8000, "logmel", 256, 80, 16, 13, 50, True)
    x1 = cache.get_or_compute(wave, costly)
    again = FeatureCache(tmp_path / "cache")
    x2 = again.get_or_compute(wave.copy(), costly)  # equal bytes, another object: found by content
    assert (cache.misses, again.hits) == (1, 1) and torch.equal(x1, x2)
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 1
