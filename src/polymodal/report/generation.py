"""Generated text: caption-head runs (exact match, BLEU-4, ROUGE-L, CIDEr and sample captions against their
references) and GPT language-model runs (validation loss and perplexity, and sampled continuations)."""

from __future__ import annotations

import math

import numpy as np
import torch

from polymodal.errors import PolymodalError
from polymodal.report.overlay import thumbnail
from polymodal.report.page import Markup, Section, esc, note, table
from polymodal.report.run import RunView

SAMPLES = 12


def caption(view: RunView) -> Section:
    s = view.scores
    rows = [["exact match", s.get("accuracy")]]
    rows += [
        [label, s[key]]
        for key, label in (("bleu4", "BLEU-4"), ("rouge_l", "ROUGE-L"), ("cider", "CIDEr-D"))
        if key in s
    ]
    body = note(
        "BLEU-4 is corpus-level (sacrebleu); ROUGE-L and CIDEr-D are the COCO caption scorers. All on 0–1 "
        "scales except CIDEr-D (0–10)."
    )
    body += table(["metric", f"{view.split}"], rows)
    if view.outputs is None or view.targets is None:
        return Section("generation", "Generated captions", body + note(f"No samples: {view.data_error}"))
    head = view.model.head
    n = len(view.targets)
    picks = np.linspace(0, n - 1, min(SAMPLES, n)).round().astype(int)
    images = [k for k, m in view.predictor.inputs.items() if m == "image"]
    header = ["#", *images, "reference", "generated", ""]
    table_rows = []
    for i in picks:
        ref, hyp = head.text(view.targets[i]), head.text(view.outputs[i])
        inputs = view.dataset[int(i)][0]
        thumbs = [Markup(thumbnail(inputs[k])) for k in images]
        mark = Markup('<span class="ok">✓</span>' if ref == hyp else '<span class="bad">✗</span>')
        table_rows.append([int(i), *thumbs, ref, hyp, mark])
    text_cols = (len(images) + 1, len(images) + 2)
    body += f"<h3>Samples ({len(picks)} evenly spaced {view.split} examples, greedy decoding)</h3>"
    body += table(header, table_rows, text_columns=text_cols)
    return Section("generation", "Generated captions", body)


def lm_samples(view: RunView, count: int = 3, tokens: int = 240) -> tuple[list[tuple[str, str]], str]:
    """``count`` sampled continuations (temperature 0.8, top-k 40, seed 0) of prompts cut from the
    validation text; prompts fall back to a newline when the corpus is not available."""
    from polymodal.gpt.generate import generate
    from polymodal.kinds.lm.data import read_corpus
    from polymodal.kinds.lm.run import LMRun

    lm = LMRun(view.run_dir)
    model, tokenizer = lm.model, lm.tokenizer
    data = view.recipe.get("data") or {}
    try:
        text, _ = read_corpus(data.get("corpus", "tinyshakespeare"))
        val = text[int(len(text) * (1 - float(data.get("val_fraction", 0.1)))) :]
        starts = [val.find("\n", int(len(val) * f)) + 1 for f in np.linspace(0.1, 0.8, count)]
        prompts = [val[s : s + 40].rsplit(" ", 1)[0] or val[s : s + 40] for s in starts]
        where = "prompts: the first words of lines from the validation text"
    except PolymodalError as exc:
        prompts, where = ["\n"] * count, f"prompt: a newline (the corpus is not available: {exc})"
    out = []
    for i, prompt in enumerate(prompts):
        try:
            ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long)
        except PolymodalError:  # a character the vocabulary lacks
            prompt, ids = "\n", torch.tensor([tokenizer.encode("\n")], dtype=torch.long)
        gen = torch.Generator().manual_seed(i)
        new = generate(model, ids, tokens, temperature=0.8, top_k=40, generator=gen)
        out.append((prompt, tokenizer.decode(new)))
    return out, where


def language_model(view: RunView) -> Section:
    s = view.scores
    loss = s.get("loss")
    rows = [
        ["validation loss (nats/token)", loss],
        ["perplexity", math.exp(loss) if loss is not None else None],
        ["bits per token", loss / math.log(2) if loss is not None else None],
        ["next-token accuracy", s.get("accuracy")],
        ["validation tokens scored", s.get("n")],
    ]
    body = note("Validation: the held-out end of the corpus, on the run's fixed evaluation windows, best weights.")
    body += table(["metric", "value"], rows)
    samples, where = lm_samples(view)
    body += f"<h3>Samples</h3>{note('Temperature 0.8, top-k 40, KV cache; ' + where + '.')}"
    for prompt, text in samples:
        body += f'<div class="sample"><b>{esc(prompt)}</b>{esc(text)}</div>'
    return Section("generation", "Language model: validation and samples", body)


def section(view: RunView) -> Section | None:
    if view.kind == "lm":
        return language_model(view)
    if view.kind == "text":
        return caption(view)
    return None
