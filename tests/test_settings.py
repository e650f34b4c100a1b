"""Settings: environment parsing and precedence (argument > flag > env > default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from indextts2.errors import ConfigError
from indextts2.settings import DEFAULT_MODEL, Settings


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.model == DEFAULT_MODEL
    assert settings.device == "auto"
    assert not settings.offline
    assert not settings.debug
    assert settings.home.name == "indextts2"


def test_environment_overrides_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "INDEXTTS2_HOME": str(tmp_path),
            "INDEXTTS2_MODEL": "dummy:tiny",
            "INDEXTTS2_DEVICE": "cpu",
            "HF_HUB_OFFLINE": "1",
            "INDEXTTS2_ACCEPT_LICENSE": "yes",
            "INDEXTTS2_LOG_LEVEL": "info",
        }
    )
    assert settings.home == tmp_path
    assert settings.model == "dummy:tiny"
    assert settings.device == "cpu"
    assert settings.offline
    assert settings.accept_license
    assert settings.log_level == "INFO"


def test_flags_override_environment_and_unset_flags_do_not(tmp_path: Path) -> None:
    settings = Settings.from_env({"INDEXTTS2_DEVICE": "cpu", "INDEXTTS2_MODEL": "dummy:tiny"})
    merged = settings.with_overrides(device="cuda:1", model=None, home=tmp_path)
    assert merged.device == "cuda:1"
    assert merged.model == "dummy:tiny"
    assert merged.home == tmp_path


def test_indextts2_offline_beats_hf_hub_offline() -> None:
    assert not Settings.from_env({"HF_HUB_OFFLINE": "1", "INDEXTTS2_OFFLINE": "0"}).offline


def test_a_bad_boolean_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="INDEXTTS2_DEBUG"):
        Settings.from_env({"INDEXTTS2_DEBUG": "maybe"})


def test_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="colour"):
        Settings().with_overrides(colour="blue")
