"""What the OpenAPI schema says about each route: its answers (statuses, bodies, media types) and
whether it needs a key.

Litestar documents error answers with its own body (``{status_code, detail}``) and only for the
statuses it can see; the server answers every error with ``{"error": {"code", "message",
"request_id"}}`` (errors.py), and some statuses come from the guard (keys, tokens, scopes, quotas),
the body limits or the admission. Each route
therefore names its answers here (:func:`documented`), and the schema says exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)

__all__ = ["AUDIO_MEDIA_TYPES", "COMPONENTS", "documented"]

# Every error answer of the server (inline: Litestar replaces the components' schemas with its own)
_ERROR = Schema(
    type=OpenAPIType.OBJECT,
    required=["error"],
    properties={
        "error": Schema(
            type=OpenAPIType.OBJECT,
            required=["code", "message"],
            properties={
                "code": Schema(type=OpenAPIType.STRING, description="A stable machine-readable name."),
                "message": Schema(type=OpenAPIType.STRING, description="What went wrong, what to fix."),
                "request_id": Schema(
                    type=OpenAPIType.STRING,
                    description=(
                        "The request's id: the one in the X-Request-ID response header and in the "
                        "server's log lines (the gateway's, when it sent one)."
                    ),
                ),
            },
        )
    },
)

COMPONENTS = Components(security_schemes={"apiKey": SecurityScheme(type="http", scheme="bearer")})

# Why a route answers each error status, as the schema says it.
_WHY = {
    400: "Bad input: the message says what to fix.",
    401: (
        "The server asks for an API key or a bearer token (JWT) and none was sent, or the key is "
        "unknown, or the token is not valid (WWW-Authenticate says why)."
    ),
    403: (
        "The client's address is not allowed (--allow-ip), a browser page on another site asked, or "
        "the token lacks the scope this needs (or, for usage, the caller is not an admin)."
    ),
    404: "No such voice, model or route.",
    409: "The voice name belongs to another voice.",
    413: "The body is larger than --max-upload-mb, or a form has too many parts.",
    415: "The form is not sent as multipart/form-data.",
    429: (
        "The queue is full, the rate limit is reached, or the caller has used its daily audio quota "
        "(quota_exceeded): try again after Retry-After seconds."
    ),
    503: (
        "The model is not loaded yet, the server is shutting down (Retry-After when it is), or the "
        "identity provider's signing keys cannot be fetched to check a token."
    ),
    504: "The request took longer than the server's limit (--timeout).",
}
_RETRY_AFTER: dict[str, OpenAPIHeader | Reference] = {
    "Retry-After": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER), description="Seconds to wait before trying again."
    )
}
_WWW_AUTHENTICATE: dict[str, OpenAPIHeader | Reference] = {
    "WWW-Authenticate": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING),
        description=(
            'The scheme to use (Bearer, or Basic for the web page); error="invalid_token" when a '
            "token was refused."
        ),
    )
}

# What the speech routes send on success (Content-Type tells which; parameters such as the pcm rate
# follow the type).
AUDIO_MEDIA_TYPES = ("audio/wav", "audio/flac", "audio/mpeg", "audio/ogg", "audio/L16")


def _binary(media_types: tuple[str, ...]) -> dict[str, OpenAPIMediaType]:
    return {
        media_type: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format="binary"))  # type: ignore[arg-type]
        for media_type in media_types
    }


def _error_response(status: int, *, body: bool) -> OpenAPIResponse:
    headers = _RETRY_AFTER if status in (429, 503) else _WWW_AUTHENTICATE if status == 401 else None
    content = {"application/json": OpenAPIMediaType(schema=_ERROR)} if body else None
    return OpenAPIResponse(description=_WHY[status], headers=headers, content=content)


def documented(
    *errors: int,
    public: bool = False,
    success: Mapping[int, tuple[str, tuple[str, ...]]] | None = None,
    copies: Mapping[int, int] | None = None,
    bodies: bool = True,
) -> type[Operation]:
    """The operation class of a route that answers the ``errors`` statuses, besides its success.

    Args:
        errors: the error statuses the route may answer; each gets the error body.
        public: no key needed: the operation says ``security: []``.
        success: success answers to state instead of Litestar's: status -> (description, media
            types of a binary body; none for an answer without a body).
        copies: more success statuses answered like another: status -> the status it copies.
        bodies: False for HEAD routes: their answers have no body.
    """
    unknown = set(errors) - set(_WHY)
    if unknown:
        raise ValueError(f"no description for status(es) {sorted(unknown)}")

    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            responses: dict[str, Any] = dict(self.responses or {})
            for status in errors:
                responses[str(status)] = _error_response(status, body=bodies)
            for status, (description, media_types) in (success or {}).items():
                content = _binary(media_types) if media_types else None
                responses[str(status)] = OpenAPIResponse(description=description, content=content)
            for status, original in (copies or {}).items():
                responses[str(status)] = responses[str(original)]
            self.responses = dict(sorted(responses.items()))
            if public:
                self.security = []

    return DocumentedOperation
