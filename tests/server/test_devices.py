"""Every device of a host (``serve --devices``): two engines on the CPU behind the router, through
the real app: routing, per-device metrics, a failed engine out of rotation, draining."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from server_helpers import MODEL_ARGS, ServerProcess, multipart, tone
from spy import FAST_OPTIONS

from indextts2 import Synthesizer
from indextts2.pool import SynthesizerPool
from indextts2.server import ServerConfig, create_app


@pytest.fixture
def pool() -> Iterator[SynthesizerPool]:
    members = [Synthesizer.from_pretrained("dummy:tiny", device="cpu") for _ in range(2)]
    with SynthesizerPool(members) as loaded:
        yield loaded


@pytest.fixture
def client(pool: SynthesizerPool, tmp_path: Path) -> Iterator[TestClient[Any]]:
    config = ServerConfig(voices_dir=tmp_path / "voices", default_options=FAST_OPTIONS, sample_voice=True)
    with TestClient(create_app(config, pool)) as started:
        yield started


def _speak(client: Any, text: str = "Two engines, one server.") -> Any:
    return client.post("/v1/audio/speech", json={"input": text, "voice": "sample", "response_format": "wav"})


def _gauge(text: str, name: str, device: str) -> float:
    prefix = f'{name}{{device="{device}",model="dummy:tiny"}} '
    return float(next(line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)))


def _finished(text: str, device: str) -> float:
    prefix = f'indextts2_engine_batches_total{{device="{device}",model="dummy:tiny",stage="vocoder"}} '
    return float(next((line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)), 0))


def _broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("CUDA error: an illegal memory access was encountered (simulated)")


def test_both_engines_serve_and_metrics_are_labelled_by_model_and_device(client: Any) -> None:
    ready = client.get("/readyz").json()
    assert ready["engines"] == [
        {"model": "dummy:tiny", "device": "cpu#0", "state": "serving"},
        {"model": "dummy:tiny", "device": "cpu#1", "state": "serving"},
    ]
    for _ in range(2):  # idle engines take turns
        assert _speak(client).status_code == 200
    metrics = client.get("/metrics").text
    for device in ("cpu#0", "cpu#1"):
        assert _finished(metrics, device) >= 1, metrics
        assert _gauge(metrics, "indextts2_engine_up", device) == 1
        assert _gauge(metrics, "indextts2_engine_outstanding", device) == 0


def test_a_failed_engine_answers_503_and_the_other_keeps_serving(client: Any, pool: SynthesizerPool) -> None:
    assert _speak(client).status_code == 200
    metrics = client.get("/metrics").text
    # the engine that served it has done more: the idle one takes the next request, and breaks
    busy, idle = sorted(("cpu#0", "cpu#1"), key=lambda device: -_finished(metrics, device))
    index = {"cpu#0": 0, "cpu#1": 1}
    pool._members[index[idle]].synthesizer.model.gpt.mel_logits = _broken
    failed = _speak(client)
    assert failed.status_code == 503
    error = failed.json()["error"]
    assert error["code"] == "engine_failed"
    assert f"{idle} failed" in error["message"]
    assert "send it again" in error["message"]
    assert failed.headers["retry-after"] == "1"
    ready = client.get("/readyz")
    assert ready.status_code == 200  # still serving, on one engine
    assert client.get("/healthz").status_code == 200
    engines = {engine["device"]: engine for engine in ready.json()["engines"]}
    assert engines[busy] == {"model": "dummy:tiny", "device": busy, "state": "serving"}
    assert engines[idle]["state"] == "failed"
    assert "illegal memory access" in engines[idle]["error"]
    for _ in range(3):
        assert _speak(client).status_code == 200
    metrics = client.get("/metrics").text
    assert _gauge(metrics, "indextts2_engine_up", idle) == 0
    assert _gauge(metrics, "indextts2_engine_up", busy) == 1
    # the last engine fails too: /readyz says so, and so does every request
    pool._members[index[busy]].synthesizer.model.gpt.mel_logits = _broken
    assert _speak(client).status_code == 503
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert "every engine has failed" in not_ready.json()["error"]["message"]
    assert _speak(client).json()["error"]["code"] == "engine_failed"
    # and the liveness probe asks for a restart (a process with no working device is of no use)
    dead = client.get("/healthz")
    assert dead.status_code == 503
    assert dead.json()["error"]["code"] == "engines_failed"
    assert client.head("/healthz").status_code == 503


@pytest.mark.slow
def test_serve_devices_cpu_cpu_serves_and_drains(tmp_path: Path) -> None:
    args = [a for a in MODEL_ARGS if a != "--cpu"]
    server = ServerProcess(tmp_path, ["--devices", "cpu,cpu", "--grace-period", "20"], model_args=args)
    try:
        server.wait_ready()
        ready = httpx.get(f"{server.url}/readyz", timeout=5).json()
        assert [e["device"] for e in ready["engines"]] == ["cpu#0", "cpu#1"]
        text = "Both engines speak while the server stops. " * 2
        options = json.dumps({"seed": 3, "max_codes": 40, "max_text_tokens_per_segment": 10})
        received: list[Any] = []
        first_bytes = threading.Event()

        def long_request() -> None:
            files = multipart(text=text, consent="true", stream="true", format="pcm", options=options)
            files["reference"] = ("me.wav", tone(1.0).to_bytes("wav"), "audio/wav")
            with httpx.stream("POST", f"{server.url}/v1/tts", files=files, timeout=60) as response:
                body = b""
                for piece in response.iter_bytes():
                    body += piece
                    first_bytes.set()
                received.append((response.status_code, len(body)))

        workers = [threading.Thread(target=long_request) for _ in range(2)]
        for worker in workers:
            worker.start()
        assert first_bytes.wait(60)
        server.process.send_signal(signal.SIGTERM)  # both requests finish within the grace period
        for worker in workers:
            worker.join(60)
        assert [status for status, _ in received] == [200, 200]
        assert received[0][1] == received[1][1] > 22050  # the same seed: the same length, uncut
        assert server.terminate() == 0
        log = server.log()
        assert "engine 2 of 2 on cpu loaded" in log
    finally:
        server.kill()
