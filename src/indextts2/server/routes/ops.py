"""Operations: liveness, readiness, models, server facts for clients, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import Response, get, head
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from indextts2.__about__ import __version__
from indextts2.audio import FORMATS
from indextts2.server.errors import error_body
from indextts2.server.metrics import CONTENT_TYPE
from indextts2.server.models import family_json
from indextts2.server.openapi import documented
from indextts2.server.requests import STREAMABLE_FORMATS, emotion_names, option_names
from indextts2.server.routes._common import Access, MetricsDep, Speech

__all__ = ["HANDLERS"]


def _dead(speech: Speech) -> bool:
    """Every engine failed: only a restart helps (a liveness probe's 503 gets one)."""
    return speech.ready and not speech.healthy


@get(
    "/healthz",
    opt={"public": True},
    operation_class=documented(403, 503, public=True),
    tags=["operations"],
    summary="Liveness (no key needed); 503 once every engine has failed",
)
async def healthz(speech: Speech) -> Response[dict[str, Any]]:
    if _dead(speech):
        body = error_body("engines_failed", "every engine has failed; restart the server")
        return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    return Response({"status": "ok"}, status_code=HTTP_200_OK)


@head(
    "/healthz",
    opt={"public": True},
    operation_class=documented(403, 503, public=True, bodies=False, success={200: ("Alive", ())}),
    tags=["operations"],
    summary="Liveness, for load balancers",
)
async def healthz_head(speech: Speech) -> Response[None]:
    return Response(None, status_code=HTTP_503_SERVICE_UNAVAILABLE if _dead(speech) else HTTP_200_OK)


def _not_ready_reason(speech: Speech) -> str | None:
    """Why the server cannot take speech requests now, or None when it can."""
    if speech.draining:
        return "the server is shutting down"
    if speech.load_error is not None:
        return f"the model could not be loaded: {speech.load_error}"
    if not (speech.ready and speech.admission.stats().workers):
        loading = [m.name for m in speech.models if not m.ready]
        return (
            f"model {', '.join(loading)} is not loaded yet"
            if len(speech.models) > 1
            else "the model is not loaded yet"
        )
    if not speech.healthy:
        several = len(speech.models) > 1
        failed = "; ".join(
            f"{f'{e.model} on ' if several else ''}{e.name}: {e.error}"
            for e in speech.engines()
            if not e.healthy
        )
        which = " of a model" if several else ""
        return f"every engine{which} has failed ({failed}); the server must be restarted"
    return None


def _engines(speech: Speech) -> list[dict[str, Any]]:
    """Each engine's state, for /readyz: serving, or failed and why."""
    states = []
    for engine in speech.engines():
        state: dict[str, Any] = {
            "model": engine.model,
            "device": engine.name,
            "state": "serving" if engine.healthy else "failed",
        }
        if engine.error:
            state["error"] = engine.error
        states.append(state)
    return states


@get(
    "/readyz",
    opt={"public": True},
    operation_class=documented(403, 503, public=True),
    tags=["operations"],
    summary="Readiness: the model is loaded",
)
async def readyz(speech: Speech) -> Response[dict[str, Any]]:
    reason = _not_ready_reason(speech)
    if reason is None:
        body = {
            "status": "ready",
            "model": speech.model_id,
            "models": [m.id for m in speech.models],
            "engines": _engines(speech),
        }
        return Response(body, status_code=HTTP_200_OK)
    body = error_body("not_ready", reason)
    if speech.ready:
        body["engines"] = _engines(speech)
    return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)


@head(
    "/readyz",
    opt={"public": True},
    operation_class=documented(403, 503, public=True, bodies=False, success={200: ("Ready", ())}),
    tags=["operations"],
    summary="Readiness, for load balancers",
)
async def readyz_head(speech: Speech) -> Response[None]:
    ready = _not_ready_reason(speech) is None
    return Response(None, status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE)


@get(
    "/v1/models",
    operation_class=documented(401, 403, 503),
    tags=["openai"],
    summary="Models served (OpenAI's list format)",
)
async def list_models(speech: Speech) -> dict[str, Any]:
    """Every model (the first is the default), then the aliases that mean the first."""
    models = list(speech.models)
    default = models[0]
    data = [_model_entry(m.id, m.family) for m in models]
    served = {m.id for m in models}
    for alias in speech.config.model_aliases:
        if alias not in served:
            data.append({**_model_entry(alias, default.family), "alias_of": default.id})
    return {"object": "list", "data": data}


def _model_entry(name: str, family: Any) -> dict[str, Any]:
    return {"id": name, "object": "model", "owned_by": "indextts2", "family": family.name if family else None}


@get(
    "/v1/info",
    opt={"public": True},
    operation_class=documented(403, public=True),
    tags=["operations"],
    summary="What this server accepts (no key needed)",
)
async def info(speech: Speech, access: Access) -> dict[str, Any]:
    config = speech.config
    ready = speech.ready
    return {
        "version": __version__,
        "model": speech.model_id,
        "family": family_json(speech.family),
        "models": [m.to_json(default=index == 0) for index, m in enumerate(speech.models)],
        "ready": ready,
        "auth_required": access.needs_key,
        "basic_auth": access.basic_auth,
        "max_text_chars": config.max_text_chars,
        "max_upload_mb": config.max_upload_mb,
        "max_reference_seconds": config.max_reference_seconds,
        "formats": list(FORMATS),
        "stream_formats": list(STREAMABLE_FORMATS),
        "emotions": list(emotion_names()) if ready else [],
        "options": list(option_names()) if ready else [],
        "sample_rate": int(getattr(speech.synthesizer, "sample_rate", 0) or 0),
    }


@get(
    "/metrics",
    operation_class=documented(401, 403, 503),
    tags=["operations"],
    summary="Prometheus metrics",
    media_type=CONTENT_TYPE,
)
async def metrics_route(metrics: MetricsDep) -> Response[bytes]:
    return Response(content=metrics.render(), media_type=CONTENT_TYPE)


HANDLERS = [healthz, healthz_head, readyz, readyz_head, list_models, info, metrics_route]
