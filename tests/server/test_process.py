"""A real ``indextts2 serve`` process on 127.0.0.1, driven by httpx, the ``openai`` client and
``indextts2.Client``: concurrency, memory, graceful SIGTERM, ``--replace``."""

from __future__ import annotations

import concurrent.futures
import io
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from server_helpers import ARTIFACTS, HERE, ServerProcess, free_port, multipart, tone

from indextts2.audio import load_audio
from indextts2.client import Client, RemoteError
from indextts2.errors import InvalidInput, VoiceNotFound

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the load and client tests: a small queue so that overload shows."""
    home = tmp_path_factory.mktemp("shared-home")
    server = ServerProcess(home, ["--max-queue", "8"])
    server.wait_ready()
    voice = httpx.post(
        f"{server.url}/v1/voices",
        data={"consent": "true", "name": "loadtest"},
        files={"reference": ("me.wav", tone(1.0).to_bytes("wav"), "audio/wav")},
        timeout=30,
    )
    assert voice.status_code == 201, voice.text
    yield server
    assert server.terminate() == 0, server.log()[-2000:]


def test_sixteen_concurrent_clients_get_200_or_429_and_memory_stays_flat(
    shared_server: ServerProcess,
) -> None:
    import openai

    url = shared_server.url
    openai_client = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0, timeout=60)
    http = httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=32))

    refusals: list[httpx.Response] = []

    def via_httpx(index: int) -> tuple[int, int]:
        response = http.post("/v1/tts", files=multipart(text=f"Request {index}. Hello.", voice="loadtest"))
        if response.status_code == 429:
            refusals.append(response)
        return response.status_code, len(response.content) if response.status_code == 200 else 0

    def via_openai(index: int) -> tuple[int, int]:
        try:
            speech = openai_client.audio.speech.create(
                model="tts-1", voice="loadtest", input=f"Request {index}.", response_format="wav"
            )
        except openai.RateLimitError:
            return 429, 0
        except openai.APIStatusError as error:
            return error.status_code, 0
        return 200, len(speech.content)

    def one(index: int) -> tuple[int, int]:
        status, size = via_openai(index) if index % 2 else via_httpx(index)
        if status == 429:
            time.sleep(1.0)  # a polite client waits as Retry-After says before its next request
        return status, size

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        # warm up: allocator pools, caches, and the engine's batches of every size up to 16 (a
        # batching server reaches its working set later than one serving a request at a time)
        list(pool.map(one, range(200)))
        rss_before = shared_server.rss()
        results = list(pool.map(one, range(200)))
    rss_after = shared_server.rss()
    http.close()
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    assert statuses.count(200) >= 40
    assert all(size > 1000 for status, size in results if status == 200)
    for refusal in refusals[:5]:
        assert int(refusal.headers["retry-after"]) >= 1
        assert refusal.json()["error"]["code"] == "overloaded"
    growth_mib = (rss_after - rss_before) / 2**20
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "server-rss.txt").write_text(
        f"200 requests, 16 concurrent clients (httpx + openai), dummy:tiny on the CPU\n"
        f"responses: {statuses.count(200)} x 200, {statuses.count(429)} x 429\n"
        f"server RSS before: {rss_before / 2**20:.1f} MiB, after: {rss_after / 2**20:.1f} MiB, "
        f"growth: {growth_mib:+.1f} MiB\n"
    )
    assert growth_mib < 40, f"server RSS grew by {growth_mib:.1f} MiB over 200 requests"
    metrics = httpx.get(f"{url}/metrics").text
    assert 'route="/v1/audio/speech",status="200"' in metrics
    assert "indextts2_queue_depth 0.0" in metrics


def test_openai_client_streams_wav_and_pcm(shared_server: ServerProcess) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{shared_server.url}/v1", api_key="x", max_retries=3)
    with client.audio.speech.with_streaming_response.create(
        model="indextts2",
        voice="loadtest",
        input="Streaming through the OpenAI client.",
        response_format="pcm",
        extra_body={"seed": 7},
    ) as response:
        pieces = list(response.iter_bytes())
    pcm = b"".join(pieces)
    assert len(pcm) > 12000  # more than a quarter second at 24 kHz, 16-bit
    wav = client.audio.speech.create(
        model="tts-1",
        voice="loadtest",
        input="Streaming through the OpenAI client.",
        response_format="wav",
        extra_body={"seed": 7},
    )
    assert len(pcm) / 2 / 24000 == pytest.approx(load_audio(wav.content).duration, abs=0.01)
    with pytest.raises(openai.NotFoundError, match="no saved voice 'alloy'"):
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")


def test_indextts2_client(shared_server: ServerProcess) -> None:
    with Client(shared_server.url) as client:
        assert client.ready()
        assert client.info()["model"]
        voice = client.create_voice(tone(1.2, frequency=300), consent=True, name="client-voice")
        assert voice["id"] in [v["id"] for v in client.voices()]
        from indextts2.options import SynthesisOptions

        seeded = SynthesisOptions(seed=7)  # the same seed: the same audio, streamed or whole
        whole = client.synthesize("The client works. Twice.", voice="client-voice", options=seeded)
        blocks = list(client.stream("The client works. Twice.", voice="client-voice", options=seeded))
        streamed = np.concatenate([b.samples for b in blocks])
        assert whole.sample_rate == blocks[0].sample_rate == 22050
        assert len(streamed) == whole.num_samples
        np.testing.assert_allclose(streamed, whole.samples, atol=1 / 32767)
        mp3 = client.synthesize_bytes("As mp3.", voice=voice["id"], format="mp3")
        assert load_audio(io.BytesIO(mp3)).duration > 0.1
        inline = client.synthesize("Inline.", reference=tone(1.0).to_bytes("wav"), consent=True)
        assert inline.duration > 0.1
        with pytest.raises(VoiceNotFound, match="no saved voice"):
            client.synthesize("Hi.", voice="nobody-here")
        with pytest.raises(InvalidInput, match="consent"):
            client.synthesize("Hi.", reference=tone(1.0).to_bytes("wav"))
        with pytest.raises(InvalidInput, match="text is empty"):
            list(client.stream(" ", voice="client-voice"))
        client.delete_voice("client-voice")


def test_client_errors_without_the_key_and_without_a_server(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server("--api-key", "right-key")
    with Client(server.url) as client, pytest.raises(RemoteError, match="needs an API key") as missing:
        client.voices()
    assert missing.value.http_status == 401
    with Client(server.url, api_key="right-key") as client:
        assert [voice["name"] for voice in client.voices()] == ["sample"]  # serve's built-in voice
    with (
        Client(f"http://127.0.0.1:{free_port()}") as client,
        pytest.raises(RemoteError, match="cannot reach"),
    ):
        client.voices()


def test_sigterm_lets_in_flight_work_finish(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server("--grace-period", "20")
    reference = tone(1.0).to_bytes("wav")
    text = "Still speaking while the server stops. " * 3
    # several segments of up to 60 codes each; a fixed seed makes the streamed audio reproducible
    options = json.dumps({"seed": 7, "max_codes": 60, "max_text_tokens_per_segment": 10})
    whole = multipart(text=text, consent="true", format="pcm", options=options)
    whole["reference"] = ("me.wav", reference, "audio/wav")
    expected = httpx.post(f"{server.url}/v1/tts", files=whole, timeout=60)
    assert expected.status_code == 200, expected.text
    received: dict[str, Any] = {}
    first_bytes = threading.Event()

    def long_request() -> None:
        files = multipart(text=text, consent="true", stream="true", format="pcm", options=options)
        files["reference"] = ("me.wav", reference, "audio/wav")
        with httpx.stream("POST", f"{server.url}/v1/tts", files=files, timeout=60) as response:
            received["status"] = response.status_code
            body = b""
            for piece in response.iter_bytes():
                body += piece
                first_bytes.set()
            received["bytes"] = len(body)

    worker = threading.Thread(target=long_request)
    worker.start()
    assert first_bytes.wait(30)
    server.process.send_signal(signal.SIGTERM)
    worker.join(60)
    assert received["status"] == 200
    seconds = received["bytes"] / 2 / 22050
    assert len(expected.content) / 2 / 22050 > 1.5  # long enough to be cut, if it were
    assert received["bytes"] == len(expected.content), f"only {seconds:.2f} s arrived: the stream was cut"
    assert server.terminate() == 0
    log = server.log()
    assert "Application shutdown complete" in log
    assert "server stopped" in log
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/healthz", timeout=2)


# Seconds a stopping server may take past its grace period: the stream ends and the workers see it
# at once; the engine finishes its current step (a 0.05 s sleep here), and the interpreter exits.
SHUTDOWN_MARGIN = 6.0


def test_sigterm_ends_what_is_left_at_the_end_of_the_grace_period(tmp_path: Path) -> None:
    grace = 3.0
    # every engine step sleeps 0.05 s first: 20 codes per segment, 30 segments, far past the grace
    program = [sys.executable, str(HERE / "slow_serve.py"), "0.05"]
    args = ["--grace-period", str(grace), "--concurrency", "2", "--max-queue", "4"]
    server = ServerProcess(tmp_path, args, program=program)
    try:
        server.wait_ready()
        voice = httpx.post(
            f"{server.url}/v1/voices",
            data={"consent": "true", "name": "slow"},
            files={"reference": ("me.wav", tone(1.0).to_bytes("wav"))},
            timeout=60,
        )
        assert voice.status_code == 201, voice.text
        text = "One, two, three, four, five, six, seven and eight. " * 30  # 1530 characters
        results: dict[str, Any] = {}
        started = {name: threading.Event() for name in ("wav", "sse")}

        def stream(name: str, method: str, path: str, **kwargs: Any) -> None:
            try:
                with httpx.stream(method, f"{server.url}{path}", timeout=120, **kwargs) as response:
                    results[name + "_status"] = response.status_code
                    body = b""
                    for piece in response.iter_bytes():
                        body += piece
                        started[name].set()
                    results[name] = body
            except httpx.HTTPError as error:  # e.g. a chunked body cut off by the server
                results[name + "_error"] = error

        def waiting() -> None:
            results["waiting"] = httpx.post(
                f"{server.url}/v1/tts", files=multipart(text=text, voice="slow"), timeout=120
            )

        form = multipart(text=text, voice="slow", stream="true")
        sse = {"input": text, "voice": "slow", "response_format": "pcm", "stream_format": "sse"}
        threads = [
            threading.Thread(target=stream, args=("wav", "POST", "/v1/tts"), kwargs={"files": form}),
            threading.Thread(target=stream, args=("sse", "POST", "/v1/audio/speech"), kwargs={"json": sse}),
            threading.Thread(target=waiting),
        ]
        for thread in threads[:2]:
            thread.start()
        for name, event in started.items():
            assert event.wait(60), f"{name}: no audio yet\n{server.log()[-3000:]}"
        threads[2].start()  # both workers are busy: this one waits in the queue
        deadline = time.monotonic() + 30
        while "indextts2_queue_depth 1.0" not in httpx.get(f"{server.url}/metrics").text:
            assert time.monotonic() < deadline, "the third request never queued"
            time.sleep(0.05)

        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(grace + 60)
        stopped_after = time.monotonic() - sent
        for thread in threads:
            thread.join(30)
    finally:
        server.kill()
    log = server.log()
    assert code == 0, log[-3000:]
    assert stopped_after < grace + SHUTDOWN_MARGIN, f"exited {stopped_after:.1f} s after SIGTERM"
    assert "terminate called" not in log
    assert "Traceback" not in log
    # the streamed WAV ended cleanly (a complete chunked body) after the audio it had
    assert "wav_error" not in results, results.get("wav_error")
    assert results["wav_status"] == 200
    assert results["wav"][:4] == b"RIFF"
    assert len(results["wav"]) > 44
    # the event stream's last event is an error
    assert "sse_error" not in results, results.get("sse_error")
    events = [
        json.loads(line[6:]) for line in results["sse"].decode().splitlines() if line.startswith("data: ")
    ]
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["code"] == "shutting_down"
    # the request that had not started: 503 JSON with Retry-After
    refused = results["waiting"]
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "shutting_down"
    assert refused.json()["error"]["request_id"] == refused.headers["x-request-id"]
    assert int(refused.headers["retry-after"]) >= 1


def test_a_failed_start_leaves_no_pidfile(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    pidfile = tmp_path / "failed.pid"
    server = start_server("--pidfile", str(pidfile), "--api-keys-file", str(tmp_path / "missing"), wait=False)
    assert server.process.wait(60) == 2
    assert "does not exist" in server.log()
    assert not pidfile.exists()


def test_replace_takes_over_the_port(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    pidfile = tmp_path / "serve.pid"
    port = str(free_port())
    first = start_server("--port", port, "--pidfile", str(pidfile))
    assert pidfile.read_text().strip() == str(first.pid)
    refused = start_server("--port", port, "--pidfile", str(pidfile), wait=False)
    assert refused.process.wait(60) == 2
    assert "--replace" in refused.log()
    second = start_server("--port", port, "--pidfile", str(pidfile), "--replace", wait=False)
    assert first.process.wait(60) == 0  # stopped gracefully by the new one
    second.wait_ready()  # (only now: until the first one stopped, it answered on this port)
    assert pidfile.read_text().strip() == str(second.pid)
    assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    assert second.terminate() == 0
    assert not pidfile.exists()
