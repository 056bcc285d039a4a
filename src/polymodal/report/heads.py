"""Multi-label and multi-task heads: their own metrics.

Multi-label: set-level scores (exact set match, Hamming loss, micro/macro P/R/F1), a ROC curve per label
and a per-label table. Multi-task: per classification task the blocks of :mod:`.classification`; per
regression task predicted against true values with MAE, RMSE and R² in the original units.
"""

from __future__ import annotations

import numpy as np
import torch

from polymodal.metrics.roc import one_vs_rest
from polymodal.report.classification import class_block, per_class_table, roc_figure, softmax
from polymodal.report.page import PALETTE, Section, figure, note, png, table
from polymodal.report.run import RunView


def multilabel(view: RunView) -> str:
    s = view.scores
    rows = [
        ["exact set match", s.get("accuracy")],
        ["Hamming loss", s.get("hamming_loss")],
        *[
            [f"{avg} {m}", s.get(f"{avg}_{m.lower()}")]
            for avg in ("micro", "macro")
            for m in ("precision", "recall", "F1")
        ],
    ]
    parts, aucs = [], None
    if view.outputs is not None and view.targets is not None:
        probs = 1 / (1 + np.exp(-view.outputs.astype(np.float64)))
        curves = one_vs_rest(view.targets, probs, list(view.meta["classes"]))
        aucs = {k: a for k, (_, _, a) in curves.items()}
        parts.append(roc_figure(curves, "ROC per label"))
    return (
        f'<div class="grid">{"".join(parts)}{table(["metric", "value"], rows)}</div>'
        + "<h3>Per label</h3>"
        + per_class_table(s.get("per_class", {}), aucs)
    )


def regression_block(name: str, m: dict, pred: np.ndarray | None, true: np.ndarray | None) -> str:
    parts = []
    if pred is not None and true is not None:
        fig, ax = figure(4.6, 4.2)
        ax.scatter(true, pred, s=10, alpha=0.6, color=PALETTE[0])
        lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "--", color="#9aa5b1", linewidth=1)
        ax.set(xlabel=f"true {name}", ylabel=f"predicted {name}", title=f"{name}: predicted vs true")
        parts.append(png(fig, f"{name} regression"))
    rows = [["MAE", m.get("mae")], ["RMSE", m.get("rmse")], ["R²", m.get("r2")], ["n", m.get("n")]]
    return f'<div class="grid">{"".join(parts)}{table(["metric", "value"], rows)}</div>'


def multitask(view: RunView) -> str:
    tasks = view.meta["target"]["tasks"]
    per = view.scores.get("tasks", {})
    body = ""
    outs = None
    if view.outputs is not None:
        outs = view.model.head.split(torch.from_numpy(view.outputs))
    for i, task in enumerate(tasks):
        name, m = task["column"], per.get(task["column"], {})
        body += f"<h3>Task {name} ({task['kind']})</h3>"
        y = view.targets[:, i] if view.targets is not None else None
        if task["kind"] == "classification":
            probs = softmax(outs[i].numpy()) if outs is not None else None
            yi = y.astype(np.int64) if y is not None else None
            body += class_block(m, list(task["classes"]), yi, probs, f"{name}: ")
        else:
            pred = outs[i].numpy()[:, 0] * task["std"] + task["mean"] if outs is not None else None
            true = y * task["std"] + task["mean"] if y is not None else None
            body += regression_block(name, m, pred, true)
    return body


def section(view: RunView) -> Section | None:
    render = {"multilabel": (multilabel, "Multi-label head"), "multitask": (multitask, "Multi-task head")}
    if view.kind not in render:
        return None
    fn, title = render[view.kind]
    where = f"On {view.where}." if view.outputs is not None else f"Saved metrics ({view.data_error})."
    return Section("heads", title, note(where) + fn(view))
