"""Attention maps of a model's ``nn.MultiheadAttention`` modules, recomputed from their own q/k projections.

Every attention layer here is an ``nn.MultiheadAttention`` (inside ``nn.TransformerEncoderLayer`` in the
token encoders and the transformer fusion, directly in the cross-attention fusion), called with
``need_weights=False``. A forward pre-hook reads the call's query, key and masks and recomputes
``softmax(q kᵀ / √d)`` per head with the module's own input projection, so no forward signature changes.
Capture runs with gradients enabled: in eval mode under ``no_grad`` PyTorch may take the fused
TransformerEncoderLayer fast path, which never calls the attention module.

:func:`token_importance` turns the raw maps into one importance value per token of each input:

- a token encoder (ViT, text/audio/series Transformer): attention rollout (Abnar & Zuidema 2020) through
  its layers, read at the CLS row when the encoder has a CLS token, else averaged over the query tokens
  (those encoders mean-pool their outputs);
- the cross-attention fusion: for the block where modality t reads modality s, the attention each token of
  s receives, averaged over t's tokens (the block's output is mean-pooled over t);
- the transformer fusion: rollout through its layers, CLS row, split into each modality's tokens; with
  bottleneck tokens, per modality, the attention the bottleneck tokens pay to its tokens (rolled out).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from polymodal.fusion.cross_attention import CrossAttentionFusion
from polymodal.fusion.transformer import TransformerFusion


def add_mask(scores: torch.Tensor, mask: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    """Apply a boolean (True = ignore) or additive float mask, reshaped to broadcast over (B, H, T_q, T_k)."""
    if mask is None:
        return scores
    mask = mask.reshape(shape)
    return scores.masked_fill(mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()


def attention_weights(
    mha: nn.MultiheadAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    attn_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Head-averaged attention (B, T_q, T_k) of a batch-first ``nn.MultiheadAttention`` for these inputs."""
    if not mha.batch_first:
        query, key = query.transpose(0, 1), key.transpose(0, 1)
    e, h = mha.embed_dim, mha.num_heads
    if mha._qkv_same_embed_dim:
        w_q, w_k = mha.in_proj_weight[:e], mha.in_proj_weight[e : 2 * e]
    else:
        w_q, w_k = mha.q_proj_weight, mha.k_proj_weight
    b_q = b_k = None
    if mha.in_proj_bias is not None:
        b_q, b_k = mha.in_proj_bias[:e], mha.in_proj_bias[e : 2 * e]
    b, tq, tk = query.shape[0], query.shape[1], key.shape[1]
    q = F.linear(query, w_q, b_q).view(b, tq, h, e // h).transpose(1, 2)  # (B, H, T_q, E/H)
    k = F.linear(key, w_k, b_k).view(b, tk, h, e // h).transpose(1, 2)  # (B, H, T_k, E/H)
    scores = (q @ k.transpose(-2, -1)).float() / math.sqrt(e // h)  # (B, H, T_q, T_k)
    scores = add_mask(scores, key_padding_mask, (b, 1, 1, tk))
    if attn_mask is not None:
        scores = add_mask(scores, attn_mask, (b, h, tq, tk) if attn_mask.ndim == 3 else (1, 1, tq, tk))
    return scores.softmax(-1).nan_to_num(0.0).mean(1)  # a fully masked row attends nowhere: zeros


@contextmanager
def capture_attention(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """While active, every forward call of an ``nn.MultiheadAttention`` inside ``model`` stores its
    head-averaged weights (B, T_q, T_k) under the module's qualified name (the last call wins)."""
    maps: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.MultiheadAttention):
            continue

        def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], name: str = name) -> None:
            query = args[0] if args else kwargs["query"]
            key = args[1] if len(args) > 1 else kwargs["key"]
            with torch.no_grad():
                maps[name] = attention_weights(
                    mod, query, key, kwargs.get("key_padding_mask"), kwargs.get("attn_mask")
                ).detach()

        handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield maps
    finally:
        for h in handles:
            h.remove()


def rollout(layers: list[torch.Tensor]) -> torch.Tensor:
    """Attention rollout: the product over layers of ``0.5·A + 0.5·I`` (the residual path), rows renormalised.
    ``layers``: each (B, T, T), first layer first. Returns (B, T, T): how much each output token draws on
    each input token."""
    out = None
    for a in layers:
        eye = torch.eye(a.shape[-1], dtype=a.dtype).expand_as(a)
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(-1, keepdim=True)
        out = a if out is None else a @ out
    assert out is not None
    return out


def pooled_rows(r: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """Average of the rollout ``r`` (B, T, T) over the query rows of valid tokens, with padding cut out: a
    padded key receives no attention in the first layer's raw map ``first`` (B, T, T). Returns (B, T)
    normalised to sum 1 (padding 0)."""
    valid = (first.sum(1) > 1e-6).float()  # (B, T)
    w = (r * valid.unsqueeze(-1)).sum(1) * valid / valid.sum(1, keepdim=True).clamp_min(1.0)
    return w / w.sum(-1, keepdim=True).clamp_min(1e-12)


def layer_maps(maps: dict[str, torch.Tensor], prefix: str) -> list[torch.Tensor]:
    """The maps of modules named ``{prefix}.<i>.self_attn`` (Transformer layers), in layer order."""
    found = []
    for name, a in maps.items():
        rest = name.removeprefix(prefix + ".")
        if rest != name and rest.endswith(".self_attn") and rest.split(".")[0].isdigit():
            found.append((int(rest.split(".")[0]), a))
    return [a for _, a in sorted(found, key=lambda t: t[0])]


def encoder_importance(encoder: nn.Module, maps: dict[str, torch.Tensor], prefix: str) -> torch.Tensor | None:
    """(B, T) per-token importance of one token encoder, or None if it has no attention layers."""
    layers = layer_maps(maps, f"{prefix}.encoder.layers")
    if not layers:
        return None
    r = rollout(layers)
    if hasattr(encoder, "cls"):  # ViT: what the CLS output (the embedding) drew from each patch
        w = r[:, 0, 1:]
        return w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    return pooled_rows(r, layers[0])


def cross_attention_importance(
    fusion: CrossAttentionFusion, maps: dict[str, torch.Tensor]
) -> dict[tuple[str, str], torch.Tensor]:
    """``{(target, source): (B, T_source)}``: attention each source token receives from the target."""
    out = {}
    for t, s in fusion.pairs:
        a = maps.get(f"fusion.blocks.{t}<-{s}.attn")
        if a is not None:
            out[(t, s)] = a.mean(1)  # (B, T_s), each row sums to 1
    return out


def transformer_importance(
    fusion: TransformerFusion, maps: dict[str, torch.Tensor], counts: dict[str, int]
) -> dict[tuple[str, str], torch.Tensor]:
    """``{("fusion", modality): (B, T_modality)}`` from the transformer fusion (see the module docstring)."""
    out = {}
    if fusion.bottleneck:
        n = fusion.bottleneck
        for k in fusion.keys:
            layers = [maps[f"fusion.layers.{i}.{k}.self_attn"] for i in range(len(fusion.layers))]
            w = rollout(layers)[:, -n:, :-n].mean(1)  # bottleneck rows, this modality's token columns
            out[("fusion", k)] = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
        return out
    layers = layer_maps(maps, "fusion.layers")
    if not layers:
        return out
    cls = rollout(layers)[:, 0]  # (B, 1 + ΣT)
    start = 1
    for k in fusion.keys:
        w = cls[:, start : start + counts[k]]
        out[("fusion", k)] = w / cls[:, 1:].sum(-1, keepdim=True).clamp_min(1e-12)  # shares across modalities
        start += counts[k]
    return out


def token_importance(
    model: nn.Module, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
) -> dict[tuple[str, str], torch.Tensor]:
    """Per-token attention importance of a :class:`~polymodal.model.MultimodalModel` on one batch.

    Returns:
        ``{(reader, input): (B, T_input_tokens)}``: ``reader`` is ``"encoder"`` for an input's own token
        encoder, ``"fusion"`` for the transformer fusion, or the target modality of a cross-attention block.
        Empty if the model has no attention layers.
    """
    model.eval()
    counts: dict[str, int] = {}

    def count(module: nn.Module, args: tuple[Any, ...]) -> None:
        counts.update({k: (e.shape[1] if e.ndim == 3 else 1) for k, e in args[0].items()})

    handle = model.fusion.register_forward_pre_hook(count)
    try:
        with capture_attention(model) as maps, torch.enable_grad():
            model(inputs, present)
    finally:
        handle.remove()
    out: dict[tuple[str, str], torch.Tensor] = {}
    for name, enc in model.encoders.items():
        w = encoder_importance(enc, maps, f"encoders.{name}")
        if w is not None:
            out[("encoder", name)] = w
    readers = {CrossAttentionFusion: cross_attention_importance, TransformerFusion: transformer_importance}
    for kind, read in readers.items():
        if isinstance(model.fusion, kind):
            args = (model.fusion, maps, counts) if kind is TransformerFusion else (model.fusion, maps)
            out.update(read(*args))  # type: ignore[operator]
    return out
