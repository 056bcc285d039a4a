"""Export and compression: ONNX parity with onnxruntime on real examples, int8 and pruning measured, bad usage.

The ONNX graphs are checked with onnxruntime alone, fed from the sidecar JSON as a user without polymodal
would, against the PyTorch model's logits on the run's own test examples (real MNIST digits).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_recipe

from polymodal import api
from polymodal.data.dataset import build_data
from polymodal.data.examples import collate
from polymodal.errors import CheckpointError, ExportError
from polymodal.export.prune import prunable, prune_global, sparsity

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

WORDS = ["zero", "one", "two", "three", "four"]
FILLER = ["a", "the", "digit", "written", "by", "hand", "scan", "number"]


@pytest.fixture(scope="module")
def text_run(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Image + text (the digit's word among filler words) through the attention-based transformer fusion."""
    frame = pd.read_csv(manifest)
    rng = np.random.default_rng(0)
    frame["words"] = [" ".join([*rng.choice(FILLER, 3), WORDS[int(label[1:])]]) for label in frame["label"]]
    table = manifest.with_name("manifest_text.csv")
    frame.drop(columns=["audio"]).to_csv(table, index=False)
    recipe = tiny_recipe(table, epochs=2)
    recipe["inputs"] = [
        recipe["inputs"][0],
        {
            "name": "words",
            "modality": "text",
            "preprocessing": {"tokenizer": "wordpiece", "vocab_size": 60, "max_length": 8},
            "encoder": {"name": "text_bag", "embed_dim": 8, "out_dim": 16},
        },
    ]
    recipe["fusion"] = {"name": "transformer", "dim": 16, "heads": 2, "layers": 1}
    run = tmp_path_factory.mktemp("export") / "text"
    api.train(recipe, run)
    return run


def feed(sidecar: dict, batch: tuple) -> dict[str, np.ndarray]:
    """onnxruntime inputs from a collated batch, named and typed as the sidecar says."""
    inputs, present, _ = batch
    names = [i["name"] for i in sidecar["inputs"] if i["name"] != "present"]
    out = {k: inputs[k].numpy().astype(next(i["dtype"] for i in sidecar["inputs"] if i["name"] == k)) for k in names}
    if any(i["name"] == "present" for i in sidecar["inputs"]):
        b = len(next(iter(out.values())))
        out["present"] = np.stack(
            [present[k].numpy() if present is not None else np.ones(b, bool) for k in names], axis=1
        )
    return out


def test_onnx_matches_pytorch_on_real_examples_transformer_fusion_with_text(text_run, tmp_path):
    rep = api.export(text_run, "onnx", tmp_path / "m.onnx", repeats=3)
    assert rep.parity["ok"] and rep.parity["max_abs_diff"] <= 1e-4 and rep.parity["examples"] > 0
    sidecar = json.loads((tmp_path / "m.json").read_text())
    assert [i["name"] for i in sidecar["inputs"]] == ["image", "words", "present"]
    assert sidecar["inputs"][1]["dtype"] == "int64" and sidecar["inputs"][0]["shape"][0] == "batch"
    predictor = api.load(text_run)
    assert sidecar["classes"] == predictor.classes == ["d0", "d1", "d2"]

    # A user's view: onnxruntime only, batch sizes other than the traced one, and one input missing.
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    data = build_data(predictor.recipe, transform_states=predictor.transform_states, target_info=predictor.target)
    test = data.splits["test"]
    worst = 0.0
    for rows in ([0], list(range(7)), list(range(len(test)))):
        batch = collate([test[i] for i in rows])
        inputs, _, _ = batch
        flags = {k: torch.ones(len(rows), dtype=torch.bool) for k in inputs}
        flags["words"][0] = False  # the first example has no text: the graph must honour the mask
        got = session.run(["logits"], feed(sidecar, (inputs, flags, None)))[0]
        with torch.no_grad():
            want = predictor.model(inputs, flags).logits.numpy()
        assert got.shape == want.shape == (len(rows), 3)
        worst = max(worst, float(np.abs(got - want).max()))
    assert worst <= 1e-4


