"""`polymodal evaluate RUN --data TABLE`: a finished run scored on every row of a manifest it never saw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from conftest import mnist_digits, tone
from PIL import Image

from polymodal import api
from polymodal.errors import DataError


def unseen_manifest(folder: Path, labels: tuple[str, ...] = ("d0", "d1", "d2"), per_class: int = 10) -> Path:
    """Rows the run never saw: MNIST images after the first 40 per digit (those trained the fixture run)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["label,audio,image"]  # a different column order than the training manifest
    for label in labels:
        digit = int(label[1:])
        for j, img in enumerate(mnist_digits(digit, 40 + per_class)[40:]):
            name = f"new_{digit}_{j}"
            Image.fromarray(img).save(folder / f"{name}.png")
            sf.write(folder / f"{name}.wav", tone(digit, seed=99_000 + digit * 100 + j), 8000)
            rows.append(f"{label},{name}.wav,{name}.png")
    path = folder / "unseen.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_every_row_of_the_runs_own_manifest_equals_its_three_splits(trained_run, manifest):
    whole = api.evaluate(trained_run, table=manifest)
    parts = [api.evaluate(trained_run, split) for split in ("train", "val", "test")]
    assert whole["n"] == sum(p["n"] for p in parts) == 120
    assert whole["split"] == "manifest.csv"
    correct = sum(round(p["accuracy"] * p["n"]) for p in parts)
    assert round(whole["accuracy"] * whole["n"]) == correct
    summed = [[sum(p["confusion_matrix"][i][j] for p in parts) for j in range(3)] for i in range(3)]
    assert whole["confusion_matrix"] == summed
    assert set(whole["without"]) == {"image", "audio"}


def test_unseen_rows_are_scored_with_the_runs_classes(trained_run, tmp_path):
    table = unseen_manifest(tmp_path / "new")
    m = api.evaluate(trained_run, table=table)
    assert m["n"] == 30 and m["skipped_rows"] == 0
    assert list(m["per_class"]) == ["d0", "d1", "d2"]
    assert m["accuracy"] > 0.8  # the tone encodes the class, so a trained run gets unseen rows right


def test_a_subset_of_the_classes_keeps_the_runs_class_order(trained_run, tmp_path):
    m = api.evaluate(trained_run, table=unseen_manifest(tmp_path / "two", ("d2",), per_class=6))
    assert m["n"] == 6 and list(m["per_class"]) == ["d0", "d1", "d2"]
    assert sum(m["confusion_matrix"][2]) == 6 and sum(m["confusion_matrix"][0]) == 0


def test_a_class_the_run_never_saw_is_one_clear_error(trained_run, tmp_path):
    table = unseen_manifest(tmp_path / "seven", ("d1", "d7"), per_class=2)
    with pytest.raises(DataError, match=r"1 class\(es\) the run was not trained on \(d7\); keep only rows labelled"):
        api.evaluate(trained_run, table=table)


def test_a_table_without_an_input_column_names_it(trained_run, tmp_path):
    table = tmp_path / "no_audio.csv"
    table.write_text("image,label\nx.png,d0\n")
    with pytest.raises(DataError, match="has no column 'audio'"):
        api.evaluate(trained_run, table=table)
    with pytest.raises(DataError, match="table not found"):
        api.evaluate(trained_run, table=tmp_path / "nope.csv")


def test_evaluate_cli_with_data_prints_metrics_and_writes_its_own_report(trained_run, tmp_path):
    from typer.testing import CliRunner

    from polymodal.cli import app

    table = unseen_manifest(tmp_path / "cli", per_class=4)
    before = (trained_run / "report.html").read_bytes() if (trained_run / "report.html").is_file() else None
    res = CliRunner().invoke(app, ["evaluate", str(trained_run), "--data", str(table)])
    assert res.exit_code == 0, res.output
    assert "unseen.csv: accuracy" in res.output and "(n=12)" in res.output
    page = (trained_run / "report-unseen.html").read_text(encoding="utf-8")
    assert "evaluated on all 12 rows of unseen.csv" in page and "On all 12 rows of unseen.csv." in page
    after = (trained_run / "report.html").read_bytes() if (trained_run / "report.html").is_file() else None
    assert after == before  # the run's own report is untouched


@pytest.mark.parametrize("kind", ["gan", "pretrain", "lm"])
def test_data_on_a_run_that_is_not_a_multimodal_model_is_one_line(kind, tmp_path):
    from typer.testing import CliRunner

    from polymodal.cli import app

    run = tmp_path / kind
    run.mkdir()
    (run / "meta.json").write_text(json.dumps({"kind": kind}))
    (run / "recipe.yaml").write_text("name: x\n")
    for command in ("evaluate", "report"):
        res = CliRunner().invoke(app, [command, str(run), "--data", str(tmp_path / "t.csv")])
        assert res.exit_code != 0
        assert f"is a kind: {kind} run; --data is for multimodal models (drop --data)" in str(res.exception)
