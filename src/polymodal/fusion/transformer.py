"""A Transformer over modality tokens, with optional attention bottlenecks (MBT, Nagrani et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.fusion.base import as_tokens, linear_per_modality, masked_mean, presence
from polymodal.registry import FUSIONS
from polymodal.schema import Heads, Layers, Width


@dataclass
class TransformerFusionConfig:
    """Recipe keys for ``fusion: {name: transformer}``."""

    dim: Width = 64
    heads: Heads = 4
    layers: Layers = 2
    bottleneck: Annotated[int, Field(ge=0, le=256)] = 0  # tokens attend to all others: past 256 it is no bottleneck
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


def layer(dim: int, heads: int, dropout: float) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True)


@FUSIONS.register("transformer", TransformerFusionConfig)
class TransformerFusion(nn.Module):
    """Tokens of every modality (a vector is one token), each tagged with a learned modality embedding.

    ``bottleneck: 0``: one joint Transformer over [CLS; all tokens]; every token can attend to every other,
    and the CLS output (B, D) is the fused vector. Tokens of a missing modality are masked out of attention.

    ``bottleneck: n``: each layer runs a separate Transformer layer per modality over [its tokens; n shared
    bottleneck tokens], then the bottleneck tokens are averaged across the modalities present. Information
    crosses modalities only through those n tokens, which forces the exchange to be condensed. Output:
    [mean bottleneck; mean of the present modalities' pooled tokens] (B, 2D).

    Args:
        in_dims: ``{modality: D_m}`` of each encoder output.
        num_outputs: Unused (the head classifies).
        dim: Token width D.
        heads: Attention heads (must divide D).
        layers: Number of layers.
        bottleneck: Number of bottleneck tokens (0 = full joint attention).
        dropout: Attention and MLP dropout.
    """

    emits_logits = False
    TOKENS = True  # encoders that can emit token sequences (tokens: true) are built that way for this fusion

    def __init__(
        self,
        in_dims: dict[str, int],
        num_outputs: int,
        dim: int,
        heads: int,
        layers: int,
        bottleneck: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"transformer fusion: dim {dim} must be divisible by heads {heads}")
        self.keys, self.bottleneck = sorted(in_dims), bottleneck
        self.proj = linear_per_modality(in_dims, dim)
        self.kind = nn.Parameter(torch.randn(len(self.keys), dim) * 0.02)  # modality-type embeddings
        if bottleneck:
            self.fsn = nn.Parameter(torch.randn(1, bottleneck, dim) * 0.02)
            self.layers = nn.ModuleList(
                nn.ModuleDict({k: layer(dim, heads, dropout) for k in self.keys}) for _ in range(layers)
            )
            self.out_dim = 2 * dim
        else:
            self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
            self.layers = nn.ModuleList(layer(dim, heads, dropout) for _ in range(layers))
            self.out_dim = dim
        self.norm = nn.LayerNorm(self.out_dim)

    def forward(
        self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        tokens = [self.proj[k](as_tokens(embeddings[k])) + self.kind[i] for i, k in enumerate(self.keys)]
        w = presence(self.keys, present, tokens[0][:, 0])  # (B, M)
        if self.bottleneck:
            return self.norm(self._bottleneck(tokens, w))
        b = tokens[0].shape[0]
        x = torch.cat([self.cls.expand(b, -1, -1).to(tokens[0].dtype), *tokens], dim=1)  # (B, 1 + ΣT, D)
        pad = [torch.zeros(b, 1, dtype=torch.bool, device=x.device)]
        pad += [(w[:, i : i + 1] == 0).expand(-1, t.shape[1]) for i, t in enumerate(tokens)]
        mask = torch.cat(pad, dim=1)  # (B, 1 + ΣT), True = ignore
        for blk in self.layers:
            x = blk(x, src_key_padding_mask=mask)
        return self.norm(x[:, 0])  # (B, D)

    def _bottleneck(self, tokens: list[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
        b, n = tokens[0].shape[0], self.bottleneck
        fsn = self.fsn.expand(b, -1, -1).to(tokens[0].dtype)  # (B, n, D)
        for blocks in self.layers:
            updates = []
            for i, k in enumerate(self.keys):
                out = blocks[k](torch.cat([tokens[i], fsn], dim=1))
                tokens[i], upd = out[:, :-n], out[:, -n:]
                updates.append(upd)
            u = torch.stack(updates, dim=1)  # (B, M, n, D)
            fsn = masked_mean(u.flatten(2), w).view_as(fsn)  # average over the modalities present
        pooled = torch.stack([t.mean(dim=1) for t in tokens], dim=1)  # (B, M, D)
        return torch.cat([fsn.mean(dim=1), masked_mean(pooled, w)], dim=-1)  # (B, 2D)
