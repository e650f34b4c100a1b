"""Fixtures of the server tests: the real app, serving the real Synthesizer on ``dummy:tiny``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from litestar.testing import TestClient  # noqa: E402
from log_scan import PROCESS_LOGS, credentials_in, raw_handler  # noqa: E402
from server_helpers import ServerProcess, tone  # noqa: E402
from spy import FAST_OPTIONS, SpySynthesizer  # noqa: E402

from indextts2 import Synthesizer  # noqa: E402
from indextts2.server import ServerConfig, create_app  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _no_credentials_in_the_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The whole server test run's logs, grepped for keys and tokens at the end (log_scan.py)."""
    path = tmp_path_factory.mktemp("logs") / "server-tests.log"
    handler = raw_handler(path)
    ours = logging.getLogger("indextts2")
    level = ours.level
    ours.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    yield
    logging.getLogger().removeHandler(handler)
    handler.close()
    ours.setLevel(level)
    leaks = credentials_in([path, *PROCESS_LOGS])
    if leaks:
        pytest.fail("credentials in the server logs:\n" + "\n".join(leaks[:20]))


@pytest.fixture(scope="session")
def tiny_synthesizer() -> Synthesizer:
    """One dummy:tiny Synthesizer for the whole session (loading takes a few seconds)."""
    return Synthesizer.from_pretrained("dummy:tiny", device="cpu")


@pytest.fixture(scope="session")
def tiny25_synthesizer() -> Iterator[Synthesizer]:
    """One dummy:tiny-2.5 (IndexTTS-2.5) Synthesizer for the whole session."""
    synthesizer = Synthesizer.from_pretrained("dummy:tiny-2.5", device="cpu")
    yield synthesizer
    synthesizer.close()


@pytest.fixture
def synthesizer(tiny_synthesizer: Synthesizer) -> SpySynthesizer:
    """The Synthesizer the in-process tests serve, watched (see spy.py)."""
    return SpySynthesizer(tiny_synthesizer)


@pytest.fixture
def reference_wav() -> bytes:
    """A one-second reference clip, as WAV bytes."""
    return tone(1.0).to_bytes("wav")


@pytest.fixture
def make_client(tmp_path: Path, synthesizer: Any) -> Iterator[Callable[..., TestClient[Any]]]:
    """``make_client(**config_changes)``: a started TestClient on a fresh app and voices directory."""
    clients: list[TestClient[Any]] = []

    def make(*, synth: Any = synthesizer, **changes: Any) -> TestClient[Any]:
        changes.setdefault("voices_dir", tmp_path / "voices")
        changes.setdefault("default_options", FAST_OPTIONS)
        client: TestClient[Any] = TestClient(create_app(ServerConfig(**changes), synth))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient[Any]]) -> TestClient[Any]:
    """A client of a server with the default config and no keys."""
    return make_client()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True) -> ServerProcess:
        server = ServerProcess(tmp_path, list(args), env=env)
        started.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.kill()
