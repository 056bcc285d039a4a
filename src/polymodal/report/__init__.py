"""The evaluation report: one self-contained HTML file per run (``report.html`` in the run directory).

Sections, one module each: learning curves (:mod:`.curves`), classification (:mod:`.classification`),
multi-label / multi-task heads (:mod:`.heads`), generated text (:mod:`.generation`), attention maps
(:mod:`.attention`), per-modality contribution (:mod:`.contribution`), the fusion benchmark
(:mod:`.benchmark`), and for GAN runs the sample grids and quality figure (:mod:`.gan`). A section that
does not apply to the run is left out; one that applies but lacks what it needs (no attention layers, no
benchmark, data not available) says so.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import torch

from polymodal.report import (
    attention,
    benchmark,
    classification,
    contribution,
    curves,
    final,
    gan,
    generation,
    heads,
)
from polymodal.report.header import cards, pipeline, subtitle
from polymodal.report.page import Section, render_page
from polymodal.report.run import RunView, load_run
from polymodal.storage import atomic_write_text

log = logging.getLogger(__name__)

SECTIONS = (curves, final, classification, heads, generation, gan, attention, contribution)


def build_report(
    run_dir: str | Path,
    split: str = "test",
    benchmark_dir: str | Path | None = None,
    out: str | Path | None = None,
    table: str | Path | None = None,
) -> Path:
    """Evaluate a finished run on ``split`` and write its HTML report.

    Args:
        run_dir: A finished run directory (multimodal or language model).
        split: train, val or test (language models: always their validation text).
        benchmark_dir: A ``polymodal benchmark`` output folder to include (default: looked for in the run
            directory and its parent).
        out: Where to write (default ``run_dir/report.html``).
        table: Evaluate on every row of this manifest instead of a split of the run's own data.

    Returns:
        The path of the written report.
    """
    torch.manual_seed(0)  # sampled LM text and any random choice in a section are the same on every call
    view = load_run(run_dir, split, table)
    return write_report(view, benchmark_dir, out)


def write_report(view: RunView, benchmark_dir: str | Path | None = None, out: str | Path | None = None) -> Path:
    sections: list[Section] = []
    for module in SECTIONS:
        with torch.no_grad():
            found = module.section(view)
        if found is not None:
            sections.append(found)
    bench = benchmark.section(view, Path(benchmark_dir) if benchmark_dir is not None else None)
    if bench is not None:
        sections.append(bench)
    env = view.meta.get("versions", {})
    git = (view.meta.get("git") or {}).get("commit", "")
    footer = (
        f"polymodal {env.get('polymodal', '')} · torch {env.get('torch', '')}"
        + (f" · git {git[:10]}" if git else "")
        + f" · run {view.run_dir} · report written {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}"
    )
    page = render_page(view.name, subtitle(view), pipeline(view), cards(view), sections, footer)
    path = Path(out) if out is not None else view.run_dir / "report.html"
    atomic_write_text(path, page)  # 0644: a report is for sharing
    log.info("report written to %s", path)
    return path


__all__ = ["build_report", "write_report", "load_run", "RunView"]