def test_quantized_and_pruned_exports_run_and_report_accuracy(trained_run, tmp_path):
    rep = api.export(trained_run, "onnx", tmp_path, quantize="int8", prune=0.5, repeats=3)
    assert rep.out == tmp_path / "model-pruned50-int8.onnx" and rep.out.is_file()
    names = [r["variant"] for r in rep.rows]
    assert names == [
        "pytorch fp32",
        "pytorch pruned 50%",
        "pytorch pruned 50% + int8",
        "onnx pruned 50%",
        "onnx pruned 50% + int8",
    ]
    saved = json.loads((trained_run / "metrics.json").read_text())["test"]["accuracy"]
    assert rep.rows[0]["accuracy"] == pytest.approx(saved)  # same split, same weights as training reported
    for r in rep.rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["latency_ms"] > 0 and r["size_bytes"] > 0
    assert rep.rows[1]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert rep.parity["ok"]  # the pruned fp32 graph against the pruned PyTorch model
    assert rep.rows[-1]["size_bytes"] < rep.rows[-2]["size_bytes"]  # int8 weights take less room
    report = json.loads(rep.report_path.read_text())
    assert report["split"] == "test" and len(report["rows"]) == 5
    # the int8 graph runs on its own, at another batch size
    session = ort.InferenceSession(str(rep.out), providers=["CPUExecutionProvider"])
    sidecar = json.loads(rep.sidecar.read_text())
    assert sidecar["compression"] == {"prune": 0.5, "quantize": "int8"}
    x = {i["name"]: np.zeros([3, *i["shape"][1:]], dtype=i["dtype"]) for i in sidecar["inputs"]}
    assert session.run(None, x)[0].shape == (3, 3)


@pytest.mark.parametrize("amount", [0.3, 0.9])
def test_pruning_zeroes_the_requested_fraction_of_weights(trained_run, amount):
    model = api.load(trained_run).model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = prune_global(model, amount)
    zeros, total = sparsity(pruned)
    assert abs(zeros / total - amount) <= 1 / total + 1e-9
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original is untouched
    state = pruned.state_dict()
    assert set(state) == set(before)  # permanent: no weight_orig / weight_mask left
    for module, name in prunable(pruned):  # survivors keep their values; zeros are the smallest magnitudes
        assert not hasattr(module, f"{name}_mask")
    kept = torch.cat([p.flatten() for m, n in prunable(pruned) for p in [getattr(m, n)]])
    original = torch.cat([p.flatten() for m, n in prunable(model) for p in [getattr(m, n)]])
    assert original[kept == 0].abs().max() <= original[kept != 0].abs().min()
    assert torch.equal(state["head.net.1.bias"], before["head.net.1.bias"])  # biases are not pruned


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"format": "tflite"}, ExportError, "unknown export format 'tflite'"),
        ({"quantize": "int4"}, ExportError, "unknown quantisation 'int4'"),
        ({"prune": 1.0}, ExportError, "strictly between 0 and 1"),
        ({"prune": 0.0}, ExportError, "strictly between 0 and 1"),
        ({"prune": -0.2}, ExportError, "strictly between 0 and 1"),
    ],
)
def test_bad_options_are_one_line_errors(trained_run, kwargs, error, words):
    with pytest.raises(error, match=words) as exc:
        api.export(trained_run, **kwargs)
    assert "\n" not in str(exc.value)
    assert not (trained_run / "export").exists()  # nothing written


def test_missing_run_and_language_model_runs_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        api.export(tmp_path / "nope")
    lm = tmp_path / "lm"
    lm.mkdir()
    (lm / "meta.json").write_text(json.dumps({"kind": "lm"}))
    with pytest.raises(ExportError, match="language model.*decode loop"):
        api.export(lm)


def cli(*args: str) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items() if k.startswith(("POLYMODAL", "PYTHON", "VIRTUAL"))}
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": "/tmp", **keep}
    return subprocess.run([sys.executable, "-m", "polymodal", *args], capture_output=True, text=True, env=env)


def test_cli_bad_usage_exits_2_with_one_line(trained_run):
    res = cli("export", str(trained_run), "--prune", "1.5")
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith("error:") and "strictly between 0 and 1" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("fusion, inputs", [("cross_attention", 2), ("concat", 1)])
def test_onnx_parity_cross_attention_and_single_input(manifest, tmp_path, fusion, inputs):
    recipe = tiny_recipe(manifest, epochs=1)
    recipe["inputs"] = recipe["inputs"][:inputs]
    recipe["fusion"] = {"name": fusion, "dim": 16, "heads": 2} if fusion == "cross_attention" else fusion
    run = tmp_path / "run"
    api.train(recipe, run)
    rep = api.export(run, out=tmp_path / "m.onnx", repeats=3)
    assert rep.parity["ok"] and rep.parity["max_abs_diff"] <= 1e-4
    sidecar = json.loads(rep.sidecar.read_text())
    assert ("present" in [i["name"] for i in sidecar["inputs"]]) == (inputs > 1)  # one input: no mask
    blind = api.export(run, out=tmp_path / "blind.onnx", evaluate=False, repeats=3)  # no data needed
    assert blind.split is None and blind.parity["ok"] and "accuracy" not in blind.rows[0]
