"""Dynamic int8 quantisation: weights stored as int8, activations quantised on the fly per batch.

No calibration data is needed, which suits a command run on a finished model. Only matrix products are
quantised (PyTorch: Linear, LSTM, GRU; ONNX: MatMul, Gemm and the recurrent ops), the layers where dynamic
quantisation pays; convolutions stay fp32 (see docs/benchmarks/export.md for what that costs).
"""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from polymodal.export.onnx import quiet, require

ONNX_OPS = ["MatMul", "Gemm", "LSTM", "GRU"]


def quantize_torch(model: nn.Module) -> nn.Module | None:
    """A copy of ``model`` with Linear/LSTM/GRU layers replaced by dynamic int8 ones, or None when this torch
    no longer ships ``torch.ao.quantization`` (deprecated in favour of the separate torchao package)."""
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:
        return None
    import torch

    with quiet():
        return quantize_dynamic(copy.deepcopy(model), {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8)


def quantize_onnx(src: Path, dst: Path) -> None:
    """``src`` (fp32 ONNX) -> ``dst`` with int8 weights for the ops in :data:`ONNX_OPS`."""
    require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet():
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=ONNX_OPS, weight_type=QuantType.QInt8)
