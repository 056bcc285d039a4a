"""A GAN run (``kind: gan``): its training curves, the final sample grid, how the grids changed over training,
and the quality figure (how often a separately trained classifier names the requested class)."""

from __future__ import annotations

import base64
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from polymodal.report.page import PALETTE, Markup, Section, esc, note, png, style, table
from polymodal.report.run import RunView

PROGRESS = 4  # epoch grids shown side by side (first, last and evenly spaced between)


def embedded(path: Path, alt: str, caption: str) -> str:
    """A PNG file the run wrote, embedded as is (no re-encoding: the grid's pixels are the generator's)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{esc(alt)}" style="image-rendering:pixelated;max-width:100%" '
        f'src="data:image/png;base64,{data}"><figcaption>{esc(caption)}</figcaption></figure>'
    )


def curves(view: RunView) -> str:
    h = view.history
    epochs = [r["epoch"] for r in h]
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.4))
    for ax in axes:
        style(ax)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].plot(epochs, [r["wasserstein"] for r in h], "-o", ms=3, color=PALETTE[0], label="Wasserstein estimate")
    axes[0].plot(epochs, [r["critic_loss"] for r in h], "-o", ms=3, color=PALETTE[1], label="critic loss")
    axes[0].set(title="critic (mean over the epoch)")
    axes[0].legend(frameon=False)
    axes[1].plot(epochs, [r["generator_loss"] for r in h], "-o", ms=3, color=PALETTE[2])
    axes[1].set(title="generator loss", ylabel="−critic(fake)")
    if all(r.get("conditional_accuracy") is not None for r in h):
        axes[2].plot(epochs, [r["conditional_accuracy"] for r in h], "-o", ms=3, color=PALETTE[3])
        axes[2].set(title="conditional accuracy (20 images per class)", ylim=(0, 1))
    else:
        axes[2].plot(epochs, [r["gp"] for r in h], "-o", ms=3, color=PALETTE[3])
        axes[2].set(title="gradient penalty term", ylabel="E[(‖∇‖ − 1)²]")
    fig.tight_layout()
    return png(fig, "GAN training curves")


def progress(view: RunView) -> str:
    grids = sorted((view.run_dir / "samples").glob("epoch-*.png"))
    if len(grids) < 2:
        return ""
    picks = sorted({round(i * (len(grids) - 1) / (PROGRESS - 1)) for i in range(PROGRESS)})
    cell = '<td style="vertical-align:top;text-align:center">{}</td>'
    cells = "".join(cell.format(embedded(grids[i], grids[i].stem, grids[i].stem.replace("-", " "))) for i in picks)
    return "<h3>During training (the same noise and conditions every epoch)</h3>" + f"<table><tr>{cells}</tr></table>"


def quality(view: RunView) -> str:
    m = view.scores
    if m.get("conditional_accuracy") is None or not m.get("per_class"):
        return note(
            "No quality figure: it needs class labels and a classifier (evaluation.classifier); a text-conditioned "
            "run has neither, so judge it by the grids."
        )
    rows = [[name, acc] for name, acc in m["per_class"].items()]
    real = m.get("classifier_test_accuracy", 0.0)
    text = (
        f"A classifier trained separately on the real images (test accuracy {real:.3f}) "
        f"names the requested class for {m['conditional_accuracy']:.3f} of {m.get('generated_images', '?')} "
        "generated images."
    )
    return note(text) + table(["requested class", Markup("share classified as requested")], rows)


def section(view: RunView) -> Section | None:
    if view.kind != "gan":
        return None
    body = ""
    if view.history:
        body += curves(view)
    final = view.run_dir / "samples.png"
    if final.is_file():
        cond = view.meta.get("condition", "label")
        rows = "one row per class" if cond == "label" else "one row per held-out caption, its real image first"
        body += embedded(final, "generated samples", f"Final generator: {rows}.")
    else:
        body += note("No samples.png: the run has not finished.")
    body += progress(view) + "<h3>Quality</h3>" + quality(view)
    return Section("gan", "Generated images", body)
