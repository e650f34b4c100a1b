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
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from indextts2.errors import ConfigError, IndexTTS2Error
from indextts2.server.app import create_app, drain
from indextts2.server.config import ServerConfig, is_loopback_host
from indextts2.server.context import ACCESS_LOGGER
from indextts2.server.handover import HandoverServer, handover_path, request_drain, take_listener
from indextts2.server.process import Pidfile

__all__ = ["SHUTDOWN_MARGIN_SECONDS", "load_synthesizer", "serve"]

logger = logging.getLogger(__name__)


def load_synthesizer(config: ServerConfig) -> Any:
    """The Synthesizer of ``config.model`` (runs on the GPU worker thread at startup, once per model
    of the server, each with ``config.for_model``): a :class:`~indextts2.pool.SynthesizerPool` of one
    engine per device (``config.devices``), or of one engine on ``config.device``."""
    from indextts2 import Synthesizer  # issue 8
    from indextts2.engine import EngineConfig

    # every admitted request is active in the engine at once; the admission queue is the only queue
    engine = EngineConfig(max_active=config.gpu_workers, max_queue=config.gpu_workers)
    from indextts2.pool import SynthesizerPool

    if config.devices:
        return SynthesizerPool.from_pretrained(config.model, devices=config.devices, engine=engine)
    # a pool of one: an engine that fails is reported the same way (/readyz, /healthz, 503s)
    return SynthesizerPool([Synthesizer.from_pretrained(config.model, device=config.device, engine=engine)])


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
        self.handing_over = False
        """The replacement serves from the same socket: stop accepting, serve what was accepted."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.handing_over:
            # Stop accepting first (the replacement accepts from the same queue), and give the
            # connections accepted a moment ago the time to send their requests: uvicorn closes
            # every connection that has not started a request yet.
            for server in self.servers:
                server.close()
            await asyncio.sleep(_HANDOVER_LINGER_SECONDS)
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


# After a handover, how long the replaced server keeps its accepted connections open for their
# first request before it closes the idle ones (a request on loopback arrives within milliseconds).
_HANDOVER_LINGER_SECONDS = 1.0


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
        replace: take over from the server recorded in the pidfile: load and warm the model while
            it serves, take its listening socket, then tell it to drain (``server/handover.py``);
            a server that offers no handover is stopped first instead.
        loader: loads the Synthesizer (default :func:`load_synthesizer`); runs in the background,
            or first of all when replacing.
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
    load = loader or load_synthesizer
    running = pidfile.running_pid() if replace else None
    takeover = _take_over(config, load, running) if running is not None else None
    if takeover is None:
        pidfile.claim(replace=replace, wait_seconds=config.grace_period)
    else:
        pidfile.write()
    try:
        _run(
            config,
            load,
            takeover=takeover,
            forwarded_allow_ips=forwarded_allow_ips,
            access_log=access_log,
        )
    finally:
        pidfile.release()  # whatever stopped it: a failed start leaves no pidfile behind
    logger.warning("server stopped (pid %d)", os.getpid())


class _Takeover:
    """What a replacement brings to its start: its loaded models (by name) and the old server's
    socket."""

    def __init__(self, synthesizers: dict[str, Any], listener: socket.socket, old: Path) -> None:
        self.synthesizers = synthesizers
        self.listener = listener
        self.old = old


def _close_all(synthesizers: dict[str, Any]) -> None:
    for synthesizer in synthesizers.values():
        close = getattr(synthesizer, "close", None)
        if close is not None:
            close()


def _take_over(config: ServerConfig, load: Callable[[ServerConfig], Any], pid: int) -> _Takeover | None:
    """Load and warm the model while the server ``pid`` serves, then take its listening socket.

    None when it offers no handover (it is then stopped first, the old way).
    """
    assert config.pidfile is not None
    path = handover_path(config.pidfile)
    if not path.exists():
        logger.warning(
            "the server with pid %d offers no socket handover (an older indextts2?): it is stopped "
            "first, and the port stays closed until this one is up",
            pid,
        )
        return None
    started = time.monotonic()
    names = ", ".join(p.name for p in config.placements)
    logger.warning("replacing the server with pid %d: loading %s while it serves", pid, names)
    synthesizers: dict[str, Any] = {}
    try:  # if this fails, the old server simply keeps serving
        for placement in config.placements:
            synthesizer = synthesizers[placement.name] = load(config.for_model(placement))
            warm_up = getattr(synthesizer, "warm_up", None)
            if warm_up is not None:
                warm_up()
    except Exception as exc:
        _close_all(synthesizers)
        if isinstance(exc, IndexTTS2Error):
            raise
        message = f"cannot load model {names}: {exc}; the old server keeps serving"
        raise IndexTTS2Error(message) from exc
    listener = take_listener(path)
    if listener is not None and listener.getsockname()[1] != config.port and config.port != 0:
        logger.warning(
            "the running server listens on port %d, not %d: it is stopped first instead",
            listener.getsockname()[1],
            config.port,
        )
        listener.close()
        listener = None
    if listener is None:
        _close_all(synthesizers)
        return None
    logger.warning(
        "loaded and warmed in %.1f s; taking over the port from pid %d", time.monotonic() - started, pid
    )
    return _Takeover(synthesizers, listener, path)


def _call_soon(loop: asyncio.AbstractEventLoop, function: Callable[[], None]) -> None:
    loop.call_soon_threadsafe(function)


def _run(
    config: ServerConfig,
    loader: Callable[[ServerConfig], Any],
    *,
    takeover: _Takeover | None = None,
    forwarded_allow_ips: str | None,
    access_log: bool,
) -> None:
    """Build the app and run it under uvicorn until it stops; raise why it could not start."""
    load_failure: list[tuple[str, BaseException]] = []  # (model, why)
    server_ref: list[_Server] = []

    def guarded_loader(server_config: ServerConfig) -> Any:
        try:
            return loader(server_config)
        except Exception as exc:
            load_failure.append((server_config.model, exc))
            if server_ref:
                server_ref[0].should_exit = True
            raise

    _steady_heap()
    logging.getLogger(ACCESS_LOGGER).disabled = not access_log
    preloaded = takeover.synthesizers if takeover is not None else None
    app = create_app(config, preloaded, loader=None if preloaded is not None else guarded_loader)
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
    cannot_start = ConfigError(
        f"the server could not start on {config.host}:{config.port}: is the port in use? (see the log above)"
    )
    try:
        # our own listening socket (not uvicorn's), so that a replacement can be handed it
        listener = takeover.listener if takeover is not None else uvicorn_config.bind_socket()
    except SystemExit:  # uvicorn exits this way when it cannot bind
        raise cannot_start from None
    assert config.pidfile is not None
    handover: HandoverServer | None = None

    def started(addresses: list[str]) -> None:
        nonlocal handover
        for address in addresses:
            logger.warning("indextts2 serving on %s (web page /, API docs /docs)", address)
        if takeover is not None and not request_drain(takeover.old):
            logger.warning("the replaced server did not answer; it keeps serving beside this one")
        loop = asyncio.get_running_loop()

        def hand_over() -> None:
            server.handing_over = True
            server.should_exit = True

        handover = HandoverServer(
            handover_path(config.pidfile),  # type: ignore[arg-type]  # checked above
            listener,
            on_drain=lambda: _call_soon(loop, hand_over),
        )
        handover.start()

    async def stopping() -> None:
        grace = config.grace_period
        if server.handing_over:
            # the replacement accepts every new connection: serve what the open ones still bring
            # (their responses close them), and drain only what is left at the end of the grace
            logger.warning("handed over: finishing the requests already accepted (up to %g s)", grace)
            deadline = time.monotonic() + grace
            while server.server_state.connections and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            grace = max(0.0, deadline - time.monotonic())
        else:
            logger.warning("stopping: requests in flight get %g s to finish", grace)
        await drain(app, grace)

    server = _Server(uvicorn_config, on_started=started, on_shutdown=stopping)
    server_ref.append(server)
    try:
        server.run(sockets=[listener])
    except SystemExit:  # uvicorn exits this way when the app cannot start
        raise cannot_start from None
    finally:
        if handover is not None:
            handover.close()
        if preloaded is not None:  # the app closes only what it loaded itself
            _close_all(preloaded)
    if load_failure:
        model, failure = load_failure[0]
        if isinstance(failure, IndexTTS2Error):
            raise failure
        raise IndexTTS2Error(f"cannot load model {model}: {failure}") from failure
    if not server.started:
        raise cannot_start
