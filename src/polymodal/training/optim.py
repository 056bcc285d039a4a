"""Optimiser construction and the warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from polymodal.config import TrainerConfig
from polymodal.errors import ConfigError


def hidden_matrices(model: nn.Module) -> set[int]:
    """ids of the weights Muon should own: 2-D weights of ``nn.Linear`` layers, except output heads (a module
    whose name ends in ``head``) and weights shared with an ``nn.Embedding`` (a tied output projection).
    Embeddings and heads are lookups/readouts, not hidden transforms; Muon's orthogonalised update suits only
    the latter (Jordan et al. 2024, modded-nanogpt)."""
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    out = set()
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and not name.split(".")[-1].endswith("head") and id(m.weight) not in embedded:
            out.add(id(m.weight))
    return out


class MuonAdamW:
    """Muon for the hidden matrices and AdamW for the rest, behind one optimiser's interface (``param_groups``
    shared with both, ``step``, ``zero_grad``, ``state_dict`` with the parameters numbered Muon's first)."""

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer) -> None:
        self.optimizers = (muon, adamw)
        self.param_groups = muon.param_groups + adamw.param_groups  # the same dicts: setting lr reaches both

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def state_dict(self) -> dict[str, Any]:
        state: dict[int, Any] = {}
        groups: list[dict[str, Any]] = []
        offset = 0
        for opt in self.optimizers:
            sd = opt.state_dict()
            state.update({pid + offset: st for pid, st in sd["state"].items()})
            groups += [{**g, "params": [p + offset for p in g["params"]]} for g in sd["param_groups"]]
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        offset, first = 0, 0
        for opt in self.optimizers:
            k, n = len(opt.param_groups), sum(len(g["params"]) for g in opt.param_groups)
            groups = [{**g, "params": [p - offset for p in g["params"]]} for g in sd["param_groups"][first : first + k]]
            state = {int(pid) - offset: st for pid, st in sd["state"].items() if offset <= int(pid) < offset + n}
            opt.load_state_dict({"state": state, "param_groups": groups})
            offset, first = offset + n, first + k


def build_optimizer(model: nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    """AdamW, SGD or Muon + AdamW; weight decay only on weight matrices/kernels, not on biases and norm scales."""
    muon = hidden_matrices(model) if cfg.optimizer == "muon" else set()
    if cfg.optimizer == "muon" and not muon:
        raise ConfigError("trainer.optimizer: muon found no hidden nn.Linear weight matrix in this model; use adamw")
    decay, no_decay, hidden = [], [], []
    for p in model.parameters():
        if p.requires_grad:
            (hidden if id(p) in muon else decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    adamw = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2))
    if not hidden:
        return adamw
    # match_rms_adamw scales each matrix's orthogonalised update to AdamW's typical RMS (Liu et al. 2025,
    # "Muon is scalable"), so the schedule's one lr suits both optimisers.
    orth = torch.optim.Muon(
        hidden,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.muon_momentum,
        ns_steps=cfg.muon_ns_steps,
        adjust_lr_fn="match_rms_adamw",
    )
    return MuonAdamW(orth, adamw)  # type: ignore[return-value]


def lr_at(step: int, total_steps: int, cfg: TrainerConfig) -> float:
    """Linear warmup for ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr`` (or constant)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
