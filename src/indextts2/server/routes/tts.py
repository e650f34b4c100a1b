"""``POST /v1/tts``: speech from a multipart form (text, voice or reference, emotion, format, stream)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.params import MultipartBody

from indextts2.server.access import multipart_only
from indextts2.server.openapi import AUDIO_MEDIA_TYPES, documented
from indextts2.server.requests import TTSForm, parse_tts_form
from indextts2.server.routes._common import AUDIO_ANSWER, MetricsDep, Speech, speak

__all__ = ["HANDLERS", "tts"]


@post(
    "/v1/tts",
    opt={"rate_limited": True, "permission": "synthesis"},
    guards=[multipart_only],
    operation_class=documented(
        400, 401, 403, 404, 413, 415, 429, 503, 504, success={200: (AUDIO_ANSWER, AUDIO_MEDIA_TYPES)}
    ),
    tags=["speech"],
    summary="Synthesize speech",
    description=(
        "Speak `text` in a saved `voice` or the voice of an uploaded `reference` (with `consent=true`), "
        "optionally with an emotion (a clip, eight weights, or words). With `stream=true` the audio "
        "(wav or pcm) is sent while it is made."
    ),
    status_code=200,
)
async def tts(
    request: Request[Any, Any, Any],
    speech: Speech,
    metrics: MetricsDep,
    data: MultipartBody[TTSForm],
) -> Response[Any]:
    parsed = await parse_tts_form(data, max_text_chars=speech.config.max_text_chars)
    return await speak(request, speech, metrics, parsed)


HANDLERS = [tts]
