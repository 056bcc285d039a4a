"""A table in, predictions out: the DataFrame Predictor, column-type inference, presets, `polymodal fit` /
`init` / `predict --data`, and what a bad table says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import one_error_line, run_cli

import polymodal
from polymodal import api
from polymodal.data.infer import infer_types, problem_type
from polymodal.errors import ConfigError, DataError
from polymodal.kinds.supervised.auto import presets, recipe_for_table

# The tiny real tables here need more steps than a preset's defaults give 48 rows.
SMALL = ("trainer.epochs=12", "trainer.batch_size=8", "trainer.lr=0.01", "trainer.patience=0", "trainer.threads=1")


@pytest.fixture(scope="module")
def frames(manifest: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shared manifest (real MNIST PNGs + tone WAVs) as train/test DataFrames with absolute paths, plus a
    numeric and a categorical column."""
    frame = pd.read_csv(manifest)
    for column in ("image", "audio"):
        frame[column] = [str(manifest.parent / v) for v in frame[column]]
    digits = frame["label"].str[1:].astype(int)
    frame["ink"] = [float(np.asarray(__import__("PIL.Image").Image.open(p)).mean()) for p in frame["image"]]
    frame["parity"] = np.where(digits % 2 == 0, "even", "odd")
    rng = np.random.default_rng(0)
    test = rng.permutation(len(frame))[: len(frame) // 4]
    mask = np.zeros(len(frame), bool)
    mask[test] = True
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)


def test_column_types_are_inferred_from_values(frames, tmp_path):
    train, _ = frames
    text = train.assign(notes=["a photo of the digit drawn by hand, slightly rotated"] * len(train))
    types = infer_types(text, "label")
    assert types == {
        "image": "image",
        "audio": "audio",
        "ink": "numeric",
        "parity": "categorical",
        "notes": "text",
    }
    assert infer_types(train.assign(seq=[[0.1, 0.2, 0.3]] * len(train)), "label")["seq"] == "series"
    renamed = tmp_path / "blob"  # a PNG without extension: known by its first bytes
    renamed.write_bytes(Path(train["image"][0]).read_bytes())
    assert infer_types(pd.DataFrame({"x": [str(renamed)], "y": [1]}), "y") == {"x": "image"}
    assert infer_types(train, "label", column_types={"ink": "ignore"})["ink"] == "ignore"
    assert problem_type(train["label"]) == "classification" and problem_type(train["ink"]) == "regression"
    with pytest.raises(DataError, match="column_types: 'ink' has type 'picture'; use one of image"):
        infer_types(train, "label", column_types={"ink": "picture"})


def test_three_lines_fit_predict_evaluate_on_a_dataframe(frames, tmp_path):
    train, test = frames
    predictor = polymodal.Predictor(label="label", presets="fast", path=tmp_path / "run")
    predictor.fit(train, overrides=SMALL)
    predicted = predictor.predict(test)
    assert isinstance(predicted, pd.Series) and len(predicted) == len(test)
    assert (predicted == test["label"]).mean() >= 0.8  # three classes: chance is 1/3
    proba = predictor.predict_proba(test)
    assert list(proba.columns) == ["d0", "d1", "d2"] and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    metrics = predictor.evaluate(test)
    assert metrics["n"] == len(test) and metrics["accuracy"] == pytest.approx((predicted == test["label"]).mean())
    summary = predictor.fit_summary()
    assert summary["column_types"] == {"image": "image", "audio": "audio", "ink": "numeric", "parity": "categorical"}
    assert set(summary["inputs"]) == {"image", "audio", "tabular"} and summary["presets"] == "fast"
    assert len(predictor.leaderboard()) == 1
    # the run is an ordinary run: its recipe trains again with `polymodal train`, and load() reads it back
    recipe = polymodal.load_recipe(tmp_path / "run" / "recipe.yaml")
    assert recipe.data.table == str(tmp_path / "run" / "table.csv") and recipe.fusion.name == "concat"
    again = polymodal.Predictor.load(predictor.save(tmp_path / "copy"))
    assert (again.predict(test) == predicted).all()
    # A row with every input empty is predicted from none of them (as training's test metrics count it).
    empty = test.head(2).copy()
    empty.loc[0, ["image", "audio", "ink", "parity"]] = None
    out = predictor.predict(empty)
    assert len(out) == 2 and out.iloc[0] in {"d0", "d1", "d2"} and out.iloc[1] == predicted.iloc[1]


