"""GPU admission: a bounded queue in front of dedicated GPU worker threads.

A request handler never touches the GPU. It :meth:`Admission.submit`\\ s a *job*: a blocking callable
that returns an iterator of items (audio chunks, or a single voice). A worker thread, owned by this
module and by nothing else (never Litestar's or anyio's shared thread pool), runs the job and hands
each item back to the event loop through the request's own :class:`Ticket`. The handler awaits items
from the ticket; the event loop never blocks.

- The queue is bounded: a job submitted while ``max_queue`` jobs already wait raises
  :class:`~indextts2.errors.Overloaded` (HTTP 429) with an estimate for Retry-After.
- The number of worker threads is how many jobs run at once (``ServerConfig.gpu_workers``). With the
  Synthesizer's batching engine the workers only wait on it: the engine batches their GPU work.
- Cancellation: :meth:`Ticket.cancel` (the client went away) drops a waiting job, or stops a running one
  at the next item boundary and closes its iterator (which stops a generator's work).
- Timeout: a ticket has a deadline from the moment it was submitted; waiting past it cancels the job and
  raises :class:`~indextts2.server.errors.GatewayTimeout` (HTTP 504).
- Shutdown: :meth:`Admission.drain` admits nothing new, lets the admitted jobs run for the grace period,
  then fails every ticket still open with the error it is given (:meth:`Ticket.fail`): its request
  answers or ends at once, whatever its job is doing; the job stops at its next item.

The interface is generic over the job (tests run plain generators through it).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from indextts2.errors import Overloaded
from indextts2.server.errors import GatewayTimeout, NotReady

__all__ = ["Admission", "AdmissionStats", "Ticket"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# A job's first guess of its duration, before any job has finished (seconds); used for Retry-After.
_INITIAL_JOB_SECONDS = 2.0
# Weight of the newest job duration in the running average.
_DURATION_SMOOTHING = 0.2


class _End:
    """Marks the end of a ticket's items."""


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = _End()


class Ticket(Generic[T]):
    """One admitted job, as the request that submitted it sees it: an async iterator of its items."""

    def __init__(
        self, job: Callable[[], Iterable[T]], *, loop: asyncio.AbstractEventLoop, timeout: float | None
    ) -> None:
        self._job = job
        self._loop = loop
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        self._cancelled = threading.Event()
        self._done = False
        self.submitted_at = time.monotonic()
        self.deadline = self.submitted_at + timeout if timeout else math.inf
        self.started_at: float | None = None
        """When a worker picked the job up (monotonic seconds)."""
        self.context = contextvars.copy_context()
        """The submitter's context, which the job runs in (its log lines carry the request's id)."""
        self.first_item_at: float | None = None
        """When the first item reached the event loop (monotonic seconds)."""

    # ---- the request's side (event loop)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the job: dropped if it still waits, stopped at the next item if it runs."""
        self._cancelled.set()

    def fail(self, error: BaseException) -> None:
        """End the ticket with ``error`` now, and cancel its job. Call it on the ticket's event loop.

        Items delivered already come out first, then ``error``; whatever the job delivers afterwards
        (it stops at its next item) is never read.
        """
        if not self._done:
            self._items.put_nowait(_Failure(error))  # queued ahead of anything the worker sends next
        self._cancelled.set()

    def remaining(self) -> float:
        """Seconds left before the deadline."""
        return self.deadline - time.monotonic()

    async def next(self) -> T:
        """The next item; StopAsyncIteration after the last. Re-raises the job's error.

        Raises:
            GatewayTimeout: the deadline passed first (the job is cancelled).
        """
        if self._done:
            raise StopAsyncIteration
        remaining = self.remaining()
        try:
            if remaining <= 0:
                raise TimeoutError
            item = await asyncio.wait_for(self._items.get(), remaining)
        except (TimeoutError, asyncio.TimeoutError):
            self.cancel()
            self._done = True
            raise GatewayTimeout(
                f"the request did not finish within the server's limit of "
                f"{self.deadline - self.submitted_at:g} s; send shorter text or try again later"
            ) from None
        if isinstance(item, _End):
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        if self.first_item_at is None:
            self.first_item_at = time.monotonic()
        return item

    def __aiter__(self) -> Ticket[T]:
        return self

    async def __anext__(self) -> T:
        return await self.next()

    # ---- the worker's side (GPU thread)

    def _deliver(self, item: Any) -> bool:
        """Hand an item to the event loop; False when the loop is gone (the server is stopping)."""
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody is waiting any more
            self._cancelled.set()
            return False
        return True

    def _run(self) -> None:
        self.started_at = time.monotonic()
        iterator: Iterator[T] | None = None
        try:
            iterator = iter(self._job())
            for item in iterator:
                if self.cancelled or not self._deliver(item):
                    break
                if self.cancelled:  # checked again so that no further chunk is computed in vain
                    break
        except Exception as error:  # noqa: BLE001 - handed to the request, which raises it
            self._deliver(_Failure(error))
            return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        self._deliver(_END)


@dataclass(frozen=True)
class AdmissionStats:
    queued: int
    in_flight: int
    workers: int
    max_queue: int


