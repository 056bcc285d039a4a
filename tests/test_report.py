"""The evaluation report and its explainability parts: ROC/AUC against scikit-learn, saliency and attention
capture on real-shaped models, the HTML report for a trained multimodal run and a language-model run, and
TensorBoard logging."""

from __future__ import annotations

import base64
import io
import json
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from PIL import Image
from test_lm import lm_recipe

from polymodal import api
from polymodal.errors import ConfigError
from polymodal.explain.attention import attention_weights, capture_attention, token_importance
from polymodal.explain.saliency import gradient_x_input, modality_shares
from polymodal.metrics.roc import macro_auc, one_vs_rest, roc_auc, roc_curve
from polymodal.model import MultimodalModel
from polymodal.registry import ENCODERS, FUSIONS, HEADS
from polymodal.report import build_report
from polymodal.training.tensorboard import TensorBoardLog

# ---------------------------------------------------------------- ROC / AUC


def test_roc_auc_matches_sklearn_with_ties_binary_multiclass_and_multilabel():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + 0.4 * y, 1)  # rounded: many tied scores
    fpr, tpr, thr = roc_curve(y, s)
    ref_fpr, ref_tpr, ref_thr = metrics.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_allclose(thr[1:], ref_thr[1:])
    assert roc_auc(y, s) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)

    y = rng.integers(0, 4, 400)
    p = rng.dirichlet(np.ones(4), 400)
    p[np.arange(400), y] += 0.2
    p /= p.sum(1, keepdims=True)
    curves = one_vs_rest(y, p, list("abcd"))
    assert macro_auc(curves) == pytest.approx(metrics.roc_auc_score(y, p, multi_class="ovr"), abs=1e-12)
    for k, name in enumerate("abcd"):
        assert curves[name][2] == pytest.approx(metrics.roc_auc_score(y == k, p[:, k]), abs=1e-12)

    binary = one_vs_rest(y % 2, np.stack([1 - p[:, 0], p[:, 0]], 1), ["no", "yes"])
    assert list(binary) == ["yes"]  # one curve for a two-class problem
    multi = (rng.random((200, 3)) < 0.3).astype(int)
    scores = multi * 0.3 + rng.random((200, 3))
    got = one_vs_rest(multi, scores, list("xyz"))
    assert macro_auc(got) == pytest.approx(metrics.roc_auc_score(multi, scores, average="macro"), abs=1e-12)
    assert np.isnan(roc_auc(np.zeros(5), np.arange(5)))  # one class only: undefined, not a number


# ---------------------------------------------------------------- saliency and attention


def tiny_model(fusion: str, tokens: bool = True) -> MultimodalModel:
    """image + audio CNNs (grid / frame tokens for attention fusions) + a text Transformer, 3 classes."""
    encoders = {
        "image": ENCODERS.build("image_cnn", {"width": 4, "out_dim": 16, "tokens": tokens}, in_shape=(1, 28, 28)),
        "audio": ENCODERS.build("audio_cnn", {"width": 4, "out_dim": 16, "tokens": tokens}, in_shape=(1, 16, 40)),
        "text": ENCODERS.build(
            "text_transformer",
            {"width": 16, "heads": 2, "layers": 2, "out_dim": 16},
            in_shape=(12,),
            vocab_size=30,
            pad_id=0,
        ),
    }
    fuse = FUSIONS.build(fusion, {}, in_dims={k: e.out_dim for k, e in encoders.items()}, num_outputs=3)
    head = HEADS.build("classification", {}, in_dim=fuse.out_dim, target={"kind": "class", "classes": list("abc")})
    return MultimodalModel(encoders, fuse, head).eval()


def batch(b: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    text = torch.randint(2, 30, (b, 12), generator=g)
    text[0, 5:] = 0  # padding
    return {
        "image": torch.randn(b, 1, 28, 28, generator=g),
        "audio": torch.randn(b, 1, 16, 40, generator=g),
        "text": text,
    }


def test_saliency_has_each_input_shape_and_ignores_a_missing_input():
    torch.manual_seed(0)
    model, x = tiny_model("concat", tokens=False), batch()
    sal = gradient_x_input(model, x, torch.zeros(4, dtype=torch.long))
    assert {k: tuple(v.shape) for k, v in sal.items()} == {k: tuple(v.shape) for k, v in x.items()}
    assert all(v.abs().sum() > 0 for v in sal.values())
    shares = modality_shares(sal)
    assert sum(shares.values()) == pytest.approx(1.0) and all(v > 0 for v in shares.values())
    # An input marked missing is zeroed after its encoder: none of the score can be attributed to it.
    present = {k: torch.ones(4, dtype=torch.bool) for k in x}
    present["audio"][1] = False
    sal = gradient_x_input(model, x, torch.zeros(4, dtype=torch.long), present)
    assert sal["audio"][1].abs().sum() == 0 and sal["audio"][0].abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())  # the model is left as it was


def test_attention_weights_equal_pytorch_need_weights():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    q, k = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[0, 4:] = True
    ref = mha(q, k, k, key_padding_mask=pad, need_weights=True)[1]  # (B, T_q, T_k), heads averaged
    torch.testing.assert_close(attention_weights(mha, q, k, pad), ref)


