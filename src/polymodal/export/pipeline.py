"""``export_run``: a finished run's model -> (pruned) -> ONNX -> (int8), each step measured.

Every variant is measured the same way: serialized size (and zlib-compressed size), median batch-1 latency
on one test example with the same thread count for PyTorch and onnxruntime, and the head's metrics over the
run's test split (the split ``metrics.json`` reports). The ONNX graph's logits are compared with those of
the PyTorch model it was exported from, over that split.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes

from polymodal.data.examples import collate
from polymodal.errors import ExportError, ExportRefusal
from polymodal.export.graph import GraphModel
from polymodal.export.measure import latency_ms, outputs, positional, sizes
from polymodal.export.onnx import PRESENT, OnnxModel, export_onnx, require
from polymodal.export.prune import prune_global, sparsity
from polymodal.export.quantize import quantize_onnx, quantize_torch
from polymodal.kinds.base import require_verb
from polymodal.kinds.supervised.predictor import RunPredictor
from polymodal.runs import RunDir
from polymodal.storage import atomic_write_text, weight_tensors

FORMATS = ("onnx",)
QUANTIZE = ("int8",)
TOLERANCE = 1e-4  # largest |ONNX logit − PyTorch logit| accepted as the same model (fp32 reassociation is ~1e-7)


@dataclass
class ExportReport:
    """What ``export_run`` wrote and measured."""

    out: Path  # the exported model
    sidecar: Path  # inputs, outputs and classes, for running the file without polymodal
    report_path: Path  # the measurements below as JSON
    rows: list[dict[str, Any]]  # one per variant: size, latency, accuracy (first row: the run's fp32 model)
    parity: dict[str, Any]  # max |ONNX − PyTorch| over the compared examples, and whether it is within TOLERANCE
    split: str | None  # the split accuracy was measured on (None with evaluate=False)


def check_options(fmt: str, quantize: str | None, prune: float | None) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format '{fmt}'; use one of: {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ExportError(f"unknown quantisation '{quantize}'; use one of: {', '.join(QUANTIZE)}")
    if prune is not None and not 0 < prune < 1:
        raise ExportError(
            f"--prune takes the fraction of weights to zero, strictly between 0 and 1 (e.g. 0.5); got {prune}"
        )


def default_name(quantize: str | None, prune: float | None) -> str:
    parts = ["model"] + ([f"pruned{prune * 100:g}"] if prune else []) + ([quantize] if quantize else [])
    return "-".join(parts) + ".onnx"


def load_exportable(run: Path) -> RunPredictor:
    """The run's predictor, or a one-line reason why its model cannot be one ONNX graph."""
    rundir = RunDir(run)
    require_verb(rundir, "export", ExportRefusal)  # a language model's or GAN's refusal: what export is for
    predictor = RunPredictor(rundir, device="cpu")  # ONNX export traces on the CPU; the file runs anywhere
    if hasattr(predictor.model.head, "reduce"):
        raise ExportError(
            f"{run} has a caption head: its text comes from a greedy decode loop with a KV cache, which export "
            "does not cover; export a classification, multi-label or multi-task run"
        )
    return predictor


def placeholder(predictor: RunPredictor, name: str, batch: int) -> torch.Tensor:
    dtype = getattr(torch, predictor.meta.get("in_dtypes", {}).get(name, "float32"))
    return torch.zeros(batch, *predictor.meta["in_shapes"][name], dtype=dtype)


