"""The server's configuration: one frozen dataclass, built by ``indextts2 serve`` from its flags."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indextts2.errors import ConfigError
from indextts2.settings import DEFAULT_MODEL

__all__ = ["JwtConfig", "ModelPlacement", "RateLimit", "ServerConfig", "is_loopback_host"]

_RATE_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash output


@dataclass(frozen=True)
class RateLimit:
    """``requests`` per ``period_seconds``; parsed from ``60/minute``, ``5/second``, ``1000/day``..."""

    requests: int
    period_seconds: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse ``N/unit`` or ``N/<k><unit>`` (``10/5minutes``); units: second, minute, hour, day."""
        match = _RATE_PATTERN.match(text.lower())
        if match is None:
            raise ConfigError(
                f"rate limit {text!r} is not of the form N/unit, e.g. 60/minute, 5/second, 1000/day"
            )
        count, multiple, unit = match.groups()
        requests = int(count)
        period = _RATE_PERIODS[unit] * (int(multiple) if multiple else 1)
        if requests <= 0 or period <= 0:
            raise ConfigError(f"rate limit {text!r} must allow at least one request per period")
        return cls(requests=requests, period_seconds=period)

    def __str__(self) -> str:
        unit = next((u for u, seconds in _RATE_PERIODS.items() if seconds == self.period_seconds), None)
        return f"{self.requests}/{unit}" if unit else f"{self.requests} per {self.period_seconds:g} s"


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ModelPlacement:
    """One model a server holds, and where its engines run.

    ``serve --model NAME`` or ``--model NAME@DEVICES`` (``dummy:tiny-2.5@cuda:0,cuda:1``): the
    devices after the last ``@``; without them, the server's ``--devices`` / ``--device``.
    """

    name: str
    """A hub id, a local directory or ``dummy:tiny``."""

    devices: tuple[str, ...] = ()
    """One engine per device (as ``ServerConfig.devices``); empty: the server's devices."""

    @classmethod
    def parse(cls, text: str) -> ModelPlacement:
        """``NAME`` or ``NAME@DEVICES``; a directory that exists keeps its ``@``.

        Raises:
            ConfigError: an empty name or an empty device list.
        """
        from indextts2.pool import parse_devices

        spec = text.strip()
        name, at, devices = spec.rpartition("@")
        if spec and (not at or Path(spec).expanduser().exists()):
            return cls(spec)
        if not name:
            raise ConfigError(f"--model {text!r} names no model; e.g. --model dummy:tiny@cpu")
        if not devices.strip():
            raise ConfigError(f"--model {text!r}: name the devices after '@', e.g. {name}@cuda:0,cuda:1")
        return cls(name, tuple(parse_devices(devices)))


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to know, fixed for its lifetime.

    The app factory (:func:`indextts2.server.create_app`) takes one; ``indextts2 serve`` builds it from
    its flags. Limits of 0 or None mean "no limit" only where a field says so.
    """

    host: str = "127.0.0.1"
    """Address to bind. Anything but loopback needs an API key, or ``insecure``."""

    port: int = 7860
    """TCP port to bind (0 = any free port)."""

    model: str = DEFAULT_MODEL
    """The model the server loads (a hub id, a local directory or ``dummy:tiny``); with ``models``,
    the first of them (the default one)."""

    models: tuple[ModelPlacement, ...] = ()
    """Several models in one server (``serve --model A --model B``), each with its own engines; a
    request's ``model`` field chooses, the first answers requests that name none. Empty: ``model``
    alone."""

    device: str = "auto"
    """Where the model runs: ``auto``, ``cpu``, ``cuda``, ``cuda:1``..."""

    devices: tuple[str, ...] = ()
    """One engine per device, each with its own copy of the model, behind a router that sends each
    request to the engine with the least outstanding work (``("cuda:0", "cuda:1")``; ``("cpu",
    "cpu")`` runs two engines on the CPU). Empty: one engine on ``device``."""

    api_keys: tuple[str, ...] = ()
    """Plain API keys given on the command line (kept in memory only as SHA-256 digests)."""

    api_keys_file: Path | None = None
    """A keys file written by ``indextts2 serve keys add`` (hashed keys, re-read when it changes)."""

    basic_auth: bool = False
    """Ask browsers for HTTP Basic credentials on the web page (any user name, an API key as password)."""

    insecure: bool = False
    """Allow a non-loopback bind with no API key (a warning is logged)."""

    max_queue: int = 16
    """Requests allowed to wait for the GPU; one more gets 429 with Retry-After."""

    gpu_workers: int = 32
    """Requests served at once (one waiting thread each); the engine batches their work on the GPU."""

    low_latency_streaming: bool = False
    """Streamed responses start with a short segment and render segments in chunks while they are
    decoded (``StreamingOptions.low_latency``): the first audio comes sooner, but a stream no longer
    equals the whole file (see docs/benchmarks.md for the difference)."""

    request_timeout: float = 300.0
    """Seconds a request may take from admission to its last chunk; past it: 504 (or the stream ends)."""

    max_text_chars: int = 2000
    """Longest text accepted, in characters."""

    max_upload_mb: float = 20.0
    """Largest request body in MiB (reference uploads included); checked while reading."""

    max_reference_seconds: float = 60.0
    """Longest reference or emotion clip accepted, read from the file's header before decoding."""

    rate_limit: RateLimit | None = None
    """Requests per API key (per client address when the server has no keys); None = unlimited."""

    ip_rate_limit: RateLimit | None = None
    """Requests per client address, whatever the key; None = unlimited."""

    allow_ips: tuple[str, ...] = ()
    """CIDRs allowed to connect (empty = everyone); others get 403."""

    cors_origins: tuple[str, ...] = ()
    """Origins allowed by CORS (``*`` for any). Empty = CORS off."""

    voices_dir: Path | None = None
    """Where saved voices live; None = ``<INDEXTTS2_HOME>/voices`` chosen by the serve command."""

    voice_cache_size: int = 64
    """Saved voices whose conditioning stays in memory (least recently used ones are dropped)."""

    sample_voice: bool = False
    """Offer the sample voice shipped with indextts2 as the built-in voice ``sample`` (``indextts2
    serve`` turns it on unless ``--no-sample-voice``): a first visit can speak at once."""

    grace_period: float = 30.0
    """Seconds in-flight requests get to finish after SIGTERM."""

    pidfile: Path | None = None
    """Where the serve command records its process id."""

    model_aliases: tuple[str, ...] = field(default=("indextts2", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"))
    """Model names the OpenAI-compatible route accepts (all mean the loaded model)."""

    default_options: Mapping[str, Any] = field(default_factory=dict)
    """Synthesis options (``SynthesisOptions`` fields) the server uses unless a request sets them, e.g.
    ``{"diffusion_steps": 15}`` to trade quality for speed."""

    jwt: JwtConfig | None = None
    """Bearer tokens (JWTs from an identity provider) accepted beside API keys; None = keys only."""

    admin_keys: tuple[str, ...] = ()
    """Names of API keys (from the keys file, or ``cli-1``... for ``--api-key``) that may read every
    caller's usage (``GET /v1/usage``); other callers see only their own."""

    usage_db: Path | None = None
    """The SQLite file of usage per caller; None = ``<INDEXTTS2_HOME>/usage.sqlite3``."""

    daily_audio_quota: float | None = None
    """Seconds of audio each caller may have per UTC day (None = no quota); past it: 429."""

    caller_quotas: Mapping[str, float] = field(default_factory=dict)
    """Daily audio seconds for named callers (``{"key:alice": 3600, "jwt:svc-42": 0}``), in place of
    ``daily_audio_quota``."""

    metrics_callers: int = 20
    """Callers with a label of their own in ``/metrics`` (the first ones seen); later callers are
    counted under ``other`` so that a token issuer with many subjects cannot blow up the series."""

    request_id_header: str = "X-Request-ID"
    """The header a gateway sends its request id in (taken when well formed, made otherwise); every
    response carries it back."""

    tracing: bool = False
    """OpenTelemetry spans per request (queueing, each engine stage, encoding); needs the ``otel``
    extra and a tracer provider (``indextts2 serve --otel`` sets up OTLP export)."""

    def _check_defaults_fit_every_model(self, defaults: Any) -> None:
        """Default options apply to every served model: refuse one that a model's family lacks (a
        language or a duration factor on IndexTTS-2) now, not on each of its requests."""
        from indextts2.errors import IndexTTS2Error
        from indextts2.loader import family_of
        from indextts2.store import dummy_preset
        from indextts2.store.manifest import MODELS

        for name in [m.name for m in self.models] or [self.model]:
            known = dummy_preset(name) is not None or name in MODELS or Path(name).expanduser().is_dir()
            if not known:  # a directory that is not there yet: its family shows when it loads
                continue
            try:
                family_of(name).check_options(
                    language=defaults.language, duration=defaults.duration, speed=defaults.speed
                )
            except IndexTTS2Error as exc:
                raise ConfigError(
                    f"default options do not fit model {name}: {exc}; give that option per request instead"
                ) from exc

    def __post_init__(self) -> None:
        if self.models:
            object.__setattr__(self, "model", self.models[0].name)
            names = [m.name for m in self.models]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ConfigError(
                    f"model {twice[0]} is named twice; give it once, with every device it should run on "
                    f"(e.g. --model {twice[0]}@cuda:0,cuda:1)"
                )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range; use 1-65535 (or 0 for any free port)")
        for name in ("max_queue", "gpu_workers", "max_text_chars", "voice_cache_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("request_timeout", "max_upload_mb", "max_reference_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.grace_period < 0:
            raise ConfigError(f"grace_period must be 0 or more, got {self.grace_period}")
        if self.default_options:
            from indextts2.errors import InvalidInput
            from indextts2.server.requests import build_options

            try:
                defaults = build_options(dict(self.default_options))
            except InvalidInput as exc:
                raise ConfigError(f"default options: {exc}") from exc
            self._check_defaults_fit_every_model(defaults)
        if self.metrics_callers < 0:
            raise ConfigError(f"metrics_callers must be 0 or more, got {self.metrics_callers}")
        for who, quota in [("daily_audio_quota", self.daily_audio_quota), *self.caller_quotas.items()]:
            if quota is not None and not quota >= 0:
                raise ConfigError(f"the daily audio quota of {who} must be 0 or more seconds, got {quota}")
        if not _HEADER_NAME.match(self.request_id_header):
            raise ConfigError(f"request id header {self.request_id_header!r} is not a header name")
        for cidr in self.allow_ips:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(
                    f"--allow-ip {cidr!r} is not an address or CIDR (e.g. 192.168.1.0/24, 10.0.0.7)"
                ) from None

    @property
    def placements(self) -> tuple[ModelPlacement, ...]:
        """Every model served, the default first, each with the devices its engines run on."""
        served = self.models or (ModelPlacement(self.model),)
        return tuple(ModelPlacement(m.name, m.devices or self.devices or (self.device,)) for m in served)

    def for_model(self, placement: ModelPlacement) -> ServerConfig:
        """This configuration as a server of that one model alone (what a model loader reads)."""
        devices = () if placement.devices == (self.device,) else placement.devices
        return dataclasses.replace(self, model=placement.name, models=(), devices=devices)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def needs_key(self) -> bool:
        """Whether requests must carry an API key (or a token)."""
        return bool(self.api_keys) or self.api_keys_file is not None or self.jwt is not None

    def check_exposure(self) -> None:
        """Refuse a non-loopback bind without an API key unless ``insecure`` is set."""
        if not is_loopback_host(self.host) and not self.needs_key and not self.insecure:
            raise ConfigError(
                f"refusing to listen on {self.host} without an API key: anyone who can reach it could "
                "use the GPU. Create a key (indextts2 serve keys add NAME) and pass --api-keys-file, "
                "or pass --insecure if this network is trusted"
            )


@dataclass(frozen=True)
class JwtConfig:
    """How the server checks bearer tokens (JWTs) from an identity provider.

    A token is accepted when its signature verifies with a key of the JWKS (URL or file) or with the
    shared secret, its ``exp`` is in the future, and its ``iss`` and ``aud`` are the ones configured.
    """

    issuer: str | None = None
    """The ``iss`` every token must carry (the identity provider's issuer URL); required with a JWKS."""

    audience: str | None = None
    """The ``aud`` every token must include (this API's name at the provider); required with a JWKS."""

    jwks_url: str | None = None
    """Where the provider publishes its signing keys (``jwks_uri`` of its OpenID configuration);
    https, or http on loopback. Cached, fetched again on an unknown ``kid`` (at most once per
    ``jwks_min_refresh_seconds``) and after ``jwks_max_age_seconds``."""

    jwks_file: Path | None = None
    """A JWKS file instead of a URL (read again on the same terms as the URL)."""

    secret: bytes | None = field(default=None, repr=False)
    """A shared secret for HS256 tokens (small setups; at least 32 bytes). Never shown in logs."""

    algorithms: tuple[str, ...] = ()
    """Signature algorithms accepted; empty = RS256 and ES256 with a JWKS, HS256 with a secret."""

    identity_claim: str = "sub"
    """The claim naming the caller (``sub``, ``client_id``, ``azp``, ``email``...); the caller is
    ``jwt:<value>`` in rate limits, usage and logs."""

    scope_claim: str = "scope"
    """The claim holding the token's scopes or roles: a space-separated string or a list; a dotted
    path reaches into objects (``realm_access.roles`` for Keycloak)."""

    synthesis_scope: str | None = None
    """A scope a token needs to synthesize speech; None = any valid token may."""

    voices_scope: str | None = None
    """A scope a token needs to save or delete voices; None = any valid token may."""

    admin_scope: str | None = None
    """A scope that makes a token an administrator (every caller's usage); None = no token is."""

    leeway_seconds: float = 30.0
    """Clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""

    jwks_max_age_seconds: float = 3600.0
    """How long fetched keys are used before they are fetched again."""

    jwks_min_refresh_seconds: float = 30.0
    """Least time between two fetches of the keys (an unknown ``kid`` never causes a fetch storm)."""

    jwks_timeout_seconds: float = 5.0
    """Longest a fetch of the keys may take."""

    def __post_init__(self) -> None:
        sources = [s for s in (self.jwks_url, self.jwks_file, self.secret) if s]
        if len(sources) != 1:
            raise ConfigError(
                "JWT sign-in needs exactly one source of keys: --jwt-jwks-url (your identity provider's "
                "jwks_uri), --jwt-jwks-file, or --jwt-secret-file for HS256"
            )
        if self.secret is not None and len(self.secret) < _MIN_SECRET_BYTES:
            raise ConfigError(
                f"the JWT secret has {len(self.secret)} bytes; use at least {_MIN_SECRET_BYTES} random "
                "bytes (e.g. openssl rand -base64 48)"
            )
        if self.secret is None and not (self.issuer and self.audience):
            raise ConfigError(
                "with a JWKS, give --jwt-issuer and --jwt-audience: a provider signs tokens for many "
                "services, and only these two claims say that a token was meant for this server"
            )
        if self.jwks_url is not None:
            from urllib.parse import urlsplit

            parts = urlsplit(self.jwks_url)
            local_http = parts.scheme == "http" and is_loopback_host(parts.hostname or "")
            if parts.scheme != "https" and not local_http:
                raise ConfigError(
                    f"--jwt-jwks-url {self.jwks_url!r} must be an https URL (plain http only on loopback): "
                    "whoever can change the keys in transit can sign any token"
                )
        for algorithm in self.algorithms:
            if algorithm.lower() == "none":
                raise ConfigError("unsigned tokens (alg 'none') can never be accepted")
            if algorithm.upper().startswith("HS") != (self.secret is not None):
                raise ConfigError(
                    f"algorithm {algorithm} does not fit the key source: HS256/384/512 go with "
                    "--jwt-secret-file, RS*/ES*/PS* with a JWKS (mixing them lets a public key act as "
                    "a shared secret)"
                )
        for name in ("leeway_seconds", "jwks_max_age_seconds", "jwks_min_refresh_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if not self.jwks_timeout_seconds > 0:
            raise ConfigError(f"jwks_timeout_seconds must be positive, got {self.jwks_timeout_seconds}")

    @property
    def accepted_algorithms(self) -> tuple[str, ...]:
        if self.algorithms:
            return self.algorithms
        return ("HS256",) if self.secret is not None else ("RS256", "ES256")
