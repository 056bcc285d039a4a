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
    unit = "round" if "round" in h[0] else "epoch"  # a federated run's epochs are communication rounds

    def series(key: str) -> tuple[list[int], list[float]]:
        """The epochs that have a number under ``key``, and those numbers (rows may lack a key or hold None)."""
        pts = [(e, r[key]) for e, r in zip(epochs, h, strict=True) if isinstance(r.get(key), (int, float))]
        return [p[0] for p in pts], [p[1] for p in pts]

    best = view.metrics.get("best_epoch", view.metrics.get("best_round"))  # best_round: federated, schema 1
    lm = view.kind == "lm"
    panels = ["loss", "metric", "lr"]
    fig, axes = plt.subplots(1, len(panels), figsize=(13.5, 3.4))
    for ax in axes:
        style(ax)
        ax.set_xlabel(unit)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best:
            ax.axvline(best, color="#9aa5b1", linestyle=":", linewidth=1.2)
    axes[0].plot(*series("train_loss"), "-o", ms=3, color=PALETTE[0], label="train")
    axes[0].plot(*series("val_loss"), "-o", ms=3, color=PALETTE[1], label="validation")
    axes[0].set(title="loss" + (" (nats per token)" if lm else ""), ylabel="loss")
    axes[0].legend(frameon=False)
    if lm:  # a language model monitors loss; perplexity is its more familiar reading
        x, loss = series("val_loss")
        axes[1].plot(x, [math.exp(v) for v in loss], "-o", ms=3, color=PALETTE[2])
        axes[1].set(title="validation perplexity", ylabel="exp(loss)")
    else:
        key = "val_loss" if monitor == "loss" else f"val_{monitor}"
        shown = key if monitor != "loss" else "val_accuracy"  # loss is already in the first panel
        axes[1].plot(*series(shown), "-o", ms=3, color=PALETTE[2])
        name = shown.removeprefix("val_").replace("_", " ")
        head_kind = {"text": " (exact match)", "multilabel": " (exact set)"}.get(view.kind, "")
        axes[1].set(title=f"validation {name}{head_kind}" + ("  · monitored" if shown == key else ""), ylabel=name)
    axes[2].plot(*series("lr"), "-", color=PALETTE[3])
    axes[2].set(title=f"learning rate (end of {unit})", ylabel="lr")
    fig.tight_layout()
    text = f"{len(h)} {unit}s; dotted line: best {unit} ({best}), whose weights the run keeps (monitor: {monitor})."
    return Section("curves", "Learning curves", note(text) + png(fig, "learning curves"))
