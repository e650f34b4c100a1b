"""Running the app under uvicorn: the model loader, the pidfile, signals and a clean exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn

from indextts2.errors import ConfigError, IndexTTS2Error
from indextts2.server.app import create_app, drain
from indextts2.server.config import ServerConfig, is_loopback_host
from indextts2.server.context import ACCESS_LOGGER
from indextts2.server.process import Pidfile

__all__ = ["SHUTDOWN_MARGIN_SECONDS", "load_synthesizer", "serve"]

logger = logging.getLogger(__name__)


def load_synthesizer(config: ServerConfig) -> Any:
    """The Synthesizer the server uses (runs on the GPU worker thread at startup)."""
    from indextts2 import Synthesizer  # issue 8
    from indextts2.engine import EngineConfig

    # every admitted request is active in the engine at once; the admission queue is the only queue
    engine = EngineConfig(max_active=config.gpu_workers, max_queue=config.gpu_workers)
    return Synthesizer.from_pretrained(config.model, device=config.device, engine=engine)


# uvicorn's own limit on waiting for connections after SIGTERM, past the grace period: the app ends
# every request at the end of the grace period itself (app.drain), so this only catches a connection
# that still does not close.
SHUTDOWN_MARGIN_SECONDS = 5.0


class _Server(uvicorn.Server):
    """uvicorn's server: tells the log where it listens once the sockets are bound, and starts the
    app's drain (``on_shutdown``) as soon as the shutdown begins, beside uvicorn's own."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        on_started: Callable[[list[str]], None],
        on_shutdown: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn stops listening, then waits for the open connections; the drain ends their
        # requests at the end of the grace period, so that they close
        draining = asyncio.create_task(self._on_shutdown())
        try:
            await super().shutdown(sockets)
        finally:
            if not draining.done():
                draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await draining

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:
            return
        addresses = []
        for server in getattr(self, "servers", []):
            for bound in server.sockets:
                host, port = bound.getsockname()[:2]
                addresses.append(f"http://{'[' + host + ']' if ':' in host else host}:{port}")
        self._on_started(addresses)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises a captured SIGTERM after its graceful shutdown, so the process would die
        # "killed by SIGTERM"; SIGTERM is how a service is stopped, so after a clean stop we exit 0.
        with super().capture_signals():
            try:
                yield
            finally:
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list):
                    captured[:] = [s for s in captured if s != signal.SIGTERM]


# glibc's mallopt parameters: blocks above the mmap threshold are mapped and unmapped on their own;
# the arena maximum caps how many heaps the threads allocate from
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD_BYTES = 1024 * 1024  # fixed (glibc starts at 128 KiB and lets it grow to 32 MiB)
_ARENA_MAX = 2


def _steady_heap() -> None:
    """Keep the server's resident memory from creeping up under concurrent load (glibc only).

    glibc raises its mmap threshold each time a large block is freed, after which such blocks come
    from the heap, where the batches of many requests of different sizes leave it fragmented (a
    dummy:tiny server batching 16 clients grew ~150 MiB over its first thousand requests before
    levelling off). With the threshold fixed, large blocks stay mapped and go back to the system
    when freed. The server's threads (workers, the engine) would also each get an arena of their
    own, up to eight per core, every one keeping its own fragments; two arenas are enough.
    Measured on the CPU (dummy:tiny through the engine, 16 threads, ten rounds of 100 requests):
    glibc's defaults, 583 -> 644 MiB and still rising; two arenas alone, rising ~5 MiB a round;
    with the threshold fixed at 128 KiB, flat but 35 % slower (every tensor over 128 KiB is a fresh
    mapping, page faults and all); at 1 MiB, flat and ~10 % slower. Device tensors do not live in
    this heap, so on a GPU the cost is in host-side arrays only.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        libc.mallopt(_M_ARENA_MAX, _ARENA_MAX)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to tune
        logger.debug("mallopt is not available; the heap is left as it is")


def serve(
    config: ServerConfig,
    *,
    replace: bool = False,
    loader: Callable[[ServerConfig], Any] | None = None,
    forwarded_allow_ips: str | None = None,
    access_log: bool = True,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop within the grace period.

    On the signal the server stops listening and admits nothing new; the requests in flight get
    ``config.grace_period`` seconds, then what is left is ended (see :func:`indextts2.server.app.drain`),
    the engine thread is stopped and the call returns, a few seconds after the grace period at most.

    Args:
        config: the server's configuration; ``config.pidfile`` must be set.
        replace: stop the server recorded in the pidfile first, and take over its port.
        loader: loads the Synthesizer (default :func:`load_synthesizer`); runs in the background.
        forwarded_allow_ips: proxies trusted for X-Forwarded-For (uvicorn's setting; default 127.0.0.1).
        access_log: log one line per request (the ``indextts2.server.access`` logger).

    Raises:
        ConfigError: an exposed bind without keys, another server running, an unusable pidfile.
        IndexTTS2Error: the model could not be loaded.
    """
    config.check_exposure()
    if not is_loopback_host(config.host) and not config.needs_key:
        logger.warning(
            "listening on %s with NO API key (--insecure): anyone who reaches this port can use the GPU",
            config.host,
        )
    if config.pidfile is None:
        raise ConfigError("serve needs a pidfile path in its config")
    pidfile = Pidfile(config.pidfile)
    pidfile.claim(replace=replace, wait_seconds=config.grace_period)
    try:
        _run(
            config, loader or load_synthesizer, forwarded_allow_ips=forwarded_allow_ips, access_log=access_log
        )
    finally:
        pidfile.release()  # whatever stopped it: a failed start leaves no pidfile behind
    logger.warning("server stopped (pid %d)", os.getpid())


def _run(
    config: ServerConfig,
    loader: Callable[[ServerConfig], Any],
    *,
    forwarded_allow_ips: str | None,
    access_log: bool,
) -> None:
    """Build the app and run it under uvicorn until it stops; raise why it could not start."""
    load_failure: list[BaseException] = []
    server_ref: list[_Server] = []

    def guarded_loader(server_config: ServerConfig) -> Any:
        try:
            return loader(server_config)
        except Exception as exc:
            load_failure.append(exc)
            if server_ref:
                server_ref[0].should_exit = True
            raise

    _steady_heap()
    logging.getLogger(ACCESS_LOGGER).disabled = not access_log
    app = create_app(config, loader=guarded_loader)
    uvicorn_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_config=None,
        access_log=False,  # the app writes its own, with request id, caller and latency (context.py)
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(config.grace_period + SHUTDOWN_MARGIN_SECONDS),
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
    )

    def started(addresses: list[str]) -> None:
        for address in addresses:
            logger.warning("indextts2 serving on %s (web page /, API docs /docs)", address)

    async def stopping() -> None:
        logger.warning("stopping: requests in flight get %g s to finish", config.grace_period)
        await drain(app, config.grace_period)

    server = _Server(uvicorn_config, on_started=started, on_shutdown=stopping)
    server_ref.append(server)
    cannot_start = ConfigError(
        f"the server could not start on {config.host}:{config.port}: is the port in use? (see the log above)"
    )
    try:
        server.run()
    except SystemExit:  # uvicorn exits this way when it cannot bind
        raise cannot_start from None
    if load_failure:
        failure = load_failure[0]
        if isinstance(failure, IndexTTS2Error):
            raise failure
        raise IndexTTS2Error(f"cannot load model {config.model}: {failure}") from failure
    if not server.started:
        raise cannot_start
