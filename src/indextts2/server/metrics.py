"""Prometheus metrics of one server (its own registry, so several apps in one process never clash)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics", "metrics_middleware"]

# Prometheus text format 0.0.4; Litestar adds "; charset=utf-8" to every text/* media type itself
CONTENT_TYPE = "text/plain; version=0.0.4"

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
_RTF_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0)


class _GpuMemoryCollector(Collector):
    """GPU memory of this process, read from torch at scrape time (nothing when there is no CUDA)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "indextts2_gpu_memory_bytes",
            "GPU memory held by this process (torch allocator)",
            labels=["device", "kind"],
        )
        torch = sys.modules.get("torch")  # never import torch just for a scrape
        if torch is not None and torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                family.add_metric([str(index), "allocated"], float(torch.cuda.memory_allocated(index)))
                family.add_metric([str(index), "reserved"], float(torch.cuda.memory_reserved(index)))
        yield family


class _EngineCollector(Collector):
    """Each engine's batch sizes per stage, occupancy and health, labelled by model and device, read
    at scrape time (``read()`` gives a list of :class:`~indextts2.pool.EngineStatus`)."""

    def __init__(self) -> None:
        self.read: Callable[[], Any] = lambda: []

    def collect(self) -> Iterator[Any]:
        engines = self.read() or []
        batches = CounterMetricFamily(
            "indextts2_engine_batches",
            "Batches run by the engine, by stage",
            labels=["model", "device", "stage"],
        )
        items = CounterMetricFamily(
            "indextts2_engine_batch_items",
            "Items processed by the engine, by stage (items / batches = the mean batch size)",
            labels=["model", "device", "stage"],
        )
        last = GaugeMetricFamily(
            "indextts2_engine_batch_size",
            "Size of the latest batch of each stage",
            labels=["model", "device", "stage"],
        )
        largest = GaugeMetricFamily(
            "indextts2_engine_batch_size_max",
            "Largest batch of each stage so far",
            labels=["model", "device", "stage"],
        )
        occupancy = GaugeMetricFamily(
            "indextts2_engine_requests",
            "Requests in the engine, waiting or active",
            labels=["model", "device", "state"],
        )
        rows = GaugeMetricFamily(
            "indextts2_engine_kv_rows", "Rows of the GPT's KV-cache pool", labels=["model", "device", "state"]
        )
        decoding = GaugeMetricFamily(
            "indextts2_engine_decoding", "Sequences in the GPT's decode batch", labels=["model", "device"]
        )
        up = GaugeMetricFamily(
            "indextts2_engine_up",
            "1 while the engine takes requests, 0 once it failed and left the rotation",
            labels=["model", "device"],
        )
        outstanding = GaugeMetricFamily(
            "indextts2_engine_outstanding",
            "Requests routed to the engine and not finished (what the router balances)",
            labels=["model", "device"],
        )
        for engine in engines:
            model, device = engine.model, engine.name
            up.add_metric([model, device], 1.0 if engine.healthy else 0.0)
            outstanding.add_metric([model, device], float(engine.outstanding))
            stats = engine.stats
            if stats is None:
                continue
            for stage in stats.batches:
                batches.add_metric([model, device, stage], float(stats.batches[stage]))
                items.add_metric([model, device, stage], float(stats.items[stage]))
                last.add_metric([model, device, stage], float(stats.last_batch[stage]))
                largest.add_metric([model, device, stage], float(stats.largest_batch[stage]))
            occupancy.add_metric([model, device, "waiting"], float(stats.waiting))
            occupancy.add_metric([model, device, "active"], float(stats.active))
            rows.add_metric([model, device, "total"], float(stats.kv_rows))
            rows.add_metric([model, device, "free"], float(stats.kv_rows_free))
            decoding.add_metric([model, device], float(stats.decoding))
        yield from (batches, items, last, largest, occupancy, rows, decoding, up, outstanding)


class Metrics:
    """The server's metrics. ``bind_admission`` connects the queue gauges to a live admission."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "indextts2_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "indextts2_request_duration_seconds",
            "Time from request to the end of the response, by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "indextts2_queue_depth", "Requests waiting for the GPU", registry=self.registry
        )
        self.in_flight = Gauge("indextts2_in_flight", "Requests running on the GPU", registry=self.registry)
        self.time_to_first_audio = Histogram(
            "indextts2_time_to_first_audio_seconds",
            "Time from admission to the first audio chunk",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.real_time_factor = Histogram(
            "indextts2_real_time_factor",
            "Synthesis time divided by the duration of the audio produced (lower is faster)",
            buckets=_RTF_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "indextts2_audio_seconds", "Seconds of audio produced", registry=self.registry
        )
        self.ready = Gauge(
            "indextts2_ready", "1 when the model is loaded and requests are admitted", registry=self.registry
        )
        self.registry.register(_GpuMemoryCollector())
        self._engine = _EngineCollector()
        self.registry.register(self._engine)

    def bind_engines(self, read: Callable[[], Any]) -> None:
        """Report the engines' statistics (``read()`` gives a list of ``EngineStatus``)."""
        self._engine.read = read

    def bind_admission(self, queued: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.queue_depth.set_function(queued)
        self.in_flight.set_function(in_flight)

    def observe_synthesis(
        self, *, time_to_first_audio: float | None, seconds: float, audio_seconds: float
    ) -> None:
        """Record one finished synthesis: its latency, its speed and the audio it produced."""
        if time_to_first_audio is not None:
            self.time_to_first_audio.observe(time_to_first_audio)
        if audio_seconds > 0:
            self.audio_seconds.inc(audio_seconds)
            self.real_time_factor.observe(seconds / audio_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def metrics_middleware(metrics: Metrics) -> Callable[[Any], Any]:
    """ASGI middleware counting every HTTP response by route template, method and status."""

    def factory(app: Any) -> Any:
        async def middleware(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            handler = scope.get("route_handler")
            paths = getattr(handler, "paths", None)
            route = sorted(paths)[0] if paths else "unmatched"
            status = 500
            started = time.monotonic()

            async def counting_send(message: Any) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, counting_send)
            finally:
                metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
                metrics.request_seconds.labels(route).observe(time.monotonic() - started)

        return middleware

    return factory
