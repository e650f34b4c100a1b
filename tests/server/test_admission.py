"""GPU admission: the bounded queue, the dedicated worker thread, cancellation and timeouts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from server_helpers import tone
from spy import FAST_OPTIONS, SpySynthesizer

from indextts2.errors import InvalidInput, Overloaded
from indextts2.server import ServerConfig, create_app
from indextts2.server.admission import Admission
from indextts2.server.errors import GatewayTimeout, NotReady


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# How long a test waits for something that happens at once on any machine: a bound against hangs,
# never reached by a passing test however busy the machine is.
PATIENCE = 60.0


class Gate:
    """A job that yields ``count`` items, recording what it did.

    With ``hold_from=k``, items ``k`` and later wait until ``release`` is set: the test decides when
    the job moves on, instead of racing a clock against it.
    """

    def __init__(self, count: int = 3, *, hold_from: int | None = None) -> None:
        self.count = count
        self.hold_from = hold_from
        self.made = 0
        self.closed_early = False
        self.thread: str | None = None
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> Iterator[int]:
        self.thread = threading.current_thread().name
        self.started.set()
        finished = False
        try:
            for index in range(self.count):
                if self.hold_from is not None and index >= self.hold_from:
                    assert self.release.wait(PATIENCE), "the test never released the job"
                self.made += 1
                yield index
            finished = True
        finally:
            self.closed_early = not finished


def test_jobs_run_on_the_dedicated_worker_and_items_arrive_in_order() -> None:
    async def main() -> tuple[list[int], str | None]:
        admission = Admission(max_queue=2)
        admission.start()
        job = Gate(count=4)
        items = [item async for item in admission.submit(job)]
        await admission.stop()
        return items, job.thread

    items, thread = run(main())
    assert items == [0, 1, 2, 3]
    assert thread == "indextts2-gpu-0"  # never the event loop's thread, never anyio's pool


def test_errors_of_the_job_come_out_of_the_ticket() -> None:
    def failing() -> Iterator[int]:
        raise InvalidInput("bad text")
        yield 0  # pragma: no cover - makes this a generator

    async def main() -> None:
        admission = Admission(max_queue=1)
        admission.start()
        ticket = admission.submit(failing)
        with pytest.raises(InvalidInput, match="bad text"):
            await ticket.next()
        await admission.stop()

    run(main())


def test_a_full_queue_answers_overloaded_with_a_retry_estimate() -> None:
    async def main() -> None:
        admission = Admission(max_queue=2)
        admission.start()
        blocker = threading.Event()

        def blocking() -> Iterator[int]:
            blocker.wait(PATIENCE)
            yield 1

        running = admission.submit(blocking)
        while admission.in_flight == 0:
            await asyncio.sleep(0.01)
        waiting = [admission.submit(blocking) for _ in range(2)]
        assert admission.queued == 2
        with pytest.raises(Overloaded) as refused:
            admission.submit(blocking)
        assert refused.value.retry_after >= 1
        blocker.set()
        for ticket in [running, *waiting]:
            assert [item async for item in ticket] == [1]
        await admission.stop()

    run(main())


def test_cancelling_stops_the_job_at_the_next_item() -> None:
    async def main() -> Gate:
        admission = Admission(max_queue=1)
        admission.start()
        job = Gate(count=1000, hold_from=1)
        ticket = admission.submit(job)
        assert await ticket.next() == 0
        ticket.cancel()
        job.release.set()  # the job makes its next item only now, after the cancel
        await admission.stop(grace=PATIENCE)
        return job

    job = run(main())
    assert job.closed_early
    assert job.made <= 2  # at most the item it was making when cancelled, and no more


def test_a_cancelled_waiting_job_never_runs() -> None:
    async def main() -> Gate:
        admission = Admission(max_queue=2)
        admission.start()
        first = Gate(count=5, hold_from=0)
        second = Gate(count=5)
        running = admission.submit(first)
        waiting = admission.submit(second)
        waiting.cancel()
        first.release.set()
        assert len([item async for item in running]) == 5
        await admission.stop(grace=PATIENCE)
        return second

    assert run(main()).made == 0


def test_timeout_raises_gateway_timeout_and_cancels() -> None:
    async def main() -> Gate:
        admission = Admission(max_queue=1)
        admission.start()
        job = Gate(count=100, hold_from=1)  # the second item never comes within the limit
        ticket = admission.submit(job, timeout=0.2)
        with pytest.raises(GatewayTimeout, match=r"0\.2 s"):
            async for _ in ticket:
                pass
        job.release.set()
        await admission.stop(grace=PATIENCE)
        return job

    job = run(main())
    assert job.closed_early
    assert job.made <= 2  # stopped at the item after the time limit


def test_stop_refuses_new_jobs_and_finishes_running_ones() -> None:
    async def main() -> None:
        admission = Admission(max_queue=1)
        with pytest.raises(NotReady):
            admission.submit(Gate())
        admission.start()
        job = Gate(count=3, hold_from=0)
        ticket = admission.submit(job)
        assert await asyncio.to_thread(job.started.wait, PATIENCE)
        stopping = asyncio.create_task(admission.stop(grace=PATIENCE))
        await asyncio.sleep(0)  # stop() has begun: it refuses new work while this job still runs
        with pytest.raises(NotReady, match="shutting down"):
            admission.submit(Gate())
        job.release.set()
        assert [item async for item in ticket] == [0, 1, 2]
        await stopping

    run(main())


def test_call_runs_one_blocking_function() -> None:
    async def main() -> str:
        admission = Admission(max_queue=1)
        admission.start()
        name = await admission.call(lambda: threading.current_thread().name)
        await admission.stop()
        return name

    assert run(main()) == "indextts2-gpu-0"


# ---- through the app: a client that goes away stops the GPU work


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_disconnects_stops_its_synthesis(
    tmp_path: Any, stream: bool, tiny_synthesizer: Any
) -> None:
    # The synthesis holds before chunk `hold_from` until the server has cancelled it, so the chunks
    # made after the client left are counted exactly, whatever the machine's speed. A stream is
    # cancelled by the time the app returns; a whole-file request waits for the next chunk to end,
    # and cancels as soon as its watcher reads the disconnect, before the release that receive()
    # schedules for the loop's next turn.
    hold_from = 1 if stream else 3
    release = threading.Event()

    def hold(index: int) -> None:
        if index >= hold_from:
            assert release.wait(PATIENCE), "the test never released the synthesis"

    synthesizer = SpySynthesizer(tiny_synthesizer, before_chunk=hold)
    app = create_app(ServerConfig(voices_dir=tmp_path / "voices", default_options=FAST_OPTIONS), synthesizer)
    reference = tone(1.0).to_bytes("wav")
    boundary = "xyzzy"
    text = "A long text that would take many chunks to speak. " * 20
    segments = len(tiny_synthesizer.text_frontend.prepare(text, max_tokens_per_segment=120))
    total_chunks = 2 * segments - 1  # each segment, and the silence between two of them
    parts = [
        ("text", None, text.encode()),
        ("consent", None, b"true"),
        ("stream", None, str(stream).encode()),
        ("format", None, b"pcm"),
        ("reference", "me.wav", reference),
    ]
    body = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()

    async def main() -> list[int]:
        events: list[dict[str, Any]] = []
        first_body = asyncio.Event()
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            if stream:
                await first_body.wait()  # the client goes away after the first audio
            else:
                while synthesizer.chunks_made < 3:  # ... or while the audio is being made
                    await asyncio.sleep(0.01)
                asyncio.get_running_loop().call_soon(release.set)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            events.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                first_body.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/tts",
            "raw_path": b"/v1/tts",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 7860),
            "state": {},
        }
        async with _lifespan(app):
            await asyncio.wait_for(app(scope, receive, send), PATIENCE)
            release.set()
            deadline = time.monotonic() + PATIENCE
            while synthesizer.streams_closed_early == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        return [event["status"] for event in events if event["type"] == "http.response.start"]

    statuses = run(main())
    assert statuses == ([200] if stream else [499])
    assert synthesizer.streams_closed_early == 1
    assert total_chunks > 6
    # at most the chunk it held (none, if the worker saw the cancel first): nothing after the client left
    assert synthesizer.chunks_made <= hold_from + 1 < total_chunks


class _lifespan:
    """Run an ASGI app's lifespan startup and shutdown around a block."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __aenter__(self) -> None:
        self.queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await self.queue.put({"type": "lifespan.startup"})
        self.task = asyncio.create_task(
            self.app(
                {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, self.queue.get, self.sent.put
            )
        )
        assert (await self.sent.get())["type"] == "lifespan.startup.complete"

    async def __aexit__(self, *exc_info: object) -> None:
        await self.queue.put({"type": "lifespan.shutdown"})
        assert (await self.sent.get())["type"] == "lifespan.shutdown.complete"
        await self.task
