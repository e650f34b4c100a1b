"""The server's log lines: text for people, JSON for log pipelines, never a secret in either.

Every record emitted while a request is served carries its request id and caller (read from the
request's context, :mod:`indextts2.server.context`); the access log line adds route, status,
latency and audio seconds. ``--log-format json`` writes one JSON object per line::

    {"time": "2026-12-06T10:00:00.123Z", "level": "INFO", "logger": "indextts2.server.access",
     "message": "POST /v1/tts 200 1.234s", "request_id": "4f3c...", "caller": "key:alice",
     "route": "/v1/tts", "method": "POST", "status": 200, "latency": 1.234, "audio_seconds": 2.5}

Both formats pass the final text through :func:`redact`: bearer and basic credentials, JWTs and API
keys are replaced, whatever logged them (the server itself never logs a credential; this is the
second line of defence, for third-party log lines too).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, Literal, TextIO

from indextts2.server.context import current_request

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "RequestContextFilter",
    "TextFormatter",
    "configure_server_logging",
    "redact",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

_SECRETS = [
    # an Authorization header's value, or a credential after the scheme anywhere in a message
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1\2[redacted]"),
    # a JWT: three base64url parts, the first a JSON object ("eyJ")
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    # an API key made by `indextts2 serve keys add`
    (re.compile(r"itts2_[A-Za-z0-9_-]{8,}"), "itts2_[redacted]"),
]

# fields of the access log line (and of any record that sets them through ``extra``)
_EXTRA_FIELDS = ("method", "path", "status", "latency", "audio_seconds", "client")


def redact(text: str) -> str:
    """``text`` with credentials replaced (see the module's docstring)."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RequestContextFilter(logging.Filter):
    """Stamps each record with the request it was emitted for (``request_id``, ``caller``, ``route``),
    while it is still in that request's context: handlers that format later (queues) keep them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            context = current_request()
            if context is not None:
                record.request_id = context.request_id
                record.caller = context.caller
                record.route = context.route
        return True


_STAMP = RequestContextFilter()


def _request_fields(record: logging.LogRecord) -> dict[str, Any]:
    _STAMP.filter(record)  # formatted right away when the handler has no filter of its own
    fields = {name: getattr(record, name, None) for name in ("request_id", "caller", "route")}
    return {name: value for name, value in fields.items() if value is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        entry.update(_request_fields(record))
        for name in _EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message [request_id caller]``; without the time for Rich, which shows it."""

    def __init__(self, *, timestamps: bool = True) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s" if timestamps else "%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _request_fields(record)
        if fields:
            who = f" {fields['caller']}" if "caller" in fields else ""
            text = f"{text} [{fields['request_id']}{who}]"
        return redact(text)


def configure_server_logging(log_format: LogFormat = "text", *, stream: TextIO | None = None) -> None:
    """Send the root logger's records to ``stream`` (stderr) in ``log_format``.

    ``text`` on a terminal keeps the CLI's Rich handler (with a formatter that adds the request id);
    text elsewhere (journald, docker logs) and JSON replace it with a plain stream handler.
    """
    stream = stream or sys.stderr
    root = logging.getLogger()
    from rich.logging import RichHandler

    rich = [h for h in root.handlers if isinstance(h, RichHandler)]
    if log_format == "text" and stream.isatty() and rich:
        for handler in rich:
            handler.setFormatter(TextFormatter(timestamps=False))
            handler.addFilter(_STAMP)
        return
    for handler in rich:
        root.removeHandler(handler)
    plain = logging.StreamHandler(stream)
    plain.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    plain.addFilter(_STAMP)
    root.addHandler(plain)
