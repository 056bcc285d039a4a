"""A request id for every request: kept from a sane incoming ``X-Request-ID`` (a proxy's or the client's),
otherwise a fresh one; returned in the ``X-Request-ID`` response header, put in every JSON error body and in the
server's error log line, so a user's report and the log meet on one string."""

from __future__ import annotations

import re
import uuid
from typing import Any

HEADER = b"x-request-id"
# Longer or odder ids are replaced, not echoed: an incoming header must not inject text into logs or responses.
SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def request_id(scope: dict[str, Any]) -> str:
    """The id :class:`RequestId` gave this request ("" outside it)."""
    return scope.get("state", {}).get("request_id", "")


class RequestId:
    """Pure-ASGI middleware: give each HTTP request an id (``scope["state"]["request_id"]``, so
    ``request.state.request_id``) and add it to the response headers.

    Args:
        app: The wrapped ASGI app.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(HEADER, b"").decode("latin-1")
        rid = incoming if SANE.fullmatch(incoming) else new_id()
        scope.setdefault("state", {})["request_id"] = rid
        header = (HEADER, rid.encode("ascii"))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)
