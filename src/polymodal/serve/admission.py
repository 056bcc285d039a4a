"""Compute off the event loop, bounded: decoding, features and the forward run in worker threads, at most
``max_in_flight`` requests at once, each with a deadline.

One request's work on the event loop would stall every other connection (``/health`` included) for as long
as it runs; in threads the loop keeps answering. Past ``max_in_flight`` a request is refused at once with a 503
and ``Retry-After`` instead of queueing without bound. Past its deadline the client gets a 503, but a Python
thread cannot be stopped: its slot is only freed when the thread really finishes (a done-callback), so
timed-out work still counts against ``max_in_flight`` and a flood of slow requests cannot pile up threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from polymodal.serve.limits import RequestError

T = TypeVar("T")
RETRY_AFTER_S = 1  # a small model answers in milliseconds: a slot is usually free again within a second


class Busy(RequestError):
    status = 503
    headers: ClassVar[dict[str, str]] = {"Retry-After": str(RETRY_AFTER_S)}


class Overdue(RequestError):
    status = 503


class Admission:
    """At most ``max_in_flight`` computations at once, each answered within ``timeout_s``.

    Only the event loop's thread touches the counters (done-callbacks run on the loop), so no lock is needed.

    Args:
        max_in_flight: Computations admitted at once; the pool has as many threads, so none waits for a thread.
        timeout_s: Deadline of one computation.
    """

    def __init__(self, max_in_flight: int, timeout_s: float) -> None:
        self.max_in_flight, self.timeout_s = max_in_flight, timeout_s
        self.pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="polymodal-compute")
        self.in_flight = 0
        self.refused = 0  # 503s for a full server, for /health
        self.overdue = 0  # 503s past the deadline

    def in_thread(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """``fn(*args)`` in one of the admission's threads (call it inside :meth:`run`'s work)."""
        return asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """``await work()`` holding a slot: Busy when none is free, Overdue past the deadline."""
        if self.in_flight >= self.max_in_flight:
            self.refused += 1
            raise Busy(
                f"the server is busy: {self.in_flight} requests are being computed, its limit (--max-in-flight); "
                f"retry after {RETRY_AFTER_S} s, or start it with more --workers or a larger --max-in-flight"
            )
        self.in_flight += 1
        task = asyncio.ensure_future(work())
        task.add_done_callback(self.release)
        try:
            # shield: the deadline answers the client but leaves the work (and its slot) running to its end.
            return await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
        except TimeoutError:
            self.overdue += 1
            raise Overdue(
                f"the request took longer than the server's limit of {self.timeout_s:g} s; send a smaller input "
                "or start the server with a larger --request-timeout-s"
            ) from None

    def release(self, task: asyncio.Future) -> None:
        self.in_flight -= 1
        if not task.cancelled():
            task.exception()  # retrieved: a failure after the deadline has no one to go to; don't warn about it

    def stats(self) -> dict[str, Any]:
        return {
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "refused_busy": self.refused,
            "over_deadline": self.overdue,
        }
