"""Pretrained speech features (features: speech_embedding): fixed shape, offline, and they tell digits apart
for a speaker they were never shown, where the same nearest-centroid rule on log-mel features does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.data.datasets.fsdd import fsdd_dir
from polymodal.data.modalities.audio import AudioTransform
from polymodal.errors import ConfigError

speech = pytest.importorskip("polymodal.data.modalities.speech_embedding")
try:
    speech.model_dir()
except ConfigError:
    pytest.skip("openwakeword's model files are not installed (the pretrained extra)", allow_module_level=True)


def embed(**keys) -> AudioTransform:
    return AudioTransform(
        **{
            "sample_rate": 16000,
            "features": "speech_embedding",
            "n_fft": 256,
            "hop_length": 80,
            "n_mels": 40,
            "n_mfcc": 13,
            "max_frames": 9,
            "normalize": None,
            **keys,
        }
    )


@pytest.mark.parametrize("windows", [1, 2, 9, 30])
def test_every_recording_gives_exactly_max_frames_windows(windows):
    assert speech.speech_embeddings(np.zeros(100, np.float32), windows).shape == (96, windows)
    long = np.random.default_rng(0).standard_normal(5 * 16000).astype(np.float32) * 0.1
    assert speech.speech_embeddings(long, windows).shape == (96, windows)


def test_it_needs_16khz_and_turns_cmvn_off_by_default():
    with pytest.raises(ConfigError, match="sample_rate: 16000"):
        embed(sample_rate=8000)
    assert embed().normalize is False and embed(normalize=True).normalize is True
    assert AudioTransform(8000, "logmel", 256, 80, 40, 13, 100, None).normalize is True


def centroid_accuracy(t: AudioTransform, held_out: str) -> float:
    """Nearest class mean (cosine, centred) from three speakers' recordings 0-1, scored on another's 0-1."""
    root = fsdd_dir()
    feats = lambda d, s, i: t(str(root / "recordings" / f"{d}_{s}_{i}.wav"))[0]  # noqa: E731
    pooled = lambda h: torch.cat([h.mean(1), h.amax(1)])  # noqa: E731
    train = torch.stack(
        [
            torch.stack([pooled(feats(d, s, i)) for s in ("george", "lucas", "jackson") for i in (0, 1)])
            for d in range(10)
        ]
    )  # (10, 6, F)
    mu = train.flatten(0, 1).mean(0)
    centres = torch.nn.functional.normalize(train.mean(1) - mu, dim=1)
    test = torch.stack([pooled(feats(d, held_out, i)) for d in range(10) for i in (0, 1)])
    pred = (torch.nn.functional.normalize(test - mu, dim=1) @ centres.T).argmax(1)
    return float((pred == torch.arange(10).repeat_interleave(2)).float().mean())


def test_digits_of_an_unseen_speaker_are_near_their_class_means():
    if fsdd_dir() is None:
        pytest.skip("no local FSDD copy")
    logmel = AudioTransform(8000, "logmel", 256, 80, 32, 13, 80, None)
    for speaker in ("nicolas", "theo"):
        pretrained = centroid_accuracy(embed(), speaker)
        assert pretrained >= 0.8, (speaker, pretrained)  # measured 0.90 and 1.00
        assert pretrained > centroid_accuracy(logmel, speaker) + 0.2
