"""The few examples the explanation sections draw: spread over the classes, as one batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from polymodal.data.examples import collate
from polymodal.report.run import RunView


@dataclass
class Examples:
    """``rows`` of the split as one batch, with a caption per example (true and predicted label)."""

    rows: list[int]
    inputs: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor] | None
    targets: torch.Tensor
    captions: list[str]


def pick(view: RunView, count: int = 6) -> Examples:
    """Up to ``count`` examples: for a classification run the first example of as many different true
    classes as possible, else evenly spaced rows."""
    n = len(view.dataset)
    if view.kind == "class" and view.targets is not None:
        first = {}
        for i, y in enumerate(view.targets.tolist()):
            first.setdefault(y, i)
        rows = sorted(first.values())[:count]
    else:
        rows = np.linspace(0, n - 1, min(count, n)).round().astype(int).tolist()
    inputs, present, targets = collate([view.dataset[i] for i in rows])
    captions = [caption(view, i) for i in rows]
    return Examples(rows, inputs, present, targets, captions)


def caption(view: RunView, i: int) -> str:
    if view.kind == "class" and view.outputs is not None:
        classes = view.meta["classes"]
        true, pred = classes[int(view.targets[i])], classes[int(view.outputs[i].argmax())]
        return f"#{i} true {true} · pred {pred}"
    if view.kind == "text" and view.outputs is not None:
        return f"#{i} “{view.model.head.text(view.outputs[i])}”"
    return f"#{i}"
