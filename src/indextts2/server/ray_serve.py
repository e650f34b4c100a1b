"""The server on a Ray cluster (Ray Serve): the same HTTP app, its synthesis on autoscaled replicas.

Two deployments make one Serve application:

- ``Synthesizer`` replicas, one per GPU (``num_gpus=1``), each with the model loaded and its own
  batching engine, autoscaled on ongoing requests per replica between a minimum and a maximum;
- ``SpeechIngress``: the very app ``indextts2 serve`` runs (routes, keys and JWTs, limits, the web
  page, the OpenAI route, streaming, metrics), built by :func:`indextts2.server.create_app` inside
  the replica, with a :class:`RaySynthesizer` where a local server has its Synthesizer: the speech
  service hands the work to the replicas through a Serve handle, and their audio chunks stream back.

Saved voices live in ``voices_dir``, which must be storage the ingress replicas share (a volume);
encoded voices travel with each request to whichever replica runs it (their conditioning is small
next to a model, a few MB for the release model). Run it with ``serve run`` or a KubeRay
RayService (docs/deploy.md)::

    serve run indextts2.server.ray_serve:app_builder model=dummy:tiny device=cpu num_gpus=0

Only this module imports Ray (the ``ray`` extra); the plain server never does.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ray import serve
from ray.exceptions import RayError, RayTaskError
from ray.serve.handle import DeploymentHandle

from indextts2.errors import ConfigError, EngineFailed, IndexTTS2Error, InvalidInput
from indextts2.model.family import ModelFamily, family_named
from indextts2.pool import EngineStatus
from indextts2.server.config import RateLimit, ServerConfig

__all__ = ["RaySynthesizer", "ReplicaSettings", "app_builder", "build_app"]

logger = logging.getLogger(__name__)

Loader = Callable[[ServerConfig], Any]


@dataclass(frozen=True)
class ReplicaSettings:
    """How the synthesis replicas are placed and scaled.

    Attributes:
        num_gpus: GPUs per replica (1: one replica per GPU; 0 on a CPU-only cluster).
        num_cpus: CPUs each replica reserves.
        min_replicas, max_replicas: the autoscaler's bounds.
        initial_replicas: replicas at deployment (default ``min_replicas``).
        target_ongoing_requests: ongoing requests per replica the autoscaler aims at; the engine
            batches them, so this is a batch size, not 1.
        max_ongoing_requests: requests one replica takes at once (more wait in the ingress).
        upscale_delay_s, downscale_delay_s: how long the load must stay above / below the target
            before replicas are added / removed.
        look_back_period_s: over how long the reported load is averaged (how often it is reported
            is Ray's ``RAY_SERVE_*_AUTOSCALING_METRIC_PUSH_INTERVAL_S`` environment variables).
        ingress_replicas: replicas of the HTTP app (CPU only; one keeps usage counts in one file).
    """

    num_gpus: float = 1.0
    num_cpus: float = 1.0
    min_replicas: int = 1
    max_replicas: int = 1
    initial_replicas: int | None = None
    target_ongoing_requests: float = 8.0
    max_ongoing_requests: int = 32
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 300.0
    look_back_period_s: float = 30.0
    ingress_replicas: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.min_replicas <= self.max_replicas:
            raise ConfigError(
                f"replicas: need 1 <= min_replicas <= max_replicas, got {self.min_replicas} and "
                f"{self.max_replicas}"
            )
        if self.max_ongoing_requests < 1 or not self.target_ongoing_requests > 0:
            raise ConfigError("max_ongoing_requests and target_ongoing_requests must be positive")

    def autoscaling(self) -> dict[str, Any]:
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "initial_replicas": self.initial_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
            "look_back_period_s": self.look_back_period_s,
        }


# ---- the wire between the ingress and the replicas: library errors travel as plain values


@dataclass(frozen=True)
class _Failure:
    """A library error raised on a replica, as the ingress re-raises it (status, code, message)."""

    http_status: int
    code: str
    message: str
    retry_after: float | None

    @classmethod
    def of(cls, error: IndexTTS2Error) -> _Failure:
        return cls(error.http_status, error.code, error.message, getattr(error, "retry_after", None))

    def error(self) -> IndexTTS2Error:
        if self.code == "invalid_input" or self.http_status == 400:
            error: IndexTTS2Error = InvalidInput(self.message)
        else:
            error = IndexTTS2Error(self.message)
        error.http_status = self.http_status
        error.code = self.code
        if self.retry_after is not None:
            error.retry_after = self.retry_after  # type: ignore[attr-defined]  # read by the error mapping
        return error


def _reply(function: Callable[[], Any]) -> Any:
    try:
        return function()
    except IndexTTS2Error as error:
        return _Failure.of(error)


def _unwrap(value: Any) -> Any:
    if isinstance(value, _Failure):
        raise value.error()
    return value


class SynthesizerReplica:
    """One replica: a loaded Synthesizer (or pool) and its engine, behind Serve's handle."""

    def __init__(self, config: ServerConfig, load: Loader | None = None) -> None:
        from indextts2.server.runner import load_synthesizer

        self._synthesizer = (load or load_synthesizer)(config)

    def info(self) -> dict[str, Any]:
        synthesizer = self._synthesizer
        return {
            "model_id": synthesizer.model_id,
            "fingerprint": synthesizer.fingerprint,
            "sample_rate": synthesizer.sample_rate,
            "family": synthesizer.family.name,
            "device": str(getattr(synthesizer, "device", "")),
        }

    def voice(self, audio: Any) -> Any:
        return _reply(lambda: self._synthesizer.voice(audio))

    def validate(self, text: str, kwargs: dict[str, Any]) -> Any:
        return _reply(lambda: self._synthesizer.validate(text, **kwargs))

    def stream(self, text: str, kwargs: dict[str, Any]) -> Iterator[Any]:
        """The request's chunks; a library error before (or between) them comes as a ``_Failure``."""
        try:
            chunks = self._synthesizer.stream(text, **kwargs)
        except IndexTTS2Error as error:
            yield _Failure.of(error)
            return
        try:
            yield from chunks
        except IndexTTS2Error as error:
            yield _Failure.of(error)
        finally:
            chunks.close()


class RaySynthesizer:
    """What the ingress's speech service holds instead of a Synthesizer: a Serve handle to the
    replicas. Blocking calls; the speech service makes them on its worker threads."""

    def __init__(self, handle: DeploymentHandle, info: Mapping[str, Any]) -> None:
        self._handle = handle
        self.model_id: str = str(info["model_id"])
        self.fingerprint: str = str(info["fingerprint"])
        self.sample_rate: int = int(info["sample_rate"])
        self.family: ModelFamily = family_named(str(info["family"]))
        self._outstanding = 0
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, handle: DeploymentHandle) -> RaySynthesizer:
        """Wait for a replica to answer (the ingress is ready once one is)."""
        return cls(handle, _call(lambda: handle.info.remote().result()))

    def engines(self) -> list[EngineStatus]:
        return [EngineStatus("ray", True, None, self._outstanding, None)]

    def voice(self, audio: Any, /) -> Any:
        return _call(lambda: _unwrap(self._handle.voice.remote(audio).result()))

    def check_voice(self, voice: Any) -> None:
        if getattr(voice, "model_fingerprint", None) != self.fingerprint:
            raise InvalidInput(
                f"this voice was made with model {voice.model_id}; this server runs {self.model_id}: "
                "create the voice again from its reference clip"
            )

    def validate(self, text: str, /, **kwargs: Any) -> None:
        _call(lambda: _unwrap(self._handle.validate.remote(text, kwargs).result()))

    def stream(self, text: str, /, **kwargs: Any) -> Iterator[Any]:
        kwargs.pop("observer", None)  # engine stages are traced where the engine runs
        return self._chunks(text, kwargs)

    def _chunks(self, text: str, kwargs: dict[str, Any]) -> Iterator[Any]:
        with self._lock:
            self._outstanding += 1
        response: Any = self._handle.options(stream=True).stream.remote(text, kwargs)
        try:
            iterator = iter(response)
            while True:
                item = _call(lambda: next(iterator, None))
                if item is None:
                    return
                yield _unwrap(item)
        finally:
            with self._lock:
                self._outstanding -= 1
            response.cancel()

    def close(self) -> None:
        """Nothing to free here: the replicas belong to Serve."""


