"""Fixtures of the model store tests: a fake hub on 127.0.0.1 and a cache directory per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakehub import MODEL, FakeHub, serve

from indextts2.store import ModelFiles, download_model


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The fake hub, with HF_ENDPOINT pointing at it and no hub token from the environment."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with serve() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def downloaded(hub: FakeHub, cache: Path) -> ModelFiles:
    """The whole model downloaded from the fake hub into ``cache``."""
    return download_model(MODEL, cache_dir=cache, accept_license=True)
