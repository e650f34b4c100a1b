"""Speech requests: the HTTP bodies, parsed and checked into one :class:`SpeechRequest`.

This is the one module of the server that knows the library's option types (``Emotion``,
``SynthesisOptions``): :func:`build_emotion` and :func:`build_options` turn the parsed fields into
them. Everything else in the server passes :class:`SpeechRequest` around.

Checks that need no model happen here, on the event loop, before a request is queued: empty or
too long text, the format, the stream flag, consent, malformed numbers. What the library's own types
refuse (an emotion weight out of range, an unknown option) is refused when they are built, on the GPU
worker, still before the first byte of audio.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar.datastructures import UploadFile
from litestar.params import KwargDefinition

from indextts2.audio import FORMATS, load_audio
from indextts2.audio.aac import INSTALL_HINT as AAC_INSTALL_HINT
from indextts2.audio.aac import aac_available
from indextts2.errors import InvalidInput, TextTooLong
from indextts2.options import SPEED_RANGE

__all__ = [
    "OPENAI_FORMATS",
    "EmotionFields",
    "OpenAISpeechBody",
    "SpeechRequest",
    "TTSForm",
    "build_emotion",
    "build_options",
    "described",
    "emotion_names",
    "parse_openai_body",
    "parse_tts_form",
    "upload_name",
]

STREAMABLE_FORMATS = ("wav", "pcm")
OPENAI_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
# OpenAI's pcm is 16-bit mono at 24 kHz; clients that play it assume that rate.
OPENAI_PCM_RATE = 24000
OPENAI_SPEED_RANGE = (0.25, 4.0)
"""OpenAI's ``speed`` range; IndexTTS takes only :data:`~indextts2.options.SPEED_RANGE` of it."""


# --------------------------------------------------------------------------------------------------
# Bodies as the API documents them (Litestar builds the OpenAPI schema from these)


def described(text: str) -> KwargDefinition:
    """A field's description in the OpenAPI schema (``Annotated[type, described("...")]``)."""
    return KwargDefinition(description=text)


@dataclass
class TTSForm:
    """``POST /v1/tts`` (multipart/form-data). Give ``voice``, or ``reference`` with ``consent=true``."""

    text: Annotated[str, described("The text to speak.")]
    voice: Annotated[str | None, described("A saved voice: its id or name (see `/v1/voices`).")] = None
    model: Annotated[
        str | None,
        described(
            "Which of the server's models speaks (`/v1/models`): its id, or its family when one model "
            "has it (`IndexTTS-2`). Absent: the first (the default)."
        ),
    ] = None
    reference: Annotated[
        UploadFile | None,
        described("A reference clip of the speaker (wav, flac, ogg, opus, mp3), used once and not kept."),
    ] = None
    consent: Annotated[
        bool,
        described("Must be true with `reference`: the voice is yours, or you have the speaker's permission."),
    ] = False
    emotion_audio: Annotated[
        UploadFile | None, described("A clip whose emotion the speech should carry.")
    ] = None
    emotion_alpha: Annotated[
        float | None, described("Strength of the emotion clip or vector, 0..1 (default 1).")
    ] = None
    emotion_vector: Annotated[
        str | None,
        described("Eight weights 0..1, comma-separated, in the order of `emotions` in `/v1/info`."),
    ] = None
    emotion_weights: Annotated[
        str | None, described('The same as a JSON object, e.g. `{"happy": 0.7, "surprised": 0.3}`.')
    ] = None
    emotion_text: Annotated[
        str | None,
        described('The emotion in words (e.g. "furious and impatient"), read by the text-emotion model.'),
    ] = None
    emotion_random: Annotated[bool, described("Pick the emotion exemplar at random (vector mode).")] = False
    language: Annotated[
        str | None,
        described(
            "IndexTTS-2.5: the text's language, one of `family.languages` in `/v1/info` (zh, en, ja, es, "
            "ar); `auto` or absent: detected from the script. A model without languages refuses it."
        ),
    ] = None
    duration: Annotated[
        float | None,
        described(
            "IndexTTS-2.5: the duration factor, 0.5 to 2.0 (1.25 = 25 % longer, slower; the official "
            "`duration_factor`). A model without it refuses it."
        ),
    ] = None
    speed: Annotated[
        float | None,
        described("Speaking rate, 0.5 to 2.0 (1.25 = 25 % faster); on IndexTTS-2.5 it divides `duration`."),
    ] = None
    options: Annotated[
        str | None,
        described(
            'Synthesis options as a JSON object, e.g. `{"seed": 7, "temperature": 0.7}` (see `/v1/info`).'
        ),
    ] = None
    format: Annotated[
        str, described("wav, flac, mp3, opus, ogg or pcm (16-bit little-endian mono, no header).")
    ] = "wav"
    stream: Annotated[bool, described("Send audio while it is made (chunked transfer; wav or pcm only).")] = (
        False
    )


