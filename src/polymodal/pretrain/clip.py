"""CLIP: align two inputs' encoders with a symmetric InfoNCE loss and a learnable temperature.

Each encoder's (B, D) embedding goes through its own projection head to a shared E-dimensional space and is
L2-normalised; the B × B cosine similarities, scaled by exp(logit_scale), are logits in which the matching
pair is the right answer in both directions (rows: input A finds its B; columns: B finds its A).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from polymodal.contracts import ModelOutput
from polymodal.metrics.retrieval import prototype_accuracy, recall_at_k, same_content
from polymodal.registry import OBJECTIVES

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clips the learnt scale at 100 to keep training stable


@dataclass
class CLIPConfig:
    """Recipe keys for ``objective: {name: clip}``.

    zero_shot: ``prompts`` classifies the other input by the text encoder's embedding of each class name put
    into ``prompt`` (needs one text input); ``prototypes`` classifies each input by the mean embedding of
    each class in the other tower (held-out rows, leaving out the query's own pair). Both are reported with
    retrieval recall@K.
    """

    embed_dim: Annotated[int, Field(ge=2)] = 64
    projection: Literal["linear", "mlp"] = "linear"
    temperature: Annotated[float, Field(gt=0, le=1)] = 0.07
    learn_temperature: bool = True
    zero_shot: Literal["prototypes", "prompts"] = "prototypes"
    prompt: str = "{}"


def info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE of paired, L2-normalised embeddings a, b (B, E): mean of the cross-entropies of
    a→b and b→a with the pair on the diagonal. With scale 0 every logit is equal and the loss is log B."""
    logits = scale * a.float() @ b.float().T  # (B, B)
    labels = torch.arange(len(a))
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def projection_head(in_dim: int, out_dim: int, kind: str) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, out_dim))
    return nn.Linear(in_dim, out_dim, bias=False)  # CLIP's own heads are bias-free linear maps


@OBJECTIVES.register("clip", CLIPConfig)
class ContrastiveAlignment(nn.Module):
    """Two encoders, two projection heads, one learnable temperature; output (B, 2E) = [z_A, z_B].

    Args:
        encoders: ``{input: encoder}`` with exactly two inputs (A, B in sorted name order).
        transforms: Per input, its fitted transform (tokenises the class prompts for ``zero_shot: prompts``).
        classes: Class names of the data's label (used only to score zero-shot classification).
        embed_dim, projection, temperature, learn_temperature, zero_shot, prompt: See :class:`CLIPConfig`.
    """

    INPUTS = 2
    EXAMPLE_INPUTS: list[dict[str, Any]] = [
        {"name": "image", "modality": "image", "encoder": {"name": "image_cnn", "width": 4, "out_dim": 16}},
        {"name": "audio", "modality": "audio", "encoder": {"name": "audio_cnn", "width": 4, "out_dim": 16}},
    ]

    def __init__(
        self,
        encoders: dict[str, nn.Module],
        in_shapes: dict[str, tuple[int, ...]],
        contexts: dict[str, dict[str, Any]],
        transforms: dict[str, Any],
        classes: list[str],
        embed_dim: int,
        projection: str,
        temperature: float,
        learn_temperature: bool,
        zero_shot: str,
        prompt: str,
    ) -> None:
        super().__init__()
        if len(encoders) != 2:
            raise ValueError(f"clip: give exactly two inputs to align (got {', '.join(encoders)})")
        self.names = sorted(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.heads = nn.ModuleDict({k: projection_head(encoders[k].out_dim, embed_dim, projection) for k in self.names})
        scale = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.logit_scale = nn.Parameter(scale)
        else:
            self.register_buffer("logit_scale", scale)
        self.classes, self.embed_dim = list(classes), embed_dim
        self.prompt_input: str | None = None
        if zero_shot == "prompts":
            texts = [k for k in self.names if "vocab_size" in contexts.get(k, {})]
            if not texts:
                raise ValueError("clip: zero_shot: prompts needs a text input; use zero_shot: prototypes")
            self.prompt_input = texts[0]
            ids = [transforms[self.prompt_input](prompt.format(c.replace("_", " "))) for c in self.classes]
            self.register_buffer("prompt_ids", torch.stack(ids), persistent=False)  # (K, T)

    def embed(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) input -> (B, E) L2-normalised embedding in the shared space."""
        return F.normalize(self.heads[name](self.encoders[name](x)).float(), dim=-1)

    def forward(self, inputs: dict[str, torch.Tensor], present: Any = None) -> ModelOutput:
        """Both inputs' embeddings side by side, (B, 2E)."""
        return ModelOutput(torch.cat([self.embed(k, inputs[k]) for k in self.names], dim=1))

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def loss(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        z = out.logits
        return info_nce(z[:, : self.embed_dim], z[:, self.embed_dim :], self.scale())

    def reduce(self, out: ModelOutput) -> torch.Tensor:
        return out.logits.float()

    @torch.no_grad()
    def metrics(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        """Recall@1/5/10 both ways over the whole split (pairs with the same content on either side count as
        matches), zero-shot accuracy, and the temperature.
        ``accuracy`` is the zero-shot accuracy (prompts) or the mean prototype accuracy of both inputs."""
        z = torch.from_numpy(outputs)
        a, b = z[:, : self.embed_dim], z[:, self.embed_dim :]
        labels = torch.from_numpy(np.asarray(targets)).long()
        (na, nb), sim = self.names, a @ b.T
        out: dict[str, Any] = {"n": len(z), "temperature": float(1.0 / self.scale())}
        # A pair is also a correct answer for another pair when either side is the same content (many
        # clip-art images share one title): those candidates count as matches, not as ties or misses.
        positives = same_content(a) | same_content(b)
        out["pairs_with_duplicates"] = float((positives.sum(1) > 1).float().mean())
        for src, dst, s in ((na, nb, sim), (nb, na, sim.T)):
            out.update({f"recall@{k}_{src}_to_{dst}": v for k, v in recall_at_k(s, positives=positives).items()})
        protos = {
            na: prototype_accuracy(a, b, labels, len(self.classes)),
            nb: prototype_accuracy(b, a, labels, len(self.classes)),
        }
        out.update({f"prototype_accuracy_{k}": v for k, v in protos.items()})
        out["accuracy"] = float(np.mean(list(protos.values())))
        if self.prompt_input is not None:
            was = self.training
            self.eval()
            prompts = self.embed(self.prompt_input, self.prompt_ids)  # (K, E)
            self.train(was)
            other = nb if self.prompt_input == na else na
            scores = (a if other == na else b) @ prompts.T
            out[f"zero_shot_accuracy_{other}"] = out["accuracy"] = float((scores.argmax(1) == labels).float().mean())
        return out