def export_run(
    run_dir: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    quantize: str | None = None,
    prune: float | None = None,
    evaluate: bool = True,
    threads: int = 1,
    repeats: int = 100,
) -> ExportReport:
    """Export a finished run's model, optionally pruned and/or int8-quantised, and measure each step.

    Args:
        run_dir: A finished classification / multi-label / multi-task run.
        fmt: ``onnx``.
        out: Output file (default ``RUN/export/model[-prunedP][-int8].onnx``; a folder gets that name inside).
        quantize: ``int8``: dynamic quantisation (PyTorch: Linear/LSTM/GRU; ONNX: MatMul/Gemm/LSTM/GRU).
        prune: Fraction 0 < p < 1 of the weights to zero by global L1 magnitude before export.
        evaluate: Measure accuracy and parity on the run's test split (needs its data); without it, latency
            and parity use placeholder inputs of the run's shapes.
        threads: Torch and onnxruntime intra-op threads while measuring.
        repeats: Timed batch-1 calls per variant (after 10 warm-up calls).

    Returns:
        An :class:`ExportReport`; the model, ``<out>.json`` (sidecar) and ``<out>.report.json`` are written.
    """
    check_options(fmt, quantize, prune)
    require("onnx", "onnxscript", "onnxruntime")
    run = Path(run_dir)
    predictor = load_exportable(run)
    base = predictor.model.eval()
    names = list(predictor.inputs)
    uses_present = len(names) > 1
    target = Path(out) if out is not None else run / "export" / default_name(quantize, prune)
    if target.is_dir():
        target = target / default_name(quantize, prune)
    target.parent.mkdir(parents=True, exist_ok=True)

    ds, split = None, None
    if evaluate:
        ds, split = predictor.data().splits["test"], "test"
        inputs, present, _ = collate([ds[0]])
        one = positional(inputs, present, names, uses_present)
    else:
        one = positional({k: placeholder(predictor, k, 1) for k in names}, None, names, uses_present)
    two = tuple(torch.cat([x, x]) for x in one)  # the tracing batch: B = 2 keeps the batch axis symbolic

    def measure(variant: str, forward: Any, blob: bytes, file: str | None, **extra: Any) -> tuple[dict, np.ndarray]:
        row: dict[str, Any] = {"variant": variant, "file": file, **sizes(blob)}
        if ds is not None:
            logits, y = outputs(forward, ds, names, uses_present)
            metrics = base.metrics(logits, y)
            row["accuracy"] = metrics.get("accuracy")
            row["macro_f1"] = metrics.get("macro_f1")
        else:
            with torch.no_grad():
                out_ = forward(*two)
            logits = np.asarray(out_.numpy() if isinstance(out_, torch.Tensor) else out_, dtype=np.float32)
        row["latency_ms"] = round(latency_ms(forward, one, repeats), 4)  # after the pass above: caches are warm
        return {**row, **extra}, logits

    def torch_row(variant: str, model: torch.nn.Module, **extra: Any) -> tuple[dict, np.ndarray]:
        graph = GraphModel(model, names, uses_present).eval()
        try:
            blob = safetensors_bytes(weight_tensors(model))
            serialized = "safetensors"
        except (TypeError, ValueError, AttributeError):  # quantised modules pack their weights; no safetensors form
            buf = io.BytesIO()
            torch.save(model.state_dict(), buf)
            blob, serialized = buf.getvalue(), "torch.save"
        return measure(variant, graph, blob, None, serialized=serialized, **extra)

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows: list[dict[str, Any]] = []
    try:
        row, source_logits = torch_row("pytorch fp32", base)  # source_logits: of the model that gets exported
        rows.append({**row, "file": str(run / "weights.safetensors")})
        model, label = base, "fp32"
        if prune:
            model, label = prune_global(base, prune), f"pruned {prune * 100:g}%"
            zeros, total = sparsity(model)
            row, source_logits = torch_row(f"pytorch {label}", model, sparsity=round(zeros / total, 6))
            rows.append(row)
        int8 = "int8" if label == "fp32" else f"{label} + int8"
        if quantize:
            qmodel = quantize_torch(model)
            if qmodel is not None:
                rows.append(torch_row(f"pytorch {int8}", qmodel)[0])
        graph_names = names + ([PRESENT] if uses_present else [])
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
            fp32_path = Path(tmp) / "fp32.onnx" if quantize else target
            card = describe(predictor, target, names, uses_present, source_logits.shape[1], quantize, prune)
            export_onnx(GraphModel(model, names, uses_present).eval(), two, fp32_path, {"polymodal": json.dumps(card)})
            onnx_fp32 = OnnxModel(fp32_path, graph_names, threads)
            row, onnx_logits = measure(f"onnx {label}", onnx_fp32, fp32_path.read_bytes(), None)
            rows.append({**row, "file": None if quantize else str(target)})
            diff = float(np.abs(onnx_logits - source_logits).max())
            parity = {
                "max_abs_diff": diff,
                "examples": len(onnx_logits),
                "tolerance": TOLERANCE,
                "ok": diff <= TOLERANCE,
            }
            if quantize:
                qtmp = Path(tmp) / "int8.onnx"
                quantize_onnx(fp32_path, qtmp)
                os.replace(qtmp, target)
                onnx_int8 = OnnxModel(target, graph_names, threads)
                row, q_logits = measure(f"onnx {int8}", onnx_int8, target.read_bytes(), str(target))
                rows.append({**row, "max_abs_diff_vs_fp32_onnx": float(np.abs(q_logits - onnx_logits).max())})
    finally:
        torch.set_num_threads(old_threads)

    sidecar = target.with_suffix(".json")
    report_path = target.with_suffix(".report.json")
    atomic_write_text(sidecar, json.dumps(card, indent=2))
    report = {
        "run_dir": str(run),
        "out": str(target),
        "format": fmt,
        "quantize": quantize,
        "prune": prune,
        "split": split,
        "examples": int(len(ds)) if ds is not None else None,
        "threads": threads,
        "latency": f"median of {repeats} calls, batch 1, after 10 warm-up calls",
        "parity": parity,
        "rows": rows,
        "versions": versions(),
    }
    atomic_write_text(report_path, json.dumps(report, indent=2))
    return ExportReport(target, sidecar, report_path, rows, parity, split)


