"""Image and audio readers on real files: shapes, ranges, resampling, features."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import mnist_digits, tone
from PIL import Image

from polymodal.data.datasets.fsdd import fsdd_dir
from polymodal.data.modalities.audio import AudioTransform, dct_matrix, mel_filterbank
from polymodal.data.modalities.image import ImageTransform


def test_image_from_real_png(tmp_path):
    p = tmp_path / "d.png"
    Image.fromarray(mnist_digits(3, 1)[0]).save(p)
    x = ImageTransform(28, 1, 0.5, 0.5, 10**7)(str(p))
    assert x.shape == (1, 28, 28) and x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    rgb = ImageTransform(32, 3, 0.5, 0.5, 10**7)(str(p))
    assert rgb.shape == (3, 32, 32)
    assert torch.allclose(ImageTransform(28, 1, 0.5, 0.5, 10**7)(mnist_digits(3, 1)[0]), x)


def audio(**kw) -> AudioTransform:
    args = dict(
        sample_rate=8000,
        features="logmel",
        n_fft=256,
        hop_length=80,
        n_mels=32,
        n_mfcc=13,
        max_frames=60,
        normalize=True,
    )
    return AudioTransform(**{**args, **kw})


def test_wav_to_logmel_and_mfcc(tmp_path):
    p = tmp_path / "t.wav"
    sf.write(p, tone(2, 0), 8000)
    x = audio()(str(p))
    assert x.shape == (1, 32, 60) and torch.isfinite(x).all()
    assert audio(features="mfcc")(str(p)).shape == (1, 13, 60)


def test_resampling_matches_native_rate(tmp_path):
    t = np.arange(16000) / 16000
    wave = (0.5 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    sf.write(tmp_path / "16k.wav", wave, 16000)
    sf.write(tmp_path / "8k.wav", wave[::2], 8000)
    a, b = audio(normalize=False)(str(tmp_path / "16k.wav")), audio(normalize=False)(str(tmp_path / "8k.wav"))
    # the 500 Hz tone must land in the same mel band either way
    assert a[0, :, 5:40].mean(1).argmax() == b[0, :, 5:40].mean(1).argmax()


def test_feature_array_is_padded_and_cropped():
    feats = np.random.default_rng(0).normal(size=(100, 13)).astype(np.float32)
    assert audio()(feats).shape == (1, 13, 60)
    assert audio()(feats[:10]).shape == (1, 13, 60)


def test_filterbank_and_dct():
    fb = mel_filterbank(256, 32, 8000)
    assert fb.shape == (32, 129) and (fb >= 0).all() and (fb.sum(1) > 0).all()
    d = dct_matrix(13, 32)
    assert torch.allclose(d @ d.T, torch.eye(13), atol=1e-5)


def test_real_fsdd_recording():
    root = fsdd_dir()
    if root is None:
        pytest.skip("no local FSDD copy")
    x = audio()(str(root / "recordings" / "7_theo_3.wav"))
    assert x.shape == (1, 32, 60) and torch.isfinite(x).all()


def test_image_augmentation_is_off_by_default_and_changes_pixels_when_on():
    img = mnist_digits(4, 1)[0]
    plain = ImageTransform(28, 1, 0.5, 0.5, 10**7)
    x = plain(img)
    assert plain.augment(x) is x
    torch.manual_seed(0)
    aug = ImageTransform(28, 1, 0.5, 0.5, 10**7, hflip=1.0, rotate=20, crop_scale=0.7, brightness=0.1, contrast=0.2)
    y = aug.augment(x)
    assert y.shape == x.shape and not torch.equal(x, y) and y.min() >= -1 and y.max() <= 1
    flip = ImageTransform(28, 1, 0.5, 0.5, 10**7, hflip=1.0).augment(x)
    assert torch.equal(flip, x.flip(-1))


def test_specaugment_masks_bands_and_frames_only_when_enabled(tmp_path):
    p = tmp_path / "t.wav"
    sf.write(p, tone(1, 0), 8000)
    x = audio()(str(p))
    assert audio().augment(x) is x
    torch.manual_seed(0)
    y = audio(freq_mask=6, time_mask=10, num_masks=2).augment(x)
    assert y.shape == x.shape and (y == 0).sum() > (x == 0).sum() and not torch.equal(x, y)


def test_npy_feature_file(tmp_path):
    feats = np.random.default_rng(0).normal(size=(30, 13)).astype(np.float32)
    np.save(tmp_path / "f.npy", feats)
    assert torch.equal(audio()(str(tmp_path / "f.npy")), audio()(feats))


@pytest.mark.parametrize("ext", ["flac", "ogg"])
def test_stereo_flac_and_ogg_are_mixed_down_and_resampled(tmp_path, ext):
    t = np.arange(16000) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    sf.write(tmp_path / f"s.{ext}", np.stack([wave, wave], axis=1), 16000)
    sf.write(tmp_path / "m.wav", wave[::2], 8000)
    x, ref = audio(normalize=False)(str(tmp_path / f"s.{ext}")), audio(normalize=False)(str(tmp_path / "m.wav"))
    assert x.shape == ref.shape == (1, 32, 60)
    assert x[0, :, 5:40].mean(1).argmax() == ref[0, :, 5:40].mean(1).argmax()
