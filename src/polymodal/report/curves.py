"""Learning curves: train and validation loss, the monitored metric and the learning rate, per epoch
(from ``metrics.jsonl``, which the trainer writes after every epoch)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from polymodal.report.page import PALETTE, Section, note, png, style
from polymodal.report.run import RunView


def section(view: RunView) -> Section | None:
    if view.kind == "gan":  # a GAN's losses are of another kind: see report.gan
        return None
    h = view.history
    if not h:
        return Section("curves", "Learning curves", note("This run has no metrics.jsonl (no epoch finished)."))
    monitor = (view.recipe.get("trainer") or {}).get("monitor", "accuracy")
    epochs = [r["epoch"] for r in h]
    best = view.metrics.get("best_epoch")
    lm = view.kind == "lm"
    panels = ["loss", "metric", "lr"]
    fig, axes = plt.subplots(1, len(panels), figsize=(13.5, 3.4))
    for ax in axes:
        style(ax)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best:
            ax.axvline(best, color="#9aa5b1", linestyle=":", linewidth=1.2)
    axes[0].plot(epochs, [r["train_loss"] for r in h], "-o", ms=3, color=PALETTE[0], label="train")
    axes[0].plot(epochs, [r["val_loss"] for r in h], "-o", ms=3, color=PALETTE[1], label="validation")
    axes[0].set(title="loss" + (" (nats per token)" if lm else ""), ylabel="loss")
    axes[0].legend(frameon=False)
    if lm:  # a language model monitors loss; perplexity is its more familiar reading
        axes[1].plot(epochs, [math.exp(r["val_loss"]) for r in h], "-o", ms=3, color=PALETTE[2])
        axes[1].set(title="validation perplexity", ylabel="exp(loss)")
    else:
        key = "val_loss" if monitor == "loss" else f"val_{monitor}"
        shown = key if monitor != "loss" else "val_accuracy"  # loss is already in the first panel
        values = [r.get(shown) for r in h]
        if all(v is not None for v in values):
            axes[1].plot(epochs, values, "-o", ms=3, color=PALETTE[2])
        name = shown.removeprefix("val_").replace("_", " ")
        head_kind = {"text": " (exact match)", "multilabel": " (exact set)"}.get(view.kind, "")
        axes[1].set(title=f"validation {name}{head_kind}" + ("  · monitored" if shown == key else ""), ylabel=name)
    axes[2].plot(epochs, [r["lr"] for r in h], "-", color=PALETTE[3])
    axes[2].set(title="learning rate (end of epoch)", ylabel="lr")
    fig.tight_layout()
    text = f"{len(h)} epochs; dotted line: best epoch ({best}), whose weights the run keeps (monitor: {monitor})."
    return Section("curves", "Learning curves", note(text) + png(fig, "learning curves"))
