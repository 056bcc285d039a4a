"""Language-model runs: corpus -> tokenizer -> GPT trained by the project's Trainer -> generate."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from polymodal import api
from polymodal.cli import app
from polymodal.errors import ConfigError, DataError
from polymodal.gpt.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer
from polymodal.kinds.lm.run import LMRun


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """Real English prose: the documentation of Python's standard library modules."""
    import argparse
    import collections
    import email
    import json as json_mod
    import logging
    import unittest

    modules = (argparse, collections, email, json_mod, logging, unittest)
    text = "\n\n".join(m.__doc__ or "" for m in modules)
    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    path.write_text(text * 3, encoding="utf-8")
    return str(path)


def lm_recipe(corpus: str, **over: object) -> dict:
    return {
        "name": "tiny-lm",
        "kind": "lm",
        "data": {"corpus": corpus, "steps_per_epoch": 30, "eval_batches": 4, **over},
        "model": {"block_size": 32, "n_layer": 2, "n_head": 2, "n_embd": 32},
        "trainer": {
            "epochs": 3,
            "batch_size": 16,
            "lr": 0.003,
            "warmup_steps": 10,
            "monitor": "loss",
            "checkpoint_every": 0,
            "threads": 1,
        },
    }


def test_tokenizers_round_trip_and_save():
    text = "Hello, world!\nÜber naïve café."
    c = CharTokenizer().fit(text)
    assert c.decode(c.encode(text)) == text and load_tokenizer(c.state_dict()).encode("Hello") == c.encode("Hello")
    with pytest.raises(DataError, match="not in this model's vocabulary"):
        c.encode("xyz#")
    b = BPETokenizer(300).fit(text * 20)
    assert b.decode(b.encode("naïve café, unseen ☃")) == "naïve café, unseen ☃"  # byte-level: nothing unknown
    assert load_tokenizer(b.state_dict()).encode(text) == b.encode(text)


def test_pretrain_then_generate(corpus, tmp_path):
    res = api.train(lm_recipe(corpus), tmp_path / "lm")
    epochs = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    vocab = json.loads((res.run_dir / "meta.json").read_text())["model"]["vocab_size"]
    assert epochs[0]["val_loss"] < math.log(vocab) and epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    lm = LMRun(res.run_dir)
    model, tok = lm.model, lm.tokenizer
    ids = torch.tensor([tok.encode("The ")])
    # weights tied in the model are saved once and re-tied on load
    assert model.lm_head.weight is model.wte.weight
    assert torch.allclose(model(ids)[0], res.model.gpt.eval()(ids)[0], atol=1e-5)
    out = CliRunner().invoke(
        app, ["generate", str(res.run_dir), "--prompt", "The ", "--max-tokens", "40", "--seed", "1"]
    )
    assert out.exit_code == 0, out.output
    assert out.output.startswith("The ") and len(out.output) > 30
    again = CliRunner().invoke(
        app, ["generate", str(res.run_dir), "--prompt", "The ", "--max-tokens", "40", "--seed", "1", "--no-cache"]
    )
    assert again.output == out.output  # the same seed samples the same text with or without the cache
    beam = CliRunner().invoke(
        app, ["generate", str(res.run_dir), "--prompt", "The ", "--beams", "3", "--max-tokens", "10"]
    )
    assert beam.exit_code == 0 and beam.output.startswith("The ")

    tuned = lm_recipe(corpus, unknown="drop")
    tuned["init_from"] = str(res.run_dir)
    tuned["trainer"]["epochs"] = 1
    ft = api.train(tuned, tmp_path / "ft")
    meta = json.loads((ft.run_dir / "meta.json").read_text())
    assert meta["init_from"] == str(res.run_dir) and meta["model"]["vocab_size"] == vocab
    first = json.loads((ft.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert first["val_loss"] <= epochs[-1]["val_loss"] + 0.1  # starts from the pretrained weights, not from scratch


def test_lm_recipe_errors(corpus, tmp_path):
    bad = lm_recipe(corpus)
    bad["model"]["vocab_size"] = 10
    with pytest.raises(ConfigError, match="vocab_size comes from the tokenizer"):
        api.train(bad, tmp_path / "a")
    with pytest.raises(DataError, match="neither a built-in"):
        api.train(lm_recipe(str(tmp_path / "nope.txt")), tmp_path / "b")


def test_rotary_muon_run_trains_and_generates_past_its_block_with_the_rolling_cache(corpus, tmp_path):
    raw = lm_recipe(corpus)
    raw["model"].update(positions="rotary", qk_norm=True, logit_softcap=15.0)
    raw["trainer"].update(optimizer="muon", muon_ns_steps=3, lr=0.01, epochs=2)
    res = api.train(raw, tmp_path / "fast")
    rows = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] < math.log(LMRun(res.run_dir).tokenizer.vocab_size)
    args = ["generate", str(res.run_dir), "--prompt", "The ", "--max-tokens", "80", "--temperature", "0"]
    cached, uncached = CliRunner().invoke(app, args), CliRunner().invoke(app, [*args, "--no-cache"])
    assert cached.exit_code == 0, cached.output
    assert cached.output == uncached.output and len(cached.output) > 80  # 84 characters: past block_size 32
