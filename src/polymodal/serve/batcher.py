"""Micro-batching: requests that arrive within a few milliseconds of each other share one forward pass.

Each request is preprocessed on its own; the prepared examples wait in a queue until ``wait_ms`` has passed
since the first one (or ``max_batch`` are waiting), then one batched forward answers them all. Under load this
trades at most ``wait_ms`` of latency for fewer, larger forwards; with one client at a time it only adds
latency, so it is off unless asked for (``polymodal serve --batch-ms 2``).

The batched forward runs in the batcher's own thread, never on the event loop, one batch at a time (as one
forward already uses the model's threads). Requests waiting for their batch hold their admission slots, so a
batch holds at most ``max_in_flight`` requests (see :mod:`polymodal.serve.admission`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class MicroBatcher:
    """Collect items for up to ``wait_ms`` and run ``run(items) -> results`` once for them all.

    Args:
        run: Maps a list of items to a list of results in the same order (one batched forward).
        wait_ms: Longest time the first item of a batch waits for company.
        max_batch: A batch this full runs at once.
    """

    def __init__(self, run: Callable[[list[Any]], list[Any]], wait_ms: float, max_batch: int) -> None:
        self.run, self.wait, self.max_batch = run, wait_ms / 1000.0, max_batch
        self.queue: list[tuple[Any, asyncio.Future]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.batches = 0  # forwards run, for /health
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="polymodal-batch")

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.append((item, future))
        if len(self.queue) >= self.max_batch:
            self.flush()
        elif self.timer is None:
            self.timer = loop.call_later(self.wait, self.flush)
        return await future

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.queue = self.queue, []
        if not batch:
            return
        self.batches += 1
        loop = asyncio.get_running_loop()
        done = self.pool.submit(self.run, [item for item, _ in batch])
        done.add_done_callback(lambda f: loop.call_soon_threadsafe(deliver, batch, f))


def deliver(batch: list[tuple[Any, asyncio.Future]], done: Future) -> None:
    """Hand each waiting request its result, or the batch's failure (and the server keeps serving)."""
    exc = done.exception()
    results = [None] * len(batch) if exc is not None else done.result()
    for (_, future), result in zip(batch, results, strict=True):
        if future.done():  # the request's task went away
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
