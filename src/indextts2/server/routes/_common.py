"""What the speech routes share: running a synthesis and answering with audio."""

from __future__ import annotations

import functools
from typing import Any

import anyio
from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.response import Stream

from indextts2.audio import content_type, encoded_rate
from indextts2.server.access import AccessControl
from indextts2.server.context import current_request
from indextts2.server.metrics import Metrics
from indextts2.server.requests import SpeechRequest
from indextts2.server.speech import SpeechService
from indextts2.server.streaming import SynthesisRun, audio_bytes, collect_audio, encode_audio, sse_events
from indextts2.server.telemetry import stage_observer

__all__ = ["AUDIO_ANSWER", "Access", "MetricsDep", "Speech", "audio_media_type", "speak"]

# The app's services, injected by name (see app.py's dependencies).
Speech = NamedDependency[SpeechService]
MetricsDep = NamedDependency[Metrics]
Access = NamedDependency[AccessControl]

# OpenAPI: what a speech route's success is.
AUDIO_ANSWER = "The audio: Content-Type tells the format, X-Sample-Rate the rate"


def audio_media_type(format: str, sample_rate: int) -> str:
    if format == "pcm":
        return f"audio/L16;rate={sample_rate};channels=1"
    return content_type(format)  # type: ignore[arg-type]


async def speak(
    request: Request[Any, Any, Any],
    speech: SpeechService,
    metrics: Metrics,
    parsed: SpeechRequest,
    *,
    sse: bool = False,
) -> Response[Any]:
    """Run a synthesis and answer with its audio: streamed (wav/pcm), as events, or as a whole file.

    The first chunk is awaited before the response starts, so errors are still 4xx JSON.
    """
    context = current_request()
    ticket = speech.start(parsed, observer=stage_observer(context))
    run = SynthesisRun(ticket, metrics, target_rate=parsed.sample_rate)
    await run.start()
    if context is not None:  # the text counts once the synthesis is under way
        context.characters = len(parsed.text)
    rate = run.sample_rate
    if rate:  # the rate of the audio as sent: opus (and mp3 at an odd rate) is encoded at another one
        rate = encoded_rate(parsed.format, rate)  # type: ignore[arg-type]
    headers = {"X-Sample-Rate": str(rate), "Cache-Control": "no-store"}
    if sse:
        return Stream(sse_events(run, parsed.format), media_type="text/event-stream", headers=headers)
    media_type = audio_media_type(parsed.format, run.sample_rate)
    if parsed.stream:
        return Stream(audio_bytes(run, parsed.format), media_type=media_type, headers=headers)
    audio = await collect_audio(run, request.receive)
    data = await anyio.to_thread.run_sync(functools.partial(encode_audio, audio, parsed.format))
    headers["X-Audio-Duration"] = f"{audio.duration:.3f}"
    return Response(content=data, media_type=media_type, headers=headers)