@dataclass
class OpenAISpeechBody:
    """``POST /v1/audio/speech``: OpenAI's speech request. ``voice`` names a saved voice."""

    input: Annotated[str, described("The text to speak.")]
    model: Annotated[
        str,
        described(
            "A served model's id (`/v1/models`) or family, or an alias of the first (`indextts2`, `tts-1`, "
            "`tts-1-hd`)."
        ),
    ] = "indextts2"
    voice: Annotated[
        str | dict[str, str] | None, described('A saved voice: its id or name, or `{"id": ...}`.')
    ] = None
    response_format: Annotated[
        str, described("mp3, opus, aac (with the aac extra), flac, wav or pcm (16-bit mono at 24 kHz).")
    ] = "mp3"
    speed: Annotated[
        float,
        described(
            "The speaking rate, 1 = the model's own pace. OpenAI allows 0.25 to 4.0; IndexTTS takes 0.5 "
            "to 2.0 (on IndexTTS-2.5: the duration factor 1 / speed)."
        ),
    ] = 1.0
    instructions: Annotated[str | None, described("Read as the emotion, described in words.")] = None
    stream_format: Annotated[
        str, described("`audio` (bytes) or `sse` (`speech.audio.delta` / `speech.audio.done` events).")
    ] = "audio"
    seed: Annotated[
        int | None,
        described('indextts2\'s addition (`extra_body={"seed": 7}`): the same seed gives the same audio.'),
    ] = None
    language: Annotated[
        str | None,
        described(
            'indextts2\'s addition for IndexTTS-2.5 (`extra_body={"language": "ja"}`): the text\'s '
            "language (zh, en, ja, es, ar; `auto` or absent: detected)."
        ),
    ] = None


# --------------------------------------------------------------------------------------------------
# The parsed request


@dataclass(frozen=True)
class EmotionFields:
    """The emotion as the client gave it, before the library's ``Emotion`` is built."""

    audio: bytes | None = None
    audio_name: str = "emotion clip"
    alpha: float | None = None
    vector: tuple[float, ...] | None = None
    weights: dict[str, float] | None = None
    text: str | None = None
    random: bool = False

    @property
    def given(self) -> bool:
        return (
            self.audio is not None
            or self.vector is not None
            or self.weights is not None
            or bool(self.text)
            or self.alpha is not None
            or self.random
        )


@dataclass(frozen=True)
class SpeechRequest:
    """One parsed speech request, whichever route it came from."""

    text: str
    voice: str | None = None
    """A saved voice's id or name."""
    model: str | None = None
    """The served model that speaks (an id, family or alias); None: the default."""
    reference: bytes | None = None
    """An inline reference clip (consent given)."""
    reference_name: str = "reference"
    emotion: EmotionFields = field(default_factory=EmotionFields)
    options: dict[str, Any] = field(default_factory=dict)
    format: str = "wav"
    stream: bool = False
    sample_rate: int | None = None
    """Resample the output to this rate (OpenAI's pcm), or None for the model's rate."""


# --------------------------------------------------------------------------------------------------
# Parsing


def check_text(text: str, *, max_chars: int) -> str:
    if not text or not text.strip():
        raise InvalidInput("the text is empty; send the words to speak in the 'text' field")
    if len(text) > max_chars:
        raise TextTooLong(len(text), max_chars)
    return text


def _check_format(format: str, *, stream: bool) -> str:
    fmt = format.strip().lower()
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown audio format {format!r}; use one of {', '.join(FORMATS)}")
    if stream and fmt not in STREAMABLE_FORMATS:
        raise InvalidInput(
            f"streaming sends wav or pcm; {fmt} is only available without stream=true "
            "(or ask for format=wav / format=pcm)"
        )
    return fmt


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number, got {value}")
    return float(value)


def _parse_vector(text: str) -> tuple[float, ...]:
    stripped = text.strip()
    try:
        values = json.loads(stripped) if stripped.startswith("[") else [float(v) for v in stripped.split(",")]
    except ValueError:
        raise InvalidInput(
            f"emotion_vector {text[:80]!r} is not a list of numbers; send eight comma-separated weights "
            "such as 0,0,0,0,0,0,0.6,0"
        ) from None
    if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
        raise InvalidInput("emotion_vector must be a list of numbers, e.g. 0,0,0,0,0,0,0.6,0")
    return tuple(_finite(float(v), "each emotion_vector value") for v in values)


