"""``polymodal serve``: a finished run over HTTP (REST API, OpenAPI docs, a demo page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polymodal.cli.render import out
from polymodal.errors import PolymodalError
from polymodal.serve.limits import Limits  # its field defaults are the options' defaults

HELP = """Serve a finished run over HTTP: REST API, OpenAPI docs at /docs and a demo page at /.

[b]Examples[/b]

  polymodal serve runs/av --port 8000                  [dim]# then open http://127.0.0.1:8000/[/]
  curl -F image=@digit.png -F audio=@seven.wav 'http://127.0.0.1:8000/predict?explain=1'
  polymodal serve runs/av --batch-ms 2                 [dim]# micro-batch requests arriving within 2 ms[/]
"""


def command(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (classifier or language model).")],
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    batch_ms: Annotated[float, typer.Option(min=0.0, help="Micro-batching window in ms (0 = off).")] = 0.0,
    max_batch: Annotated[int, typer.Option(min=1, help="Largest micro-batch and /predict/batch size.")] = 32,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body in MB.")] = 10.0,
    max_image_pixels: Annotated[int, typer.Option(min=1, help="Largest image (width × height).")] = 16_000_000,
    max_in_flight: Annotated[
        int, typer.Option(min=1, max=1024, help="Requests computed at once per worker; more get a 503 + Retry-After.")
    ] = Limits.max_in_flight,
    request_timeout_s: Annotated[
        float, typer.Option(min=0.001, max=86400.0, help="Seconds a request's computation may take (then a 503).")
    ] = Limits.request_timeout_s,
    header_timeout_s: Annotated[
        float, typer.Option(min=0.001, max=3600.0, help="Seconds a client may take to send its headers.")
    ] = Limits.header_timeout_s,
    body_timeout_s: Annotated[
        float, typer.Option(min=0.001, max=3600.0, help="Seconds a client may take to send its body (then a 408).")
    ] = Limits.body_timeout_s,
    threads: Annotated[int, typer.Option(min=1, help="torch threads per worker (1 is fastest for small models).")] = 1,
    workers: Annotated[int, typer.Option(min=1, help="Server processes, each with its own copy of the model.")] = 1,
    engine: Annotated[
        str,
        typer.Option(
            help="torch, or onnx: predict with onnxruntime over the model exported at start-up "
            "(needs the export extra; explanations still use torch)."
        ),
    ] = "torch",
    device: Annotated[
        str | None,
        typer.Option(help="Where the model runs: auto, cpu, cuda, cuda:N or mps (default: the run's trainer.device)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every request.")] = False,
) -> None:
    from polymodal.serve.app import ENGINES, servable
    from polymodal.serve.server import serve as run_server

    servable(run_dir)  # a bad run directory, or a kind that serving does not apply to: one error line
    if engine not in ENGINES:
        raise PolymodalError(f"unknown --engine '{engine}'; use one of: {', '.join(ENGINES)}")
    limits = Limits(
        int(max_upload_mb * 2**20),
        max_image_pixels,
        max_batch,
        max_in_flight=max_in_flight,
        request_timeout_s=request_timeout_s,
        header_timeout_s=header_timeout_s,
        body_timeout_s=body_timeout_s,
    )
    out.print(f"serving {run_dir} on http://{host}:{port}/  (API docs: /docs; Ctrl-C stops)")
    level = "info" if verbose else "warning"
    run_server(run_dir, host, port, workers, threads, limits, batch_ms, max_batch, level, engine, device)
