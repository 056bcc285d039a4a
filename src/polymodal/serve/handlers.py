"""How every failure becomes ``{"error": "<one line>", "request_id": "..."}``: 4xx/503 for the client's, 500
(logged with the request id) for ours; a client that hangs up is one debug line, not an error."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from polymodal.errors import PolymodalError
from polymodal.serve.limits import BodyTimeout, RequestError
from polymodal.serve.requestid import request_id

log = logging.getLogger(__name__)


class JSON(Response):
    """orjson-encoded JSON (several times faster than the standard library on the probability dicts)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def install_error_handlers(app: FastAPI) -> Counter:
    """Register the handlers; returns the live counts (``server_errors``, ``client_disconnects``) /health shows."""
    counts: Counter = Counter(server_errors=0, client_disconnects=0)

    def error(request: Request, message: object, status: int, headers: dict[str, str] | None = None) -> JSON:
        return JSON({"error": one_line(message), "request_id": request_id(request.scope)}, status, headers)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSON:
        if isinstance(exc, BodyTimeout):  # a stalled (or vanished) client: nothing for the operator to act on
            log.debug("request %s: %s", request_id(request.scope), exc)
        return error(request, exc, exc.status, exc.headers)

    @app.exception_handler(PolymodalError)
    async def data_error(request: Request, exc: PolymodalError) -> JSON:
        return error(request, exc, 422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSON:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return error(request, f"{where}: {one_line(first.get('msg', 'invalid'))}; see /docs", 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSON:
        message = exc.detail if exc.status_code != 404 else f"no route {request.method} {request.url.path}; see /docs"
        return error(request, message, exc.status_code, exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _: ClientDisconnect) -> Response:
        # The client closed the connection before its body arrived: nobody reads a response, nothing broke.
        counts["client_disconnects"] += 1
        log.debug("request %s: the client disconnected before sending its whole body", request_id(request.scope))
        return Response(status_code=499)  # never sent: uvicorn drops writes to a closed connection

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSON:
        counts["server_errors"] += 1
        rid = request_id(request.scope)
        log.exception("request %s failed", rid)
        # This handler answers outside the request-id middleware: add the header here.
        headers = {"X-Request-ID": rid} if rid else None
        return error(request, f"internal error ({type(exc).__name__}); the server logged it", 500, headers)

    return counts