class Admission:
    """The bounded queue and the GPU worker threads. Start it in the app's lifespan, stop it after.

    Args:
        max_queue: jobs allowed to wait; one more raises Overloaded.
        workers: worker threads, i.e. jobs running at once.
        name: thread name prefix (shows in py-spy and thread dumps).
    """

    def __init__(self, *, max_queue: int, workers: int = 1, name: str = "indextts2-gpu") -> None:
        if max_queue < 1 or workers < 1:
            raise ValueError("max_queue and workers must be at least 1")
        self.max_queue = max_queue
        self.workers = workers
        self._name = name
        self._jobs: queue.Queue[Ticket[Any] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._queued = 0
        self._in_flight = 0
        self._threads: list[threading.Thread] = []
        self._open: set[Ticket[Any]] = set()  # submitted, not yet finished by a worker
        self._accepting = False
        self._average_job_seconds = _INITIAL_JOB_SECONDS

    # ---- lifecycle

    def start(self) -> None:
        """Start the worker threads."""
        if self._threads:
            return
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"{self._name}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._accepting = True

    async def drain(self, grace: float, error: BaseException) -> int:
        """Admit nothing new, give the admitted jobs up to ``grace`` seconds, then fail what is left.

        Every ticket still open at the end of the grace period is failed with ``error`` (see
        :meth:`Ticket.fail`), whether its job waits or runs. Returns how many were.
        """
        self._accepting = False
        deadline = time.monotonic() + grace
        while self._unfinished() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        left = self._unfinished()
        for ticket in left:
            ticket.fail(error)
        if left:
            logger.warning("%d request(s) still running at the end of the grace period were ended", len(left))
        return len(left)

    async def stop(self, *, grace: float = 0.0, join_seconds: float = 5.0) -> None:
        """Drain (``grace`` seconds), stop the worker threads and wait up to ``join_seconds`` for them.

        A job that ignores cancellation may run on; the threads are daemons, so it cannot hold the
        exit. A worker that waits on the engine is released when the engine is closed.
        """
        await self.drain(grace, NotReady("the server is stopping; try again in a moment"))
        for _ in self._threads:
            self._jobs.put(None)
        threads, self._threads = self._threads, []
        deadline = time.monotonic() + join_seconds
        for thread in threads:
            while thread.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        alive = sum(thread.is_alive() for thread in threads)
        if alive:
            logger.warning("%d GPU worker thread(s) still busy at exit were left behind", alive)
        logger.debug("admission stopped")

    def _unfinished(self) -> list[Ticket[Any]]:
        """Tickets whose requests still wait for their job (not cancelled, not failed)."""
        with self._lock:
            return [ticket for ticket in self._open if not ticket.cancelled]

    # ---- state

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker."""
        return self._queued

    @property
    def in_flight(self) -> int:
        """Jobs running on a worker."""
        return self._in_flight

    @property
    def busy(self) -> bool:
        return self._queued > 0 or self._in_flight > 0

    def stats(self) -> AdmissionStats:
        return AdmissionStats(self._queued, self._in_flight, self.workers, self.max_queue)

    def retry_after(self) -> float:
        """Seconds after which a refused client may find room (a rough estimate, at least 1)."""
        rounds = math.ceil((self._queued + 1) / self.workers)
        return max(1.0, self._average_job_seconds * rounds)

    # ---- submitting

    def submit(self, job: Callable[[], Iterable[T]], *, timeout: float | None = None) -> Ticket[T]:
        """Queue a job; the returned ticket yields its items on the calling event loop.

        Args:
            job: runs on a worker thread and returns an iterable of items (a generator is closed when
                the ticket is cancelled). Errors it raises come out of the ticket.
            timeout: seconds from now until the ticket gives up (None = never).

        Raises:
            Overloaded: ``max_queue`` jobs are already waiting.
            NotReady: the admission is not started, or is stopping.
        """
        if not self._accepting:
            raise NotReady("the server is starting or shutting down; try again in a moment")
        ticket: Ticket[T] = Ticket(job, loop=asyncio.get_running_loop(), timeout=timeout)
        with self._lock:
            if self._queued >= self.max_queue:
                raise Overloaded(
                    f"the server is busy: {self._queued} request(s) are waiting for the GPU; "
                    "try again shortly",
                    retry_after=self.retry_after(),
                )
            self._queued += 1
            self._open.add(ticket)
        self._jobs.put(ticket)
        return ticket

    async def call(self, function: Callable[[], R], *, timeout: float | None = None) -> R:
        """Run one blocking call on a worker thread and return its result (queued like any job)."""
        ticket = self.submit(lambda: (function(),), timeout=timeout)
        try:
            return await ticket.next()
        finally:
            ticket.cancel()

    # ---- the worker threads

    def _work(self) -> None:
        while True:
            ticket = self._jobs.get()
            if ticket is None:
                return
            with self._lock:
                self._queued -= 1
                if ticket.cancelled:
                    self._open.discard(ticket)
                    ticket._deliver(_END)
                    continue
                self._in_flight += 1
            started = time.monotonic()
            try:
                ticket.context.run(ticket._run)
            finally:
                elapsed = time.monotonic() - started
                with self._lock:
                    self._in_flight -= 1
                    self._open.discard(ticket)
                    self._average_job_seconds += _DURATION_SMOOTHING * (elapsed - self._average_job_seconds)