def _call(function: Callable[[], Any]) -> Any:
    """A call to the replicas, with Ray's failures as the library's 503."""
    try:
        return function()
    except RayTaskError as error:  # not a library error (those come back as values): a bug or a crash
        raise EngineFailed(
            f"the synthesis replica failed: {error.cause!r}; send the request again"
        ) from error
    except RayError as error:  # the replica died, was killed, or could not be reached
        raise EngineFailed(
            f"the synthesis replica serving this request stopped ({type(error).__name__}); "
            "send the request again"
        ) from error


@serve.ingress()
class SpeechIngress:
    """The HTTP app of ``indextts2 serve``, its synthesis handed to the ``Synthesizer`` replicas."""

    def __init__(self, config: ServerConfig, synthesizers: DeploymentHandle) -> None:
        self._config = config
        self._synthesizers = synthesizers

    def __serve_build_asgi_app__(self) -> Any:
        from indextts2.server.app import create_app

        handle = self._synthesizers
        # the connection runs like a model load: on a worker thread, /readyz 503 until it answers
        return create_app(self._config, loader=lambda config: RaySynthesizer.connect(handle))


def build_app(config: ServerConfig, replicas: ReplicaSettings, *, load: Loader | None = None) -> Any:
    """The Serve application: ``serve.run(build_app(...))``.

    Args:
        config: the HTTP app's configuration (as ``indextts2 serve`` builds it); its ``model`` and
            ``device`` are what each replica loads.
        replicas: placement and autoscaling of the synthesis replicas.
        load: loads a replica's Synthesizer (default: as ``indextts2 serve`` does); pickled.

    Raises:
        ConfigError: no API key (nor ``insecure``): a Serve proxy listens on every interface.
    """
    if config.models:
        raise ConfigError(
            "a Ray application serves one model (with its replicas); deploy one application per model "
            "instead of several models in one"
        )
    if not (config.needs_key or config.insecure):
        raise ConfigError(
            "the Ray app answers whoever reaches the Serve proxy: give api_keys_file (keys from "
            "`indextts2 serve keys add`), api_keys or JWT settings, or insecure=true on a trusted network"
        )
    deployment: Any = serve.deployment
    synthesizers = deployment(
        SynthesizerReplica,
        name="Synthesizer",
        ray_actor_options={"num_gpus": replicas.num_gpus, "num_cpus": replicas.num_cpus},
        autoscaling_config=replicas.autoscaling(),
        max_ongoing_requests=replicas.max_ongoing_requests,
        graceful_shutdown_timeout_s=config.grace_period,
    ).bind(config, load)
    ingress = deployment(
        SpeechIngress,
        name="SpeechIngress",
        num_replicas=replicas.ingress_replicas,
        ray_actor_options={"num_cpus": 0.5},
        max_ongoing_requests=config.max_queue + config.gpu_workers,
        graceful_shutdown_timeout_s=config.grace_period,
    )
    return ingress.bind(config, synthesizers)


