"""The fusion benchmark's robustness / complexity table, when one exists for this recipe: a
``benchmark.json`` in the run directory or its parent, or the folder given with ``--benchmark``."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

from polymodal.report.page import Markup, Section, esc, note, table
from polymodal.report.run import RunView
from polymodal.storage import read_json


def find(view: RunView, where: Path | None) -> Path | None:
    candidates = [where] if where is not None else [view.run_dir, view.run_dir.parent]
    for folder in candidates:
        if folder is not None and (folder / "benchmark.json").is_file():
            return folder
    return None


def section(view: RunView, where: Path | None = None) -> Section | None:
    if view.kind in ("lm", "gan"):
        return None
    from polymodal import benchmark as bench

    title = "Fusion benchmark: robustness and complexity"
    folder = find(view, where)
    if folder is None:
        return Section(
            "benchmark",
            title,
            note(
                "No benchmark found (benchmark.json in the run directory or its parent). Make one with "
                "`polymodal benchmark <recipe> --out DIR` and pass `--benchmark DIR` to `polymodal report`."
            ),
        )
    rows = read_json(folder / "benchmark.json")
    if not rows:
        return Section("benchmark", title, note(f"{folder}/benchmark.json holds no finished runs yet."))
    summary = bench.summarise(rows)
    inputs = sorted({k[len("without_") :] for s in summary for k in s if k.startswith("without_")})
    noisy = bench.noise_inputs(summary)
    header = ["model", "test acc (mean ± std)", "params", "s/epoch", "latency ms", "peak RSS MB"]
    header += [f"without {n}" for n in inputs] + [f"{n} noise 0 / .25 / .5 / 1" for n in noisy]
    fusion = (view.recipe.get("fusion") or {}).get("name")
    out = []
    for s in summary:
        name = Markup(f"<b>{esc(s['model'])}</b> ◀ this run" if s["model"] == fusion else esc(s["model"]))
        line = [
            name,
            f"{s['accuracy']:.4f} ± {s['accuracy_std']:.4f}",
            int(s["parameters"]),
            s["seconds_per_epoch"],
            s["latency_ms"],
            round(s["peak_rss_mb"]),
        ]
        line += [s.get(f"without_{n}", float("nan")) for n in inputs]
        for n in noisy:
            curve = [v for k, v in s.items() if k.startswith(f"noise_{n}_")]
            line.append(" / ".join(f"{v:.3f}" for v in curve) if curve else "–")
        out.append(line)
    link = os.path.relpath(folder / "benchmark.md", view.run_dir)
    body = note(f"{len(rows)} runs, {summary[0]['seeds']} seed(s) per model, data: {rows[0].get('data', '?')}.")
    body += f'<p class="note">Source: <a href="{esc(link)}">{esc(folder / "benchmark.md")}</a></p>'
    body += table(header, out)
    if noisy:
        buf = io.BytesIO()
        bench.plot(summary, buf)  # type: ignore[arg-type]  (savefig takes a file object as well)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        body += (
            f'<figure><img alt="robustness" src="data:image/png;base64,{data}">'
            "<figcaption>test accuracy against the corruption severity of one input</figcaption></figure>"
        )
    return Section("benchmark", title, body)
