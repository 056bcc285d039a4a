"""kind: assistant: the QA builder, the conversation format, splicing inputs into the decoder, greedy answers
with the KV cache, chat (window, bad input) in Python and in the terminal, and starting from an LM run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import one_error_line, run_cli
from PIL import Image

from polymodal import api
from polymodal.data.datasets.avdigits_qa import PARAPHRASES, AVDigitsQA, held_out_combination
from polymodal.errors import CheckpointError, DataError
from polymodal.gpt.tokenizer import CharTokenizer
from polymodal.kinds.assistant.tokens import ChatFormat, Turn
from polymodal.kinds.base import kind_named


@pytest.fixture(scope="module")
def example(assistant_run):
    return assistant_run


@pytest.fixture(scope="module")
def qa_frame(example):
    return AVDigitsQA(str(example[1] / "fsdd"), seed=0, pairs_per_recording=2).load().frame


def test_qa_builder_is_seeded_balanced_and_holds_out_phrasings_and_combinations(example, qa_frame):
    again = AVDigitsQA(str(example[1] / "fsdd"), seed=0, pairs_per_recording=2).load().frame
    cols = ["question", "answer", "qtype", "example", "split", "image_label", "audio_label"]
    assert again[cols].equals(qa_frame[cols])
    assert (
        not AVDigitsQA(str(example[1] / "fsdd"), seed=1, pairs_per_recording=2)
        .load()
        .frame[cols]
        .equals(qa_frame[cols])
    )
    fitting = qa_frame[qa_frame["split"] != "test"]
    same = fitting.drop_duplicates("example").eval("image_label == audio_label").mean()
    assert 0.35 < same < 0.65
    held = {p[-1] for p in PARAPHRASES.values()}
    assert not fitting["question"].isin(held).any()
    test = qa_frame[qa_frame["split"] == "test"]
    assert test["question"].isin(held).sum() == test["unseen_paraphrase"].sum() > 0
    combos = [
        held_out_combination(q, w, s)
        for q, w, s in zip(fitting.qtype, fitting.image_label, fitting.audio_label, strict=True)
    ]
    assert not any(combos)
    assert (test["split"] == "test").all() and set(test["audio"].map(lambda p: int(p.rsplit("_", 1)[1][:-4]))) == {0}
    row = qa_frame.iloc[0]
    assert row["answer"] == {"written": str(row.image_label), "spoken": str(row.audio_label)}.get(row.qtype, row.answer)


def fmt() -> ChatFormat:
    return ChatFormat(CharTokenizer().fit("abcdefghijklmnopqrstuvwxyz ?0123456789"), ["image", "audio"], 3)


def test_conversation_scores_answers_only_and_places_inputs_where_attached():
    f = fmt()
    turns = [Turn("what is it?", ("audio",), "seven"), Turn("sum?", (), "12")]
    x, y = f.example(turns, 40)
    ids, scored = f.encode(turns)
    assert ids[1:4] == [f.placeholder("audio")] * 3 and f.placeholder("image") not in ids
    answers = [t for t in y.tolist() if t != -1]
    assert f.decode(answers) == "seven12" and answers.count(f.end) == 2
    assert x[len(ids) - 1 :].eq(f.end).all()  # padding
    with pytest.raises(DataError, match="does not fit"):
        f.example(turns, 10)


@pytest.mark.parametrize("text", ["<image> what digit?", "what is <foo>?"])
def test_typed_special_tokens_are_refused(text):
    with pytest.raises(DataError, match="special token"):
        fmt().text(text)


def test_inputs_are_spliced_at_their_placeholders(example):
    run = api.load(example[0], "chat")
    model = run.model.eval()
    f = run.fmt
    ids, _ = f.encode([Turn("What digit is written?", ("image",))])
    tokens = torch.tensor([ids])
    img = torch.rand(1, *run.meta["in_shapes"]["image"])
    emb = model.embed(tokens, {"image": img}, None)
    where = tokens[0] == f.placeholder("image")
    z = model.proj["image"](model.encoders["image"](img)).view(-1, f.k, model.gpt.cfg.n_embd)[0]
    assert torch.allclose(emb[0, where], z, atol=1e-6)
    assert torch.equal(emb[0, ~where], model.gpt.wte(tokens)[0, ~where])
    gone = model.embed(tokens, {"image": img}, {"image": torch.tensor([False])})
    assert gone[0, where].abs().sum() == 0


def test_teacher_forced_exact_match_equals_greedy_decoding_with_and_without_cache(example):
    from polymodal.data.examples import collate

    run = api.load(example[0], "chat")
    model, f = run.model.eval(), run.fmt
    raw = kind_named("assistant").example(example[1] / "again")
    from polymodal.kinds.assistant.data import build_qa_data
    from polymodal.kinds.base import read_recipe

    data = build_qa_data(read_recipe(raw), f.base)
    batch = [data.test[i] for i in range(12)]
    inputs, present, y = collate(batch)
    with torch.no_grad():
        tf = model.exact(model.reduce(model(inputs, present)).numpy(), y.numpy())
    for i, (x, _, target) in enumerate(batch):
        prompt_len = int((target != -1).nonzero()[0]) + 1
        tokens = x["tokens"][:prompt_len].unsqueeze(0)
        media = {k: v.unsqueeze(0) for k, v in x.items() if k != "tokens"}
        cached = [int(s[0]) for s in model.stream(tokens, media, None, 8)]
        plain, seq = [], tokens
        with torch.no_grad():
            for _ in range(len(cached)):
                nxt = int(model.gpt(seq, embeds=model.embed(seq, media, None))[0][0, -1].argmax())
                plain.append(nxt)
                seq = torch.cat([seq, torch.tensor([[nxt]])], 1)
                if nxt == f.end:
                    break
        assert cached[: len(plain)] == plain
        answer = [t for t in target.tolist() if t != -1]
        assert (cached[: len(answer)] == answer) == bool(tf[i])


def test_chat_keeps_history_in_the_window_and_refuses_bad_input_without_losing_it(example):
    run = api.load(example[0], "chat")
    chat = run.chat()
    wav = next((example[1] / "fsdd" / "recordings").glob("4_*"))
    png = example[1] / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(png)
    chat.attach("audio", str(wav))
    for _ in range(6):  # more turns than the 96-token block holds: the oldest are dropped, the audio stays
        answer = "".join(chat.ask("What digit is spoken?"))
        assert isinstance(answer, str)
    ids, turns = chat.prompt("What digit is spoken?")
    assert len(ids) < run.block_size and chat.dropped > 0 and turns[0].attached == ("audio",)
    kept = list(chat.turns)
    for bad, match in [
        ("", "empty"),
        ("   ", "empty"),
        ("What <image> is it?", "special token"),
        ("what digit is spoken " * 30, "context holds"),
    ]:
        with pytest.raises(DataError, match=match):
            chat.ask(bad)
        assert chat.turns == kept
    with pytest.raises(DataError, match="audio"):
        chat.attach("audio", str(png))  # an image where the audio goes
    with pytest.raises(DataError, match="image"):
        chat.attach("image", str(wav))
    with pytest.raises(DataError, match="no input 'video'"):
        chat.attach("video", str(wav))
    assert chat.turns == kept and "".join(chat.ask("Do they match?")) is not None
    assert chat.attach("audio", str(wav)) and chat.turns == []  # a new audio starts the turns afresh


def test_chat_command_streams_answers_and_goes_on_after_errors(example, capsys, monkeypatch):
    import io

    run, folder = example
    wav = next((folder / "fsdd" / "recordings").glob("2_*"))
    code, out, err = run_cli(capsys, "chat", run, "--audio", wav, "--message", "What digit is spoken?")
    assert code == 0 and out.strip() and not err
    script = (
        f"/audio {wav}\nWhat digit is spoken?\n<audio> hi\n/image {wav}\n/video x\n\n/reset\nDo they match?\n/quit\n"
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    code, out, err = run_cli(capsys, "chat", run)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 0 and len(errors) == 4, err
    assert "special token" in errors[0] and "image" in errors[1] and "unknown command /video" in errors[2]
    assert "empty" in errors[3] and "(conversation reset)" in err
    code, _, err = run_cli(capsys, "chat", run, "--message", "<audio>")
    assert "special token" in one_error_line(code, err, status=3)


def test_start_from_a_language_model_run(example, tmp_path):
    """init_from: the LM's tokenizer is reused and its weights copied (token and position rows it has)."""
    from polymodal.kinds.lm.run import LMRun

    frame = AVDigitsQA(str(example[1] / "fsdd"), seed=0, pairs_per_recording=1).load().frame
    corpus = tmp_path / "qa.txt"
    corpus.write_text("\n".join(frame["question"] + " " + frame["answer"]) + "\n", encoding="utf-8")
    lm = {
        "name": "lm", "kind": "lm", "data": {"corpus": str(corpus), "steps_per_epoch": 4, "eval_batches": 1},
        "model": {"block_size": 32, "n_layer": 1, "n_head": 2, "n_embd": 16},
        "trainer": {"epochs": 1, "batch_size": 8, "checkpoint_every": 0, "threads": 1},
    }  # fmt: skip
    api.train(lm, tmp_path / "lm")
    raw = kind_named("assistant").example(example[1] / "lm-init")
    raw["init_from"] = str(tmp_path / "lm")
    raw["model"]["block_size"] = 192  # characters: conversations are longer than in BPE tokens
    raw["trainer"]["lr"] = 1e-9  # the copied weights must survive one epoch essentially unchanged
    api.train(raw, tmp_path / "qa")
    base, qa = LMRun(tmp_path / "lm"), api.load(tmp_path / "qa", "chat")
    assert qa.fmt.base.chars == base.tokenizer.chars
    n = base.tokenizer.vocab_size
    w = qa.model.gpt.wte.weight
    assert w.shape[0] == n + len(qa.fmt.specials)
    assert torch.allclose(w[:n], base.model.wte.weight, atol=1e-4)
    assert torch.allclose(qa.model.gpt.wpe.weight[:32], base.model.wpe.weight, atol=1e-4)


