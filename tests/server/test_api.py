"""The HTTP API in-process (Litestar's test client): speech, voices, operations, and bad input."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from server_helpers import multipart, tone
from spy import ServerClock, SpySynthesizer

from indextts2.audio import load_audio
from indextts2.server import admission

# Requests whose audio is compared with another request's fix the seed: equal input, equal audio.
SEEDED = json.dumps({"seed": 7})

# ---- /v1/tts


def test_tts_with_a_reference_returns_a_wav_of_the_text(client: Any, reference_wav: bytes) -> None:
    response = client.post(
        "/v1/tts",
        # short segments: the two sentences become two segments
        data={
            "text": "Hello there. How are you?",
            "consent": "true",
            "options": '{"max_text_tokens_per_segment": 5}',
        },
        files={"reference": ("me.wav", reference_wav, "audio/wav")},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    audio = load_audio(response.content)
    assert audio.sample_rate == 22050
    # two segments with 200 ms of silence between them: clearly longer than one short segment
    assert audio.duration > 0.6
    assert float(response.headers["x-audio-duration"]) == pytest.approx(audio.duration, abs=1e-3)


def test_the_synthesizer_is_only_used_on_the_gpu_worker(
    client: Any, reference_wav: bytes, synthesizer: Any
) -> None:
    for stream in ("true", "false"):
        response = client.post(
            "/v1/tts",
            data={"text": "Which thread?", "consent": "true", "stream": stream},
            files={"reference": ("me.wav", reference_wav, "audio/wav")},
        )
        assert response.status_code == 200
    # only the admission's worker threads call it (they wait on the engine, which runs the model)
    assert synthesizer.threads_used
    assert all(name.startswith("indextts2-gpu-") for name in synthesizer.threads_used)


@pytest.mark.parametrize(
    ("fmt", "container"), [("flac", "FLAC"), ("mp3", "MP3"), ("opus", "OGG"), ("ogg", "OGG")]
)
def test_tts_encodes_every_format(client: Any, reference_wav: bytes, fmt: str, container: str) -> None:
    response = client.post(
        "/v1/tts",
        data={"text": "Format check.", "consent": "true", "format": fmt},
        files={"reference": ("me.wav", reference_wav, "audio/wav")},
    )
    assert response.status_code == 200, response.text
    assert sf.info(io.BytesIO(response.content)).format == container


def test_tts_streams_wav_with_an_open_length_header(client: Any, reference_wav: bytes) -> None:
    response = client.post(
        "/v1/tts",
        data={"text": "One. Two.", "consent": "true", "stream": "true", "format": "wav"},
        files={"reference": ("me.wav", reference_wav, "audio/wav")},
    )
    assert response.status_code == 200, response.text
    body = response.content
    assert body[:4] == b"RIFF"
    assert body[8:12] == b"WAVE"
    assert body[40:44] == b"\xff\xff\xff\xff"  # length unknown while streaming
    samples = np.frombuffer(body[44:], dtype="<i2")
    assert len(samples) / 22050 > 0.3


def test_streamed_pcm_equals_the_whole_file(client: Any, reference_wav: bytes) -> None:
    form = {"text": "Same audio either way.", "consent": "true", "options": SEEDED}
    files = {"reference": ("me.wav", reference_wav, "audio/wav")}
    streamed = client.post("/v1/tts", data={**form, "stream": "true", "format": "pcm"}, files=files)
    whole = client.post("/v1/tts", data={**form, "format": "pcm"}, files=files)
    assert streamed.status_code == whole.status_code == 200
    assert streamed.headers["content-type"] == "audio/L16;rate=22050;channels=1"
    assert streamed.content == whole.content
    assert len(whole.content) > 1000


def test_saved_voice_is_used_by_name_and_id(client: Any, reference_wav: bytes) -> None:
    created = client.post(
        "/v1/voices",
        data={"consent": "true", "name": "alice"},
        files={"reference": ("alice.wav", reference_wav, "audio/wav")},
    )
    assert created.status_code == 201, created.text
    voice_id = created.json()["id"]
    by_name = client.post("/v1/tts", files=multipart(text="Hi.", voice="alice", format="pcm", options=SEEDED))
    by_id = client.post("/v1/tts", files=multipart(text="Hi.", voice=voice_id, format="pcm", options=SEEDED))
    inline = client.post(
        "/v1/tts",
        data={"text": "Hi.", "consent": "true", "format": "pcm", "options": SEEDED},
        files={"reference": ("alice.wav", reference_wav, "audio/wav")},
    )
    assert by_name.status_code == by_id.status_code == 200
    assert by_name.content == by_id.content == inline.content


def test_emotion_and_options_reach_the_synthesizer(client: Any, reference_wav: bytes) -> None:
    files = {"reference": ("me.wav", reference_wav, "audio/wav")}
    base = {"text": "Faster please.", "consent": "true", "format": "pcm"}
    normal = client.post("/v1/tts", data=base, files=files)
    fast = client.post(
        "/v1/tts",
        data={**base, "options": json.dumps({"speed": 2.0}), "emotion_weights": json.dumps({"happy": 0.8})},
        files=files,
    )
    assert normal.status_code == fast.status_code == 200, fast.text
    assert len(fast.content) < 0.7 * len(normal.content)


def test_emotion_clip_is_accepted(client: Any, reference_wav: bytes) -> None:
    response = client.post(
        "/v1/tts",
        data={"text": "With feeling.", "consent": "true", "emotion_alpha": "0.6"},
        files={
            "reference": ("me.wav", reference_wav, "audio/wav"),
            "emotion_audio": ("mood.flac", tone(1.0, frequency=330).to_bytes("flac"), "audio/flac"),
        },
    )
    assert response.status_code == 200, response.text


# ---- bad input: a 4xx JSON answer that says what to fix, for each kind


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return str(body["error"]["message"])


def _tts(client: Any, reference: bytes | None, **fields: str) -> Any:
    files: dict[str, Any] = multipart(**{"text": "Hello.", "consent": "true", **fields})
    if reference is not None:
        files["reference"] = ("me.wav", reference, "audio/wav")
    return client.post("/v1/tts", files=files)


def test_empty_text(client: Any, reference_wav: bytes) -> None:
    assert "text is empty" in _error(_tts(client, reference_wav, text="   "), 400)


def test_text_too_long(make_client: Any, reference_wav: bytes) -> None:
    client = make_client(max_text_chars=20)
    response = _tts(client, reference_wav, text="x" * 21)
    assert "limit of 20" in _error(response, 400)
    assert response.json()["error"]["code"] == "text_too_long"


def test_missing_text_field_names_the_field(client: Any, reference_wav: bytes) -> None:
    response = client.post(
        "/v1/tts", data={"consent": "true"}, files={"reference": ("me.wav", reference_wav, "audio/wav")}
    )
    assert "text" in _error(response, 400)


def test_corrupt_audio(client: Any) -> None:
    response = _tts(client, b"RIFF\x00\x00\x00\x00WAVEnot really a wav file at all")
    assert response.json()["error"]["code"] == "invalid_audio"
    assert "me.wav" in _error(response, 400) or "cannot read audio" in response.json()["error"]["message"]


def test_unsupported_audio(client: Any) -> None:
    message = _error(_tts(client, b"%PDF-1.4 this is a document, not audio" * 10), 400)
    assert "not a recognised audio file" in message


def test_silent_reference(client: Any) -> None:
    silent = tone(1.0).to_bytes("wav")[:44] + bytes(44100)
    assert "silent" in _error(_tts(client, silent), 400)


def test_reference_too_long_is_refused_from_its_header(make_client: Any) -> None:
    client = make_client(max_reference_seconds=2.0)
    message = _error(_tts(client, tone(3.0).to_bytes("flac")), 400)
    assert "3.0 s long" in message
    assert "up to 2 s" in message


def test_reference_needs_consent(client: Any, reference_wav: bytes) -> None:
    assert "consent=true" in _error(_tts(client, reference_wav, consent="false"), 400)


def test_no_voice_at_all(client: Any) -> None:
    assert "whose voice" in _error(_tts(client, None), 400)


def test_oversize_upload_is_413(make_client: Any) -> None:
    client = make_client(max_upload_mb=0.05)
    response = _tts(client, tone(5.0).to_bytes("wav"))
    message = _error(response, 413)
    assert "0.05 MiB" in message
    assert "--max-upload-mb" in message


def test_unknown_voice(client: Any) -> None:
    response = client.post("/v1/tts", files=multipart(text="Hi.", voice="nobody"))
    assert "no saved voice 'nobody'" in _error(response, 404)
    assert response.json()["error"]["code"] == "voice_not_found"


def test_path_traversal_voice_id_is_refused(client: Any) -> None:
    response = client.post(
        "/v1/tts", data={"text": "Hi.", "voice": "../../etc/passwd"}, files={"x": ("", b"")}
    )
    assert "not a voice id" in _error(response, 400)
    assert "not a voice id" in _error(client.get("/v1/voices/%2E%2E"), 400)
    assert client.get("/v1/voices/..%2F..%2Fetc%2Fpasswd").status_code == 404


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"emotion_alpha": "1.5"}, "alpha must be between 0 and 1"),
        ({"emotion_alpha": "strong"}, "emotion_alpha"),
        ({"emotion_vector": "0.1,0.2"}, "has 8 weights"),
        ({"emotion_vector": "a,b,c"}, "not a list of numbers"),
        ({"emotion_weights": '{"ecstatic": 1}'}, "unknown emotion name(s) ecstatic"),
        ({"emotion_weights": "[1,2]"}, "must be a JSON object"),
        ({"emotion_vector": "0,0,0,0,0,0,0,1", "emotion_text": "angry"}, "one emotion source"),
    ],
)
def test_bad_emotion_values(client: Any, reference_wav: bytes, fields: dict[str, str], fragment: str) -> None:
    assert fragment in _error(_tts(client, reference_wav, **fields), 400)


def test_bad_options(client: Any, reference_wav: bytes) -> None:
    assert "unknown option(s) loudness" in _error(_tts(client, reference_wav, options='{"loudness": 3}'), 400)
    assert "top_p" in _error(_tts(client, reference_wav, options='{"top_p": 7}'), 400)
    assert "not valid JSON" in _error(_tts(client, reference_wav, options="seed=3"), 400)


def test_unknown_format(client: Any, reference_wav: bytes) -> None:
    assert "unknown audio format 'aiff'" in _error(_tts(client, reference_wav, format="aiff"), 400)
    assert "wav or pcm" in _error(_tts(client, reference_wav, format="mp3", stream="true"), 400)


def test_form_must_be_multipart(client: Any) -> None:
    response = client.post("/v1/tts", json={"text": "Hi.", "voice": "x"})
    assert "multipart/form-data" in _error(response, 415)


def test_a_request_over_the_time_limit_is_504(
    make_client: Any, reference_wav: bytes, tiny_synthesizer: Any
) -> None:
    client = make_client(synth=SpySynthesizer(tiny_synthesizer, chunk_delay=0.3), request_timeout=0.5)
    # nine segments, each held back 0.3 s: well over the limit
    response = _tts(
        client,
        reference_wav,
        text="Slow. Slower. Slowest. " * 3,
        options='{"max_text_tokens_per_segment": 3}',
    )
    assert "within the server's limit of 0.5 s" in _error(response, 504)
    assert response.json()["error"]["code"] == "timeout"


def test_a_stream_over_the_time_limit_ends_early(
    make_client: Any, reference_wav: bytes, caplog: Any, tiny_synthesizer: Any, monkeypatch: Any
) -> None:
    # The first chunk may take as long as the machine needs (the limit is far away); the second one
    # takes longer than the whole limit on the deadline's clock. No guess at how fast synthesis is.
    limit = 120.0
    clock = ServerClock()
    monkeypatch.setattr(admission, "time", clock)

    def slow_second_chunk(index: int) -> None:
        if index == 1:
            clock.advance(limit)

    client = make_client(
        synth=SpySynthesizer(tiny_synthesizer, before_chunk=slow_second_chunk), request_timeout=limit
    )
    response = _tts(
        client,
        reference_wav,
        text="Slow. Slower. Slowest. " * 3,
        stream="true",
        format="pcm",
        options='{"max_text_tokens_per_segment": 3}',  # nine segments of 20 codes: about 12 s
    )
    assert response.status_code == 200  # the status went out with the first chunk
    seconds = len(response.content) / 2 / 22050
    assert 0.05 < seconds < 3.0  # one or two chunks: well short of what the whole text takes
    assert "ended early" in caplog.text


def test_unknown_route_and_method(client: Any) -> None:
    assert "no route /v2/tts" in _error(client.post("/v2/tts"), 404)
    assert "not allowed" in _error(client.put("/v1/voices"), 405)


# ---- voices


def test_voice_lifecycle(client: Any, reference_wav: bytes) -> None:
    files = {"reference": ("bob.wav", reference_wav, "audio/wav")}
    first = client.post("/v1/voices", data={"consent": "true", "name": "bob"}, files=files)
    again = client.post("/v1/voices", data={"consent": "true"}, files=files)
    assert first.status_code == 201
    assert again.status_code == 200
    assert first.json()["id"] == again.json()["id"]  # same content, same id
    voice = first.json()
    assert voice["name"] == "bob"
    assert voice["duration"] == pytest.approx(1.0)
    assert voice["consent"] is True
    assert [v["id"] for v in client.get("/v1/voices").json()["data"]] == [voice["id"]]
    assert client.get(f"/v1/voices/{voice['id']}").json() == voice
    assert client.get("/v1/voices/bob").json() == voice
    assert client.delete("/v1/voices/bob").json() == {"id": voice["id"], "deleted": True}
    assert client.get("/v1/voices").json()["data"] == []
    assert "no saved voice" in _error(client.get(f"/v1/voices/{voice['id']}"), 404)


def test_voice_upload_needs_consent(client: Any, reference_wav: bytes) -> None:
    response = client.post("/v1/voices", files={"reference": ("a.wav", reference_wav, "audio/wav")})
    assert "consent=true" in _error(response, 400)


def test_voice_name_must_be_unique(client: Any, reference_wav: bytes) -> None:
    other = tone(1.0, frequency=440).to_bytes("wav")
    client.post(
        "/v1/voices", data={"consent": "true", "name": "carol"}, files={"reference": ("a.wav", reference_wav)}
    )
    response = client.post(
        "/v1/voices", data={"consent": "true", "name": "carol"}, files={"reference": ("b.wav", other)}
    )
    assert "taken" in _error(response, 409)


def test_voices_survive_a_restart(
    make_client: Any, tmp_path: Any, reference_wav: bytes, synthesizer: Any
) -> None:
    first = make_client(voices_dir=tmp_path / "v")
    voice_id = first.post(
        "/v1/voices", data={"consent": "true", "name": "dave"}, files={"reference": ("d.wav", reference_wav)}
    ).json()["id"]
    encoded_before = synthesizer.voices_encoded
    second = make_client(voices_dir=tmp_path / "v")
    assert [v["id"] for v in second.get("/v1/voices").json()["data"]] == [voice_id]
    assert second.post("/v1/tts", files=multipart(text="Back.", voice="dave")).status_code == 200
    # the new app encodes the stored clip once, then keeps the conditioning in memory
    second.post("/v1/tts", files=multipart(text="Again.", voice="dave"))
    assert synthesizer.voices_encoded == encoded_before + 1


# ---- OpenAI compatibility (the official client runs against a real server in test_process.py)


@pytest.fixture
def saved_voice(client: Any, reference_wav: bytes) -> str:
    response = client.post(
        "/v1/voices", data={"consent": "true", "name": "erin"}, files={"reference": ("e.wav", reference_wav)}
    )
    return str(response.json()["id"])


def test_openai_speech_formats(client: Any, saved_voice: str) -> None:
    body = {"model": "tts-1", "input": "Hello from OpenAI's API.", "voice": "erin", "seed": 7}
    mp3 = client.post("/v1/audio/speech", json=body)
    assert mp3.status_code == 200
    assert mp3.headers["content-type"] == "audio/mpeg"
    assert sf.info(io.BytesIO(mp3.content)).format == "MP3"
    pcm = client.post(
        "/v1/audio/speech", json={**body, "response_format": "pcm", "voice": {"id": saved_voice}}
    )
    assert pcm.headers["content-type"] == "audio/L16;rate=24000;channels=1"
    wav = load_audio(client.post("/v1/audio/speech", json={**body, "response_format": "wav"}).content)
    assert len(pcm.content) / 2 / 24000 == pytest.approx(wav.duration, abs=0.01)


def test_openai_sse_events(client: Any, saved_voice: str) -> None:
    body = {
        "model": "indextts2",
        "input": "Events. Two.",
        "voice": "erin",
        "response_format": "pcm",
        "seed": 7,
    }
    response = client.post("/v1/audio/speech", json={**body, "stream_format": "sse"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done"
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    plain = client.post("/v1/audio/speech", json=body).content
    assert audio == plain
    assert events[-1]["usage"]["audio_seconds"] == pytest.approx(len(plain) / 2 / 24000, abs=1e-3)


def test_openai_instructions_and_speed(client: Any, saved_voice: str) -> None:
    body = {"model": "tts-1", "input": "Quickly now.", "voice": "erin", "response_format": "pcm"}
    slow = client.post("/v1/audio/speech", json=body)
    fast = client.post("/v1/audio/speech", json={**body, "speed": 2.0, "instructions": "cheerful"})
    assert fast.status_code == 200
    assert len(fast.content) < 0.7 * len(slow.content)


@pytest.mark.parametrize(
    ("changes", "status", "fragment"),
    [
        ({"model": "gpt-9"}, 404, "not served here"),
        ({"response_format": "aiff"}, 400, "response_format 'aiff' is not supported"),
        ({"speed": 9}, 400, "speed must be between"),
        ({"input": ""}, 400, "text is empty"),
        ({"voice": "alloy"}, 404, "no saved voice 'alloy'"),
        ({"stream_format": "ws"}, 400, "stream_format"),
    ],
)
def test_openai_bad_input(
    client: Any, saved_voice: str, changes: dict[str, Any], status: int, fragment: str
) -> None:
    body = {"model": "tts-1", "input": "Hi.", "voice": "erin", **changes}
    assert fragment in _error(client.post("/v1/audio/speech", json=body), status)


# ---- operations


def test_health_ready_models_info(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {
        "status": "ready",
        "model": "dummy:tiny",
        "models": ["dummy:tiny"],
        "engines": [{"model": "dummy:tiny", "device": "cpu", "state": "serving"}],
    }
    models = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert models[0] == "dummy:tiny"
    assert "tts-1" in models
    info = client.get("/v1/info").json()
    assert info["auth_required"] is False
    assert info["emotions"][0] == "happy"
    assert "seed" in info["options"]


def test_not_ready_without_a_synthesizer(make_client: Any) -> None:
    client = make_client(synth=None)
    assert "not loaded" in _error(client.get("/readyz"), 503)
    assert client.get("/healthz").status_code == 200
    response = client.post("/v1/tts", files=multipart(text="Hi.", voice="x"))
    assert "not loaded" in _error(response, 503)


def test_metrics_count_requests_and_audio(client: Any, reference_wav: bytes) -> None:
    _tts(client, reference_wav)
    _tts(client, reference_wav, text="")
    text = client.get("/metrics").text
    assert 'indextts2_requests_total{method="POST",route="/v1/tts",status="200"} 1.0' in text
    assert 'indextts2_requests_total{method="POST",route="/v1/tts",status="400"} 1.0' in text
    seconds = next(
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("indextts2_audio_seconds_total")
    )
    assert seconds > 0.1
    for name in (
        "indextts2_queue_depth",
        "indextts2_in_flight",
        "indextts2_time_to_first_audio_seconds_count",
        "indextts2_real_time_factor_count",
        "indextts2_gpu_memory_bytes",
        "indextts2_ready 1.0",
    ):
        assert name in text


def test_openapi_schema_and_docs_page(client: Any) -> None:
    schema = client.get("/docs/openapi.json").json()
    assert {"/v1/tts", "/v1/audio/speech", "/v1/voices", "/v1/voices/{voice_id}", "/metrics"} <= set(
        schema["paths"]
    )
    tts_body = schema["paths"]["/v1/tts"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in tts_body
    page = client.get("/docs")
    assert page.status_code == 200
    assert "<script" in page.text
    assert "/v1/audio/speech" in page.text
    assert "cdn" not in page.text.split("<script id='schema'")[0].lower()  # no external assets


def test_web_page_and_assets(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="consent"' in page.text
    assert "permission" in page.text
    assert client.get("/ui/app.js").status_code == 200
    assert client.get("/ui/style.css").status_code == 200


# ---- IndexTTS-2.5 behind the same API


def test_an_indextts_2_5_server_speaks_a_named_language(
    make_client: Any, tiny25_synthesizer: Any, reference_wav: bytes
) -> None:
    client = make_client(synth=tiny25_synthesizer)
    response = client.post(
        "/v1/tts",
        data={"text": "こんにちは", "consent": "true", "options": '{"language": "ja", "duration": 1.25}'},
        files={"reference": ("me.wav", reference_wav, "audio/wav")},
    )
    assert response.status_code == 200, response.text
    assert load_audio(response.content).duration > 0


def test_a_language_for_indextts_2_is_a_400_that_says_why(client: Any, reference_wav: bytes) -> None:
    response = client.post(
        "/v1/tts",
        data={"text": "hello", "consent": "true", "options": '{"language": "ja"}'},
        files={"reference": ("me.wav", reference_wav, "audio/wav")},
    )
    assert response.status_code == 400, response.text
    assert "IndexTTS-2 takes no language" in response.json()["error"]["message"]
