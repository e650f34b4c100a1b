"""A client for a remote ``indextts2 serve``: the same synthesis options as local synthesis, over HTTP.

    from indextts2.client import Client

    with Client("http://gpu-box:7860", api_key="itts2_...") as client:
        voice = client.create_voice("me.wav", consent=True, name="me")["id"]
        audio = client.synthesize("Hello!", voice=voice)          # an Audio
        audio.save("hello.wav")
        for block in client.stream("A longer text...", voice=voice):  # Audio blocks as they are made
            ...

Errors the server reports come back as the library's typed errors (``InvalidInput``, ``VoiceNotFound``,
``ModelNotFound``, ``Overloaded`` with ``retry_after``...) or as :class:`RemoteError`, carrying the
server's message, status and code.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import numpy as np

from indextts2.audio import Audio, load_audio
from indextts2.errors import (
    IndexTTS2Error,
    InvalidInput,
    LicenseNotAccepted,
    ModelNotFound,
    Overloaded,
    VoiceNotFound,
)

__all__ = ["Client", "RemoteError"]

DEFAULT_TIMEOUT = 300.0
_PCM_BYTES_PER_SAMPLE = 2

ReferenceSource = str | os.PathLike[str] | bytes | BinaryIO | Audio


class RemoteError(IndexTTS2Error):
    """An error answer of the server that has no library error class of its own (401, 413, 504...)."""

    def __init__(self, message: str, *, http_status: int, code: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code


_ERRORS_BY_CODE: dict[str, type[IndexTTS2Error]] = {
    "invalid_input": InvalidInput,
    "text_too_long": InvalidInput,
    "invalid_audio": InvalidInput,
    "voice_not_found": VoiceNotFound,
    "model_not_found": ModelNotFound,
    "license_not_accepted": LicenseNotAccepted,
}


def _error_from(response: httpx.Response) -> IndexTTS2Error:
    code, message = "http_error", f"the server answered {response.status_code} {response.reason_phrase}"
    try:
        body = json.loads(response.read())
        code = str(body["error"]["code"])
        message = str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        pass
    if response.status_code == 429:
        retry = response.headers.get("Retry-After", "1")
        error: IndexTTS2Error = Overloaded(message, retry_after=float(retry) if retry.isdigit() else 1.0)
    elif code in _ERRORS_BY_CODE:
        error = _ERRORS_BY_CODE[code](message)
    else:
        return RemoteError(message, http_status=response.status_code, code=code)
    error.code = code
    return error


def _reference_file(source: ReferenceSource, field_name: str) -> tuple[str, bytes, str]:
    if isinstance(source, Audio):
        return (f"{field_name}.wav", source.to_bytes("wav"), "audio/wav")
    if isinstance(source, bytes | bytearray):
        return (field_name, bytes(source), "application/octet-stream")
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            return (path.name, path.read_bytes(), "application/octet-stream")
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    data = source.read()
    return (Path(str(getattr(source, "name", field_name))).name, data, "application/octet-stream")


def _emotion_fields(emotion: Any) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """Form fields for an ``indextts2.Emotion`` (read by attribute: audio, alpha, vector, text, random)."""
    if emotion is None:
        return {}, {}
    data: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    audio = getattr(emotion, "audio", None)
    vector = getattr(emotion, "vector", None)
    if audio is not None:
        files["emotion_audio"] = _reference_file(audio, "emotion")
    if vector is not None:
        data["emotion_vector"] = ",".join(repr(float(v)) for v in vector)
    if getattr(emotion, "text", None):
        data["emotion_text"] = str(emotion.text)
    alpha = getattr(emotion, "alpha", 1.0)
    if alpha != 1.0:
        data["emotion_alpha"] = repr(float(alpha))
    if getattr(emotion, "random", False):
        data["emotion_random"] = "true"
    return data, files


def _options_field(options: Any) -> dict[str, str]:
    """The ``options`` field: the fields of a SynthesisOptions that differ from its defaults, as JSON."""
    if options is None:
        return {}
    defaults = type(options)()
    changed = {
        field.name: getattr(options, field.name)
        for field in dataclasses.fields(options)
        if getattr(options, field.name) != getattr(defaults, field.name)
    }
    return {"options": json.dumps(changed)} if changed else {}


def _multipart(
    data: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> list[tuple[str, tuple[str | None, str | bytes] | tuple[str, bytes, str]]]:
    """Every field as a multipart part (httpx would send a form without files url-encoded)."""
    parts: list[tuple[str, tuple[str | None, str | bytes] | tuple[str, bytes, str]]] = [
        (name, (None, value)) for name, value in data.items()
    ]
    parts.extend(files.items())
    return parts


class Client:
    """A remote indextts2 server.

    Args:
        base_url: where the server listens, e.g. ``http://gpu-box:7860``.
        api_key: sent as ``Authorization: Bearer``; needed when the server has keys.
        timeout: seconds to wait for an answer (synthesis of long texts takes a while).
        transport: an httpx transport (tests, proxies, unix sockets).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RemoteError(
                f"cannot reach the server at {self._http.base_url}: {exc}", http_status=0, code="unreachable"
            ) from exc
        if response.is_error:
            raise _error_from(response)
        return response

    # ---- server facts and voices

    def info(self) -> dict[str, Any]:
        """What the server accepts: model, limits, formats, emotions, whether it needs a key."""
        return dict(self._request("GET", "/v1/info").json())

    def ready(self) -> bool:
        """Whether the server has its model loaded."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def voices(self) -> list[dict[str, Any]]:
        """The saved voices."""
        return list(self._request("GET", "/v1/voices").json()["data"])

    def create_voice(
        self, reference: ReferenceSource, *, consent: bool, name: str | None = None, model: str | None = None
    ) -> dict[str, Any]:
        """Save a reference clip on the server; returns the voice (its ``id`` is what requests use).

        Args:
            reference: a path, bytes, a binary file or an Audio.
            consent: must be True: the voice is yours, or you have the speaker's permission.
            name: an optional unique name to use instead of the id.
            model: which of the server's models encodes it (``/v1/models``; None: its default).
        """
        data = {"consent": "true" if consent else "false"}
        if name:
            data["name"] = name
        if model:
            data["model"] = model
        files = {"reference": _reference_file(reference, "reference")}
        return dict(self._request("POST", "/v1/voices", data=data, files=files).json())

    def delete_voice(self, voice: str) -> None:
        """Delete a saved voice (by id or name)."""
        self._request("DELETE", f"/v1/voices/{voice}")

    # ---- synthesis

    def _form(
        self,
        text: str,
        *,
        voice: str | None,
        reference: ReferenceSource | None,
        consent: bool,
        emotion: Any,
        options: Any,
        format: str,
        stream: bool,
        model: str | None,
    ) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
        if (voice is None) == (reference is None):
            raise InvalidInput("give either voice= (a saved voice's id or name) or reference= (a clip)")
        data = {"text": text, "format": format, "stream": "true" if stream else "false"}
        if model:
            data["model"] = model
        files: dict[str, tuple[str, bytes, str]] = {}
        if voice is not None:
            data["voice"] = voice
        elif reference is not None:
            files["reference"] = _reference_file(reference, "reference")
            data["consent"] = "true" if consent else "false"
        emotion_data, emotion_files = _emotion_fields(emotion)
        data.update(emotion_data)
        data.update(_options_field(options))
        files.update(emotion_files)
        return data, files

    def synthesize_bytes(
        self,
        text: str,
        *,
        voice: str | None = None,
        reference: ReferenceSource | None = None,
        consent: bool = False,
        emotion: Any = None,
        options: Any = None,
        format: str = "wav",
        model: str | None = None,
    ) -> bytes:
        """The speech as an encoded file (wav, flac, mp3, opus, ogg or pcm), as the server sends it."""
        data, files = self._form(
            text,
            voice=voice,
            reference=reference,
            consent=consent,
            emotion=emotion,
            options=options,
            format=format,
            stream=False,
            model=model,
        )
        return self._request("POST", "/v1/tts", files=_multipart(data, files)).content

    def synthesize(
        self,
        text: str,
        *,
        voice: str | None = None,
        reference: ReferenceSource | None = None,
        consent: bool = False,
        emotion: Any = None,
        options: Any = None,
        model: str | None = None,
    ) -> Audio:
        """Speak ``text`` on the server; returns the whole :class:`Audio`.

        Args:
            text: what to say.
            voice: a saved voice's id or name; or
            reference: a clip of the speaker, sent with the request (needs ``consent=True``).
            emotion: an ``indextts2.Emotion`` (clip, vector, text), or None.
            options: an ``indextts2.SynthesisOptions``, or None for the defaults.
            model: which of the server's models speaks (``/v1/models``; None: its default).
        """
        wav = self.synthesize_bytes(
            text,
            voice=voice,
            reference=reference,
            consent=consent,
            emotion=emotion,
            options=options,
            model=model,
        )
        return load_audio(io.BytesIO(wav), max_seconds=None)  # the server's own answer: as long as it is

    def stream(
        self,
        text: str,
        *,
        voice: str | None = None,
        reference: ReferenceSource | None = None,
        consent: bool = False,
        emotion: Any = None,
        options: Any = None,
        model: str | None = None,
    ) -> Iterator[Audio]:
        """Speak ``text``, yielding :class:`Audio` blocks as the server makes them.

        Closing the iterator early closes the connection, which stops the work on the server.
        """
        data, files = self._form(
            text,
            voice=voice,
            reference=reference,
            consent=consent,
            emotion=emotion,
            options=options,
            format="pcm",
            stream=True,
            model=model,
        )
        try:
            with self._http.stream("POST", "/v1/tts", files=_multipart(data, files)) as response:
                if response.is_error:
                    raise _error_from(response)
                rate = int(response.headers.get("X-Sample-Rate", "22050"))
                carry = b""
                for piece in response.iter_bytes():
                    piece = carry + piece
                    usable = len(piece) - len(piece) % _PCM_BYTES_PER_SAMPLE
                    carry = piece[usable:]
                    if usable:
                        samples = np.frombuffer(piece[:usable], dtype="<i2").astype(np.float32) / 32768.0
                        yield Audio(samples, rate)
        except httpx.TransportError as exc:
            raise RemoteError(
                f"the connection to {self._http.base_url} failed: {exc}", http_status=0, code="unreachable"
            ) from exc
