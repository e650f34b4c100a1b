"""The error tree of indextts2.

Every failure the library expects is an :class:`IndexTTS2Error` subclass with a message that says what
to fix. The CLI maps them to a one-line message and exit code 2, the server to an HTTP status and a
JSON body; both do it in one place, keyed on the class (``http_status``), never on the text.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AudioDecodeError",
    "CheckpointError",
    "ConfigError",
    "EmptyText",
    "EngineFailed",
    "IndexTTS2Error",
    "InvalidInput",
    "LicenseNotAccepted",
    "ModelFilesMissing",
    "ModelNotFound",
    "Overloaded",
    "StoreError",
    "TextTooLong",
    "VoiceNotFound",
]


class IndexTTS2Error(Exception):
    """Base of every error indextts2 raises on purpose.

    ``http_status`` is the status the server answers with; ``code`` a stable machine-readable name.
    """

    http_status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(IndexTTS2Error, ValueError):
    """The caller gave something we cannot use (text, options, audio, emotion values...)."""

    http_status = 400
    code = "invalid_input"


class TextTooLong(InvalidInput):
    """The text is longer than the configured limit."""

    code = "text_too_long"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"the text has {length:,} characters, more than the limit of {limit:,}; "
            "split it, or raise the limit (max_text_chars)"
        )
        self.length = length
        self.limit = limit


class EmptyText(InvalidInput):
    """The text is empty or holds only whitespace (or characters that cannot be spoken)."""

    code = "empty_text"


class AudioDecodeError(InvalidInput):
    """An audio input could not be decoded, or holds nothing usable."""

    code = "invalid_audio"

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot read audio {source}: {reason}")
        self.source = source
        self.reason = reason


class ConfigError(IndexTTS2Error):
    """A setting or a model configuration is malformed."""

    http_status = 500
    code = "config_error"


class ModelNotFound(IndexTTS2Error):
    """The model id or path names nothing we can load."""

    http_status = 404
    code = "model_not_found"


class ModelFilesMissing(IndexTTS2Error):
    """A model is known but some of its files are not on this machine."""

    http_status = 503
    code = "model_files_missing"

    def __init__(self, model: str, missing: list[str], hint: str = "") -> None:
        listed = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        message = f"model {model} is missing {len(missing)} file(s): {listed}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)
        self.model = model
        self.missing = list(missing)


class CheckpointError(IndexTTS2Error):
    """A checkpoint file is unreadable or does not fit the network built from the config."""

    http_status = 500
    code = "checkpoint_error"

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"checkpoint {path}: {reason}")
        self.path = str(path)
        self.reason = reason


class StoreError(IndexTTS2Error):
    """The model store could not complete an operation (download, import, disk full...)."""

    http_status = 500
    code = "store_error"


class LicenseNotAccepted(IndexTTS2Error):
    """The model weights' licence has not been accepted yet."""

    http_status = 403
    code = "license_not_accepted"


class VoiceNotFound(IndexTTS2Error):
    """A voice id or voice file that does not exist."""

    http_status = 404
    code = "voice_not_found"


class Overloaded(IndexTTS2Error):
    """The engine's queue is full; try again later."""

    http_status = 429
    code = "overloaded"

    def __init__(self, message: str = "the server is busy; try again shortly", retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class EngineFailed(IndexTTS2Error):
    """The engine that ran the request failed (a device error): the request cannot finish there.

    ``fatal`` says whether the device is unusable from now on (a CUDA error leaves its context
    broken) or only this batch was lost (out of memory). Sending the request again is safe: a
    server with several devices serves it on another one.
    """

    http_status = 503
    code = "engine_failed"

    def __init__(self, message: str, *, fatal: bool = True, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.retry_after = retry_after
