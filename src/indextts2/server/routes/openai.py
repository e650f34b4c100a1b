"""``POST /v1/audio/speech``: OpenAI's speech API, so that OpenAI clients work unchanged.

``voice`` names a saved voice (id or name, or ``{"id": ...}``); ``model`` one of the server's models
(OpenAI's ``tts-1`` / ``tts-1-hd`` mean the first); ``instructions`` is read as the emotion in words;
``speed`` goes to the synthesis options (on IndexTTS-2.5 the duration factor 1 / speed). pcm is
16-bit mono at 24 kHz, as OpenAI sends it.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.params import JSONBody

from indextts2.server.openapi import AUDIO_MEDIA_TYPES, documented
from indextts2.server.requests import OpenAISpeechBody, parse_openai_body
from indextts2.server.routes._common import AUDIO_ANSWER, MetricsDep, Speech, speak

__all__ = ["HANDLERS", "openai_speech"]

SPEECH_MEDIA_TYPES = (*AUDIO_MEDIA_TYPES, "text/event-stream")


@post(
    "/v1/audio/speech",
    opt={"rate_limited": True, "permission": "synthesis"},
    operation_class=documented(
        400,
        401,
        403,
        404,
        413,
        429,
        503,
        504,
        success={200: (AUDIO_ANSWER + "; text/event-stream with stream_format=sse", SPEECH_MEDIA_TYPES)},
    ),
    tags=["openai"],
    summary="OpenAI-compatible speech",
    description=(
        "The body of OpenAI's `audio.speech.create`. `voice` is the id or name of a saved voice; "
        "`instructions` describes the emotion in words. `stream_format=sse` sends "
        "`speech.audio.delta` events with base64 audio and a final `speech.audio.done`."
    ),
    status_code=200,
)
async def openai_speech(
    request: Request[Any, Any, Any], speech: Speech, metrics: MetricsDep, data: JSONBody[OpenAISpeechBody]
) -> Response[Any]:
    parsed, sse = parse_openai_body(data, max_text_chars=speech.config.max_text_chars)
    return await speak(request, speech, metrics, parsed, sse=sse)


HANDLERS = [openai_speech]
