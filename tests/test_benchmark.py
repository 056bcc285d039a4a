"""``polymodal benchmark``: fusion lists, variants, and a real (small) run writing every output."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import tiny_recipe

from polymodal import benchmark as bench
from polymodal.config import parse_recipe
from polymodal.data.modalities.audio import AudioTransform, add_noise
from polymodal.data.modalities.text import typos
from polymodal.errors import ConfigError
from polymodal.registry import FUSIONS, MODALITIES


def test_all_means_every_registered_fusion_plus_variants():
    specs = bench.fusion_specs("all")
    assert set(FUSIONS.names()) <= set(specs) and "late:combine=vote" in specs
    assert bench.parse_spec("transformer:bottleneck=4:dim=32") == {"name": "transformer", "bottleneck": 4, "dim": 32}
    with pytest.raises(ConfigError, match="did you mean 'tensor'"):
        bench.fusion_specs("concat,tensr")
    with pytest.raises(ConfigError, match="name:key=value"):
        bench.parse_spec("late:vote")


def test_variants_put_each_input_alone_first(manifest):
    recipe = parse_recipe(tiny_recipe(manifest))
    rows = bench.variants(recipe, ["concat", "late:combine=vote"], unimodal=True)
    assert [label for label, _ in rows] == ["image only", "audio only", "concat", "late:combine=vote"]
    assert [i["name"] for i in rows[0][1]["inputs"]] == ["image"]
    assert rows[3][1]["fusion"] == {"name": "late", "combine": "vote"}
    parse_recipe(rows[3][1])  # each variant is a valid recipe


def test_benchmark_writes_tables_plot_and_resumes(manifest, tmp_path):
    recipe = parse_recipe(tiny_recipe(manifest, epochs=2))
    out = tmp_path / "bench"
    summary = bench.benchmark(recipe, "concat,late:combine=vote", seeds=2, out_dir=out, unimodal=False, command="cmd")
    assert [s["model"] for s in summary] == ["concat", "late:combine=vote"]
    runs = json.loads((out / "benchmark.json").read_text())
    assert [(r["model"], r["seed"]) for r in runs] == [
        ("concat", 0),
        ("concat", 1),
        ("late:combine=vote", 0),
        ("late:combine=vote", 1),
    ]
    for r in runs:
        assert 0 <= r["accuracy"] <= 1 and r["parameters"] > 0 and r["samples_per_second"] > 0
        assert r["latency_ms"] > 0 and r["peak_rss_mb"] > 50 and set(r["missing"]) == {"image", "audio"}
        assert list(r["noise"]["image"]) == ["0.0", "0.25", "0.5", "1.0"]
        assert r["noise"]["image"]["0.0"] == pytest.approx(r["accuracy"])  # severity 0 is the clean test set
    first = summary[0]
    accs = [r["accuracy"] for r in runs[:2]]
    assert first["accuracy"] == pytest.approx(np.mean(accs)) and first["accuracy_std"] == pytest.approx(
        np.std(accs, ddof=1)
    )
    with open(out / "benchmark.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["concat", "late:combine=vote"]
    md = (out / "benchmark.md").read_text()
    assert md.startswith("`cmd`") and "| concat |" in md and "acc without audio" in md and "audio noise" in md
    assert (out / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    stamp = (out / "benchmark.json").stat().st_mtime_ns
    bench.benchmark(recipe, "concat", seeds=2, out_dir=out, unimodal=False)  # all done: nothing retrained
    assert (out / "benchmark.json").stat().st_mtime_ns == stamp


def test_corruptions_grow_with_severity():
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    image = MODALITIES.build("image", {"size": 28, "channels": 1})
    img = np.full((28, 28), 128, np.uint8)
    clean = image(img)
    assert torch.equal(image.corrupt(img, clean, 0.0, rng()), clean)
    spread = [float((image.corrupt(img, clean, lv, rng()) - clean).abs().mean()) for lv in (0.1, 0.5)]
    assert 0 < spread[0] < spread[1]

    t = np.arange(8000) / 8000
    wav = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    noisy = add_noise(wav, 10.0, rng())
    snr = 10 * np.log10(np.mean(wav**2) / np.mean((noisy - wav) ** 2))
    assert snr == pytest.approx(10.0, abs=0.3)
    audio: AudioTransform = MODALITIES.build("audio", {"n_mels": 16, "max_frames": 50})
    x = audio(wav)
    d = [float((audio.corrupt(wav, x, lv, rng()) - x).abs().mean()) for lv in (0.25, 1.0)]
    assert 0 < d[0] < d[1]

    assert typos("hello world", 0.0, rng()) == "hello world"
    assert typos("hello world", 0.5, rng()) != "hello world"

    series = MODALITIES.build("timeseries", {"max_length": 20})
    series.fit([np.ones((10, 2))])
    s = series(np.ones((10, 2)))
    dropped = series.corrupt(None, s, 0.5, rng())
    assert int(dropped[:, -1].sum()) == 5 and int(s[:, -1].sum()) == 10


def test_outputs_with_unimodal_rows_and_underscored_input_names(tmp_path):
    """Unimodal rows lack the other input's columns; input names may contain underscores."""

    def run(model: str, seed: int, inputs: list[str]) -> dict:
        return {
            "model": model,
            "seed": seed,
            "accuracy": 0.5 + 0.1 * seed,
            "macro_f1": 0.5,
            "parameters": 10,
            "seconds_per_epoch": 1.0,
            "samples_per_second": 100.0,
            "latency_ms": 1.0,
            "peak_rss_mb": 100.0,
            "missing": {n: 0.3 for n in inputs} if len(inputs) > 1 else {},
            "noise": {n: {"0.0": 0.5, "0.5": 0.4} for n in inputs},
        }

    rows = [run("left_arm only", s, ["left_arm"]) for s in (0, 1)] + [
        run("concat", s, ["left_arm", "right_arm"]) for s in (0, 1)
    ]
    summary = bench.summarise(rows)
    bench.write_outputs(summary, tmp_path, "cmd", "data")
    with open(tmp_path / "benchmark.csv") as f:
        header = f.readline().strip().split(",")
    assert "noise_right_arm_0.5" in header and "without_left_arm" in header
    md = (tmp_path / "benchmark.md").read_text()
    assert "right_arm noise" in md and "| left_arm only |" in md and "0.5500 ± 0.0707" in md
    assert bench.noise_inputs(summary) == ["left_arm", "right_arm"]
