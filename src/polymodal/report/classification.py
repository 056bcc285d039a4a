"""Single-label classification: confusion matrix, ROC curves with AUC (one-vs-rest), per-class table.

The blocks here also serve the classification tasks of a multi-task head (see :mod:`.heads`).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from polymodal.metrics.roc import macro_auc, one_vs_rest
from polymodal.report.page import PALETTE, Section, figure, note, png, table
from polymodal.report.run import RunView


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def confusion_figure(cm: np.ndarray, classes: list[str], title: str) -> str:
    """Row-normalised colours (recall per true class), counts written in the cells when they fit."""
    k = len(classes)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    side = min(8.0, 2.6 + 0.3 * k)
    fig, ax = plt.subplots(figsize=(side + 0.8, side))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(classes, rotation=90 if k > 8 else 0, fontsize=8 if k > 12 else 9)
    ax.set_yticklabels(classes, fontsize=8 if k > 12 else 9)
    if k <= 25:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    color = "white" if norm[i, j] > 0.55 else "#1f2933"
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8 if k > 12 else 9, color=color)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    caption = f"{int(cm.sum()):,} examples; rows: true class, columns: predicted class"
    return png(fig, title, caption, width=min(620, 90 + 46 * k) if k <= 12 else None)


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> str:
    fig, ax = figure(5.0, 4.6)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#9aa5b1", linewidth=1)
    many = len(curves) > 10
    cmap = plt.get_cmap("tab20")
    for i, (name, (fpr, tpr, a)) in enumerate(curves.items()):
        if np.isnan(a):
            continue
        color = cmap(i % 20) if many else PALETTE[i % len(PALETTE)]
        ax.plot(fpr, tpr, color=color, linewidth=1.0 if many else 1.6, label=None if many else f"{name} ({a:.3f})")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title(f"{title} · macro AUC {macro_auc(curves):.4f}")
    if not many:
        ax.legend(title="class (AUC)", fontsize=8, frameon=False, loc="lower right")
    binary = len(curves) == 1
    cap = "positive class vs the other" if binary else "each class against the rest, scored by its probability"
    return png(fig, title, cap, width=480)


def per_class_table(per_class: dict[str, dict[str, Any]], aucs: dict[str, float] | None) -> str:
    header = ["class", "precision", "recall", "F1", "support"] + (["ROC AUC"] if aucs else [])
    rows = []
    for name, m in per_class.items():
        row = [name, m["precision"], m["recall"], m["f1"], m["support"]]
        if aucs:
            row.append(aucs.get(name, float("nan")))
        rows.append(row)
    return table(header, rows)


def class_block(
    metrics: dict[str, Any], classes: list[str], y: np.ndarray | None, probs: np.ndarray | None, label: str
) -> str:
    """Confusion matrix, ROC curves and per-class table for one single-label problem; without predictions
    (``probs`` None) the saved confusion matrix and table only."""
    parts = []
    if "confusion_matrix" in metrics:
        parts.append(confusion_figure(np.asarray(metrics["confusion_matrix"]), classes, f"{label}confusion matrix"))
    curves = one_vs_rest(y, probs, classes) if probs is not None and y is not None else None
    if curves is not None:
        parts.append(roc_figure(curves, f"{label}ROC"))
    summary = [
        ["accuracy", metrics.get("accuracy")],
        ["macro precision", metrics.get("macro_precision")],
        ["macro recall", metrics.get("macro_recall")],
        ["macro F1", metrics.get("macro_f1")],
    ]
    if curves is not None:
        summary.append(["macro ROC AUC (one-vs-rest)", macro_auc(curves)])
    aucs = {k: a for k, (_, _, a) in curves.items()} if curves is not None else None
    return (
        f'<div class="grid">{"".join(parts)}</div>'
        + '<div class="grid">'
        + table(["metric", "value"], summary)
        + per_class_table(metrics.get("per_class", {}), aucs)
        + "</div>"
    )


def section(view: RunView) -> Section | None:
    if view.kind != "class":
        return None
    s = view.scores
    classes = list(view.meta.get("classes") or [])
    probs = softmax(view.outputs) if view.outputs is not None else None
    body = note(f"On {view.where}." if probs is not None else f"Saved test metrics ({view.data_error}).")
    body += class_block(s, classes, view.targets, probs, "")
    return Section("classification", "Classification: confusion, ROC, per class", body)
