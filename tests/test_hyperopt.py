"""Hyperparameter search: three tiny Optuna trials on real images and audio write a table and a best recipe
that loads; bad search spaces fail before any training."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import tiny_recipe
from typer.testing import CliRunner

from polymodal.api import load_recipe
from polymodal.errors import ConfigError

hp = pytest.importorskip("polymodal.hyperopt")
pytest.importorskip("optuna")


def test_three_trials_write_table_and_loadable_best_recipe(manifest: Path, tmp_path: Path) -> None:
    space = {
        "trainer.lr": hp.ParamSpec(low=1e-3, high=3e-2, log=True),
        "fusion.name": hp.ParamSpec(choices=["concat", "late"]),
        "trainer.epochs": hp.ParamSpec(low=1, high=2),
    }
    res = hp.search(tiny_recipe(manifest), 3, tmp_path / "hp", space=space)
    assert len(res.rows) == 3 and {r["state"] for r in res.rows} <= {"complete", "pruned", "fail"}
    with open(tmp_path / "hp" / "trials.csv", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in table] == [0, 1, 2]
    assert set(space) <= set(table[0])
    assert (tmp_path / "hp" / "trials.md").read_text().count("\n") == 2 + 3
    best = load_recipe(res.best_recipe)  # polymodal train accepts it
    params = res.best["params"]
    assert best.trainer.lr == pytest.approx(params["trainer.lr"])
    assert best.fusion.name == params["fusion.name"] and best.trainer.epochs == params["trainer.epochs"]
    values = [r["value"] for r in res.rows if r["state"] == "complete"]
    assert res.best["value"] == max(values)


def test_bad_search_spaces_fail_before_training(manifest: Path, tmp_path: Path) -> None:
    raw = tiny_recipe(manifest)
    for space, match in [
        ({"trainer.lrr": hp.ParamSpec(low=1e-3, high=1e-2)}, "did you mean 'lr'"),
        ({"trainer.lr": hp.ParamSpec(low=0.0, high=1e-2, log=True)}, "log range needs low > 0"),
        ({"trainer.lr": hp.ParamSpec(low=1e-2, high=1e-3)}, "low' <= 'high"),
        ({"fusion.name": hp.ParamSpec(choices=["concat", "nope"])}, "nope"),
    ]:
        with pytest.raises(ConfigError, match=match) as exc:
            hp.search(raw, 1, tmp_path / "bad", space=space)
        assert "\n" not in str(exc.value)
    assert not (tmp_path / "bad" / "trials").exists()


def test_space_file_errors_via_cli(tmp_path: Path) -> None:
    from polymodal.cli import app

    space = tmp_path / "space.yaml"
    space.write_text("trainer.lr: {low: 1.0e-4, hihg: 1.0e-2}\n")
    result = CliRunner().invoke(app, ["hyperopt", "avdigits", "--trials", "1", "--space", str(space)])
    assert isinstance(result.exception, ConfigError) and "unknown key 'hihg'" in str(result.exception)
    with pytest.raises(ConfigError, match="not found"):
        hp.load_space(tmp_path / "missing.yaml")
