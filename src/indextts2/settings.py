"""Settings: the one place where ``INDEXTTS2_*`` environment variables are read.

Precedence, highest first: an explicit argument to a library call > a CLI flag > the environment >
the default here. The CLI builds ``Settings.from_env().with_overrides(**flags)`` once per command and
passes values down; library code takes plain arguments and never reads the environment itself.
Nothing is read at import time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indextts2.errors import ConfigError

__all__ = ["DEFAULT_MODEL", "Settings", "default_cache_dir"]

DEFAULT_MODEL = "IndexTeam/IndexTTS-2.5"  # = store.manifest.DEFAULT_MODEL_ID (upstream's default)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def default_cache_dir() -> Path:
    """The per-user cache root (``platformdirs.user_cache_dir('indextts2')``)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("indextts2", appauthor=False))


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a yes/no value; use 1 or 0")


@dataclass(frozen=True)
class Settings:
    """Process-wide settings. Each field names the variable it is read from."""

    home: Path = field(default_factory=default_cache_dir)
    """INDEXTTS2_HOME: root of the model store and other caches."""

    model: str = DEFAULT_MODEL
    """INDEXTTS2_MODEL: model id (hub repo), local directory, or ``dummy:tiny`` / ``dummy:full``."""

    device: str = "auto"
    """INDEXTTS2_DEVICE: ``auto`` (cuda > mps > cpu), ``cpu``, ``cuda``, ``cuda:1``..."""

    offline: bool = False
    """INDEXTTS2_OFFLINE (or HF_HUB_OFFLINE): never touch the network, use the cache only."""

    accept_license: bool = False
    """INDEXTTS2_ACCEPT_LICENSE: accept the model weights' licence without asking."""

    debug: bool = False
    """INDEXTTS2_DEBUG: show tracebacks instead of one-line errors."""

    log_level: str = "WARNING"
    """INDEXTTS2_LOG_LEVEL: level for the CLI's and the server's log output."""

    hub_endpoint: str | None = None
    """HF_ENDPOINT: the hub (or a mirror) models are downloaded from; None means huggingface.co."""

    goldens: Path | None = None
    """INDEXTTS2_GOLDENS: the golden directory of the parity checks and the tests (None: beside a
    checkout, ``../shared/goldens``)."""

    chromium: Path | None = None
    """INDEXTTS2_CHROMIUM: the Chromium the web page tests drive (None: ``chromium`` on the PATH)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment (``os.environ`` unless ``env`` is given)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if env.get("INDEXTTS2_HOME"):
            values["home"] = Path(env["INDEXTTS2_HOME"]).expanduser()
        if env.get("INDEXTTS2_MODEL"):
            values["model"] = env["INDEXTTS2_MODEL"]
        if env.get("INDEXTTS2_DEVICE"):
            values["device"] = env["INDEXTTS2_DEVICE"]
        for name, attr in (
            ("HF_HUB_OFFLINE", "offline"),
            ("INDEXTTS2_OFFLINE", "offline"),
            ("INDEXTTS2_ACCEPT_LICENSE", "accept_license"),
            ("INDEXTTS2_DEBUG", "debug"),
        ):
            if name in env:
                values[attr] = _parse_bool(name, env[name])
        if env.get("INDEXTTS2_LOG_LEVEL"):
            values["log_level"] = env["INDEXTTS2_LOG_LEVEL"].upper()
        if env.get("HF_ENDPOINT"):
            values["hub_endpoint"] = env["HF_ENDPOINT"].rstrip("/")
        for name, attr in (("INDEXTTS2_GOLDENS", "goldens"), ("INDEXTTS2_CHROMIUM", "chromium")):
            if env.get(name):
                values[attr] = Path(env[name]).expanduser()
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with every override that is not None applied (CLI flags left unset stay None)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        changes = {k: v for k, v in overrides.items() if v is not None}
        if "home" in changes:
            changes["home"] = Path(changes["home"]).expanduser()
        return dataclasses.replace(self, **changes)