def test_clipart_and_basicmotions_qa_builders(tmp_path):
    """Real-format copies: a tiny clipart folder (captions.csv + PNGs) and, when present, UEA BasicMotions."""
    from polymodal.data.datasets.basicmotions_qa import BasicMotionsQA
    from polymodal.data.datasets.clipart_qa import PARAPHRASES, ClipartQA
    from polymodal.data.datasets.uea import uea_dir

    (tmp_path / "images").mkdir()
    lines = ["image,title,keywords,description,category"]
    for i in range(40):
        category = ["animals", "signs_and_symbols"][i % 2]
        pixels = np.full((8, 8, 3), i * 6, np.uint8)
        pixels[i % 8, :] = 255 - i * 6  # a line on a flat background: not a blank image, which clipart drops
        Image.fromarray(pixels).save(tmp_path / "images" / f"{i}.png")
        lines.append(f"images/{i}.png,Red Fox {i},fox,a fox,{category}")
    (tmp_path / "captions.csv").write_text("\n".join(lines) + "\n")
    frame = ClipartQA(str(tmp_path), 1, 0.1, 0.2, 0).load().frame
    assert set(frame["qtype"]) == {"category", "title"}
    assert set(frame.loc[frame.qtype == "category", "answer"]) == {"animals", "signs and symbols"}
    assert set(frame.loc[frame.qtype == "title", "answer"]) == {"red"}
    assert frame["image"].map(lambda p: p.startswith(str(tmp_path))).all()
    held = {p[-1] for p in PARAPHRASES.values()}
    assert not frame[frame["split"] != "test"]["question"].isin(held).any()
    assert frame[frame["split"] == "test"]["question"].isin(held).any()
    if uea_dir("BasicMotions", None) is None:
        pytest.skip("no local UEA BasicMotions copy")
    bm = BasicMotionsQA(None, 0.2, 0).load().frame
    assert (bm.groupby("split")["example"].nunique().to_dict()) == {"test": 40, "train": 32, "val": 8}
    assert set(bm.loc[bm.qtype == "moving", "answer"]) == {"yes", "no"}
    assert (bm.loc[bm.answer == "no", "accel_label"].str.lower() == "standing").all()


