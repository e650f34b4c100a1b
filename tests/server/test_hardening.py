"""What an operator's security review found (issue 18), in-process: hostile audio headers, hostile
bodies, the small truths (HEAD, Content-Type, X-Sample-Rate, offline docs) and the shutdown's end of
every kind of response."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from server_helpers import multipart, tone
from spy import FAST_OPTIONS, SpySynthesizer
from test_admission import _lifespan

from indextts2.server import ServerConfig, create_app


def _error(response: Any, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id"}  # the request id: issue 21
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return dict(body["error"])


def _flac(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC")
    return buffer.getvalue()


# ---- 1. decompression bombs: refused from the header, named by the upload's file name

# the bomb (655,350 Hz, 8 channels) with a hundredth of a second of samples: the header is
# what matters, and it is refused before a sample is decoded
BOMB = _flac(np.full((6_554, 8), 0.25, np.float32), 655_350)


def test_a_bomb_uploaded_as_a_voice_is_refused_by_its_header(client: Any, synthesizer: Any) -> None:
    response = client.post("/v1/voices", data={"consent": "true"}, files={"reference": ("b.flac", BOMB)})
    error = _error(response, 400)
    assert error["code"] == "invalid_audio"
    assert error["message"].startswith("cannot read audio b.flac: ")
    assert "655,350 Hz; this reads up to 192,000 Hz" in error["message"]
    assert synthesizer.voices_encoded == 0


@pytest.mark.parametrize("field", ["reference", "emotion_audio"])
def test_a_bomb_sent_with_a_request_is_refused_by_its_header(
    client: Any, reference_wav: bytes, field: str
) -> None:
    files: dict[str, Any] = multipart(text="Hi.", consent="true")
    files["reference"] = ("me.wav", reference_wav, "audio/wav")
    files[field] = ("mood.flac", BOMB, "audio/flac")
    error = _error(client.post("/v1/tts", files=files), 400)
    assert error["message"].startswith("cannot read audio mood.flac: its header gives a sample rate")


def test_a_clip_of_unknown_length_is_refused_clearly(client: Any) -> None:
    data = bytearray(_flac(tone(1.0).samples, 22050))
    packed = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)  # STREAMINFO: total samples = 0
    data[18:26] = packed.to_bytes(8, "big")
    response = client.post(
        "/v1/voices", data={"consent": "true"}, files={"reference": ("s.flac", bytes(data))}
    )
    assert (
        "cannot read audio s.flac: its header does not say how long it is" in _error(response, 400)["message"]
    )


def test_audio_errors_name_the_upload(client: Any) -> None:
    files: dict[str, Any] = multipart(text="Hi.", consent="true")
    files["reference"] = ("my clip.wav", b"RIFF\x00\x00\x00\x00WAVEnot really a wav file", "audio/wav")
    assert _error(client.post("/v1/tts", files=files), 400)["message"].startswith(
        "cannot read audio my clip.wav:"
    )


# ---- 2, 6. hostile bodies


def test_deeply_nested_json_is_a_400(client: Any) -> None:
    response = client.post(
        "/v1/audio/speech", content=b"[" * 100_000, headers={"Content-Type": "application/json"}
    )
    error = _error(response, 400)
    assert error["code"] == "invalid_input"
    assert "nested too deeply" in error["message"]


def test_a_form_field_that_is_not_utf8_is_a_400(client: Any) -> None:
    # a file sent as a plain field (no file name): found by the schema fuzz test, a 500 before
    files = {"text": (None, "Hi."), "consent": (None, "true"), "reference": (None, b"\x89PNG\r\n\x1a\n")}
    error = _error(client.post("/v1/tts", files=files), 400)
    assert "not UTF-8" in error["message"]


def test_too_many_form_fields_is_a_413(client: Any) -> None:
    from indextts2.server.app import MULTIPART_PART_LIMIT

    fields = {f"field{index}": (None, "x") for index in range(20_000)}
    error = _error(client.post("/v1/voices", files=fields), 413)
    assert error["code"] == "payload_too_large"
    assert f"more than {MULTIPART_PART_LIMIT} parts" in error["message"]


# ---- 7. a clip uploaded again under a new name: the name is added, or 409; never dropped


def test_a_clip_uploaded_again_under_a_new_name_gets_that_name(
    make_client: Any, tmp_path: Any, reference_wav: bytes
) -> None:
    client = make_client(voices_dir=tmp_path / "v")

    def upload(name: str | None, clip: bytes = reference_wav) -> Any:
        data = {"consent": "true", **({"name": name} if name else {})}
        return client.post("/v1/voices", data=data, files={"reference": ("me.wav", clip)})

    first = upload("me")
    assert first.status_code == 201
    voice_id = first.json()["id"]
    again = upload("me2")
    assert again.status_code == 200
    assert again.json()["id"] == voice_id
    assert (again.json()["name"], again.json()["aliases"]) == ("me", ["me2"])
    assert upload("me").json()["aliases"] == ["me2"]  # a name it has already: nothing changes
    assert client.get("/v1/voices/me2").json()["id"] == voice_id
    assert client.post("/v1/tts", files=multipart(text="Hi.", voice="me2")).status_code == 200
    # another clip may not take either name; this clip may not take another voice's name
    other = tone(1.0, frequency=440).to_bytes("wav")
    assert "taken by voice" in _error(upload("me2", other), 409)["message"]
    assert upload("them", other).status_code == 201
    assert (
        f"'them' is taken by voice {upload('them', other).json()['id']}"
        in _error(upload("them"), 409)["message"]
    )
    # the names survive a restart, and go with the voice
    restarted = make_client(voices_dir=tmp_path / "v")
    assert restarted.get("/v1/voices/me2").json()["id"] == voice_id
    assert restarted.delete("/v1/voices/me2").json() == {"id": voice_id, "deleted": True}
    assert restarted.get("/v1/voices/me").status_code == 404


def test_an_unnamed_voice_takes_the_name_it_is_uploaded_again_with(client: Any, reference_wav: bytes) -> None:
    files = {"reference": ("me.wav", reference_wav)}
    assert client.post("/v1/voices", data={"consent": "true"}, files=files).json()["name"] is None
    named = client.post("/v1/voices", data={"consent": "true", "name": "late"}, files=files).json()
    assert (named["name"], named["aliases"]) == ("late", [])


# ---- 8. the small ones


def test_head_on_health_and_readiness(client: Any, make_client: Any) -> None:
    for path in ("/healthz", "/readyz"):
        response = client.head(path)
        assert response.status_code == 200, path
        assert response.content == b""
    not_ready = make_client(synth=None)
    assert not_ready.head("/readyz").status_code == 503
    assert not_ready.head("/healthz").status_code == 200


def test_metrics_content_type_names_its_charset_once(client: Any) -> None:
    assert client.get("/metrics").headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


@pytest.mark.parametrize("fmt", ["opus", "mp3", "flac", "wav"])
def test_x_sample_rate_is_the_rate_of_the_file_sent(client: Any, reference_wav: bytes, fmt: str) -> None:
    files: dict[str, Any] = multipart(text="Rates.", consent="true", format=fmt)
    files["reference"] = ("me.wav", reference_wav, "audio/wav")
    response = client.post("/v1/tts", files=files)
    assert response.status_code == 200, response.text
    assert int(response.headers["x-sample-rate"]) == sf.info(io.BytesIO(response.content)).samplerate


def test_the_docs_need_nothing_from_the_internet(client: Any) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert client.get("/docs/swagger").status_code == 404  # it loaded its scripts from a CDN


# ---- 5. the schema tells the truth (test_openapi_fuzz.py checks the answers against it)


def test_the_schema_declares_the_error_body_the_statuses_and_the_public_routes(client: Any) -> None:
    schema = client.get("/docs/openapi.json").json()
    paths = schema["paths"]
    for path in ("/healthz", "/readyz", "/v1/info"):
        assert paths[path]["get"]["security"] == [], path
    assert "security" not in paths["/v1/voices"]["get"]  # the app-wide Bearer requirement applies
    tts = paths["/v1/tts"]["post"]["responses"]
    assert {"200", "400", "401", "403", "404", "413", "415", "429", "503", "504"} <= set(tts)
    error = tts["400"]["content"]["application/json"]["schema"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    assert "Retry-After" in tts["429"]["headers"]
    assert "audio/wav" in tts["200"]["content"]
    assert "text/event-stream" in paths["/v1/audio/speech"]["post"]["responses"]["200"]["content"]
    assert "409" in paths["/v1/voices"]["post"]["responses"]


def test_the_schema_declares_the_request_id_and_the_gateways_answers(client: Any) -> None:
    paths = client.get("/docs/openapi.json").json()["paths"]
    error = paths["/v1/tts"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
    request_id = error["properties"]["error"]["properties"]["request_id"]
    assert request_id["type"] == "string"  # optional: only "code" and "message" are required
    assert "WWW-Authenticate" in paths["/v1/voices"]["get"]["responses"]["401"]["headers"]
    assert "quota" in paths["/v1/audio/speech"]["post"]["responses"]["429"]["description"]
    assert {"400", "401", "403"} <= set(paths["/v1/usage"]["get"]["responses"])
    # a token is checked against the provider's keys on every route that needs a credential
    for path, method in [("/v1/voices", "get"), ("/v1/voices/{voice_id}", "delete"), ("/v1/models", "get")]:
        assert "503" in paths[path][method]["responses"], (path, method)


# ---- 3. shutdown: what is left at the end of the grace period is ended, each kind cleanly


class HeldSynthesizer(SpySynthesizer):
    """Every stream gives its first chunk, then waits for ``release``: a step slower than any grace
    period, for as long as the test wants."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.release = threading.Event()
        self.first_chunks = 0

    def _watch(self, chunks: Iterator[Any]) -> Iterator[Any]:
        for index, chunk in enumerate(super()._watch(chunks)):
            if index:
                self.release.wait()
            yield chunk
            if not index:
                with self._lock:
                    self.first_chunks += 1


