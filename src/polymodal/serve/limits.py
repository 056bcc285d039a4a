"""Request limits and the typed errors a bad request becomes (each a JSON 4xx/503 with a one-line message).

``BodyLimit`` bounds the request body before the app reads it: a declared ``Content-Length`` over the limit is
refused at once (the body is never read), a chunked body is counted as it arrives and refused as soon as
it passes the limit, so a huge upload never sits in memory, and a body that has not fully arrived
``body_timeout_s`` after the app started reading it is a 408, so a client that stalls or dribbles its upload
cannot hold a connection and a task forever.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from polymodal.errors import PolymodalError
from polymodal.serve.requestid import request_id


@dataclass
class Limits:
    """What one request may ask of the server.

    Args:
        max_upload_bytes: Whole request body (JSON or multipart), in bytes.
        max_image_pixels: Width × height of an image input, checked from its header before decoding.
        max_batch: Rows in one ``/predict/batch`` request.
        max_new_tokens: Tokens one ``/generate`` request may ask for.
        max_in_flight: Requests computed at once (decoding, features, forward); one more is a 503 with
            ``Retry-After``. Work past its deadline still counts until its thread finishes.
        request_timeout_s: Longest a request's computation may take before the client gets a 503.
        header_timeout_s: Longest a client may take to send a request's headers; then the connection is closed.
        body_timeout_s: Longest a client may take to send a request's whole body; then it gets a 408.
    """

    max_upload_bytes: int = 10 * 2**20
    max_image_pixels: int = 16_000_000
    max_batch: int = 64
    max_new_tokens: int = 1024
    max_in_flight: int = 8  # 8 maximal (16 MP) images decoded at once are ~1.5 GB; typical clients send ≤ 8 at once
    request_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise PolymodalError(f"max_in_flight is {self.max_in_flight}; allow at least 1 request in flight")
        for name in ("request_timeout_s", "header_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise PolymodalError(f"{name} is {getattr(self, name)}; give a positive number of seconds")


class RequestError(PolymodalError):
    """A request the server refuses; ``status`` is its HTTP status code, ``headers`` extra response headers."""

    status = 400
    headers: ClassVar[dict[str, str]] = {}


class PayloadTooLarge(RequestError):
    status = 413


class UnsupportedMediaType(RequestError):
    status = 415


class NotForThisModel(RequestError):
    status = 404


class BodyTimeout(RequestError):
    status = 408
    # The rest of the body may still arrive: close rather than parse it as the next request.
    headers: ClassVar[dict[str, str]] = {"Connection": "close"}


def error_body(message: str, rid: str) -> bytes:
    return orjson.dumps({"error": message, "request_id": rid})


def too_large_message(limit: int) -> str:
    return (
        f"request body is over the server's limit of {limit / 2**20:.1f} MB; send a smaller file "
        "(downscale or trim it) or start the server with a larger --max-upload-mb"
    )


def stalled_message(seconds: float) -> str:
    return (
        f"the request body did not arrive within the server's limit of {seconds:g} s; send it in one go "
        "(or start the server with a larger --body-timeout-s)"
    )


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with a JSON 413, without reading them, and
    bodies still incomplete ``timeout_s`` after the app first asked for them with a JSON 408.

    Args:
        app: The wrapped ASGI app.
        max_bytes: Largest body accepted.
        timeout_s: Longest the whole body may take to arrive.
    """

    def __init__(self, app: Any, max_bytes: int, timeout_s: float = Limits.body_timeout_s) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, too_large_message(self.max_bytes), request_id(scope))
            return
        seen, complete, deadline = 0, False, None

        async def counted() -> dict[str, Any]:
            nonlocal seen, complete, deadline
            if complete:  # the body is in: later calls wait for a disconnect (a streamed response's) untimed
                return await receive()
            deadline = deadline or time.monotonic() + self.timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                raise BodyTimeout(stalled_message(self.timeout_s)) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(too_large_message(self.max_bytes))
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        await self.app(scope, counted, send)


async def send_json(send: Any, status: int, message: str, rid: str) -> None:
    body = error_body(message, rid)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    # The unread body stays on the socket: close the connection rather than parse it as the next request.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
