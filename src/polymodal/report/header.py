"""The page header: run name, a one-line recipe summary (the pipeline) and headline metric cards."""

from __future__ import annotations

import math
from typing import Any

from polymodal.report.page import card
from polymodal.report.run import RunView

TARGET_KINDS = ("class", "multilabel", "multitask", "text")  # what the head of a supervised model predicts


def component(spec: Any) -> str:
    """``name`` of a recipe component given as a string or a mapping with ``name``."""
    return str(spec.get("name")) if isinstance(spec, dict) else str(spec)


def pipeline(view: RunView) -> str:
    """``image [image_cnn] + audio [audio_cnn] → concat → classification (10 classes)``, or the GPT shape."""
    r = view.recipe
    if view.kind == "lm":
        m = view.meta.get("model", {})
        tok = (r.get("data") or {}).get("tokenizer", "char")
        return (
            f"{tok} tokens (vocab {m.get('vocab_size')}) → GPT {m.get('n_layer')} layers × {m.get('n_embd')} wide, "
            f"{m.get('n_head')} heads, context {m.get('block_size')} → next token"
        )
    if view.kind == "gan":
        m, g, c = view.meta, r.get("generator") or {}, r.get("critic") or {}
        cond = f"{len(m.get('classes') or [])} class labels" if m.get("condition") == "label" else "caption words"
        shape = "×".join(str(v) for v in m.get("image_shape", []))
        return (
            f"noise z ({g.get('z_dim')}) + condition ({cond}) → {g.get('name')} generator → {shape} image; "
            f"{c.get('name')} critic, WGAN-GP"
        )
    inputs = " + ".join(f"{s['name']} [{component(s.get('encoder'))}]" for s in r.get("inputs", []))
    if view.kind not in TARGET_KINDS:  # e.g. pretraining: encoders trained by an objective
        return f"{inputs} → {component(r.get('objective', view.kind))}"
    target = view.meta.get("target") or {}
    what = {
        "class": f"{len(target.get('classes', []))} classes",
        "multilabel": f"{len(target.get('classes', []))} labels",
        "multitask": f"{len(target.get('tasks', []))} tasks",
        "text": "text",
    }.get(view.kind, view.kind)
    return f"{inputs} → {component(r.get('fusion'))} → {component(r.get('head'))} ({what})"


def subtitle(view: RunView) -> str:
    m = view.meta
    parts = [f"data: {m.get('data_source', '?')}"]
    if m.get("train_images"):
        parts.append(f"{m['train_images']:,} training images")
    if m.get("sizes"):
        parts.append(" / ".join(f"{v:,} {k}" for k, v in m["sizes"].items()))
    if m.get("tokens"):
        parts.append(" / ".join(f"{v:,} {k} tokens" for k, v in m["tokens"].items()))
    params = m.get("parameters", 0)
    if isinstance(params, dict):  # a GAN: {generator: n, critic: n}
        parts.append(" + ".join(f"{v:,} {k}" for k, v in params.items()) + " parameters")
    else:
        parts.append(f"{params:,} parameters")
    parts.append(f"seed {m.get('seed')}")
    if m.get("init_from"):
        parts.append(f"fine-tuned from {m['init_from']}")
    if view.table is not None:
        parts.append(f"evaluated on {view.where} ({view.table})")
    return " · ".join(parts)


def cards(view: RunView) -> list[str]:
    s, out = view.scores, []
    if view.kind == "lm":
        loss = s.get("loss")
        out += [card("val loss (nats/token)", loss), card("perplexity", math.exp(loss) if loss else None)]
        out.append(card("token accuracy", s.get("accuracy")))
    elif view.kind == "gan":
        if s.get("conditional_accuracy") is not None:
            out.append(card("conditional accuracy", s["conditional_accuracy"]))
            out.append(card("classifier on real images", s.get("classifier_test_accuracy")))
        if s.get("generator_steps") is not None:
            out.append(card("generator steps", s["generator_steps"]))
    elif view.kind == "text":
        out.append(card(f"{view.split} exact match", s.get("accuracy")))
        out += [
            card(label, s[key])
            for key, label in (("bleu4", "BLEU-4"), ("rouge_l", "ROUGE-L"), ("cider", "CIDEr"))
            if key in s
        ]
    elif view.kind not in TARGET_KINDS:  # any other kind of run: its final numbers
        out += [card(f"{view.split} {k.replace('_', ' ')}", v) for k, v in s.items() if isinstance(v, float)][:4]
    else:
        label = "exact-set accuracy" if view.kind == "multilabel" else "accuracy"
        out.append(card(f"{view.split} {label}", s.get("accuracy")))
        for key, name in (("macro_f1", "macro F1"), ("micro_f1", "micro F1")):
            if isinstance(s.get(key), float):
                out.append(card(name, s[key]))
    best = view.metrics.get("best_epoch")
    if best is not None:
        out.append(card("best epoch", f"{best} of {view.metrics.get('epochs_run', len(view.history))}"))
    if view.metrics.get("train_seconds") is not None:
        out.append(card("train time", f"{view.metrics['train_seconds']:.0f} s"))
    return out
