"""Progress of a run as log lines, for the Python API (the CLI draws bars instead): pass ``log_progress`` as a
training callback and turn on ``logging`` (``logging.basicConfig(level=logging.INFO)``) to see one line when the
data is ready, one when training starts, and one per epoch."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("polymodal.progress")


def summary(event: str, info: dict[str, Any]) -> str | None:
    """The one line an event deserves (shared by the CLI's plain output), or None for per-step events."""
    if event == "data":
        sizes = " / ".join(f"{v:,} {k}" for k, v in info["sizes"].items())
        return f"data: {info['source']}: {sizes}"
    if event == "fit_start":
        where = f"{info['processes']} processes" if info["processes"] > 1 else info["device"]
        resumed = f", resuming after epoch {info['start_epoch']}" if info["start_epoch"] else ""
        monitor = f"; keeping the best {info['monitor']}" if info["monitor"] else "; keeping the latest weights"
        return f"training {info['parameters']:,} parameters on {where} for {info['epochs']} epochs{resumed}{monitor}"
    if event == "epoch_end":
        m = info["metrics"]
        shown = "  ".join(
            f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float) and k not in ("seconds", "lr", "step")
        )
        return f"epoch {m['epoch']}: {shown}{' *' if info['improved'] else ''} ({m['seconds']:.1f} s)"
    return None


def log_progress(event: str, **info: Any) -> None:
    """A training callback that logs :func:`summary`'s lines at INFO level."""
    line = summary(event, info)
    if line is not None:
        log.info(line)