@pytest.mark.parametrize("fusion", ["transformer", "cross_attention"])
def test_attention_capture_gives_maps_of_the_right_shape_for_attention_fusions(fusion):
    torch.manual_seed(0)
    model, x = tiny_model(fusion), batch()
    with capture_attention(model) as maps, torch.enable_grad():
        model(x)
    # image_cnn: a 28/4 grid of tokens; audio_cnn: 40/4 frames; the text Transformer attends over its 12 tokens
    # inside the encoder and hands the fusion one pooled vector (one token).
    t_img, t_aud, t_txt = 7 * 7, 40 // 4, 12
    if fusion == "transformer":
        total = 1 + t_img + t_aud + 1  # CLS + every modality's tokens
        assert maps["fusion.layers.0.self_attn"].shape == (4, total, total)
    else:
        assert maps["fusion.blocks.image<-audio.attn"].shape == (4, t_img, t_aud)
        assert maps["fusion.blocks.text<-image.attn"].shape == (4, 1, t_img)
    assert maps["encoders.text.encoder.layers.1.self_attn"].shape == (4, t_txt, t_txt)
    for a in maps.values():
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:2]))  # every row a distribution
    imp = token_importance(model, x)
    sizes = {"image": t_img, "audio": t_aud, "text": 1}
    for (reader, name), w in imp.items():
        assert w.shape == (4, t_txt if reader == "encoder" else sizes[name]), (reader, name)
    assert imp[("encoder", "text")][0, 5:].abs().sum() == 0  # padding gets no attention
    readers = {r for r, _ in imp}
    assert ("fusion" in readers) == (fusion == "transformer")
    assert ({"image", "audio", "text"} <= readers) == (fusion == "cross_attention")


# ---------------------------------------------------------------- the HTML report


class Page(HTMLParser):
    """Collects section ids, images and any external reference of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id") or "")
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag in ("link", "script") and (a.get("href") or a.get("src")):
            self.external.append(a.get("href") or a.get("src") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def check_images(page: Page) -> None:
    assert page.images and not page.external
    for src in page.images:
        assert src.startswith("data:image/png;base64,"), src[:40]
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert img.size[0] > 50 and img.size[1] > 50
        assert np.asarray(img.convert("L")).std() > 1  # not a blank picture


def benchmark_rows(accuracy: float) -> list[dict]:
    """Two benchmark.json rows in the shape `polymodal benchmark` writes (to test the table's rendering)."""
    row = {
        "model": "concat",
        "accuracy": accuracy,
        "macro_f1": accuracy,
        "parameters": 1000,
        "epochs": 1,
        "seconds_per_epoch": 1.0,
        "samples_per_second": 10.0,
        "latency_ms": 1.0,
        "peak_rss_mb": 500.0,
        "missing": {"audio": 0.5, "image": 0.6},
        "noise": {"image": {"0.0": accuracy, "1.0": 0.4}},
        "data": "tiny",
    }
    return [row, {**row, "model": "image only", "missing": {}, "noise": {"image": {"0.0": 0.7, "1.0": 0.3}}}]


def test_report_of_a_multimodal_run_has_every_section(trained_run, tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "benchmark.json").write_text(json.dumps(benchmark_rows(0.9)))
    path = build_report(trained_run, benchmark_dir=bench, out=tmp_path / "report.html")
    page = parse(path)
    assert page.sections == ["curves", "classification", "attention", "contribution", "benchmark"]
    check_images(page)
    text = "".join(page.text)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert "tiny" in text and f"{metrics['test']['accuracy']:.4f}" in text
    assert "no attention layers" in text and "concat ◀ this run" in text
    for name, acc in metrics["test_without"].items():
        assert f"{acc:.4f}" in text, name
    # curves, confusion, ROC, ablation bars, saliency shares, image and audio saliency, robustness plot
    assert len(page.images) == 8


def test_report_cli_and_evaluate_write_report_html(trained_run):
    from typer.testing import CliRunner

    from polymodal.cli import app

    (trained_run / "report.html").unlink(missing_ok=True)
    res = CliRunner().invoke(app, ["evaluate", str(trained_run)])
    assert res.exit_code == 0, res.output
    assert (trained_run / "report.html").is_file()
    res = CliRunner().invoke(app, ["report", str(trained_run), "--split", "nope"])
    assert res.exit_code != 0 and "unknown split" in str(res.exception)


def test_report_of_a_language_model_run_and_tensorboard_logging(tmp_path):
    corpus = tmp_path / "text.txt"
    import argparse
    import logging

    corpus.write_text(((argparse.__doc__ or "") + (logging.__doc__ or "")) * 8, encoding="utf-8")
    recipe = lm_recipe(str(corpus))
    recipe["trainer"]["tensorboard"] = True
    res = api.train(recipe, tmp_path / "lm")
    events = list((res.run_dir / "tb").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(res.run_dir / "tb"))
    acc.Reload()
    assert len(acc.Scalars("train/batch_loss")) == 3 * 30  # every step of 3 epochs × 30 steps
    assert [e.step for e in acc.Scalars("val/loss")] == [30, 60, 90]

    page = parse(build_report(res.run_dir))
    assert page.sections == ["curves", "generation"]
    check_images(page)
    text = "".join(page.text)
    val = json.loads((res.run_dir / "metrics.json").read_text())["val"]
    assert f"{np.exp(val['loss']):.4f}" in text  # perplexity
    assert text.count("Samples") == 1 and "Temperature 0.8" in text


def test_tensorboard_missing_is_a_clear_error_before_training(manifest, tmp_path, monkeypatch):
    from conftest import tiny_recipe

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    with pytest.raises(ConfigError, match="tensorboard package is missing"):
        TensorBoardLog.check()
    recipe = tiny_recipe(manifest)
    recipe["trainer"]["tensorboard"] = True
    with pytest.raises(ConfigError, match="pip install 'polymodal\\[tensorboard\\]'"):
        api.train(recipe, tmp_path / "tb")
    assert not (tmp_path / "tb" / "weights.safetensors").exists()
