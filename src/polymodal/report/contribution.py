"""Per-modality contribution: accuracy with each input masked (the model sees it as missing), the share of
gradient × input attribution each input receives, and per-position saliency maps over a few examples."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from polymodal.data.examples import collate
from polymodal.explain.saliency import gradient_x_input, modality_shares
from polymodal.report.examples import pick
from polymodal.report.overlay import draw, heat_for, text_html
from polymodal.report.page import PALETTE, Section, esc, figure, note, png, table
from polymodal.report.run import RunView
from polymodal.training.evaluator import Evaluator, modality_ablation

SALIENCY_ROWS = 256  # examples averaged for the modality shares (enough for a stable mean, fast on CPU)


def ablation(view: RunView) -> dict[str, float]:
    """Accuracy with each input removed: saved with the run for the test split, recomputed otherwise."""
    saved = view.metrics.get("test_without")
    if view.split == "test" and saved is not None:
        return saved
    if view.dataset is None:
        return {}
    p = view.predictor
    return modality_ablation(Evaluator(p.model, max(p.recipe.trainer.batch_size, 128), device=p.device), view.dataset)


def shares(view: RunView) -> dict[str, float]:
    """Mean share of |gradient × input| per input over up to ``SALIENCY_ROWS`` examples of the split."""
    n = min(len(view.dataset), SALIENCY_ROWS)
    rows = np.linspace(0, len(view.dataset) - 1, n).round().astype(int).tolist()
    total: dict[str, float] = {}
    for start in range(0, n, 64):
        inputs, present, y = collate([view.dataset[i] for i in rows[start : start + 64]])
        try:
            part = modality_shares(gradient_x_input(view.model, inputs, y, present))
        except ValueError:  # an integer input whose encoder has no embedding to attribute to
            return {}
        for k, v in part.items():
            total[k] = total.get(k, 0.0) + v * len(y)
    return {k: v / n for k, v in total.items()}


def bars(values: dict[str, float], title: str, ylabel: str, full: float | None = None) -> str:
    fig, ax = figure(0.9 + 1.1 * len(values) + (1.1 if full is not None else 0), 2.8)
    names, heights = list(values), list(values.values())
    if full is not None:
        names, heights = ["all inputs", *[f"without {k}" for k in values]], [full, *heights]
    ax.bar(names, heights, color=[PALETTE[i % len(PALETTE)] for i in range(len(names))], width=0.6)
    for i, v in enumerate(heights):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=9)
    ax.set(title=title, ylabel=ylabel, ylim=(0, max(1.0, max(heights) * 1.12)))
    ax.tick_params(axis="x", labelsize=9)
    return png(fig, title)


def section(view: RunView) -> Section | None:
    if view.kind in ("lm", "gan"):
        return None
    title = "Per-modality contribution"
    body = ""
    without = ablation(view)
    full = view.scores.get("accuracy")
    if without:
        body += "<h3>Accuracy with one input masked</h3>"
        body += note(
            "Each input in turn is marked missing in every row; the model predicts from the others "
            "(a fusion with no unimodal path falls to chance)."
        )
        rows = [[k, v, (v - full) if full is not None else None] for k, v in without.items()]
        body += f'<div class="grid">{bars(without, "accuracy with one input masked", "accuracy", full)}'
        body += table(["input masked", "accuracy", "change"], [["none", full, 0.0], *rows]) + "</div>"
    else:
        body += note("One input only: nothing to mask.")
    if view.dataset is None:
        return Section("contribution", title, body + note(f"Saliency needs the run's data: {view.data_error}"))
    share = shares(view)
    if share:
        body += "<h3>Gradient × input share per input</h3>"
        body += note(
            f"Mean over {min(len(view.dataset), SALIENCY_ROWS)} {view.split} examples of each input's share "
            "of |∂score/∂x · x| summed over its positions (score: the predicted class's logit, or the "
            "negative loss for other heads; token inputs via their embeddings)."
        )
        body += bars(share, "share of gradient × input", "share")
    ex = pick(view)
    sal = gradient_x_input(view.model, ex.inputs, ex.targets, ex.present)
    body += "<h3>Saliency per position</h3>"
    body += note(
        "|gradient × input| of each position (brighter = more influence on the score), for the "
        f"{len(ex.rows)} examples of the attention section."
    )
    for name, gx in sal.items():
        modality = view.predictor.inputs[name]
        body += f"<h3>{esc(name)} ({esc(modality)})</h3>"
        if modality == "text":
            strings = view.predictor.transforms[name].token_strings
            for i, cap in enumerate(ex.captions):
                heat = gx[i].abs().numpy()
                body += f"<div><small>{esc(cap)}</small>{text_html(strings(ex.inputs[name][i]), heat)}</div>"
            continue
        k = len(ex.rows)
        fig, axes = plt.subplots(1, k, figsize=(2.3 * k, 2.5 if modality == "image" else 2.2), squeeze=False)
        for i, ax in enumerate(axes[0]):
            draw(ax, modality, ex.inputs[name][i], heat_for(modality, gx[i]), ex.captions[i])
        fig.tight_layout()
        body += png(fig, f"saliency {name}")
    return Section("contribution", title, body)