def describe(
    predictor: RunPredictor,
    path: Path,
    names: list[str],
    uses_present: bool,
    width: int,
    quantize: str | None,
    prune: float | None,
) -> dict[str, Any]:
    """The sidecar: everything needed to feed the graph and read its output with onnxruntime alone."""
    specs = {s.name: s for s in predictor.recipe.inputs}
    inputs: list[dict[str, Any]] = [
        {
            "name": k,
            "modality": specs[k].modality,
            "shape": ["batch", *predictor.meta["in_shapes"][k]],
            "dtype": predictor.meta.get("in_dtypes", {}).get(k, "float32"),
            "preprocessing": {"encoder_input_of": specs[k].encoder.name, **vars(specs[k].preprocessing)},
        }
        for k in names
    ]
    if uses_present:
        inputs.append(
            {
                "name": PRESENT,
                "shape": ["batch", len(names)],
                "dtype": "bool",
                "columns": names,
                "meaning": "True where the example has that input; for a missing one pass False and zeros",
            }
        )
    head = predictor.recipe.head.name
    reading = {
        "classification": "softmax over logits; the predicted class is classes[argmax]",
        "multilabel": "sigmoid per logit; labels whose probability exceeds the head's threshold",
        "multitask": "logits of each task side by side, in target.tasks order (see polymodal's multitask head)",
    }
    return {
        "format": "onnx",
        "file": path.name,
        "run_dir": str(predictor.run_dir),
        "inputs": inputs,
        "outputs": [{"name": "logits", "shape": ["batch", width], "dtype": "float32"}],
        "head": head,
        "reading": reading.get(head, "the head's raw outputs"),
        "classes": predictor.classes,
        "target": predictor.target,
        "compression": {"prune": prune, "quantize": quantize},
        "versions": versions(),
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for pkg in ("polymodal", "torch", "onnx", "onnxscript", "onnxruntime"):
        try:
            found[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            found[pkg] = None
    return found