def test_tuning_data_validates_and_regression_predicts_values(frames, tmp_path):
    train, test = frames
    half = len(train) // 2
    predictor = polymodal.Predictor("ink", presets="fast", path=tmp_path / "reg", column_types={"parity": "ignore"})
    predictor.fit(train.iloc[:half], tuning_data=train.iloc[half:], overrides=(*SMALL, "trainer.epochs=30"))
    assert predictor.problem_type == "regression"
    values = predictor.predict(test)
    assert values.dtype.kind == "f" and np.corrcoef(values, test["ink"])[0, 1] > 0.5
    sizes = json.loads((tmp_path / "reg" / "meta.json").read_text())["sizes"]
    assert sizes["val"] == len(train) - half  # the tuning rows are the validation split
    with pytest.raises(DataError, match="predict_proba is for classification"):
        predictor.predict_proba(test)


def test_a_bad_table_is_one_line_that_says_what_to_do(frames, tmp_path):
    train, test = frames
    fit = polymodal.Predictor(label="label", path=tmp_path / "x").fit
    for data, says in (
        (train.drop(columns="label"), "the data has no label column 'label'"),
        (train.iloc[:0], "the table has no rows"),
        (train.assign(label="d1"), "label column 'label' has one class (d1); a classifier needs"),
        (train.assign(odd=[object()] * len(train)), "column 'odd' mixes object values; give its type in column_types"),
        (42, "give a pandas DataFrame or a CSV/TSV/Parquet/JSONL path"),
    ):
        with pytest.raises(DataError, match=r".*") as info:
            fit(data)
        assert says in str(info.value) and "\n" not in str(info.value), str(info.value)
    with pytest.raises(ConfigError, match="unknown preset 'bset' — did you mean 'best'"):
        polymodal.Predictor(label="label", presets="bset", path=tmp_path / "y").fit(train)
    fitted = polymodal.Predictor(label="label", presets="fast", path=tmp_path / "z").fit(train, overrides=SMALL)
    with pytest.raises(DataError, match="the data has no column 'audio' that the model was trained on"):
        fitted.predict(test.drop(columns="audio"))


