"""The run directory: what a damaged, foreign or newer run directory says (one line, through the CLI too), runs
written before meta.json had a schema, metrics lines torn by a kill, and relative paths in every kind's recipe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import one_error_line, run_cli, tiny_recipe

from polymodal import api
from polymodal.errors import CheckpointError, ConfigError, PolymodalError
from polymodal.kinds.base import kind_named
from polymodal.runs import SCHEMA, RunDir
from polymodal.training.checkpoint import load_checkpoint
from polymodal.training.state import LoopState


def cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real ``polymodal`` command in a fresh process (nothing of the test's state leaks into it)."""
    keep = {k: v for k, v in os.environ.items() if k.startswith(("POLYMODAL", "PYTHON", "VIRTUAL"))}
    return subprocess.run(
        [sys.executable, "-m", "polymodal", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": "/tmp", **keep},
    )


def process_error_line(res: subprocess.CompletedProcess, status: int = 4) -> str:
    """The one ``error:`` line of a refused command run as its own process (no traceback; exit 4: run dir)."""
    assert "Traceback" not in res.stderr
    return one_error_line(res.returncode, res.stderr, status)


@pytest.fixture
def damaged(trained_run: Path, tmp_path: Path) -> Path:
    """A copy of the session's trained run, to damage."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"schema": 2, "kind": "supervised", "classes": ', "meta.json is not valid JSON (line 1"),
        ('["supervised"]', "meta.json holds a JSON list, not the object a run writes"),
        ('{"schema": 99, "kind": "supervised"}', "has schema 99, newer than this polymodal reads (2); upgrade"),
        ('{"schema": 2, "kind": 7}', "'kind' is int 7, not str"),
        ('{"schema": 2, "kind": "chess"}', "kind 'chess' is not a run kind this polymodal knows"),
        ('{"schema": 2, "kind": "supervised", "classes": "d0"}', "'classes' is str 'd0', not list"),
        ('{"schema": 2, "kind": "supervised", "classes": []}', "meta.json has no 'in_shapes'"),
    ],
    ids=["torn", "a-list", "newer-schema", "kind-not-text", "unknown-kind", "wrong-type", "missing-key"],
)
def test_a_damaged_meta_json_is_one_line_naming_the_file(damaged, content, says, capsys):
    (damaged / "meta.json").write_text(content)
    with pytest.raises(CheckpointError, match="meta.json") as info:
        api.evaluate(damaged)
    assert says in str(info.value) and "\n" not in str(info.value)
    for verb in (["evaluate"], ["predict", "--image", "x.png"], ["report"], ["export"], ["serve"]):
        line = one_error_line(*run_cli(capsys, verb[0], damaged, *verb[1:])[::2], status=4)
        assert says in line and str(damaged / "meta.json") in line


def test_a_damaged_run_through_the_installed_command_is_one_line(damaged):
    (damaged / "meta.json").write_text("[]")
    assert "holds a JSON list" in process_error_line(cli("evaluate", damaged))


def test_a_folder_that_is_not_a_run_says_what_it_lacks_and_what_to_give(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a run")
    line = one_error_line(*run_cli(capsys, "evaluate", tmp_path)[::2], status=4)
    assert "is not a finished run directory (no meta.json, recipe.yaml, weights.safetensors)" in line
    line = one_error_line(*run_cli(capsys, "generate", tmp_path / "missing", "--prompt", "x")[::2], status=4)
    assert "does not exist" in line and "`polymodal generate` is for language-model runs (kind: lm)" in line


def test_a_checkpoint_state_missing_a_key_or_wrongly_typed_is_one_line_and_changes_nothing(manifest, tmp_path, capsys):
    raw = tiny_recipe(manifest, epochs=2, checkpoint_every=2)
    run = tmp_path / "run"
    api.train(raw, run)
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    state = json.loads((latest / "state.json").read_text())
    weights = (run / "weights.safetensors").read_bytes()
    for broken, says in (
        ({k: v for k, v in state.items() if k != "step"}, "state.json has no 'step'"),
        ({**state, "epoch": "two"}, "'epoch' is str 'two', not int"),
    ):
        (latest / "state.json").write_text(json.dumps(broken))
        for other in (run / "checkpoints").glob("step-*"):  # no older checkpoint to fall back to
            if other != latest:
                shutil.rmtree(other)
        line = one_error_line(*run_cli(capsys, "train", "--resume", "--run-dir", run)[::2], status=4)
        assert says in line and str(latest / "state.json") in line and "delete its folder" in line
        assert (run / "weights.safetensors").read_bytes() == weights  # nothing already saved was touched
    (latest / "state.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="holds a JSON list, not the trainer state"):
        load_checkpoint(run / "checkpoints", api.load(run).model, None, 0, LoopState.from_json)


def test_runs_written_before_the_schema_still_load(trained_run, tmp_path):
    """A schema-1 run (main before this layout): meta.json without schema or kind, federated metrics by round."""
    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    meta = json.loads((run / "meta.json").read_text())
    for key in ("schema", "kind", "data_hash"):
        meta.pop(key)
    (run / "meta.json").write_text(json.dumps(meta))
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe.pop("kind")
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert RunDir(run).kind == "supervised" and RunDir(run).meta()["schema"] == 1
    assert api.evaluate(run)["accuracy"] == pytest.approx(
        json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
    )
    # a federated run of that time: a "federated" record in meta.json, rounds in metrics.jsonl, best_round
    meta["federated"] = {"client_sizes": [10, 14]}
    (run / "meta.json").write_text(json.dumps(meta))
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    (run / "metrics.jsonl").write_text("".join(json.dumps({"round": r.pop("epoch"), **r}) + "\n" for r in rows))
    assert RunDir(run).kind == "federated"
    assert [r["epoch"] for r in RunDir(run).history()] == list(range(1, len(rows) + 1))
    assert api.report(run).is_file()  # main crashed here with KeyError: 'epoch'
    # a language model of that time: known by its tokenizer
    (run / "tokenizer.json").write_text("{}")
    meta.pop("federated")
    (run / "meta.json").write_text(json.dumps(meta))
    assert RunDir(run).kind == "lm"


def test_a_torn_metrics_line_is_skipped_when_read(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    whole = RunDir(run).history()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 9, "train_lo')  # a kill while appending
    assert RunDir(run).history() == whole
    RunDir(run).keep_history(3)
    assert [r["epoch"] for r in RunDir(run).history()] == [1, 2, 3]
    assert (run / "metrics.jsonl").read_text().endswith("}\n")


def test_new_runs_record_schema_kind_and_a_hash_of_their_data(trained_run, manifest, tmp_path):
    meta = RunDir(trained_run).meta()
    assert meta["schema"] == SCHEMA and meta["kind"] == "supervised"
    assert meta["data_hash"].startswith("sha256:") and len(meta["data_hash"]) == len("sha256:") + 64
    changed = tmp_path / "changed.csv"
    changed.write_text(manifest.read_text().replace("d2\n", "d1\n", 1))
    from polymodal.data.table import Table, read_table

    same = Table(read_table(manifest), label="label").content_hash()
    assert same == meta["data_hash"]
    assert Table(read_table(changed), label="label").content_hash() != same


# ---------------------------------------------------------------------------------------------------------
# Relative paths: read from the recipe file's folder, the same for every kind


def write_elsewhere(tmp_path: Path, raw: dict, files: dict[str, Path]) -> Path:
    """The recipe in tmp_path/recipes/r.yaml with each of ``files`` copied beside it and named relatively."""
    folder = tmp_path / "recipes"
    folder.mkdir(exist_ok=True)
    for name, source in files.items():
        shutil.copy(source, folder / name)
    path = folder / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("kind", ["supervised", "federated", "pretrain"])
def test_a_relative_data_table_is_read_beside_the_recipe_for_every_kind(kind, manifest, tmp_path, monkeypatch):
    raw = {**tiny_recipe(manifest), "kind": kind}
    if kind == "pretrain":
        raw["objective"] = {"name": "clip"}
        raw.pop("fusion")
    raw["data"]["table"] = "table.csv"
    path = write_elsewhere(tmp_path, raw, {"table.csv": manifest})
    monkeypatch.chdir(tmp_path)  # the working directory has no table.csv
    parsed = api.load_recipe(path)
    assert parsed.kind == kind and parsed.data.table == str(path.parent / "table.csv")
    monkeypatch.chdir(path.parent.parent.parent)
    assert api.load_recipe(path).data.table == str(path.parent / "table.csv")


def test_relative_files_of_the_other_kinds_are_read_beside_the_recipe(manifest, tmp_path, monkeypatch):
    corpus = tmp_path / "source.txt"
    corpus.write_text("some text to learn\n" * 50)
    lm = kind_named("lm").example(tmp_path)
    lm["data"]["corpus"] = "corpus.txt"
    path = write_elsewhere(tmp_path, lm, {"corpus.txt": corpus})
    monkeypatch.chdir(tmp_path.parent)
    assert api.load_recipe(path).data.corpus == str(path.parent / "corpus.txt")
    lm["data"]["corpus"] = "tinyshakespeare"  # a built-in corpus is a name, not a path
    assert api.load_recipe(write_elsewhere(tmp_path, lm, {})).data.corpus == "tinyshakespeare"

    classifier = tmp_path / "clf.yaml"
    classifier.write_text(yaml.safe_dump(kind_named("supervised").example(tmp_path)))
    gan = kind_named("gan").example(tmp_path)
    gan["evaluation"]["classifier"] = "clf.yaml"
    assert api.load_recipe(write_elsewhere(tmp_path, gan, {"clf.yaml": classifier})).evaluation.classifier == str(
        tmp_path / "recipes" / "clf.yaml"
    )
    gan["evaluation"]["classifier"] = "mnist_classifier"  # a built-in recipe name stays a name
    assert api.load_recipe(write_elsewhere(tmp_path, gan, {})).evaluation.classifier == "mnist_classifier"


def test_a_recipe_file_that_is_not_text_or_is_a_folder_is_one_line(tmp_path, capsys):
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "not a text file" in process_error_line(cli("train", binary, "--run-dir", tmp_path / "r"), status=2)
    assert "is a folder" in one_error_line(*run_cli(capsys, "train", tmp_path, "--run-dir", tmp_path / "r")[::2])
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="kind: unknown run kind 'gam' — did you mean 'gan'"):
        api.load_recipe({"name": "x", "kind": "gam"})


def test_an_early_stop_records_the_epochs_it_trained_and_a_resume_trains_no_more(manifest, tmp_path):
    run = tmp_path / "stopped"
    res = api.train(tiny_recipe(manifest, epochs=40, patience=2, checkpoint_every=0), run)
    record = json.loads((run / "metrics.json").read_text())
    history = RunDir(run).history()
    assert record["stopped_early"] and record["epochs_run"] == len(history) == res.epochs_run < 40
    assert record["best_epoch"] == len(history) - 2  # two epochs without a better validation accuracy
    again = api.train(None, run, resume=True)
    assert again.epochs_run == len(history) and len(RunDir(run).history()) == len(history)


@pytest.mark.parametrize("name", ["gan", "pretrain", "federated"])
def test_kinds_that_do_not_train_under_torchrun_say_so_before_joining_a_group(name, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it; no rendezvous exists, so joining would hang
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match=f"kind: {name} runs do not train under torchrun yet; train them in one"):
        api.train(kind_named(name).example(tmp_path), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------------------
# Recipe semantics and paths a user controls (issue 16's first items)


def test_booleans_are_not_numbers_and_numbers_are_finite(manifest):
    """YAML's true and .inf/.nan are values of a number field only in appearance; each is one line."""
    for trainer, says in (({"epochs": True}, "trainer.epochs: bad value True — a number is needed here, not"),
                          ({"lr": float("inf")}, "trainer.lr: bad value inf — give a finite number")):  # fmt: skip
        with pytest.raises(ConfigError, match=says):
            api.load_recipe(tiny_recipe(manifest, **trainer))
    raw = tiny_recipe(manifest)
    raw["inputs"][0]["preprocessing"] = {"mean": float("nan")}  # a float without bounds: only finiteness says no
    with pytest.raises(ConfigError, match="inputs.image.preprocessing.mean: bad value nan — give a finite number"):
        api.load_recipe(raw)
    assert yaml.safe_load("{a: true, b: .inf}") == {"a": True, "b": float("inf")}  # what YAML gives for these


def test_a_missing_recipe_path_is_not_silently_a_built_in_one(tmp_path):
    with pytest.raises(ConfigError, match="recipe '/video_digits.yaml' not found"):
        api.load_recipe("/video_digits.yaml")
    with pytest.raises(ConfigError, match="not found"):
        api.load_recipe(tmp_path / "avdigits.yaml")
    assert api.load_recipe("avdigits").name == api.load_recipe("recipes/avdigits.yaml").name == "avdigits"


def test_latest_may_not_point_outside_the_checkpoints_folder(manifest, tmp_path):
    run = tmp_path / "run"
    api.train(tiny_recipe(manifest, epochs=1), run)
    (run / "checkpoints" / "latest").write_text("../../elsewhere\n")
    with pytest.raises(CheckpointError, match="points outside .* fix or delete it"):
        api.train(None, run, resume=True)


def test_a_split_that_does_not_exist_or_does_not_apply_is_refused_for_every_kind(tmp_path):
    lm = kind_named("lm").example(tmp_path)
    api.train(lm, tmp_path / "lm")
    with pytest.raises(PolymodalError, match="unknown split 'banana'; use train, val or test"):
        api.evaluate(tmp_path / "lm", "banana")
    with pytest.raises(PolymodalError, match="is scored on its val data when training ends; drop --split"):
        api.evaluate(tmp_path / "lm", "train")
    assert api.evaluate(tmp_path / "lm", "val")["loss"] > 0
