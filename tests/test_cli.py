"""The CLI as a user runs it: help with examples, one-line errors with exit 2, predict/evaluate/datasets."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "polymodal", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": "/tmp", **_keep()},
    )


def _keep() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k.startswith(("POLYMODAL", "PYTHON", "VIRTUAL"))}


@pytest.mark.parametrize(
    "cmd", [[], ["train"], ["evaluate"], ["predict"], ["benchmark"], ["generate"], ["datasets", "list"]]
)
def test_help_shows_an_example(cmd):
    res = run(*cmd, "--help")
    assert res.returncode == 0, res.stderr
    assert "Example" in res.stdout or cmd == []


def test_bad_recipe_key_is_one_error_line_and_exit_2(tmp_path):
    res = run("train", "avdigits", "--set", "trainer.lrr=0.1", "--run-dir", str(tmp_path / "r"))
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "did you mean 'lr'" in lines[0]
    assert not (tmp_path / "r").exists()


def test_datasets_list():
    res = run("datasets", "list")
    assert res.returncode == 0
    for name in ("avdigits", "fsdd", "mnist"):
        assert name in res.stdout


def test_predict_prints_label_and_probabilities(trained_run, manifest):
    res = run(
        "predict",
        str(trained_run),
        "--image",
        str(manifest.parent / "2_5.png"),
        "--audio",
        str(manifest.parent / "2_5.wav"),
    )
    assert res.returncode == 0, res.stderr
    assert "label: d2" in res.stdout and "probability" in res.stdout


def test_predict_bad_file_is_one_line(trained_run, manifest, tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"RIFF....not a wav")
    res = run("predict", str(trained_run), "--image", str(manifest.parent / "2_5.png"), "--audio", str(bad))
    assert res.returncode == 2 and res.stderr.startswith("error:") and "x.wav" in res.stderr


def test_evaluate_prints_metrics_and_confusion_matrix(trained_run):
    res = run("evaluate", str(trained_run))
    assert res.returncode == 0, res.stderr
    assert "accuracy" in res.stdout and "macro F1" in res.stdout and "Confusion matrix" in res.stdout


def test_benchmark_with_an_unknown_fusion_is_one_error_line(tmp_path):
    res = run("benchmark", "avdigits", "--fusions", "concat,tensr", "--out", str(tmp_path / "b"))
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "did you mean 'tensor'" in lines[0]


def test_generate_on_a_classifier_run_says_what_to_give(tmp_path):
    res = run("generate", str(tmp_path), "--prompt", "x")
    assert res.returncode == 2 and "language-model run" in res.stderr
