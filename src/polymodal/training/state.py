"""The training loop's position and bookkeeping, saved as a checkpoint's ``state.json``."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polymodal.errors import CheckpointError

# The number types a JSON file gives back for each field type (an int is a valid float).
_JSON_TYPES: dict[Any, tuple[type, ...]] = {int: (int,), float: (int, float), bool: (bool,), dict: (dict,)}


@dataclass
class LoopState:
    """Where a run is and what it has kept.

    Attributes:
        epoch: Finished epochs.
        batch: Steps taken in the current (unfinished) epoch.
        step: Steps taken in all.
        best: Best monitored score so far, signed so that higher is better.
        best_epoch: The epoch (1-based) whose weights are kept; 0 before the first.
        bad_epochs: Epochs since the monitored score last improved (early stopping).
        best_val: The scalar validation metrics of ``best_epoch``.
        stopped: Early stopping ended the run (its ``epoch`` is the last one it trained).
        seconds: Wall time of training so far (carried across resumes).
        step_seconds: Time inside training steps only (including fetching their batch).
        data_seconds: The part of ``step_seconds`` spent waiting for the next batch (loading workers that keep
            up make it near zero; a GPU left waiting for data shows here).
        samples: Examples processed by training steps, over all processes.
        loss_sum: Training loss summed over the examples of the current epoch so far, over all processes.
        seen: Examples behind ``loss_sum``.
        world_size: Processes that wrote the state (a mid-epoch state resumes only with as many).
        extra: The training step's own state (e.g. the GAN's critic step count and running sums).
    """

    epoch: int = 0
    batch: int = 0
    step: int = 0
    best: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_val: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False
    seconds: float = 0.0
    step_seconds: float = 0.0
    data_seconds: float = 0.0
    samples: int = 0
    loss_sum: float = 0.0
    seen: int = 0
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED: typing.ClassVar[tuple[str, ...]] = ("epoch", "batch", "step")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> LoopState:
        """Validate a checkpoint's state: every required key present and every known key of the right type; a
        state is one CheckpointError naming the file otherwise. Keys this version does not know are kept in
        ``extra`` (states written before the state had its own type)."""
        for key in cls.REQUIRED:
            if key not in data:
                raise CheckpointError(
                    f"{where} has no '{key}'; the checkpoint is damaged — delete its folder and resume again"
                )
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        extra = dict(data.get("extra") or {}) if isinstance(data.get("extra"), dict) else {}
        for key, value in data.items():
            if key not in known:
                extra[key] = value
                continue
            tp = typing.get_origin(hints[key]) or hints[key]
            allowed = _JSON_TYPES.get(tp, (tp,))
            if not isinstance(value, allowed) or (tp is not bool and isinstance(value, bool)):
                raise CheckpointError(
                    f"{where}: '{key}' is {type(value).__name__} {value!r}, not {tp.__name__}; the checkpoint is "
                    "damaged — delete its folder and resume again"
                )
            kwargs[key] = float(value) if tp is float else value
        kwargs["extra"] = extra
        return cls(**kwargs)
