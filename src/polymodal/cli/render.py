"""What every command shares: the consoles, logging, progress bars and result lines (the library never prints)."""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from polymodal.kinds.base import RunKind, kind_named

out = Console()
err = Console(stderr=True)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def lines(text: list[str]) -> None:
    """Result lines as plain text (no markup: recipe values and file names may hold brackets)."""
    for line in text:
        out.print(line, markup=False, highlight=False, soft_wrap=True)


class ProgressView:
    """Trainer events as one rich progress bar per epoch, each epoch's row worded by the run's kind
    (:meth:`RunKind.progress`); a ``model_start`` event with ``kind=`` switches kind (a GAN's classifier)."""

    def __init__(self, kind: RunKind | None = None) -> None:
        self.kind = kind or kind_named("supervised")
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=out,
        )
        self.task: Any = None
        self.model = ""

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: str, **info: Any) -> None:
        if event == "model_start":
            self.model = f"[bold]{info['name']}[/] "
            if info.get("kind"):
                self.kind = kind_named(info["kind"])
        elif event == "epoch_start":
            desc = f"{self.model}epoch {info['epoch'] + 1}/{info['epochs']}"
            self.task = self.progress.add_task(desc, total=info["batches"], completed=info["done"], info="")
        elif event == "batch" and self.task is not None:
            self.progress.update(self.task, advance=1, info=f"loss {info['loss']:.3f}")
        elif event == "epoch_end" and self.task is not None:
            mark = " *" if info["improved"] else ""
            self.progress.update(self.task, info=self.kind.progress(info["metrics"]) + mark)


def confusion(metrics: dict[str, Any]) -> Table:
    names = list(metrics["per_class"])
    cm = Table(title="Confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for n in names:
        cm.add_column(n, justify="right")
    for n, row in zip(names, metrics["confusion_matrix"], strict=True):
        cm.add_row(n, *[str(v) for v in row])
    return cm
