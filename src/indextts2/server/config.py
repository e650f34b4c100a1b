"""The server's configuration: one frozen dataclass, built by ``indextts2 serve`` from its flags."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indextts2.errors import ConfigError
from indextts2.settings import DEFAULT_MODEL

__all__ = ["RateLimit", "ServerConfig", "is_loopback_host"]

_RATE_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$")


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
    """The model the server loads (a hub id, a local directory or ``dummy:tiny``)."""

    device: str = "auto"
    """Where the model runs: ``auto``, ``cpu``, ``cuda``, ``cuda:1``..."""

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

    def __post_init__(self) -> None:
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
                build_options(dict(self.default_options))
            except InvalidInput as exc:
                raise ConfigError(f"default options: {exc}") from exc
        for cidr in self.allow_ips:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(
                    f"--allow-ip {cidr!r} is not an address or CIDR (e.g. 192.168.1.0/24, 10.0.0.7)"
                ) from None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def needs_key(self) -> bool:
        """Whether requests must carry an API key."""
        return bool(self.api_keys) or self.api_keys_file is not None

    def check_exposure(self) -> None:
        """Refuse a non-loopback bind without an API key unless ``insecure`` is set."""
        if not is_loopback_host(self.host) and not self.needs_key and not self.insecure:
            raise ConfigError(
                f"refusing to listen on {self.host} without an API key: anyone who can reach it could "
                "use the GPU. Create a key (indextts2 serve keys add NAME) and pass --api-keys-file, "
                "or pass --insecure if this network is trusted"
            )
