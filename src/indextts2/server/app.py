"""The Litestar app factory."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio
from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from indextts2.__about__ import __version__
from indextts2.server.access import AccessControl, access_guard
from indextts2.server.admission import Admission
from indextts2.server.config import ServerConfig
from indextts2.server.context import RequestContextLayer, log_access
from indextts2.server.docs import OfflineDocsPlugin
from indextts2.server.errors import ApiRequest, exception_handlers
from indextts2.server.metrics import Metrics, metrics_middleware
from indextts2.server.openapi import COMPONENTS
from indextts2.server.routes import route_handlers
from indextts2.server.speech import SpeechService
from indextts2.server.telemetry import Tracing
from indextts2.server.usage import UsageMeter
from indextts2.server.voices import VoiceStore

__all__ = ["MULTIPART_PART_LIMIT", "create_app", "drain"]

logger = logging.getLogger(__name__)

Loader = Callable[[ServerConfig], Any]

MULTIPART_PART_LIMIT = 64

_DESCRIPTION = (
    "IndexTTS2 speech over HTTP: `/v1/tts` (multipart, streaming), `/v1/audio/speech` (OpenAI-compatible), "
    "saved voices under `/v1/voices`. Send `Authorization: Bearer <key>` (an API key or a JWT) when the "
    'server has keys. Every error is JSON: `{"error": {"code": ..., "message": ..., "request_id": ...}}`; '
    "every response carries `X-Request-ID`."
)


def _default_voices_dir(config: ServerConfig) -> Any:
    from indextts2.settings import Settings

    return Settings.from_env().home / "voices"


def _add_sample_voice(voices: VoiceStore) -> None:
    """The sample voice shipped with the package, so that a first visit can speak at once."""
    import soundfile

    from indextts2.samples import SAMPLE_VOICE_NAME, sample_voice

    clip = sample_voice()
    voices.add_builtin(SAMPLE_VOICE_NAME, clip, duration=soundfile.info(str(clip)).duration)


def _default_usage_db(config: ServerConfig) -> Any:
    from indextts2.settings import Settings

    return Settings.from_env().home / "usage.sqlite3"


def create_app(
    config: ServerConfig,
    synthesizer: Any | Mapping[str, Any] | None = None,
    *,
    loader: Loader | None = None,
) -> Litestar:
    """Build the server's app.

    Args:
        config: the server's configuration.
        synthesizer: a loaded Synthesizer to serve, or with several models (``config.models``) a
            mapping from each model's configured name to its Synthesizer (the app closes them on
            shutdown only if it loaded them).
        loader: with no ``synthesizer``, a function that loads one from a config of one model
            (``config.for_model``), called for each model in turn; it runs in the background on the
            GPU worker thread at startup (``/readyz`` answers 503 until every model is loaded).
            With neither, the app serves everything but synthesis (503 until a synthesizer is set).

    Returns:
        The Litestar app; its lifespan starts the GPU worker and loads the voice store.
    """
    metrics = Metrics()
    admission = Admission(max_queue=config.max_queue, workers=config.gpu_workers)
    voices = VoiceStore(config.voices_dir or _default_voices_dir(config), cache_size=config.voice_cache_size)
    if config.sample_voice:
        _add_sample_voice(voices)
    speech = SpeechService(config=config, synthesizer=synthesizer, admission=admission, voices=voices)
    usage = UsageMeter(
        config.usage_db or _default_usage_db(config),
        daily_quota=config.daily_audio_quota,
        caller_quotas=config.caller_quotas,
        registry=metrics.registry,
        metrics_callers=config.metrics_callers,
    )
    access = AccessControl(config, usage=usage)
    tracing = Tracing(config.tracing)
    metrics.bind_admission(lambda: admission.queued, lambda: admission.in_flight)
    metrics.bind_engines(speech.engines)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(voices.load)
        await anyio.to_thread.run_sync(usage.start)
        speech.draining = False  # an app may be started again after a shutdown (test clients do)
        admission.start()
        loading: asyncio.Task[None] | None = None
        if not speech.ready and loader is not None:
            loading = asyncio.create_task(_load(speech, loader, metrics))
        elif speech.ready:
            metrics.ready.set(1)
        try:
            yield
        finally:
            if loading is not None and not loading.done():
                loading.cancel()
            await drain(app, config.grace_period)  # returns at once after the runner's drain
            for model in speech.models if loading is not None else ():
                close = getattr(model.synthesizer, "close", None)
                if close is not None:  # stops the engine thread; workers waiting on it are released
                    await anyio.to_thread.run_sync(close)
            await admission.stop()
            await anyio.to_thread.run_sync(usage.stop)  # after the last request has been counted
            logger.info("server stopped")

    cors = (
        CORSConfig(
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", config.request_id_header, "traceparent"],
            expose_headers=["Retry-After", "X-Sample-Rate", "X-Audio-Duration", config.request_id_header],
        )
        if config.cors_origins
        else None
    )
    openapi = OpenAPIConfig(
        title="indextts2",
        version=__version__,
        description=_DESCRIPTION,
        render_plugins=[OfflineDocsPlugin(path="/")],
        openapi_router=Router("/docs", route_handlers=[], include_in_schema=False, opt={"public": True}),
        components=COMPONENTS,
        security=[{"apiKey": []}],
    )
    app = Litestar(
        route_handlers=route_handlers(),
        lifespan=[lifespan],
        state=State({"speech": speech, "metrics": metrics, "access": access, "usage": usage}),
        dependencies={
            "speech": Provide(_provide_speech, sync_to_thread=False),
            "metrics": Provide(_provide_metrics, sync_to_thread=False),
            "access": Provide(_provide_access, sync_to_thread=False),
            "usage": Provide(_provide_usage, sync_to_thread=False),
        },
        guards=[access_guard],
        middleware=[metrics_middleware(metrics)],
        exception_handlers=exception_handlers(),
        cors_config=cors,
        openapi_config=openapi,
        request_class=ApiRequest,
        request_max_body_size=config.max_upload_bytes,
        # the forms have a dozen fields; parsing stops (413) past this many parts
        multipart_form_part_limit=MULTIPART_PART_LIMIT,
        logging_config=None,
        debug=False,
    )
    # outside Litestar's exception handling, so that every answer (404s, errors) gets a request id
    app.asgi_handler = RequestContextLayer(
        app.asgi_handler,
        header=config.request_id_header,
        trace=tracing.enabled,
        listeners=[usage.record, log_access, tracing.export],
    )
    return app


async def drain(app: Litestar, grace: float) -> None:
    """Shut the app's speech service down within ``grace`` seconds.

    Nothing new is admitted (503 with Retry-After; ``/readyz`` answers 503), the requests in flight
    get ``grace`` seconds to finish, and then every one still open is ended at once: a streamed
    response ends where it is, an event stream gets an ``error`` event, a response not started yet
    answers 503 with Retry-After. The runner calls it when SIGTERM arrives; the app's lifespan calls
    it again on the way out (then it returns at once).
    """
    app.state.metrics.ready.set(0)
    await app.state.speech.drain(grace)


async def _load(speech: SpeechService, loader: Loader, metrics: Metrics) -> None:
    """Load each model not loaded yet, in order, on the GPU worker thread (the thread that will use
    it). A model that fails is reported (``/readyz``) and the others still load."""
    config = speech.config
    for model in speech.models:
        if model.ready:
            continue
        devices = ", ".join(model.placement.devices)
        logger.info("loading model %s on %s", model.name, devices)
        one = config.for_model(model.placement)
        try:
            synthesizer = await speech.admission.call(functools.partial(loader, one), timeout=None)
        except Exception as exc:  # noqa: BLE001 - reported here and by /readyz; the server stays alive
            model.load_error = exc
            logger.error("cannot load model %s: %s", model.name, exc)
            continue
        model.synthesizer = synthesizer
        logger.info("model %s is loaded", model.id)
    if speech.ready:
        metrics.ready.set(1)
        logger.info("serving %s", ", ".join(m.id for m in speech.models))


def _provide_speech(state: State) -> SpeechService:
    return state.speech


def _provide_metrics(state: State) -> Metrics:
    return state.metrics


def _provide_access(state: State) -> AccessControl:
    return state.access


def _provide_usage(state: State) -> UsageMeter:
    return state.usage
