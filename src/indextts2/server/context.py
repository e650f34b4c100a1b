"""The request being served: its id, its caller and what it cost, in a context variable.

:class:`RequestContextLayer` is the app's outermost layer (around Litestar's exception handling, so
that unknown routes and every error pass through it too). For each HTTP request it

- takes the request id from the gateway's header (``X-Request-ID`` unless configured otherwise) when
  it is well formed, or makes one, and sends it back on the response;
- makes a :class:`RequestContext` current for everything the request runs: the guard names the
  caller, the speech routes add characters and audio seconds, log records read the id and the caller
  (``server/logs.py``), error bodies carry the id (``server/errors.py``), and the admission's worker
  threads run the request's job in a copy of its context;
- when the response is complete, hands the context to its listeners: usage metering, the access log
  line, tracing.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Interval",
    "RequestContext",
    "RequestContextLayer",
    "current_request",
    "current_request_id",
    "new_request_id",
    "well_formed_request_id",
]

ACCESS_LOGGER = "indextts2.server.access"
access_logger = logging.getLogger(ACCESS_LOGGER)
logger = logging.getLogger(__name__)

# What a gateway's id may look like: UUIDs, hex, Kong's and nginx's ids, "<trace>-<span>" pairs.
# Anything else is replaced, so a client cannot put arbitrary text into the logs.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}$")

_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "indextts2_request", default=None
)


@dataclass(frozen=True)
class Interval:
    """A stretch of a request's time (monotonic seconds), for tracing: queueing, a stage, encoding."""

    name: str
    start: float
    end: float
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class RequestContext:
    """One HTTP request as the server's cross-cutting parts see it.

    Attributes:
        request_id: the gateway's id, or one made here.
        method, path: of the request (the path without its query string).
        client: the client's address, as uvicorn reports it (behind a trusted proxy: the real one).
        headers: the request's headers (lower-case names), for trace propagation.
        started: monotonic time the request came in.
        route: the route template (``/v1/voices/{voice_id:str}``), once routed.
        caller: who is calling (``key:NAME``, ``jwt:SUBJECT``, ``anonymous``), once the guard knows.
        metered: the request counts in the caller's usage (API routes; not health checks, the page).
        status: of the response (500 until one starts).
        characters: of text the request asked to speak.
        audio_seconds: of audio it produced.
        intervals: queueing, engine stages and encoding, recorded when tracing is on.
    """

    request_id: str
    method: str
    path: str
    client: str | None
    headers: dict[str, str]
    started: float
    route: str | None = None
    caller: str | None = None
    metered: bool = False
    status: int = 500
    characters: int = 0
    audio_seconds: float = 0.0
    trace: bool = False
    intervals: list[Interval] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Time since the request came in."""
        return time.monotonic() - self.started


def current_request() -> RequestContext | None:
    """The request this code runs for (None outside a request)."""
    return _current.get()


def current_request_id() -> str | None:
    context = _current.get()
    return context.request_id if context is not None else None


def new_request_id() -> str:
    return uuid.uuid4().hex


def well_formed_request_id(value: str | None) -> str | None:
    """``value`` when it is usable as a request id (1-128 safe characters), else None."""
    if value and _REQUEST_ID.match(value):
        return value
    return None


Listener = Callable[[RequestContext], None]


class RequestContextLayer:
    """ASGI layer: a :class:`RequestContext` per HTTP request, the id header, listeners at the end.

    Args:
        app: the app inside (Litestar's exception-handling stack).
        header: the request id header.
        trace: record the intervals tracing needs.
        listeners: called with the finished context, in order (a failing one is logged, never
            raised: the response has gone out already).
    """

    def __init__(self, app: Any, *, header: str, trace: bool = False, listeners: list[Listener]) -> None:
        self.app = app
        self.trace = trace
        self.header = header.lower()
        self._header_bytes = self.header.encode("latin-1")
        self.listeners = listeners

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", ())
        }
        client = scope.get("client")
        context = RequestContext(
            request_id=well_formed_request_id(headers.get(self.header)) or new_request_id(),
            method=scope.get("method", ""),
            path=scope.get("path", ""),
            client=client[0] if client else None,
            headers=headers,
            started=time.monotonic(),
            trace=self.trace,
        )
        id_header = (self._header_bytes, context.request_id.encode("latin-1"))

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                context.status = int(message["status"])
                kept = [(n, v) for n, v in message.get("headers", ()) if n.lower() != self._header_bytes]
                message = {**message, "headers": [*kept, id_header]}
            await send(message)

        token = _current.set(context)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            handler = scope.get("route_handler")
            paths = getattr(handler, "paths", None)
            if paths:
                context.route = sorted(paths)[0]
            for listener in self.listeners:
                try:
                    listener(context)
                except Exception:
                    logger.exception("recording request %s failed", context.request_id)
            _current.reset(token)


def log_access(context: RequestContext) -> None:
    """The access log line of a finished request: method, path, status, latency, audio seconds."""
    access_logger.info(
        "%s %s %d %.3fs%s",
        context.method,
        context.path,
        context.status,
        context.seconds,
        f" audio={context.audio_seconds:.2f}s" if context.audio_seconds else "",
        extra={
            "method": context.method,
            "path": context.path,
            "status": context.status,
            "latency": round(context.seconds, 4),
            "audio_seconds": round(context.audio_seconds, 3),
            "client": context.client,
        },
    )
