"""HTTP errors of the server and the one place that turns every error into a JSON answer.

Every answer for an error has the body ``{"error": {"code": ..., "message": ..., "request_id": ...}}``;
the message says what to fix; the request id is the one in the ``X-Request-ID`` header and the logs.
Library errors (:class:`IndexTTS2Error`) carry their own ``http_status`` and ``code``; Litestar's own
errors (unknown route, validation, oversize body) are mapped here too, so a client never sees a
different shape, and user input never produces a 500.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from multipart import ParserLimitReached  # Litestar's form parser

from indextts2.errors import IndexTTS2Error, InvalidInput, Overloaded
from indextts2.server.context import current_request_id

__all__ = [
    "ApiRequest",
    "ClientDisconnected",
    "Conflict",
    "Forbidden",
    "GatewayTimeout",
    "NotReady",
    "PayloadTooLarge",
    "QuotaExceeded",
    "RateLimited",
    "ShuttingDown",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_body",
    "exception_handlers",
]

logger = logging.getLogger(__name__)


class Unauthorized(IndexTTS2Error):
    """No API key, or a key the server does not know. ``scheme`` goes into WWW-Authenticate, with
    RFC 6750's ``error`` (``invalid_token``) when a bearer token was refused."""

    http_status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, scheme: str = "Bearer", error: str | None = None) -> None:
        super().__init__(message)
        self.scheme = scheme
        self.error = error


class Forbidden(IndexTTS2Error):
    """The client's address is not on the allow-list, or the caller may not do this."""

    http_status = 403
    code = "forbidden"


class ClientDisconnected(IndexTTS2Error):
    """The client closed the connection before its audio was ready (nginx's 499)."""

    http_status = 499
    code = "client_closed_request"


class Conflict(IndexTTS2Error):
    """The request clashes with what is stored (a voice name already taken)."""

    http_status = 409
    code = "conflict"


class PayloadTooLarge(IndexTTS2Error):
    """The request body is larger than the server accepts."""

    http_status = 413
    code = "payload_too_large"


class UnsupportedMediaType(IndexTTS2Error):
    """The body is not in the encoding the route reads."""

    http_status = 415
    code = "unsupported_media_type"


class RateLimited(Overloaded):
    """This key or address sent more requests than its rate limit allows."""

    code = "rate_limited"


class QuotaExceeded(Overloaded):
    """The caller has used its audio seconds for the day."""

    code = "quota_exceeded"


class NotReady(IndexTTS2Error):
    """The model is not loaded (yet), or the server is shutting down."""

    http_status = 503
    code = "not_ready"


class ShuttingDown(NotReady):
    """The server is stopping: what it had not finished at the end of its grace period is ended."""

    code = "shutting_down"
    retry_after = 5.0
    """Seconds for Retry-After: long enough for a restart, or for a load balancer to move on."""


class GatewayTimeout(IndexTTS2Error):
    """The request did not finish within the server's per-request timeout."""

    http_status = 504
    code = "timeout"


class ApiRequest(Request[Any, Any, Any]):
    """The app's request: a JSON body nested deeper than the decoder's recursion limit is bad input.

    msgspec raises RecursionError for such a body (``[[[[...``), which would otherwise be a 500.
    """

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise InvalidInput(
                "the JSON body is nested too deeply to read; send the request's fields as one flat object"
            ) from None


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON of an error; with the request's id (``request_id``) inside a request."""
    body: dict[str, Any] = {"code": code, "message": message}
    request_id = current_request_id()
    if request_id is not None:
        body["request_id"] = request_id
    return {"error": body}


def _json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=error_body(code, message),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers or {},
    )


def _retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def _library_error(request: Request[Any, Any, Any], exc: IndexTTS2Error) -> Response[Any]:
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)  # Overloaded, ShuttingDown
    if retry_after is not None:
        headers.update(_retry_after_header(retry_after))
    if isinstance(exc, Unauthorized):
        error = f', error="{exc.error}"' if exc.error else ""
        headers["WWW-Authenticate"] = f'{exc.scheme} realm="indextts2"{error}'
    if exc.http_status >= 500:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
    return _json_error(exc.http_status, exc.code, exc.message, headers)


def _validation_message(exc: ValidationException) -> str:
    problems: list[str] = []
    if isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                key = item.get("key")
                text = item.get("message", "invalid value")
                problems.append(f"{key}: {text}" if key else str(text))
    if problems:
        return "invalid request: " + "; ".join(problems) + " (see /docs for the fields)"
    return f"invalid request: {exc.detail} (see /docs for the fields)"


_CODES_BY_STATUS = {
    400: "invalid_input",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        return _json_error(400, "invalid_input", _validation_message(exc))
    if isinstance(exc.__context__, ParserLimitReached):  # Litestar answers 400 for it, until 3.0
        parts = request.app.multipart_form_part_limit
        message = (
            f"the form has more than {parts} parts; send only the fields this route reads "
            "(see /docs), one file each"
        )
        return _json_error(413, "payload_too_large", message)
    if status == 413:
        limit = request.route_handler.resolve_request_max_body_size()
        limit_text = f" of {limit / 2**20:.3g} MiB" if isinstance(limit, int) else ""
        message = (
            f"the request body is larger than the limit{limit_text}; send a shorter or compressed "
            "clip (flac, opus, mp3), or ask the operator to raise --max-upload-mb"
        )
        return _json_error(413, "payload_too_large", message)
    if status == 404:
        message = f"no route {request.url.path}; see /docs for the API"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs for the API"
    elif status == 400:
        message = f"{exc.detail}; see /docs for what this route reads"
    else:
        message = str(exc.detail)
    headers = dict(exc.headers or {})
    if status >= 500:
        logger.error("%s %s: %s", request.method, request.url.path, exc.detail)
    return _json_error(status, _CODES_BY_STATUS.get(status, "http_error"), message, headers)


def _undecodable_text(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[Any]:
    # Litestar decodes form fields sent without a file name as UTF-8, and lets the error through
    message = (
        "the request holds text that is not UTF-8; send files as files, with a file name "
        "(curl -F 'reference=@clip.wav'), and text fields as UTF-8"
    )
    return _json_error(400, "invalid_input", message)


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return _json_error(500, "internal_error", "the server failed unexpectedly; the log has the details")


def exception_handlers() -> dict[int | type[Exception], Any]:
    """The app's exception handlers: library errors, Litestar's HTTP errors, everything else."""
    return {
        IndexTTS2Error: _library_error,
        HTTPException: _http_error,
        UnicodeDecodeError: _undecodable_text,
        Exception: _unexpected_error,
    }
