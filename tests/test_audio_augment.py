"""Waveform augmentation (training split only, seeded) and energy-VAD silence trimming for audio inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import assert_same_run, tone

from polymodal import api
from polymodal.data.dataset import build_data
from polymodal.data.datasets.fsdd import FSDD, fsdd_dir
from polymodal.data.modalities.audio import AudioTransform, read_audio, trim_silence
from polymodal.errors import ConfigError, DataError

AUGMENT = {"gain_db": 6.0, "shift": 0.1, "speed": 0.1, "noise": 1.0, "noise_snr_min": 10.0, "noise_snr_max": 30.0}


def audio(**keys: object) -> AudioTransform:
    return AudioTransform(8000, "logmel", 256, 80, 32, 13, 60, True, **keys)


def wav_manifest(folder: Path) -> Path:
    """Two digits × 12 recordings: real FSDD WAVs (absolute paths) when a local copy exists, else tones."""
    root = fsdd_dir()
    rows = ["audio,label"]
    for digit in (3, 8):
        for j in range(12):
            if root is not None:
                path = root / "recordings" / f"{digit}_jackson_{j}.wav"
            else:
                path = folder / f"{digit}_{j}.wav"
                sf.write(path, tone(digit, seed=digit * 100 + j), 8000)
            rows.append(f"{path},d{digit}")
    (folder / "m.csv").write_text("\n".join(rows) + "\n")
    return folder / "m.csv"


def raw_recipe(manifest: Path, trainer: dict | None = None, **preprocessing: object) -> dict:
    return {
        "name": "aug",
        "seed": 0,
        "data": {"table": str(manifest), "val_fraction": 0.25, "test_fraction": 0.25, "disk_cache": False},
        "inputs": [
            {
                "name": "audio",
                "modality": "audio",
                "preprocessing": {"n_mels": 32, "max_frames": 60, **preprocessing},
                "encoder": {"name": "audio_cnn", "width": 4, "out_dim": 8},
            }
        ],
        "trainer": {"threads": 1, **(trainer or {})},
    }


def recipe(manifest: Path, **preprocessing: object) -> object:
    return api.load_recipe(raw_recipe(manifest, **preprocessing))


def test_waveform_augmentation_changes_train_examples_only_and_is_seeded(tmp_path):
    data = build_data(recipe(wav_manifest(tmp_path), **AUGMENT))
    train, transform = data.splits["train"], data.transforms["audio"]
    torch.manual_seed(0)
    a = train[0][0]["audio"]
    b = train[0][0]["audio"]
    torch.manual_seed(0)
    again = train[0][0]["audio"]
    clean = transform(train.columns["audio"][0])
    assert a.shape == clean.shape == (1, 32, 60) and torch.isfinite(a).all()
    assert not torch.equal(a, clean) and not torch.equal(a, b)  # a new draw per epoch
    assert torch.equal(a, again)  # same seed, same augmented example
    for split in ("val", "test"):
        ds = data.splits[split]
        assert torch.equal(ds[0][0]["audio"], ds[0][0]["audio"])
        assert torch.equal(ds[0][0]["audio"], transform(ds.columns["audio"][0]))


def test_augmentation_is_off_by_default():
    wav = tone(2, 0)
    t = audio()
    x = t(wav)
    assert not t.augments_wave and t.augment_example(wav, x) is x
    delayed = np.concatenate([np.zeros(800, np.float32), wav])
    assert not torch.equal(t(delayed), x)  # no trimming unless trim_db is set
    assert len(wav) <= len(audio(trim_db=30.0).trim(delayed)) < len(wav) + 256  # trimmed to within a frame


def test_each_waveform_augmentation_keeps_the_shape_and_changes_features():
    wav = tone(2, 0)
    x = audio()(wav)
    for key, value in AUGMENT.items():
        if key.startswith("noise_snr"):
            continue
        t = audio(**{key: value})
        torch.manual_seed(1)
        y = t.augment_example(wav, x)
        assert y.shape == x.shape and torch.isfinite(y).all(), key
        if key != "gain_db":  # CMVN removes a pure gain up to the log floor
            assert not torch.allclose(y, x, atol=1e-3), key


def test_trimming_removes_zero_padding_around_a_tone():
    wav = tone(1, 0, seconds=0.3)
    padded = np.concatenate([np.zeros(4000, np.float32), wav, np.zeros(4000, np.float32)])
    trimmed = trim_silence(padded, 30.0, 256, 80)
    # Frames straddling the tone's edges are kept: at most one frame (256 samples) of zeros either side.
    assert len(wav) <= len(trimmed) <= len(wav) + 2 * 256
    assert np.count_nonzero(trimmed[:256]) > 0 and np.count_nonzero(trimmed[-256:]) > 0
    assert len(trim_silence(np.zeros(5000, np.float32), 30.0, 256, 80)) == 5000  # nothing louder: kept whole


def test_trimming_a_real_recording_padded_with_silence_gives_the_same_features():
    root = fsdd_dir()
    if root is None:
        pytest.skip("no local FSDD copy")
    wav = read_audio(root / "recordings" / "0_lucas_27.wav", 8000)
    # Low-level noise, not digital zeros: what a recorder captures before and after the word.
    rng = np.random.default_rng(0)
    pad = lambda n: (1e-4 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731
    padded = np.concatenate([pad(8000), wav, pad(8000)])
    trimmed = trim_silence(padded, 30.0, 256, 80)
    assert len(trimmed) < len(wav)  # the padding and the recording's own leading/trailing silence are gone
    assert abs(len(trimmed) - len(trim_silence(wav, 30.0, 256, 80))) <= 80  # the same word, to one hop


def test_noise_snr_range_must_be_ordered():
    with pytest.raises(ConfigError, match="noise_snr_min"):
        audio(noise=1.0, noise_snr_min=30.0, noise_snr_max=10.0)


def test_fsdd_test_speaker_holds_one_speaker_out():
    if fsdd_dir() is None:
        pytest.skip("no local FSDD copy")
    frame = FSDD(None, test_speaker="theo").load().frame
    assert set(frame.loc[frame["split"] == "test", "speaker"]) == {"theo"}
    assert "theo" not in set(frame.loc[frame["split"] == "train", "speaker"])
    with pytest.raises(DataError, match="choose one of"):
        FSDD(None, test_speaker="nobody").load()


class Crash(Exception):
    pass


def test_a_run_with_waveform_augmentation_resumes_to_the_uninterrupted_result(tmp_path):
    manifest = wav_manifest(tmp_path)

    def raw() -> dict:
        trainer = {"epochs": 4, "batch_size": 4, "checkpoint_every": 2}
        return raw_recipe(manifest, trainer, trim_db=30.0, **AUGMENT)

    steps = []

    def crash_after_five(event: str, **info: object) -> None:
        if event == "batch":
            steps.append(1)
            if len(steps) == 5:  # mid-epoch 2 (3 batches an epoch), one step after the checkpoint at step 4
                raise Crash

    with pytest.raises(Crash):
        api.train(raw(), tmp_path / "killed", callback=crash_after_five)
    assert (tmp_path / "killed" / "checkpoints" / "latest").exists()
    assert not (tmp_path / "killed" / "metrics.json").exists()
    api.train(None, tmp_path / "killed", resume=True)
    api.train(raw(), tmp_path / "straight")
    assert_same_run(tmp_path / "killed", tmp_path / "straight")


def test_loading_workers_change_nothing_but_speed_and_a_run_with_them_resumes_exactly(tmp_path):
    manifest = wav_manifest(tmp_path)

    def raw(workers: int) -> dict:
        out = raw_recipe(manifest, {"epochs": 3, "batch_size": 4, "checkpoint_every": 2}, trim_db=30.0, **AUGMENT)
        out["data"]["num_workers"] = workers
        return out

    api.train(raw(0), tmp_path / "zero")
    api.train(raw(2), tmp_path / "two")
    assert_same_run(tmp_path / "zero", tmp_path / "two")  # each row's draws come from its own seed
    steps = []

    def crash_after_four(event: str, **info: object) -> None:
        if event == "batch":
            steps.append(1)
            if len(steps) == 4:  # in epoch 2 (3 batches an epoch), checkpoints every 2 steps
                raise Crash

    with pytest.raises(Crash):
        api.train(raw(2), tmp_path / "killed", callback=crash_after_four)
    api.train(None, tmp_path / "killed", resume=True)
    assert_same_run(tmp_path / "killed", tmp_path / "zero")
