"""``polymodal benchmark``: every fusion (and each input alone) trained over several seeds on one recipe.

Each (model, seed) run trains in a fresh process, so its peak memory is its own, and then reports: test
accuracy, parameters, training time per epoch and samples/s, inference latency for one example, peak
resident memory, test accuracy with each input missing, and test accuracy as each input is corrupted at
increasing severity (``Transform.corrupt``: pixel noise for images, white noise at falling SNR for audio,
dropped timesteps for series, typos for text). Results: ``benchmark.json`` (every run), ``benchmark.csv``
and ``benchmark.md`` (mean ± std over seeds) and ``robustness.png``.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import csv
import json
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from polymodal.config import Recipe, parse_recipe, recipe_to_dict
from polymodal.data.examples import collate
from polymodal.errors import ConfigError
from polymodal.kinds.base import train
from polymodal.registry import FUSIONS
from polymodal.training.evaluator import Evaluator, modality_ablation

LEVELS = (0.0, 0.25, 0.5, 1.0)
# Variants of one registered fusion worth a row of their own in "all".
VARIANTS = ("late:combine=vote", "late:combine=learned", "transformer:bottleneck=4")


def fusion_specs(names: str) -> list[str]:
    """``all`` -> every registered fusion plus :data:`VARIANTS`; else the comma-separated list, checked."""

    if names.strip() == "all":
        return [*FUSIONS.names(), *VARIANTS]
    specs = [n.strip() for n in names.split(",") if n.strip()]
    for spec in specs:
        FUSIONS.get(spec.split(":")[0])  # unknown names fail here, with suggestions
    return specs


def parse_spec(spec: str) -> dict[str, Any]:
    """``late:combine=vote`` -> ``{"name": "late", "combine": "vote"}``."""
    name, *pairs = spec.split(":")
    out: dict[str, Any] = {"name": name}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"fusion '{spec}': write options as name:key=value, e.g. late:combine=vote")
        out[key] = yaml.safe_load(value)
    return out


def variants(recipe: Recipe, specs: list[str], unimodal: bool) -> list[tuple[str, dict[str, Any]]]:
    """(label, recipe dict) per model: each input alone (concat over one input), then each fusion."""
    base = recipe_to_dict(recipe)
    out = []
    if unimodal and len(recipe.inputs) > 1:
        for spec in recipe.inputs:
            one = copy.deepcopy(base)
            one["inputs"] = [i for i in one["inputs"] if i["name"] == spec.name]
            one["fusion"], one["modality_dropout"] = {"name": "concat"}, 0.0
            out.append((f"{spec.name} only", one))
    for spec in specs:
        fused = copy.deepcopy(base)
        fused["fusion"] = parse_spec(spec)
        out.append((spec, fused))
    return out


def latency_ms(model: torch.nn.Module, ds: Any, n: int = 50) -> float:
    """Median time of one forward pass for a single example (batch 1, no grad), over ``n`` test examples."""
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(min(n + 5, len(ds))):
            inputs, present, _ = collate([ds[i]])
            t0 = time.perf_counter()
            model(inputs, present)
            if i >= 5:  # the first calls warm up allocator and kernels
                times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def run_one(raw: dict[str, Any], run_dir: str, levels: tuple[float, ...]) -> dict[str, Any]:
    """Train one model (in a worker process) and measure it; returns one result row."""
    recipe = parse_recipe(raw)
    res = train(recipe, run_dir)
    assert res.model is not None and res.data is not None and res.fit is not None
    model, test = res.model, res.data.splits["test"]
    evaluator = Evaluator(model, max(recipe.trainer.batch_size, 128))
    names = list(test.columns)
    noise = {
        name: {str(lv): evaluator.evaluate(test.view(corruption=(name, lv, raw["seed"])))["accuracy"] for lv in levels}
        for name in names
    }
    fit = res.fit
    return {
        "accuracy": res.test["accuracy"],
        "macro_f1": res.test["macro_f1"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": fit.epochs_run,
        "seconds_per_epoch": fit.step_seconds / max(1, fit.epochs_run),
        "samples_per_second": fit.samples / max(fit.step_seconds, 1e-9),
        "latency_ms": latency_ms(model, test),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "missing": modality_ablation(evaluator, test),
        "noise": noise,
        "data": res.data_source,
    }


def in_fresh_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per model: accuracy mean ± std over seeds, the other figures averaged."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        runs = [r for r in rows if r["model"] == model]
        acc, acc_sd = mean_std([r["accuracy"] for r in runs])
        line: dict[str, Any] = {"model": model, "seeds": len(runs), "accuracy": acc, "accuracy_std": acc_sd}
        for key in ("macro_f1", "parameters", "seconds_per_epoch", "samples_per_second", "latency_ms", "peak_rss_mb"):
            line[key] = statistics.fmean(r[key] for r in runs)
        for name in runs[0]["missing"]:
            line[f"without_{name}"] = statistics.fmean(r["missing"][name] for r in runs)
        for name, curve in runs[0]["noise"].items():
            for lv in curve:
                line[f"noise_{name}_{lv}"] = statistics.fmean(r["noise"][name][lv] for r in runs)
        out.append(line)
    return out


def markdown(summary: list[dict[str, Any]], command: str, data: str) -> str:
    """The results as two Markdown tables: performance and cost, then robustness."""
    inputs = sorted({k[len("without_") :] for s in summary for k in s if k.startswith("without_")})
    head = ["model", "test acc (mean ± std)", "params", "s/epoch", "train samples/s", "latency ms", "peak RSS MB"]
    head += [f"acc without {n}" for n in inputs]
    lines = [f"`{command}`", "", f"Data: {data}. Seeds per model: {summary[0]['seeds']}.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        cells = [
            s["model"],
            f"{s['accuracy']:.4f} ± {s['accuracy_std']:.4f}",
            f"{s['parameters']:,.0f}",
            f"{s['seconds_per_epoch']:.2f}",
            f"{s['samples_per_second']:,.0f}",
            f"{s['latency_ms']:.2f}",
            f"{s['peak_rss_mb']:,.0f}",
        ]
        cells += [f"{s[f'without_{n}']:.4f}" if f"without_{n}" in s else "–" for n in inputs]
        lines.append("| " + " | ".join(cells) + " |")
    names = noise_inputs(summary)
    if names:
        lines += ["", "Test accuracy with one input corrupted at severity 0 / 0.25 / 0.5 / 1 (see `corrupt`):", ""]
        lines += ["| model | " + " | ".join(f"{n} noise" for n in names) + " |", "|" + "---|" * (len(names) + 1)]
        for s in summary:
            cells = []
            for n in names:
                curve = [s[k] for k in s if k.startswith(f"noise_{n}_")]
                cells.append(" / ".join(f"{v:.3f}" for v in curve) if curve else "–")
            lines.append(f"| {s['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def noise_inputs(summary: list[dict[str, Any]]) -> list[str]:
    """Input names with robustness curves, from keys ``noise_<input>_<level>`` (input names may hold ``_``)."""
    keys = (k for s in summary for k in s if k.startswith("noise_"))
    return list(dict.fromkeys(k[len("noise_") :].rsplit("_", 1)[0] for k in keys))


def write_outputs(summary: list[dict[str, Any]], out: Path, command: str, data: str) -> None:
    """benchmark.csv (every column any model has; unimodal rows leave the others' columns empty),
    benchmark.md and robustness.png."""
    columns = list(dict.fromkeys(k for s in summary for k in s))
    with open(out / "benchmark.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(summary)
    (out / "benchmark.md").write_text(markdown(summary, command, data), encoding="utf-8")
    plot(summary, out / "robustness.png")


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    """Accuracy against corruption severity, one panel per input, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = noise_inputs(summary)
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names) + 2.5, 4.2), squeeze=False)
    colors = plt.get_cmap("tab20").colors
    for ax, name in zip(axes[0], names, strict=True):
        for i, s in enumerate(summary):
            pts = [(float(k.rsplit("_", 1)[1]), v) for k, v in s.items() if k.startswith(f"noise_{name}_")]
            if pts:
                style = "--" if s["model"].endswith(" only") else "-"  # unimodal baselines dashed
                ax.plot(*zip(*pts, strict=True), style, marker="o", color=colors[i % 20], label=s["model"])
        ax.set(title=f"{name} corrupted", xlabel="severity", ylabel="test accuracy")
        ax.grid(alpha=0.3)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_lines()}
    fig.legend(handles.values(), handles.keys(), loc="center right", fontsize=7)
    fig.tight_layout(rect=(0, 0, 1 - 2.4 / fig.get_figwidth(), 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def benchmark(
    recipe: Recipe,
    fusions: str = "all",
    seeds: int = 3,
    out_dir: str | Path = "benchmark",
    unimodal: bool = True,
    levels: tuple[float, ...] = LEVELS,
    command: str = "",
    callback: Callable[..., None] | None = None,
) -> list[dict[str, Any]]:
    """Run the benchmark and write its files into ``out_dir``; returns the summary lines.

    Finished runs are kept in ``benchmark.json`` as they complete, and a rerun with the same ``out_dir``
    skips them, so an interrupted benchmark continues where it stopped.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = out / "benchmark.json"
    rows: list[dict[str, Any]] = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else []
    done = {(r["model"], r["seed"]) for r in rows}
    todo = [
        (label, raw, recipe.seed + k)
        for label, raw in variants(recipe, fusion_specs(fusions), unimodal)
        for k in range(seeds)
    ]
    for i, (label, raw, seed) in enumerate(todo):
        if (label, seed) in done:
            continue
        if callback:
            callback("model_start", name=f"{label} seed {seed} ({i + 1}/{len(todo)})")
        raw = {**raw, "seed": seed, "name": f"{recipe.name}-{label.replace(':', '-').replace('=', '-')}-s{seed}"}
        row = in_fresh_process(run_one, raw, str(out / "runs" / raw["name"]), tuple(levels))
        rows.append({"model": label, "seed": seed, **row})
        record.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    order = {(label, seed): i for i, (label, _, seed) in enumerate(todo)}
    # In the order of the command's model list, whatever order the runs were recorded in.
    summary = summarise(
        sorted((r for r in rows if (r["model"], r["seed"]) in order), key=lambda r: order[r["model"], r["seed"]])
    )
    write_outputs(summary, out, command, rows[0]["data"])
    return summary
