"""Attention maps overlaid on the inputs, for attention-based encoders (ViT patches, text tokens, spectrogram
frames, series steps) and the cross-attention / transformer fusions (see :mod:`polymodal.explain.attention`
for how the maps are captured and reduced to one importance value per token)."""

from __future__ import annotations

import matplotlib.pyplot as plt

from polymodal.explain.attention import token_importance
from polymodal.report.examples import pick
from polymodal.report.overlay import draw, text_html
from polymodal.report.page import Section, esc, note, png
from polymodal.report.run import RunView


def reader_label(reader: str, name: str) -> str:
    if reader == "encoder":
        return f"{name} encoder: attention rollout over its own tokens"
    if reader == "fusion":
        return f"transformer fusion: what the fused output (CLS) drew from each {name} token"
    return f"cross-attention fusion: attention the {reader} tokens pay to each {name} token"


def section(view: RunView) -> Section | None:
    if view.kind in ("lm", "gan"):
        return None
    title = "Attention maps"
    if view.dataset is None:
        return Section("attention", title, note(f"Needs the run's data: {view.data_error}"))
    ex = pick(view)
    maps = token_importance(view.model, ex.inputs, ex.present)
    if not maps:
        encoders = ", ".join(f"{s['name']}: {s['encoder']['name']}" for s in view.recipe["inputs"])
        fusion = view.recipe["fusion"]["name"]
        return Section(
            "attention",
            title,
            note(
                f"This model has no attention layers (encoders {encoders}; fusion {fusion}). Attention maps are "
                "drawn for image_vit, text_transformer, audio_transformer and ts_transformer encoders and the "
                "cross_attention and transformer fusions; see the gradient × input maps below for this model."
            ),
        )
    modalities = view.predictor.inputs
    body = note(
        f"{len(ex.rows)} {view.split} examples. Brighter = more attention (each map scaled to its own range). "
        "Token grids are stretched over the image, frames over the time axis."
    )
    for (reader, name), weights in maps.items():
        body += f"<h3>{esc(reader_label(reader, name))}</h3>"
        modality = modalities[name]
        if modality == "text":
            strings = view.predictor.transforms[name].token_strings
            for i, cap in enumerate(ex.captions):
                body += (
                    f"<div><small>{esc(cap)}</small>{text_html(strings(ex.inputs[name][i]), weights[i].numpy())}</div>"
                )
            continue
        k = len(ex.rows)
        fig, axes = plt.subplots(1, k, figsize=(2.3 * k, 2.5 if modality == "image" else 2.2), squeeze=False)
        for i, ax in enumerate(axes[0]):
            draw(ax, modality, ex.inputs[name][i], weights[i].numpy(), ex.captions[i])
        fig.tight_layout()
        body += png(fig, f"attention {reader} {name}", f"{weights.shape[1]} {name} tokens")
    return Section("attention", title, body)
