"""Optional TensorBoard logging (``trainer.tensorboard: true``): scalars into ``<run>/tb``.

Per step: training loss and learning rate; per epoch: every number of the ``metrics.jsonl`` row (train
and validation loss, validation accuracy / macro F1, seconds). A resumed run purges events after its
checkpoint's step, so the curves show each step once. Needs the ``tensorboard`` package
(``pip install 'polymodal[tensorboard]'``); view with ``tensorboard --logdir runs/NAME/tb``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polymodal.errors import ConfigError


class TensorBoardLog:
    """A trainer callback that writes the trainer's ``batch`` and ``epoch_end`` events to a ``SummaryWriter``
    and passes every event on to ``then`` (the progress display).

    Args:
        log_dir: Event-file folder (``run_dir/tb``).
        then: The callback to pass events on to.
        purge_step: On resume, the step of the checkpoint: events logged after it by the interrupted run
            are dropped.
    """

    def __init__(self, log_dir: Path, then: Callable[..., None], purge_step: int | None = None) -> None:
        self.check()
        from torch.utils.tensorboard import SummaryWriter

        self.then = then
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    @staticmethod
    def check() -> None:
        """Raise a clear error when the tensorboard package is not installed."""
        try:
            import tensorboard  # noqa: F401
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise ConfigError(
                "trainer.tensorboard is on but the tensorboard package is missing; "
                "pip install 'polymodal[tensorboard]' (or set trainer.tensorboard: false)"
            ) from None

    def __call__(self, event: str, **info: Any) -> None:
        if event == "batch":
            self.step(info["step"], info["loss"], info["lr"])
        elif event == "epoch_end":
            self.epoch(info["metrics"]["step"], info["metrics"])
        self.then(event, **info)

    def step(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/batch_loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def epoch(self, step: int, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)):
                group = "val" if key.startswith("val_") else "epoch"
                self.writer.add_scalar(f"{group}/{key.removeprefix('val_')}", value, step)
        self.writer.flush()

    def close(self, hparams: dict[str, Any] | None = None, best: dict[str, Any] | None = None) -> None:
        """Record the run's settings with its best validation numbers (TensorBoard's HPARAMS tab), then close."""
        if hparams:
            scores = {f"best/{k}": float(v) for k, v in (best or {}).items() if isinstance(v, (int, float))}
            self.writer.add_hparams(hparams, scores, run_name=".")
        self.writer.close()
