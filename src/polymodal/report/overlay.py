"""Drawing one input with a heat map over it: images (heat upsampled over the pixels), spectrograms (heat
over frequency × time, or over time for per-frame scores), sensor series (heat behind the curves), text
(token backgrounds in HTML) and tabular features (bars).

A heat map arrives either per input position (gradient × input, the input's own shape) or per token of an
encoder (attention, (N,)); :func:`heat_for` reduces the first and :func:`expand` maps both onto the input.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from polymodal.report.page import esc, png

HEAT = "inferno"


def normalise(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    lo, hi = np.nanmin(a), np.nanmax(a)
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def image_array(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) normalised tensor -> (H, W) or (H, W, 3) in [0, 1] for display."""
    a = x.detach().float().numpy()
    return normalise(a[0]) if a.shape[0] == 1 else normalise(np.moveaxis(a[:3], 0, -1))


def thumbnail(x: torch.Tensor, size: float = 0.6) -> str:
    """A small embedded picture of an image input (C, H, W)."""
    fig, ax = plt.subplots(figsize=(size, size))
    img = image_array(x)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    ax.axis("off")
    return png(fig, "input image")


def heat_for(modality: str, gx: torch.Tensor) -> np.ndarray:
    """Per-position |gradient × input| of one example reduced to what can be drawn: image (H, W), audio
    (F, T), series (T,) (channels summed, validity channel dropped), video (H, W) of the middle frame, else
    the flattened values."""
    a = gx.detach().abs().float()
    if modality == "image":
        return a.sum(0).numpy()
    if modality == "audio":
        return a[0].numpy()
    if modality == "timeseries":
        return a[:, :-1].sum(1).numpy()
    if modality == "video":
        return a[a.shape[0] // 2].sum(0).numpy()
    return a.flatten().numpy()


def grid_shape(n: int, h: int, w: int) -> tuple[int, int]:
    """(rows, cols) with rows·cols = n closest to the image's aspect (tokens of a patch or CNN grid)."""
    best = (1, n)
    for r in range(1, n + 1):
        if n % r == 0 and abs(np.log(r / (n // r)) - np.log(h / w)) < abs(np.log(best[0] / best[1]) - np.log(h / w)):
            best = (r, n // r)
    return best


def expand(heat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Stretch a heat map onto ``shape`` (2-D (H, W) or 1-D (T,)) with linear interpolation; a 1-D heat
    for a 2-D shape is a token grid (image) laid out row by row."""
    t = torch.as_tensor(np.asarray(heat, dtype=np.float32))
    if len(shape) == 2:
        if t.ndim == 1:
            t = t.view(*grid_shape(t.numel(), *shape))
        return F.interpolate(t[None, None], size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    return F.interpolate(t.flatten()[None, None], size=shape[0], mode="linear", align_corners=False)[0, 0].numpy()


def draw(ax: Any, modality: str, x: torch.Tensor, heat: np.ndarray | None, title: str = "") -> None:
    """Draw input ``x`` (one example) with ``heat`` over it on ``ax``."""
    ax.set_title(title, fontsize=9)
    if modality == "image" or modality == "video":
        frame = x if modality == "image" else x[x.shape[0] // 2]
        img = image_array(frame)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        if heat is not None:
            ax.imshow(normalise(expand(heat, img.shape[:2])), cmap=HEAT, alpha=0.55)
        ax.axis("off")
    elif modality == "audio":
        spec = x[0].detach().float().numpy()
        ax.imshow(spec, origin="lower", aspect="auto", cmap="gray_r")
        if heat is not None:
            h = np.asarray(heat)
            h = expand(h, spec.shape) if h.ndim == 2 else np.broadcast_to(expand(h, spec.shape[1:]), spec.shape)
            ax.imshow(normalise(h), origin="lower", aspect="auto", cmap=HEAT, alpha=0.55)
        ax.set(xlabel="frame", ylabel="mel band" if spec.shape[0] > 20 else "feature")
        ax.tick_params(labelsize=7)
    elif modality == "timeseries":
        values, mask = x[:, :-1].detach().float().numpy(), x[:, -1].detach().numpy() > 0.5
        n = int(mask.sum()) or len(mask)
        if heat is not None:
            h = normalise(expand(np.asarray(heat).ravel(), (len(mask),))[:n])
            lo, hi = float(values[:n].min()), float(values[:n].max())
            ax.imshow(h[None], aspect="auto", cmap=HEAT, alpha=0.45, extent=(0, n, lo, hi), origin="lower")
        ax.plot(values[:n], linewidth=0.9)
        ax.set(xlim=(0, n), xlabel="step")
        ax.tick_params(labelsize=7)
    else:
        h = np.zeros(x.numel()) if heat is None else np.asarray(heat).ravel()
        ax.bar(range(len(h)), h, color="#0072B2")
        ax.set(xlabel="position")
        ax.tick_params(labelsize=7)


def text_html(tokens: list[str], heat: np.ndarray) -> str:
    """Tokens as spans whose background darkens with the heat (padding dropped)."""
    h = normalise(np.asarray(heat, dtype=np.float64)[: len(tokens)])
    spans = []
    for tok, v in zip(tokens, h, strict=False):
        if tok == "[PAD]":
            continue
        shown = tok.replace(" ", "␣")
        color = "#fff" if v > 0.6 else "#1f2933"
        spans.append(
            f'<span title="{v:.2f}" style="background:rgba(213,94,0,{0.08 + 0.85 * v:.2f});color:{color}">'
            f"{esc(shown)}</span>"
        )
    return f'<div class="tokens">{"".join(spans)}</div>'