def app_builder(args: Mapping[str, Any]) -> Any:
    """``serve run indextts2.server.ray_serve:app_builder key=value...`` and a RayService's
    ``import_path``: ``args`` are :class:`ServerConfig` fields and :class:`ReplicaSettings` fields.

    Raises:
        ConfigError: an unknown name or a value of the wrong kind.
    """
    server: dict[str, Any] = {}
    replica: dict[str, Any] = {}
    server_fields = {f.name: f for f in fields(ServerConfig)}
    replica_fields = {f.name: f for f in fields(ReplicaSettings)}
    for name, raw in args.items():
        if name in replica_fields:
            replica[name] = _convert(name, raw, replica_fields[name].default)
        elif name in server_fields and name not in _NOT_ARGS:
            server[name] = _convert(name, raw, _default(server_fields[name]))
        else:
            known = sorted(set(server_fields) - _NOT_ARGS | set(replica_fields))
            raise ConfigError(f"unknown argument {name!r} for the Ray app; known: {', '.join(known)}")
    config = ServerConfig(**server)
    if config.voices_dir is None:
        raise ConfigError("give voices_dir: saved voices must live on storage every replica sees")
    return build_app(config, ReplicaSettings(**replica))


_NOT_ARGS = {"jwt", "default_options", "caller_quotas", "pidfile", "models"}


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


_PATH_FIELDS = {"api_keys_file", "voices_dir", "usage_db"}
_RATE_FIELDS = {"rate_limit", "ip_rate_limit"}


def _convert(name: str, raw: Any, default: Any) -> Any:
    """A ``key=value`` argument (a string from ``serve run``, or YAML's own type) as the field's type."""
    try:
        if name in _PATH_FIELDS:
            return Path(str(raw)) if raw is not None else None
        if name in _RATE_FIELDS:
            return RateLimit.parse(str(raw)) if raw else None
        if isinstance(default, bool):
            return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
        if isinstance(default, tuple):
            return tuple(raw) if isinstance(raw, list | tuple) else tuple(s for s in str(raw).split(",") if s)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float) or (default is None and name.endswith(("_s", "_quota"))):
            return float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"argument {name}={raw!r}: {exc}") from None
    if default is None and name == "initial_replicas":
        return int(raw)
    return raw
