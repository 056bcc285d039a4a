"""Model export and compression: a run's model as ONNX (with a sidecar JSON), dynamic int8 quantisation and
global magnitude pruning, each measured (file size, batch-1 latency, test accuracy) against the fp32 model.

``export_run(run_dir, ...)`` in :mod:`polymodal.export.pipeline` is what ``polymodal export`` calls.
"""

from polymodal.export.pipeline import ExportReport, export_run

__all__ = ["export_run", "ExportReport"]
