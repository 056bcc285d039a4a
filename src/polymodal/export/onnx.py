"""ONNX export through ``torch.onnx.export`` (the torch.export-based exporter) and an onnxruntime session.

torch 2.9 made the torch.export-based exporter (``dynamo=True``, which needs ``onnxscript``) the default;
the TorchScript-based one (``dynamo=False``) still runs in torch 2.13 but warns that it is deprecated, so
only the former is used here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.errors import ExportError
from polymodal.export.graph import GraphModel

PRESENT = "present"  # name of the (B, M) presence-mask input
OUTPUT = "logits"


def require(*modules: str) -> None:
    """Fail with one line when an optional export package is not installed."""
    import importlib.util

    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if absent:
        raise ExportError(f"export needs {', '.join(absent)}: pip install 'polymodal[export]'")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep the exporter's and quantiser's chatter (progress prints, torchvision-missing and deprecation
    warnings, onnxruntime's root-logger advice) out of the caller's output: the library never prints."""
    noisy = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir", "torch._dynamo")]
    levels = [lg.level for lg in noisy]
    root_filter = logging.Filter("polymodal")  # drops records of other loggers logged on the root logger itself
    for lg in noisy:
        lg.setLevel(logging.ERROR)
    logging.getLogger().addFilter(root_filter)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger().removeFilter(root_filter)
        for lg, level in zip(noisy, levels, strict=True):
            lg.setLevel(level)


def export_onnx(
    graph: GraphModel, example: tuple[torch.Tensor, ...], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """Write ``graph`` as one self-contained ONNX file with a dynamic batch axis on every input and output.

    Args:
        graph: The model with positional inputs, in eval mode.
        example: One batch of inputs (B ≥ 2: torch.export specialises a size-1 dimension to a constant).
        path: Output file; written under a temporary name and renamed, so a failed export leaves any
            previous file intact.
        metadata: Key/value strings stored in the model (``ModelProto.metadata_props``).
    """
    require("onnx", "onnxscript")
    import onnx

    names = graph.names + ([PRESENT] if graph.uses_present else [])
    batch = torch.export.Dim("batch", min=1)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with quiet(), torch.no_grad():
            program = torch.onnx.export(
                graph,
                example,
                input_names=names,
                output_names=[OUTPUT],
                dynamic_shapes=(tuple({0: batch} for _ in example),),  # one entry: forward(*xs) takes a tuple
                dynamo=True,
                external_data=False,  # one file a user can copy; models here are far below protobuf's 2 GB
                verbose=False,
            )
            proto = strip_debug_info(program.model_proto)
            for key, value in (metadata or {}).items():
                proto.metadata_props.add(key=key, value=value)
            onnx.save_model(proto, str(tmp))
    except Exception as exc:  # torch.export raises many types; the first line says what could not be traced
        tmp.unlink(missing_ok=True)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(
            f"torch.onnx.export could not trace this model ({first}); see the limits in docs/how-to/export.md"
        ) from None
    os.replace(tmp, path)


def strip_debug_info(proto: Any) -> Any:
    """Drop the exporter's per-node debug records (Python stack traces with local paths, FX node text, module
    hierarchy): they tripled the file of a small model and tell a user of the file nothing."""
    graph = proto.graph
    for item in (*graph.node, *graph.value_info, *graph.input, *graph.output, *graph.initializer):
        del item.metadata_props[:]
    for node in graph.node:
        node.doc_string = ""
    return proto


class OnnxModel:
    """An onnxruntime session that takes the same positional batch as :class:`GraphModel`.

    Args:
        path: The .onnx file.
        names: Graph input names in order (the inputs, then ``present`` if the graph has it).
        threads: Intra-op threads (1 for batch-1 latency that compares with single-threaded PyTorch).
    """

    def __init__(self, path: Path, names: list[str], threads: int = 1) -> None:
        require("onnxruntime")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.names = names

    def __call__(self, *xs: torch.Tensor) -> np.ndarray:
        feed = {n: x.numpy() for n, x in zip(self.names, xs, strict=True)}
        return self.session.run([OUTPUT], feed)[0]
