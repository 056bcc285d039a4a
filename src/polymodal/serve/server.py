"""Run the app under uvicorn with Nagle's algorithm off on every accepted connection, in one process or
several (``workers``; each loads the run and serves the same socket).

With Nagle on, a response written in two segments (headers, then body) waits for the client's delayed ACK
and p50 latency jumps to ~40 ms; TCP_NODELAY sends each segment at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI

from polymodal.serve.app import create_app, servable
from polymodal.serve.limits import Limits

try:  # uvicorn's fastest HTTP parser when installed (the serve extra installs it), else its pure-Python one
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as HttpProtocol
except ImportError:  # pragma: no cover
    from uvicorn.protocols.http.h11_impl import H11Protocol as HttpProtocol

ENV = "POLYMODAL_SERVE"  # how worker processes learn what to serve


class NoDelayProtocol(HttpProtocol):
    """uvicorn's HTTP protocol with TCP_NODELAY set on each accepted TCP socket."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def uvicorn_options(host: str, port: int, log_level: str) -> dict[str, Any]:
    # Access logging only at "info": one log line per request costs more than a small model's forward.
    return {
        "host": host,
        "port": port,
        "http": NoDelayProtocol,
        "log_level": log_level,
        "access_log": log_level == "info",
        "lifespan": "off",
    }


def build_server(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for ``app`` in this process (``.run()`` blocks; ``.should_exit = True`` stops it)."""
    return uvicorn.Server(uvicorn.Config(app, **uvicorn_options(host, port, log_level)))


def app_from_env() -> FastAPI:
    """The app a worker process serves, from the settings :func:`serve` put in ``$POLYMODAL_SERVE``."""
    settings = json.loads(os.environ[ENV])
    torch.set_num_threads(settings["threads"])
    limits = Limits(**settings["limits"])
    return create_app(settings["run_dir"], limits, settings["batch_ms"], settings["max_batch"], settings["engine"])


def serve(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    threads: int = 1,
    limits: Limits | None = None,
    batch_ms: float = 0.0,
    max_batch: int = 32,
    log_level: str = "warning",
    engine: str = "torch",
) -> None:
    """Serve ``run_dir`` until interrupted.

    Args:
        workers: Processes, each with its own copy of the model, sharing the listening socket.
        threads: torch threads per process (1 is fastest for small models under concurrent load).
        limits, batch_ms, max_batch, engine: As for :func:`create_app`.
    """
    limits = limits or Limits()
    if workers == 1:
        torch.set_num_threads(threads)
        build_server(create_app(run_dir, limits, batch_ms, max_batch, engine), host, port, log_level).run()
        return
    servable(Path(run_dir))  # a bad run directory fails here, once, not in every worker
    settings = {
        "run_dir": str(run_dir),
        "limits": vars(limits),
        "batch_ms": batch_ms,
        "max_batch": max_batch,
        "engine": engine,
    }
    os.environ[ENV] = json.dumps({**settings, "threads": threads})
    uvicorn.run(
        "polymodal.serve.server:app_from_env", factory=True, workers=workers, **uvicorn_options(host, port, log_level)
    )