def test_fit_init_and_predict_data_from_the_command_line(frames, tmp_path, capsys):
    train, test = frames
    folder = tmp_path / "tables"
    folder.mkdir()
    relative = train.copy()
    for column in ("image", "audio"):  # paths relative to the table, as users write them
        relative[column] = [str(Path(v).relative_to(Path(v).parent.parent)) for v in relative[column]]
        for v in relative[column]:
            (folder / v).parent.mkdir(parents=True, exist_ok=True)
            (folder / v).write_bytes((Path(train[column][0]).parent.parent / v).read_bytes())
    relative.to_csv(folder / "train.csv", index=False)
    code, out, err = run_cli(capsys, "init", folder / "train.csv", "--label", "label", "--out", tmp_path / "r.yaml")
    assert code == 0, err
    written = yaml.safe_load((tmp_path / "r.yaml").read_text())
    assert written["data"]["table"] == "tables/train.csv" and {i["name"] for i in written["inputs"]} == {
        "image",
        "audio",
        "tabular",
    }
    assert polymodal.load_recipe(tmp_path / "r.yaml").data.table == str(folder / "train.csv")
    assert "exists" in one_error_line(*run_cli(capsys, "init", folder / "train.csv", "--label", "label", "--out",
                                               tmp_path / "r.yaml")[::2])  # fmt: skip
    run = tmp_path / "cli-run"
    sets = [arg for s in SMALL for arg in ("--set", s)]
    code, out, err = run_cli(capsys, "fit", folder / "train.csv", "--label", "label", "--presets", "fast",
                             "--run-dir", run, *sets)  # fmt: skip
    assert code == 0, err
    assert "columns: image: image, audio: audio, ink: numeric, parity: categorical" in out and "test accuracy" in out
    one = test.iloc[0]
    code, out, err = run_cli(capsys, "predict", run, "--image", one["image"], "--audio", one["audio"], "--tabular",
                             json.dumps({"ink": one["ink"], "parity": one["parity"]}), "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["label"] in {"d0", "d1", "d2"}, err
    line = one_error_line(*run_cli(capsys, "predict", run, "--tabular", "ink=3")[::2])
    assert "--tabular: a tabular input is JSON, e.g. --tabular" in line
    rows = test.copy()
    rows.loc[1, "image"] = str(tmp_path / "missing.png")
    rows.to_csv(tmp_path / "new.csv", index=False)
    line = one_error_line(
        *run_cli(capsys, "predict", run, "--data", tmp_path / "new.csv", "--out", tmp_path / "p.csv")[::2], status=3
    )
    assert "new.csv row 1" in line and "missing.png" in line and "--on-error skip" in line
    assert not (tmp_path / "p.csv").exists()
    code, out, err = run_cli(capsys, "predict", run, "--data", tmp_path / "new.csv", "--out", tmp_path / "p.jsonl",
                             "--on-error", "skip")  # fmt: skip
    assert code == 0 and "skipped row 1" in err and "missing.png" in err
    written = pd.read_json(tmp_path / "p.jsonl", lines=True)
    assert list(written["row"]) == [i for i in range(len(test)) if i != 1]
    assert {"label", "p_d0", "p_d1", "p_d2"} <= set(written.columns)
    assert (written["label"] == test["label"].drop(index=1).to_numpy()).mean() >= 0.8


@pytest.mark.skipif(
    __import__("polymodal.data.datasets.clipart", fromlist=["clipart_dir"]).clipart_dir(None) is None,
    reason="needs the local OpenClipArt copy",
)
def test_three_lines_on_a_clipart_dataframe(tmp_path):
    """The README's three lines on real clip art: image files + keyword text -> category (5 categories)."""
    from polymodal.data.datasets.clipart import clipart_dir

    root = clipart_dir(None)
    frame = pd.read_csv(root / "captions.csv", keep_default_na=False)
    top = frame["category"].value_counts().index[:5]
    frame = frame[frame["category"].isin(top)].groupby("category").head(80).sample(frac=1, random_state=0)
    frame = frame.assign(image=[str(root / v) for v in frame["image"]])  # paths in captions.csv are relative to it
    frame = frame[["image", "keywords", "category"]].reset_index(drop=True)
    train, test = frame.iloc[:320], frame.iloc[320:]
    predictor = polymodal.Predictor(label="category", presets="fast", path=tmp_path / "clip")
    predictor.fit(train, overrides=("trainer.epochs=10", "trainer.threads=1"))
    assert predictor.fit_summary()["column_types"] == {"image": "image", "keywords": "text"}
    accuracy = predictor.evaluate(test)["accuracy"]
    assert accuracy >= 0.5, accuracy  # five categories: chance is 0.2
    assert (predictor.predict(test) == test["category"].to_numpy()).mean() == pytest.approx(accuracy)


def test_a_dataframe_of_image_arrays_and_series_lists_round_trips_through_its_saved_table(tmp_path):
    """Cells that are arrays (MNIST digits as 28×28 uint8, series as (T, C)) are saved as Parquet lists in the run
    and read back as the same inputs."""
    pytest.importorskip("pyarrow")
    from polymodal.data.datasets.mnist import mnist_arrays

    images, labels = mnist_arrays()
    keep = np.random.default_rng(0).permutation(
        np.r_[np.flatnonzero(labels == 0)[:60], np.flatnonzero(labels == 1)[:60]]
    )
    frame = pd.DataFrame(
        {
            "digit": list(images[keep]),
            "rows": [img.astype(np.float32)[::4, ::4] / 255 for img in images[keep]],  # (7, 7) series
            "label": labels[keep].astype(str),
        }
    )
    predictor = polymodal.Predictor(label="label", presets="fast", path=tmp_path / "arrays")
    predictor.fit(frame.iloc[:90], overrides=SMALL)
    assert predictor.fit_summary()["column_types"] == {"digit": "image", "rows": "series"}
    assert (tmp_path / "arrays" / "table.parquet").is_file()
    assert (predictor.predict(frame.iloc[90:]) == frame["label"].iloc[90:].to_numpy()).mean() >= 0.9  # 0 vs 1


@pytest.mark.parametrize("name", presets())
def test_every_preset_gives_a_valid_recipe_for_every_column_type(name, tmp_path):
    frame = pd.DataFrame(
        {
            "img": ["a.png", "b.png"],
            "snd": ["a.wav", "b.wav"],
            "vid": ["a.mp4", "b.mp4"],
            "ser": ["a.npy", "b.npy"],
            "txt": ["a red bird", "a blue fish"],
            "num": [1.0, 2.0],
            "y": ["p", "q"],
        }
    )
    types = {"img": "image", "snd": "audio", "vid": "video", "ser": "series", "txt": "text"}
    raw = recipe_for_table(tmp_path / "t.csv", frame, "y", name, column_types=types)
    recipe = api.load_recipe(raw)
    assert {s.name: s.modality for s in recipe.inputs} == {
        "img": "image",
        "snd": "audio",
        "vid": "video",
        "ser": "timeseries",
        "txt": "text",
        "tabular": "tabular",
    }
