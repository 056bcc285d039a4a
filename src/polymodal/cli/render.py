"""What every command shares: the consoles, logging, progress bars and result lines (the library never prints)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

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

from polymodal.training.progress import summary

if TYPE_CHECKING:
    from polymodal.kinds.base import RunKind

out = Console()
err = Console(stderr=True)
SHOWN = {"val_accuracy": "val acc", "val_loss": "val loss"}  # how progress lines name the monitored numbers


def kind_named(name: str) -> RunKind:
    """The run kind ``name`` (:func:`polymodal.kinds.base.kind_named`), imported when a command first needs one:
    the run kinds load torch, which ``polymodal --help`` does not need."""
    from polymodal.kinds.base import kind_named as named

    return named(name)


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
    (:meth:`RunKind.progress`); a ``model_start`` event with ``kind=`` switches kind (a GAN's classifier).

    When stdout is not a terminal (redirected to a file, a CI log), no bars: one line per epoch, one every
    ``every`` steps, flushed as they come, so a log shows progress while the run goes on."""

    def __init__(self, kind: RunKind | None = None, every: int = 100) -> None:
        self.kind = kind or kind_named("supervised")
        self.live, self.every, self.monitor, self.epochs, self.tenth = out.is_terminal, every, None, 0, 0
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
        self.preparing: Any = None  # the first pass's bar (files/s; the time-left column is its ETA)
        self.model = ""

    def __enter__(self) -> ProgressView:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def say(self, text: str) -> None:
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        out.file.flush()

    def __call__(self, event: str, **info: Any) -> None:
        if event in ("data", "fit_start"):
            self.monitor = info.get("monitor", self.monitor)
            line = summary(event, info)
            self.progress.console.print(line, markup=False, highlight=False) if self.live else self.say(str(line))
        elif not self.live:
            self.plain(event, info)
        elif event == "prepare":
            rate = f"{info['done'] / max(info['seconds'], 1e-9):.0f} files/s"
            if self.preparing is None:
                self.preparing = self.progress.add_task("preparing files", total=info["total"], info="")
            self.progress.update(self.preparing, completed=info["done"], info=rate)
        elif event == "model_start":
            self.model = f"[bold]{info['name']}[/] "
            if info.get("kind"):
                self.kind = kind_named(info["kind"])
        elif event == "epoch_start":
            desc = f"{self.model}epoch {info['epoch'] + 1}/{info['epochs']}"
            self.task = self.progress.add_task(desc, total=info["batches"], completed=info["done"], info="")
        elif event == "batch" and self.task is not None:
            self.progress.update(self.task, advance=1, info=f"loss {info['loss']:.3f}")
        elif event == "epoch_end" and self.task is not None:
            self.progress.update(self.task, info=self.epoch_text(info))

    def epoch_text(self, info: dict[str, Any]) -> str:
        """The kind's words for the epoch, the monitored number added when the kind leaves it out, and a star
        when the epoch is the best so far."""
        m, text = info["metrics"], self.kind.progress(info["metrics"])
        key = self.monitor
        label = SHOWN.get(key or "", (key or "").replace("_", " "))
        if key and isinstance(m.get(key), float) and label not in text:
            text += f"  {label} {m[key]:.4f}"
        return text + (" *" if info["improved"] else "")

    def plain(self, event: str, info: dict[str, Any]) -> None:
        """Line-buffered progress for a log file."""
        if event == "model_start":
            self.model = f"{info['name']}: "
            if info.get("kind"):
                self.kind = kind_named(info["kind"])
        elif event == "epoch_start":
            self.epochs = info["epochs"]
        elif event == "prepare" and (info["done"] == info["total"] or info["done"] * 10 // info["total"] > self.tenth):
            self.tenth = info["done"] * 10 // info["total"]
            rate = info["done"] / max(info["seconds"], 1e-9)
            eta = (info["total"] - info["done"]) / max(rate, 1e-9)
            self.say(f"preparing files: {info['done']}/{info['total']} ({rate:.0f} files/s, {eta:.0f} s left)")
        elif event == "batch" and self.every and info["step"] % self.every == 0:
            self.say(f"{self.model}step {info['step']}: loss {info['loss']:.4f}")
        elif event == "epoch_end":
            m = info["metrics"]
            self.say(f"{self.model}epoch {m['epoch']}/{self.epochs}: {self.epoch_text(info)} ({m['seconds']:.1f} s)")


def confusion(metrics: dict[str, Any]) -> Table:
    names = list(metrics["per_class"])
    cm = Table(title="Confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for n in names:
        cm.add_column(n, justify="right")
    for n, row in zip(names, metrics["confusion_matrix"], strict=True):
        cm.add_row(n, *[str(v) for v in row])
    return cm
