"""OpenTelemetry traces of the server (the ``otel`` extra: ``pip install "indextts2[otel]"``).

With ``ServerConfig.tracing`` each HTTP request becomes a server span - a child of the gateway's
span when the request carries a W3C ``traceparent`` header - with child spans for

- ``admission.queue``: waiting for one of the server's GPU workers;
- ``engine.queue``, ``engine.conditioning``, and per segment ``engine.decode``, ``engine.latent``,
  ``engine.s2mel``, ``engine.vocoder``: the request's time in each stage of the batching engine
  (attributes: the segment, and how many pieces ran in the same batch);
- ``encode``: turning the audio into the file format asked for.

The spans are built when the response is complete, from times the request recorded on its way
(``RequestContext.intervals``): nothing is added to the engine's thread but appending to a list, and
nothing at all when tracing is off. The engine does not synchronise the GPU for them: on CUDA a
stage's span is the host's time, which ends when its work is queued unless the stage waits for a
result (``EngineConfig(profile=True)`` synchronises each stage, and so makes the spans exact).

Spans go to the global tracer provider; ``indextts2 serve --otel`` installs one exporting OTLP over
HTTP, configured by the standard ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``...).
"""

from __future__ import annotations

import time
from typing import Any

from indextts2.__about__ import __version__
from indextts2.engine.stats import StageObserver, StageSpan
from indextts2.errors import ConfigError
from indextts2.server.context import Interval, RequestContext

__all__ = ["Tracing", "configure_otlp_export", "stage_observer"]

_MISSING = 'tracing needs OpenTelemetry: pip install "indextts2[otel]"'


def _require_otel() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - the dev extra installs it
        raise ConfigError(_MISSING) from None
    return trace


def stage_observer(context: RequestContext | None) -> StageObserver | None:
    """What the engine reports a traced request's stages to (None: the request is not traced)."""
    if context is None or not context.trace:
        return None
    intervals = context.intervals

    def observe(span: StageSpan) -> None:
        attributes: dict[str, Any] = {"indextts2.batch_size": span.batch}
        if span.segment is not None:
            attributes["indextts2.segment"] = span.segment
        intervals.append(Interval(f"engine.{span.stage}", span.start, span.end, attributes))

    return observe


class Tracing:
    """Turns finished requests into spans (a listener of the request context layer).

    Args:
        enabled: off: every request is left alone.
        tracer_provider: where spans go (default: the global provider).
    """

    def __init__(self, enabled: bool, *, tracer_provider: Any = None) -> None:
        self.enabled = enabled
        self._tracer: Any = None
        if enabled:
            trace = _require_otel()
            self._tracer = trace.get_tracer("indextts2.server", __version__, tracer_provider=tracer_provider)

    def export(self, context: RequestContext) -> None:
        """The request's span and its children, with the times they really had."""
        if self._tracer is None:
            return
        from opentelemetry import propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        offset = time.time_ns() - time.monotonic_ns()

        def nanoseconds(monotonic: float) -> int:
            return int(monotonic * 1e9) + offset

        route = context.route or "unmatched"
        attributes: dict[str, Any] = {
            "http.request.method": context.method,
            "http.route": route,
            "url.path": context.path,
            "http.response.status_code": context.status,
            "indextts2.request_id": context.request_id,
        }
        if context.client:
            attributes["client.address"] = context.client
        if context.caller:
            attributes["enduser.id"] = context.caller
        if context.characters:
            attributes["indextts2.characters"] = context.characters
        if context.audio_seconds:
            attributes["indextts2.audio_seconds"] = round(context.audio_seconds, 3)
        span = self._tracer.start_span(
            f"{context.method} {route}",
            context=propagate.extract(context.headers),
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=nanoseconds(context.started),
        )
        if context.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        parent = trace.set_span_in_context(span)
        for interval in context.intervals:
            child = self._tracer.start_span(
                interval.name,
                context=parent,
                attributes=interval.attributes,
                start_time=nanoseconds(interval.start),
            )
            child.end(end_time=nanoseconds(interval.end))
        span.end(end_time=time.time_ns())


def configure_otlp_export() -> None:
    """Install a global tracer provider that exports OTLP over HTTP (``indextts2 serve --otel``).

    The exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables (default endpoint
    http://localhost:4318); the service is ``indextts2`` unless ``OTEL_SERVICE_NAME`` says otherwise.

    Raises:
        ConfigError: the ``otel`` extra is not installed.
    """
    trace = _require_otel()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(_MISSING) from None
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "indextts2"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
