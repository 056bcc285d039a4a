"""``POST /chat`` for an assistant run: one message (and the files it is about) in, the answer streamed out.

The server keeps no conversation: a client sends the earlier turns as ``history`` ([{"question", "answer"}]),
and the run's window rule applies (oldest turns dropped first). Files arrive as multipart parts or, in JSON, as
base64 / data URLs, read exactly as ``/predict`` reads them (same size and pixel limits, same admission).
Everything about the request is checked before the first byte of the answer: a refusal is the usual JSON
4xx one-liner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from polymodal.errors import PolymodalError
from polymodal.kinds.assistant.run import AssistantRun, Chat
from polymodal.kinds.assistant.tokens import Turn
from polymodal.serve.admission import Admission
from polymodal.serve.inputs import ACCEPTS, Uploads, to_value
from polymodal.serve.limits import Limits, RequestError

MAX_HISTORY = 64  # turns a request may carry (the window keeps far fewer; this bounds the work of fitting it)
FIELDS = ("message", "history", "stream")


def parse_history(value: Any) -> list[Turn]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise RequestError('history must be JSON: [{"question": "...", "answer": "..."}, ...]') from None
    ok = isinstance(value, list) and all(
        isinstance(t, dict) and isinstance(t.get("question"), str) and isinstance(t.get("answer"), str) for t in value
    )
    if not ok:
        raise RequestError('history must be a list of {"question": "...", "answer": "..."} turns')
    if len(value) > MAX_HISTORY:
        raise RequestError(f"history has {len(value)} turns, over the server's limit of {MAX_HISTORY}; send the latest")
    return [Turn(t["question"], (), t["answer"]) for t in value]


def add_chat_routes(
    app: FastAPI,
    run: Path,
    assistant: AssistantRun,
    limits: Limits,
    admission: Admission,
    read_body: Callable[..., Any],
) -> Callable[[], dict[str, Any]]:
    """/metadata and /chat for an assistant run; returns what /health shows."""
    modalities = assistant.modalities
    metadata = {
        "kind": assistant.rundir.kind,
        "use": "chat",
        "run": run.name,
        "inputs": [
            {"name": n, "modality": m, "file": True, "accepts": ACCEPTS.get(m, "")} for n, m in modalities.items()
        ],
        "block_size": assistant.block_size,
        "limits": vars(limits),
    }
    fields = dict.fromkeys(FIELDS, "text") | modalities

    @app.get("/metadata", summary="The inputs this assistant reads and its context size")
    async def get_metadata() -> dict[str, Any]:
        return metadata

    def prepare(raw: dict[str, Any]) -> tuple[Chat, Iterator[str]]:
        unknown = [k for k in raw if k not in fields]
        if unknown:
            took = ", ".join(f"'{n}' ({m})" for n, m in modalities.items())
            raise RequestError(f"unknown field '{unknown[0]}'; send message, history, stream and files for {took}")
        message = raw.get("message")
        if not isinstance(message, str):
            raise RequestError('send the question as "message" (a string)')
        chat = assistant.chat()
        chat.turns = parse_history(raw.get("history"))
        uploads = Uploads()
        try:
            for name in modalities:
                value = to_value(name, modalities[name], raw.get(name), uploads, limits.max_image_pixels)
                if value is not None:
                    chat.attach(name, value)
        except PolymodalError as exc:
            raise type(exc)(uploads.clean(str(exc))) from None
        finally:
            uploads.close()
        return chat, chat.ask(message)  # a refused message raises here, before any answer is streamed

    @app.post(
        "/chat",
        summary="Ask about attached files (assistant runs)",
        description="Multipart (fields `message`, `history` as JSON, files per input) or JSON `{message, history, "
        "<input>: base64}`. The answer streams as text/plain unless `stream` is false (then JSON `{answer}`).",
    )
    async def chat(request: Request) -> Any:
        raw = await read_body(request, fields, limits)
        stream = raw.get("stream", True) not in (False, "false", "0")
        chat, pieces = await admission.run(lambda: admission.in_thread(prepare, raw))
        if stream:
            return StreamingResponse(pieces, media_type="text/plain; charset=utf-8")
        answer = await admission.run(lambda: admission.in_thread(lambda: "".join(pieces)))
        return {"answer": answer, "dropped_turns": chat.dropped}

    return lambda: {"block_size": assistant.block_size}
