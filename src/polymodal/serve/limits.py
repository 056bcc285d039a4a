"""Request limits and the typed errors a bad request becomes (each a JSON 4xx with a one-line message).

``BodyLimit`` bounds the request body before the app reads it: a declared ``Content-Length`` over the limit is
refused at once (the body is never read), and a chunked body is counted as it arrives and refused as soon as
it passes the limit, so a huge upload never sits in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from polymodal.errors import PolymodalError


@dataclass
class Limits:
    """What one request may ask of the server.

    Args:
        max_upload_bytes: Whole request body (JSON or multipart), in bytes.
        max_image_pixels: Width × height of an image input, checked from its header before decoding.
        max_batch: Rows in one ``/predict/batch`` request.
        max_new_tokens: Tokens one ``/generate`` request may ask for.
    """

    max_upload_bytes: int = 10 * 2**20
    max_image_pixels: int = 16_000_000
    max_batch: int = 64
    max_new_tokens: int = 1024


class RequestError(PolymodalError):
    """A request the server refuses; ``status`` is its HTTP status code."""

    status = 400


class PayloadTooLarge(RequestError):
    status = 413


class UnsupportedMediaType(RequestError):
    status = 415


class NotForThisModel(RequestError):
    status = 404


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def too_large_message(limit: int) -> str:
    return (
        f"request body is over the server's limit of {limit / 2**20:.1f} MB; send a smaller file "
        "(downscale or trim it) or start the server with a larger --max-upload-mb"
    )


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with a JSON 413, without reading them.

    Args:
        app: The wrapped ASGI app.
        max_bytes: Largest body accepted.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, too_large_message(self.max_bytes))
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(too_large_message(self.max_bytes))
            return message

        await self.app(scope, counted, send)


async def send_json(send: Any, status: int, message: str) -> None:
    body = error_body(message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    # The unread body stays on the socket: close the connection rather than parse it as the next request.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
