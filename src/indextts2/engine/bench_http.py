"""The engine benchmark over HTTP: the same workload sent to a running ``indextts2 serve``.

Each client streams ``POST /v1/tts`` as 16-bit PCM (``stream=true``) with a saved voice (created
once from the fixed reference clip). Time to first audio is the first body bytes; audio seconds
are counted from the bytes received. The server owns its settings: a code count cannot be forced
over the public API, so ``max_codes`` is set to the text's intended codes (random weights seldom
stop before it) and the report counts the audio actually received.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from typing import Any

import httpx

from indextts2.client import Client
from indextts2.engine.bench import (
    BenchReport,
    BenchSettings,
    BenchText,
    LevelReport,
    RequestResult,
    reference_clip,
    run_clients,
)
from indextts2.errors import IndexTTS2Error

__all__ = ["run_over_http"]


def _one_request(
    client: Client, voice: str, index: int, text: BenchText, settings: BenchSettings, model: str | None
) -> RequestResult:
    started = time.perf_counter()
    first: float | None = None
    samples = 0
    rate = 22050
    try:
        for block in client.stream(
            text.text, voice=voice, options=settings.options(index, text), model=model
        ):
            if first is None and block.num_samples:
                first = time.perf_counter() - started
            samples += block.num_samples
            rate = block.sample_rate
    except IndexTTS2Error as error:
        return RequestResult(text.name, 0.0, time.perf_counter() - started, None, str(error))
    return RequestResult(text.name, samples / rate, time.perf_counter() - started, first)


def run_over_http(
    url: str,
    settings: BenchSettings,
    *,
    api_key: str | None = None,
    meta: dict[str, Any] | None = None,
    on_level: Callable[[LevelReport], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    model: str | None = None,
) -> BenchReport:
    """Run every concurrency level against the server at ``url`` (``transport``: an httpx transport),
    on ``model`` (one of the server's ``/v1/models``; None: its default)."""
    with Client(url, api_key=api_key, timeout=600.0, transport=transport) as client:
        info = client.info()
        voice = str(client.create_voice(reference_clip(), consent=True, model=model)["id"])
        _one_request(client, voice, 0, settings.texts[0], settings, model)  # warm-up
        levels = []
        for clients in settings.concurrency:
            results, wall = run_clients(
                clients, lambda c, i, t: _one_request(client, voice, i, t, settings, model), settings
            )
            level = LevelReport.from_results(clients, results, wall)
            levels.append(level)
            if on_level is not None:
                on_level(level)
    details = {
        "date": _dt.date.today().isoformat(),
        "server": url,
        "model": model or info.get("model"),
        "settings": {
            "concurrency": list(settings.concurrency),
            "requests_per_client": settings.requests_per_client,
        },
    }
    return BenchReport(meta={**details, **(meta or {})}, levels=levels)