def _parse_json_object(text: str, name: str, example: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidInput(f"{name} is not valid JSON; send an object such as {example}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object such as {example}")
    return value


def _parse_weights(text: str) -> dict[str, float]:
    weights = _parse_json_object(text, "emotion_weights", '{"happy": 0.7}')
    parsed: dict[str, float] = {}
    for name, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"emotion_weights[{name!r}] must be a number, got {value!r}")
        parsed[str(name)] = _finite(float(value), f"emotion_weights[{name!r}]")
    return parsed


def _language(value: str | None) -> str | None:
    """A language field: None when absent, empty or ``auto`` (the model detects it from the text)."""
    text = value.strip() if value is not None else ""
    return None if not text or text.lower() == "auto" else text


def _with_fields(options: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The ``options`` JSON with the options that came as fields of their own (those given)."""
    given = {name: value for name, value in fields.items() if value is not None}
    twice = sorted(set(given) & set(options))
    if twice:
        raise InvalidInput(f"{', '.join(twice)} came twice, as a field and inside options; give each once")
    return {**options, **given}


def upload_name(upload: UploadFile | None, default: str) -> str:
    """An upload's file name as error messages and the voice store show it (no directories, short)."""
    raw = (upload.filename if upload else None) or ""
    return raw.replace("\\", "/").rsplit("/", 1)[-1][:120] or default


async def _read_upload(upload: UploadFile | None) -> bytes | None:
    if upload is None:
        return None
    data = await upload.read()
    await upload.close()
    if not data:
        raise InvalidInput(f"the uploaded file {upload.filename!r} is empty; attach an audio file")
    return data


async def parse_tts_form(form: TTSForm, *, max_text_chars: int) -> SpeechRequest:
    """Check a ``/v1/tts`` form and read its uploads.

    Raises:
        InvalidInput: what is wrong and how to fix it.
    """
    text = check_text(form.text, max_chars=max_text_chars)
    fmt = _check_format(form.format, stream=form.stream)
    voice = form.voice.strip() if form.voice and form.voice.strip() else None
    if voice is None and form.reference is None:
        raise InvalidInput(
            "say whose voice to use: a saved voice in 'voice' (id or name), or a clip in 'reference' "
            "(with consent=true)"
        )
    if voice is not None and form.reference is not None:
        raise InvalidInput("give either 'voice' or 'reference', not both")
    if form.reference is not None and not form.consent:
        raise InvalidInput(
            "a reference clip needs consent=true: confirm that the voice is yours, or that you have the "
            "speaker's permission to use it"
        )
    emotion = EmotionFields(
        audio=await _read_upload(form.emotion_audio),
        audio_name=upload_name(form.emotion_audio, "emotion clip"),
        alpha=_finite(form.emotion_alpha, "emotion_alpha") if form.emotion_alpha is not None else None,
        vector=_parse_vector(form.emotion_vector) if form.emotion_vector else None,
        weights=_parse_weights(form.emotion_weights) if form.emotion_weights else None,
        text=form.emotion_text.strip() if form.emotion_text and form.emotion_text.strip() else None,
        random=form.emotion_random,
    )
    options = _parse_json_object(form.options, "options", '{"seed": 7}') if form.options else {}
    options = _with_fields(
        options,
        {
            "language": _language(form.language),
            "duration": _finite(form.duration, "duration") if form.duration is not None else None,
            "speed": _finite(form.speed, "speed") if form.speed is not None else None,
        },
    )
    return SpeechRequest(
        text=text,
        voice=voice,
        model=form.model.strip() if form.model and form.model.strip() else None,
        reference=await _read_upload(form.reference),
        reference_name=upload_name(form.reference, "reference"),
        emotion=emotion,
        options=options,
        format=fmt,
        stream=form.stream,
    )


def parse_openai_body(body: OpenAISpeechBody, *, max_text_chars: int) -> tuple[SpeechRequest, bool]:
    """Check an OpenAI speech body; returns the request and whether events (SSE) were asked for."""
    text = check_text(body.input, max_chars=max_text_chars)
    voice = body.voice.get("id") if isinstance(body.voice, dict) else body.voice
    if not voice or not str(voice).strip():
        raise InvalidInput("'voice' is required: the id or name of a saved voice (see GET /v1/voices)")
    fmt = body.response_format.strip().lower()
    supported = [f for f in OPENAI_FORMATS if f in FORMATS or (f == "aac" and aac_available())]
    if fmt not in supported:
        missing = f" (aac needs the server's optional encoder: {AAC_INSTALL_HINT})" if fmt == "aac" else ""
        raise InvalidInput(
            f"response_format {body.response_format!r} is not supported{missing}; use one of "
            f"{', '.join(supported)}"
        )
    if body.stream_format not in ("audio", "sse"):
        raise InvalidInput(f"stream_format {body.stream_format!r} is not supported; use 'audio' or 'sse'")
    # OpenAI's speed is our speed: the rate control of every family (on IndexTTS-2.5 the duration
    # factor 1 / speed, the same float64 arithmetic as duration alone). Its range is ours, not OpenAI's.
    low, high = SPEED_RANGE
    if not (math.isfinite(body.speed) and low <= body.speed <= high):
        raise InvalidInput(
            f"speed must be between {low} and {high} here, got {body.speed}: OpenAI's "
            f"{OPENAI_SPEED_RANGE[0]} to {OPENAI_SPEED_RANGE[1]} is wider than IndexTTS stretches speech "
            "(at most twice as fast or as slow)"
        )
    instructions = body.instructions.strip() if body.instructions and body.instructions.strip() else None
    options: dict[str, Any] = {"speed": float(body.speed)} if body.speed != 1.0 else {}
    if body.seed is not None:
        options["seed"] = body.seed
    language = _language(body.language)
    if language is not None:
        options["language"] = language
    request = SpeechRequest(
        text=text,
        voice=str(voice).strip(),
        model=body.model,
        emotion=EmotionFields(text=instructions),
        options=options,
        format=fmt,
        stream=fmt in STREAMABLE_FORMATS,
        sample_rate=OPENAI_PCM_RATE if fmt == "pcm" else None,
    )
    return request, body.stream_format == "sse"


# --------------------------------------------------------------------------------------------------
# The library's option types: built here and nowhere else in the server


def emotion_names() -> tuple[str, ...]:
    """The emotions of the vector, in order."""
    from indextts2.options import EMOTIONS

    return tuple(EMOTIONS)


# SynthesisOptions fields whose values are text (the others are numbers or booleans).
_TEXT_OPTIONS = frozenset({"language"})


def option_names() -> tuple[str, ...]:
    """The fields of ``SynthesisOptions`` (what ``options`` may set)."""
    from indextts2.options import SynthesisOptions

    return tuple(f.name for f in dataclasses.fields(SynthesisOptions))


def build_emotion(fields: EmotionFields, *, max_seconds: float) -> Any:
    """The library ``Emotion`` for these fields, or None. Decodes an emotion clip (blocking).

    Raises:
        InvalidInput: more than one source, values out of range, an unreadable clip.
    """
    from indextts2.options import Emotion

    if not fields.given:
        return None
    sources = [
        name
        for name, present in (
            ("emotion_audio", fields.audio is not None),
            ("emotion_vector", fields.vector is not None),
            ("emotion_weights", fields.weights is not None),
            ("emotion_text", bool(fields.text)),
        )
        if present
    ]
    if len(sources) > 1:
        raise InvalidInput(f"give one emotion source, not {' and '.join(sources)}")
    alpha = 1.0 if fields.alpha is None else fields.alpha
    if fields.weights is not None:
        return Emotion.from_mapping(fields.weights, alpha=alpha)
    audio = None
    if fields.audio is not None:
        audio = load_audio(fields.audio, max_seconds=max_seconds, name=fields.audio_name)
    return Emotion(audio=audio, alpha=alpha, vector=fields.vector, text=fields.text, random=fields.random)


def build_options(values: dict[str, Any]) -> Any:
    """The library ``SynthesisOptions`` with these changes from the defaults.

    Raises:
        InvalidInput: an unknown option name, or a value the options refuse.
    """
    from indextts2.options import SynthesisOptions

    known = option_names()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidInput(f"unknown option(s) {', '.join(unknown)}; the options are {', '.join(known)}")
    for name, value in values.items():
        if name in _TEXT_OPTIONS:
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"option {name} must be a string, got {value!r}")
        elif value is not None and not isinstance(value, bool | int | float):
            raise InvalidInput(f"option {name} must be a number, got {value!r}")
    return SynthesisOptions().replace(**values) if values else SynthesisOptions()
