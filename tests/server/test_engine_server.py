"""The server on the engine: concurrent requests share decode batches; /metrics shows batch sizes."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import numpy as np
from server_helpers import multipart

from indextts2.audio import load_audio


def _speak(client: Any, reference: bytes, seed: int, results: dict[int, Any]) -> None:
    files: dict[str, Any] = multipart(
        text="Say this while others speak.",
        consent="true",
        options=json.dumps({"seed": seed, "max_codes": 120}),
        format="wav",
    )
    files["reference"] = ("me.wav", reference, "audio/wav")
    results[seed] = client.post("/v1/tts", files=files)


class _InProcess(httpx.BaseTransport):
    """The test client's transport, for an ``indextts2.Client`` (it has no ``close`` of its own)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = self._inner.handle_request(request)
        return response


def _metric(text: str, name: str, stage: str, device: str = "cpu") -> float:
    prefix = f'{name}{{device="{device}",model="dummy:tiny",stage="{stage}"}} '
    return float(next(line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)))


def test_concurrent_requests_are_decoded_in_one_batch(client: Any, reference_wav: bytes) -> None:
    results: dict[int, Any] = {}
    threads = [
        threading.Thread(target=_speak, args=(client, reference_wav, seed, results)) for seed in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [0, 1, 2, 3]
    audios = [load_audio(results[seed].content).samples for seed in range(4)]
    assert all(results[seed].status_code == 200 for seed in range(4))
    assert len({a.tobytes() for a in audios}) == 4  # each request its own audio
    text = client.get("/metrics").text
    assert _metric(text, "indextts2_engine_batch_size_max", "decode") >= 2  # they overlapped
    assert _metric(text, "indextts2_engine_batches_total", "s2mel") >= 1
    assert 'indextts2_engine_kv_rows{device="cpu",model="dummy:tiny",state="free"}' in text
    assert 'indextts2_engine_up{device="cpu",model="dummy:tiny"} 1.0' in text
    # alone, with the same seed, a request gives the same audio (float rounding aside)
    alone: dict[int, Any] = {}
    _speak(client, reference_wav, 2, alone)
    solo = load_audio(alone[2].content).samples
    np.testing.assert_allclose(solo, audios[2], atol=2 / 32767)  # 16-bit PCM: one step either way


def test_bench_over_http_against_a_server(make_client: Any) -> None:
    from indextts2.engine.bench import BenchSettings
    from indextts2.engine.bench_http import run_over_http

    client = make_client()
    settings = BenchSettings(concurrency=(2,), requests_per_client=1, diffusion_steps=2, codes_per_second=4)
    report = run_over_http("http://testserver", settings, transport=_InProcess(client._transport))
    (level,) = report.levels
    assert level.requests == 2
    assert level.failed == 0
    assert level.audio_seconds > 0
    assert level.first_audio_p50 is not None
