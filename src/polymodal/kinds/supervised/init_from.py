"""``init_from``: start a downstream recipe's encoders from a finished pretraining run.

The pretraining model keeps each encoder under ``encoders.<input>.`` exactly as
:class:`polymodal.model.MultimodalModel` does, so loading is a rename of that prefix. Every tensor of the
downstream encoder must come from the run with the same shape, and the run's encoder must have no tensor
left over — anything else is a different architecture and stops with a one-line error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from polymodal.config import InitFrom, Recipe
from polymodal.errors import CheckpointError
from polymodal.runs import RunDir


def pretrained_meta(spec: InitFrom) -> dict[str, Any]:
    """meta.json of the run ``spec.run``, checked to be a finished ``kind: pretrain`` run."""
    run = RunDir(spec.run)
    for needed in ("meta.json", "transforms.json", "weights.safetensors"):
        if not (run / needed).is_file():
            raise CheckpointError(f"init_from: {run.path} has no {needed}; give a finished pretraining run directory")
    if run.kind != "pretrain":
        raise CheckpointError(f"init_from: {run.path} is not a pretraining run (kind: pretrain); train one first")
    return run.fields({"inputs": dict})


def encoder_map(spec: InitFrom, recipe: Recipe, meta: dict[str, Any]) -> dict[str, str]:
    """``{downstream input: pretrained input}``: ``spec.encoders``, or every input name the two share."""
    ours = {s.name: s.modality for s in recipe.inputs}
    theirs = meta["inputs"]
    mapping = dict(spec.encoders) or {k: k for k in ours if k in theirs}
    if not mapping:
        raise CheckpointError(
            f"init_from: no input of this recipe ({', '.join(ours)}) is in {spec.run} ({', '.join(theirs)}); "
            "map them with init_from.encoders: {our_input: their_input}"
        )
    for down, up in mapping.items():
        if down not in ours:
            raise CheckpointError(f"init_from.encoders: this recipe has no input '{down}' (inputs: {', '.join(ours)})")
        if up not in theirs:
            raise CheckpointError(f"init_from.encoders: {spec.run} has no input '{up}' (inputs: {', '.join(theirs)})")
        if theirs[up]["modality"] != ours[down]:
            raise CheckpointError(
                f"init_from: input '{down}' is {ours[down]} but pretrained '{up}' is {theirs[up]['modality']}"
            )
    return mapping


def pretrained_transforms(spec: InitFrom, recipe: Recipe) -> dict[str, Any]:
    """The pretraining run's fitted transform states, keyed by downstream input (vocabularies must match)."""
    mapping = encoder_map(spec, recipe, pretrained_meta(spec))
    states = RunDir(spec.run).read_json("transforms.json")
    return {down: states[up] for down, up in mapping.items() if up in states}


def init_encoders(encoders: nn.ModuleDict, spec: InitFrom, recipe: Recipe) -> dict[str, str]:
    """Copy the pretrained encoders into ``encoders`` (a model's ``encoders`` ModuleDict); returns the mapping.

    Raises:
        CheckpointError: the run is not a pretraining run, an input is unknown, or a tensor is missing, left
            over or shaped differently (the encoder settings differ from the pretraining recipe's).
    """
    meta = pretrained_meta(spec)
    mapping = encoder_map(spec, recipe, meta)
    path = Path(spec.run) / "weights.safetensors"
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"init_from: cannot read {path}: {exc}") from None
    for down, up in mapping.items():
        prefix = f"encoders.{up}."
        theirs = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        own = encoders[down].state_dict()
        missing, extra = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
        hint = f"use the encoder settings of {spec.run}/recipe.yaml for input '{down}'"
        if missing or extra:
            raise CheckpointError(
                f"init_from: pretrained encoder '{up}' does not fit input '{down}' "
                f"(missing {missing[:3]}, unexpected {extra[:3]}); {hint}"
            )
        for k, v in own.items():
            if tuple(theirs[k].shape) != tuple(v.shape):
                raise CheckpointError(
                    f"init_from: {prefix}{k} has shape {tuple(theirs[k].shape)} in the run but {tuple(v.shape)} "
                    f"here; {hint}"
                )
        encoders[down].load_state_dict(theirs, strict=True)
    return mapping