def test_encoders_from_a_supervised_run_start_and_stay_frozen(example, trained_run, tmp_path):
    """encoders_from copies a supervised run's encoders and fitted transforms; freeze_encoders keeps them."""
    from conftest import tiny_recipe
    from safetensors.torch import load_file

    raw = kind_named("assistant").example(example[1] / "enc")
    raw["inputs"] = tiny_recipe(trained_run)["inputs"]  # the supervised run's settings
    raw.update(encoders_from=str(trained_run), freeze_encoders=True)
    api.train(raw, tmp_path / "qa")
    theirs, ours = (
        load_file(str(trained_run / "weights.safetensors")),
        load_file(str(tmp_path / "qa" / "weights.safetensors")),
    )
    shared = [k for k in theirs if k.startswith("encoders.")]
    assert shared and all(torch.equal(theirs[k], ours[k]) for k in shared)
    assert json.loads((tmp_path / "qa" / "transforms.json").read_text()) == {
        k: v for k, v in json.loads((trained_run / "transforms.json").read_text()).items() if k in ("image", "audio")
    }
    raw["inputs"][1]["encoder"]["width"] = 8
    with pytest.raises(CheckpointError, match="does not fit"):
        api.train(raw, tmp_path / "bad")
    with pytest.raises(CheckpointError, match="supervised run"):
        api.train({**raw, "encoders_from": str(example[0])}, tmp_path / "bad2")