def test_shutdown_ends_streams_events_and_waiting_requests_cleanly(
    tmp_path: Any, tiny_synthesizer: Any
) -> None:
    from indextts2.server.app import drain

    held = HeldSynthesizer(tiny_synthesizer)
    config = ServerConfig(
        voices_dir=tmp_path / "voices", default_options=FAST_OPTIONS, gpu_workers=2, grace_period=0.2
    )
    app = create_app(config, held)
    reference = tone(1.0).to_bytes("wav")
    text = "One, two, three, four, five, six, seven and eight. " * 20  # several segments of 120 tokens

    async def until(condition: Any) -> None:
        for _ in range(2000):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the server did not get there")

    async def main() -> tuple[httpx.Response, httpx.Response, httpx.Response, int]:
        async with (
            _lifespan(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
        ):
            saved = await http.post(
                "/v1/voices",
                data={"consent": "true", "name": "held"},
                files={"reference": ("h.wav", reference)},
            )
            assert saved.status_code == 201
            form = {"text": text, "voice": "held"}
            wav = asyncio.create_task(http.post("/v1/tts", files=multipart(**form, stream="true")))
            sse = asyncio.create_task(
                http.post(
                    "/v1/audio/speech",
                    json={"input": text, "voice": "held", "response_format": "pcm", "stream_format": "sse"},
                )
            )
            await until(lambda: held.first_chunks == 2)  # both workers hold a request past its start
            waiting = asyncio.create_task(http.post("/v1/tts", files=multipart(**form)))
            await until(lambda: app.state.speech.admission.queued == 1)
            await drain(app, config.grace_period)  # what SIGTERM starts under uvicorn
            responses = await asyncio.gather(wav, sse, waiting)
            after = await http.post("/v1/tts", files=multipart(**form))
            held.release.set()  # let the held workers see their cancellation and stop
            ready = (await http.get("/readyz")).status_code
        return *responses, after, ready  # type: ignore[return-value]

    wav, sse, waiting, after, ready = asyncio.run(main())
    # the held jobs were cancelled, not finished (the app's lifespan joined their workers)
    assert held.streams_closed_early == 2
    # the streamed WAV ends cleanly after the audio it had: its header and the first segment
    assert wav.status_code == 200
    assert wav.content[:4] == b"RIFF"
    assert len(wav.content) > 44 + 1000
    # the event stream gets an error event last
    events = [json.loads(line[6:]) for line in sse.text.splitlines() if line.startswith("data: ")]
    assert events[0]["type"] == "speech.audio.delta"
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["code"] == "shutting_down"
    assert events[-1]["error"]["request_id"] == sse.headers["x-request-id"]
    # the request that had not started answers 503 with Retry-After, as does one sent afterwards
    for response in (waiting, after):
        assert _error(response, 503)["code"] == "shutting_down"
        assert int(response.headers["retry-after"]) >= 1
    assert ready == 503
