"""The CLI as a user runs it: help with examples, one-line errors with exit 2, predict/evaluate/datasets."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import one_error_line, run_cli


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
    assert res.returncode == 3 and res.stderr.startswith("error:") and "x.wav" in res.stderr


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
    assert res.returncode == 4 and "language-model run" in res.stderr  # 4: the run directory is the problem


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["trian"], "unknown command 'trian' — did you mean 'train'?"),
        (["train", "avdigits", "--epochs", "3"], "no such option --epochs; recipe keys are set with --set key=value"),
        (["evaluate", "runs/x", "--splt", "val"], "no such option --splt — did you mean '--split'?"),
        (["evaluate"], "missing argument"),
        (["serve", "runs/x", "--port", "99999"], "invalid value for '--port'"),
        (["generate", "runs/x", "--max-tokens", "-5"], "invalid value for '--max-tokens'"),
        (["generate", "runs/x", "--prompt", ""], "invalid value for '--prompt': is empty"),
        (
            ["generate", "runs/x", "--compile", "yes"],
            "invalid value for '--compile': is 'yes'; use one of auto, on, off",
        ),
        (["datasets", "lst"], "unknown command 'lst' — did you mean 'list'?"),
    ],
    ids=[
        "unknown-verb",
        "recipe-key-as-flag",
        "unknown-flag",
        "missing-argument",
        "port",
        "max-tokens",
        "prompt",
        "compile",
        "sub",
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args, says, capsys):
    code, _, err = run_cli(capsys, *args)
    line = one_error_line(code, err)
    assert says in line and "see polymodal" in line


def test_usage_errors_through_the_installed_command_have_no_traceback():
    res = run("trian")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: unknown command 'trian' — did you mean 'train'? (commands: benchmark, chat, datasets, evaluate, "
        "export, federated, fit, generate, hyperopt, init, predict, report, sample, serve, train); see polymodal --help"
    ]


def test_version_and_no_arguments(capsys):
    code, out, err = run_cli(capsys, "--version")
    assert code == 0 and out.startswith("polymodal ") and not err
    code, out, err = run_cli(capsys)
    assert code == 0 and "Usage" in out and "train" in out and not err
    res = run()
    assert res.returncode == 0 and "Traceback" not in res.stderr and "Commands" in res.stdout


def test_the_command_line_does_not_import_torch_or_scipy_until_a_command_needs_it():
    """torch (about 2 s), scipy.signal (resampling) and scipy.special (the privacy accountant) are imported by the
    commands that use them: ``polymodal --help`` and ``--version`` took 3-4 s when every command module imported
    the library at its top, and take about 0.5 s now."""
    heavy = ("torch", "scipy.signal", "scipy.special", "pandas", "fastapi")
    code = (
        "import sys; from polymodal.cli.main import app; import typer; "
        "typer.main.get_command(app).main(args=[*sys.argv[1:], '--help'], standalone_mode=False); "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    for command in ([], ["train"], ["serve"], ["generate"], ["predict"]):
        res = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0 and res.stdout.strip().endswith("[]"), (command, res.stdout[-300:], res.stderr)


def test_the_package_gives_its_public_names_on_first_use():
    import polymodal
    from polymodal import api, errors

    assert polymodal.train is api.train and polymodal.DataError is errors.DataError
    assert set(polymodal.__all__) <= set(dir(polymodal))
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        polymodal.trian  # noqa: B018


def test_progress_in_a_log_is_one_line_per_epoch_with_a_start_summary(manifest, tmp_path, capsys):
    """Redirected output (not a terminal): the data and training summary first, then one line per epoch with
    the monitored number, as they happen (no progress bars to wait for)."""
    import yaml
    from conftest import tiny_recipe

    path = tmp_path / "r.yaml"
    raw = tiny_recipe(manifest, epochs=3, monitor="loss")
    raw["data"].update(prepare_workers=2, disk_cache_dir=str(tmp_path / "cache"))
    path.write_text(yaml.safe_dump(raw))
    code, out, err = run_cli(capsys, "train", path, "--run-dir", tmp_path / "run")
    assert code == 0, err
    first_pass = [ln for ln in out.splitlines() if ln.startswith("preparing files: ")]  # files/s and time left
    assert first_pass[-1].startswith("preparing files: 240/240 (") and first_pass[-1].endswith(" s left)")
    lines = [ln for ln in out.splitlines() if not ln.startswith("preparing files: ")]
    assert lines[0].startswith("data: ") and "72 train / 24 val / 24 test" in lines[0]
    assert lines[1].startswith("training ") and "parameters on cpu for 3 epochs; keeping the best val_loss" in lines[1]
    epochs = [ln for ln in lines if ln.startswith("epoch ")]
    assert [ln.split(":")[0] for ln in epochs] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("val loss" in ln for ln in epochs)
