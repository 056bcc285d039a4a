"""Run the app under uvicorn with Nagle's algorithm off and a header timeout on every accepted connection, in one
process or several (``workers``; each loads the run and serves the same socket).

With Nagle on, a response written in two segments (headers, then body) waits for the client's delayed ACK
and p50 latency jumps to ~40 ms; TCP_NODELAY sends each segment at once.

uvicorn arms no timer before a request's first response, and every byte received cancels its keep-alive timer,
so a client that never finishes its headers (slowloris) would hold a connection forever: the protocol closes a
connection whose request headers are not complete ``header_timeout_s`` after it opened, a request began, or the
previous response ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI

from polymodal.serve.app import create_app, servable
from polymodal.serve.limits import Limits, error_body
from polymodal.serve.requestid import new_id

try:  # uvicorn's fastest HTTP parser when installed (the serve extra installs it), else its pure-Python one
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as HttpProtocol
except ImportError:  # pragma: no cover
    from uvicorn.protocols.http.h11_impl import H11Protocol as HttpProtocol
# The header timer hooks httptools' parser callbacks; h11's protocol has none of them, so it runs untimed.
TIMED = HttpProtocol.__name__ == "HttpToolsProtocol"

ENV = "POLYMODAL_SERVE"  # how worker processes learn what to serve
HEADER_TIMEOUT = "polymodal_header_timeout_s"  # set on a uvicorn.Config by build_server


@lru_cache(maxsize=4)
def env_header_timeout(settings: str) -> float | None:
    return json.loads(settings).get("limits", {}).get("header_timeout_s") if settings else None


class NoDelayProtocol(HttpProtocol):
    """uvicorn's HTTP protocol with TCP_NODELAY set on each accepted TCP socket and a header timeout.

    The timeout comes from the server's config (:func:`build_server`), else from ``$POLYMODAL_SERVE`` (worker
    processes: uvicorn imports this class by name there), else ``header_timeout_s``.
    """

    header_timeout_s = Limits.header_timeout_s

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        configured = getattr(config, HEADER_TIMEOUT, None) or env_header_timeout(os.environ.get(ENV, ""))
        self.header_timeout_s = configured or self.header_timeout_s
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        self.arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.arm_header_timer()

    def on_headers_complete(self) -> None:
        self.cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Bytes that start no request (blank lines) cancel uvicorn's keep-alive timer: time the next headers too.
        if not self.pipeline and not self.transport.is_closing():
            self.arm_header_timer()

    def arm_header_timer(self) -> None:
        self.cancel_header_timer()
        if TIMED:
            self.header_timer = self.loop.call_later(self.header_timeout_s, self.headers_too_slow)

    def cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def headers_too_slow(self) -> None:
        self.header_timer = None
        if self.transport.is_closing():
            return
        rid = new_id()
        message = (
            f"the request headers did not arrive within the server's limit of {self.header_timeout_s:g} s; "
            "send the whole request at once"
        )
        body = error_body(message, rid)
        head = (
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-request-id: {rid}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()


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


def build_server(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "warning",
    header_timeout_s: float = Limits.header_timeout_s,
) -> uvicorn.Server:
    """A uvicorn server for ``app`` in this process (``.run()`` blocks; ``.should_exit = True`` stops it).

    Args:
        header_timeout_s: Longest a client may take to send a request's headers before its connection is closed.
    """
    config = uvicorn.Config(app, **uvicorn_options(host, port, log_level))
    setattr(config, HEADER_TIMEOUT, header_timeout_s)
    return uvicorn.Server(config)


def app_from_env() -> FastAPI:
    """The app a worker process serves, from the settings :func:`serve` put in ``$POLYMODAL_SERVE``."""
    settings = json.loads(os.environ[ENV])
    torch.set_num_threads(settings["threads"])
    limits = Limits(**settings["limits"])
    return create_app(
        settings["run_dir"], limits, settings["batch_ms"], settings["max_batch"], settings["engine"], settings["device"]
    )


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
    device: str | None = None,
) -> None:
    """Serve ``run_dir`` until interrupted.

    Args:
        workers: Processes, each with its own copy of the model, sharing the listening socket.
        threads: torch threads per process (1 is fastest for small models under concurrent load).
        limits, batch_ms, max_batch, engine, device: As for :func:`create_app` (``limits.header_timeout_s`` goes to
            the protocol: :func:`build_server` in one process, ``$POLYMODAL_SERVE`` in workers).
    """
    limits = limits or Limits()
    if workers == 1:
        torch.set_num_threads(threads)
        app = create_app(run_dir, limits, batch_ms, max_batch, engine, device)
        build_server(app, host, port, log_level, limits.header_timeout_s).run()
        return
    servable(Path(run_dir))  # a bad run directory fails here, once, not in every worker
    settings = {
        "run_dir": str(run_dir),
        "limits": vars(limits),
        "batch_ms": batch_ms,
        "max_batch": max_batch,
        "engine": engine,
        "device": device,
    }
    os.environ[ENV] = json.dumps({**settings, "threads": threads})
    uvicorn.run(
        "polymodal.serve.server:app_from_env", factory=True, workers=workers, **uvicorn_options(host, port, log_level)
    )
