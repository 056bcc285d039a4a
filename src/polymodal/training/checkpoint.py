"""Crash-safe checkpoints: safetensors for tensors, JSON for everything else, never pickle.

Layout under ``<run>/checkpoints/``: ``step-000123/`` folders (``model.safetensors``, ``optim.safetensors``,
``state.json``) and a ``latest`` file naming the newest complete one. A folder is written under a temporary
name and renamed when complete; ``latest`` is replaced atomically after that, so a kill at any moment leaves
the previous checkpoint intact and pointed to. Should ``latest`` still name a folder that is gone or unreadable,
loading falls back to the newest complete one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from polymodal.errors import CheckpointError
from polymodal.storage import (
    DIR_MODE,
    FILE_MODE,
    atomic_write_text,
    fsync_dir,
    fsync_file,
    load_weights,
    space_for,
    weight_tensors,
)

log = logging.getLogger(__name__)


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able metadata."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v.detach().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for pid, extra in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(extra)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    ckpt_root: Path,
    step: int,
    model: nn.Module,
    opt: torch.optim.Optimizer | None,
    state: dict[str, Any],
    keep: int = 2,
    rng: list[torch.Tensor] | None = None,
) -> Path:
    """Write a complete checkpoint for ``step`` and point ``latest`` at it; keep the newest ``keep``.

    ``rng``: the CPU RNG state of each process of a distributed run, rank order (default: this process's).
    """
    ckpt_root.mkdir(parents=True, exist_ok=True)
    os.chmod(ckpt_root, DIR_MODE)
    final = ckpt_root / f"step-{step:07d}"
    tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=".tmp-"))
    keeps = "the last complete checkpoint, if any, is kept; resume with polymodal train --resume --run-dir " + str(
        ckpt_root.parent
    )
    try:
        with space_for(ckpt_root, f"checkpoint {final.name}", keeps):
            save_file(weight_tensors(model), str(tmp / "model.safetensors"))
            tensors, meta = optimizer_to_flat(opt) if opt is not None else ({}, None)
            for rank, r in enumerate(rng or [torch.get_rng_state()]):
                tensors["__rng__" if rank == 0 else f"__rng_{rank}__"] = r
            save_file(tensors, str(tmp / "optim.safetensors"))
            (tmp / "state.json").write_text(json.dumps({**state, "optimizer": meta}), encoding="utf-8")
            for f in tmp.iterdir():
                os.chmod(f, FILE_MODE)
                fsync_file(f)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk gets the half-written checkpoint's space back
        raise
    os.chmod(tmp, DIR_MODE)
    if final.exists():  # the same step written again (a rerun from an older checkpoint): keep it until replaced
        os.replace(final, ckpt_root / f".tmp-old-{final.name}")
    os.replace(tmp, final)
    fsync_dir(ckpt_root)
    atomic_write_text(ckpt_root / "latest", final.name + "\n")
    old = sorted(p for p in ckpt_root.glob("step-*") if p.is_dir())[:-keep]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    for p in ckpt_root.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    return final


def read_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The state JSON, optimizer tensors and model tensors of one checkpoint folder; CheckpointError if any
    part is missing or unreadable."""
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        tensors = load_file(str(folder / "optim.safetensors"))
        weights = load_file(str(folder / "model.safetensors"))
    except (OSError, ValueError, SafetensorError) as exc:
        raise CheckpointError(f"checkpoint {folder} is unreadable ({exc}); delete it and resume again") from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{folder / 'state.json'} holds a JSON {type(state).__name__}, not the trainer state; "
            "delete the checkpoint folder and resume again"
        )
    return state, tensors, weights


def load_checkpoint(
    ckpt_root: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer | None,
    rank: int = 0,
    parse: Callable[[dict[str, Any], Path], Any] | None = None,
) -> Any:
    """Restore model, optimizer and RNG (process ``rank``'s, if saved) from ``latest`` — or, if that folder is
    gone or unreadable, from the newest complete one; returns the trainer state: ``parse(state, state.json path)``
    (which raises on a state of the wrong shape before anything is restored), or the raw dict."""
    pointer = ckpt_root / "latest"
    if not pointer.is_file():
        raise CheckpointError(f"no checkpoint in {ckpt_root}; start without --resume")
    name = pointer.read_text(encoding="utf-8").strip()
    if Path(name).name != name or name in ("", ".", ".."):  # `latest` holds a folder's name, never a path
        raise CheckpointError(
            f"{pointer} points outside {ckpt_root} ({name!r}); it must name a folder in it — fix or delete it"
        )
    named = ckpt_root / name
    others = sorted((p for p in ckpt_root.glob("step-*") if p.is_dir() and p != named), reverse=True)
    first_error: CheckpointError | None = None
    for folder in [named, *others]:
        try:
            state, tensors, _ = read_checkpoint(folder)
            break
        except CheckpointError as exc:
            first_error = first_error or exc
            log.warning("%s; trying an older checkpoint", exc)
    else:
        raise first_error  # type: ignore[misc]
    if folder != named:
        log.warning("resuming from %s: the checkpoint 'latest' names is missing or incomplete", folder.name)
    saved = state.pop("optimizer", None)
    if opt is not None and not isinstance(saved, dict):
        raise CheckpointError(
            f"{folder / 'state.json'} has no optimizer state; it was not written for this run — "
            "delete the checkpoints folder and train again without --resume"
        )
    parsed = parse(state, folder / "state.json") if parse is not None else state  # checked before anything loads
    load_weights(model, folder / "model.safetensors")
    rngs = {k: tensors.pop(k) for k in [k for k in tensors if k.startswith("__rng")]}
    torch.set_rng_state(rngs.get(f"__rng_{rank}__", rngs["__rng__"]))
    if opt is not None:
        optimizer_from_flat(opt, tensors, saved)
    return parsed
