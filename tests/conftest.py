"""Shared fixtures.

The golden directory is ``$INDEXTTS2_GOLDENS`` or ``../shared/goldens`` beside the checkout (IndexTTS-2.5's:
``$INDEXTTS2_GOLDENS_25`` or ``goldens-2.5`` beside that). Without it
the golden tests skip on a developer's machine but FAIL under CI (``CI`` set), so that a CI run can
never pass by skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _golden_dir() -> Path:
    configured = os.environ.get("INDEXTTS2_GOLDENS")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "goldens"


@pytest.fixture(scope="session")
def goldens() -> Path:
    """The golden directory (official outputs for the tiny random-weight checkpoint)."""
    root = _golden_dir()
    if not (root / "checkpoint").is_dir():
        message = f"golden directory {root} is missing (set INDEXTTS2_GOLDENS)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


def _golden25_dir() -> Path:
    configured = os.environ.get("INDEXTTS2_GOLDENS_25")
    return Path(configured) if configured else _golden_dir().parent / "goldens-2.5"


@pytest.fixture(scope="session")
def goldens25() -> Path:
    """The IndexTTS-2.5 golden directory: ``$INDEXTTS2_GOLDENS_25`` or ``goldens-2.5`` beside the goldens."""
    root = _golden25_dir()
    if not (root / "checkpoint").is_dir():
        message = f"IndexTTS-2.5 golden directory {root} is missing (set INDEXTTS2_GOLDENS_25)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def golden_set(goldens: Path):
    from indextts2.parity import GoldenSet

    return GoldenSet(goldens)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the real user cache or sees the developer's INDEXTTS2_* settings."""
    for name in list(os.environ):
        if name.startswith("INDEXTTS2_") and name != "INDEXTTS2_GOLDENS":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INDEXTTS2_HOME", str(tmp_path_factory.mktemp("home")))
