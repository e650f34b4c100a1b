"""IndexTTS-2 and IndexTTS-2.5 behind the same API: the family's options where a client meets them.

``/v1/info`` and ``/v1/models`` name the family; ``/v1/tts`` takes ``language`` / ``duration`` /
``speed`` fields; OpenAI's ``speed`` is the duration factor 1 / speed on IndexTTS-2.5 and our speed
on IndexTTS-2; an option the family lacks is a 400 that says so. The issue's acceptance runs under
uvicorn: ``indextts2 serve --model dummy:tiny-2.5`` and ``indextts2 say ... --lang ja --server``.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from server_helpers import MODEL_ARGS, ServerProcess, multipart
from spy import SpySynthesizer

from indextts2.audio import load_audio


def _samples(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return sf.read(io.BytesIO(response.content), dtype="int16")[0]


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["message"])


def _tts(client: Any, reference: bytes, **fields: str) -> Any:
    files: dict[str, Any] = multipart(**{"text": "Hello there.", "consent": "true", "options": '{"seed": 7}'})
    files.update(multipart(**fields))
    files["reference"] = ("me.wav", reference, "audio/wav")
    return client.post("/v1/tts", files=files)


@pytest.fixture
def client25(make_client: Callable[..., Any], tiny25_synthesizer: Any) -> Any:
    return make_client(synth=SpySynthesizer(tiny25_synthesizer))


INDEXTTS_2 = {"name": "IndexTTS-2", "languages": [], "duration": None, "speed": [0.5, 2.0], "code_rate": 50.0}
INDEXTTS_2_5 = {
    "name": "IndexTTS-2.5",
    "languages": ["zh", "en", "ja", "es", "ar"],
    "duration": [0.5, 2.0],
    "speed": [0.5, 2.0],
    "code_rate": 25.0,
}


# ---- what a client learns


def test_info_and_models_name_the_family(client: Any, client25: Any, make_client: Any) -> None:
    for served, family in ((client, INDEXTTS_2), (client25, INDEXTTS_2_5)):
        assert served.get("/v1/info").json()["family"] == family
        models = served.get("/v1/models").json()["data"]
        assert {m["family"] for m in models} == {family["name"]}
    # before the model is loaded, its name tells the family
    loading = make_client(synth=None, model="dummy:tiny-2.5")
    info = loading.get("/v1/info").json()
    assert (info["ready"], info["family"]) == (False, INDEXTTS_2_5)


# ---- IndexTTS-2.5's options as form fields


def test_language_and_duration_fields_reach_the_synthesizer(client25: Any, reference_wav: bytes) -> None:
    spy = client25.app.state.speech.synthesizer
    plain = _samples(_tts(client25, reference_wav, language="ja"))
    longer = _samples(_tts(client25, reference_wav, language="ja", duration="2.0"))
    assert [(o.language, o.duration) for o in spy.options_seen] == [("ja", 1.0), ("ja", 2.0)]
    # the same paced codes, int(2n * 1.72 * duration) mel frames: twice the audio
    assert len(longer) / len(plain) == pytest.approx(2.0, abs=0.05)
    # auto (or nothing) leaves the language to detection; another language is another prompt
    auto = _samples(_tts(client25, reference_wav, language="auto"))
    assert spy.options_seen[-1].language is None
    assert len(auto) == len(plain)
    assert (auto != plain).any()


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"duration": "3"}, "duration must be between 0.5 and 2.0"),
        ({"duration": "nan"}, "duration must be a finite number"),
        ({"language": "xx"}, "xx"),
        ({"language": "ja", "options": '{"language": "en"}'}, "language came twice"),
        ({"duration": "0.5", "speed": "2.0"}, "keep duration / speed between 0.5 and 2"),
    ],
)
def test_bad_language_or_duration_on_indextts_2_5(
    client25: Any, reference_wav: bytes, fields: dict[str, str], fragment: str
) -> None:
    assert fragment in _error(_tts(client25, reference_wav, **fields), 400)


# ---- OpenAI's speed


def test_openai_speed_is_the_duration_factor_on_indextts_2_5(client25: Any, reference_wav: bytes) -> None:
    saved = client25.post(
        "/v1/voices", data={"consent": "true", "name": "erin"}, files={"reference": ("e.wav", reference_wav)}
    )
    assert saved.status_code == 201, saved.text
    body = {"model": "tts-1", "input": "Hello there.", "voice": "erin", "response_format": "wav", "seed": 7}
    form = {"text": "Hello there.", "voice": "erin", "options": '{"seed": 7}'}
    for speed, duration in ((0.5, "2.0"), (1.25, "0.8")):
        openai = _samples(client25.post("/v1/audio/speech", json={**body, "speed": speed, "language": "ja"}))
        ours = _samples(client25.post("/v1/tts", files=multipart(**form, duration=duration, language="ja")))
        assert (openai == ours).all(), (speed, duration)


@pytest.mark.parametrize("speed", [0.25, 0.3, 3.0, 4.0])
def test_openai_speeds_beyond_ours_are_a_400_naming_the_range(client25: Any, speed: float) -> None:
    body = {"model": "tts-1", "input": "Hi.", "voice": "anyone", "speed": speed}
    message = _error(client25.post("/v1/audio/speech", json=body), 400)
    assert "speed must be between 0.5 and 2.0" in message


# ---- IndexTTS-2: what it lacks is refused, its own speed still works


def test_indextts_2_refuses_language_and_duration_and_keeps_its_speed(
    client: Any, reference_wav: bytes
) -> None:
    assert "IndexTTS-2 takes no language" in _error(_tts(client, reference_wav, language="ja"), 400)
    assert "IndexTTS-2 has no duration factor" in _error(_tts(client, reference_wav, duration="1.5"), 400)
    saved = client.post(
        "/v1/voices", data={"consent": "true", "name": "erin"}, files={"reference": ("e.wav", reference_wav)}
    )
    assert saved.status_code == 201
    body = {"model": "tts-1", "input": "Hi.", "voice": "erin", "language": "ja"}
    assert "IndexTTS-2 takes no language" in _error(client.post("/v1/audio/speech", json=body), 400)
    # speed: fewer mel frames per code, int(n * 1.72 / speed)
    plain = _samples(_tts(client, reference_wav))
    faster = _samples(_tts(client, reference_wav, speed="2.0"))
    openai = _samples(
        client.post(
            "/v1/audio/speech",
            json={
                "model": "tts-1",
                "input": "Hello there.",
                "voice": "erin",
                "speed": 2.0,
                "response_format": "wav",
                "seed": 7,
            },
        )
    )
    assert len(faster) / len(plain) == pytest.approx(0.5, abs=0.05)
    assert (openai == faster).all()


# ---- the acceptance, under uvicorn


@pytest.mark.slow
def test_serve_indextts_2_5_and_say_in_japanese_through_it(tmp_path: Path) -> None:
    model_args = ["--model", "dummy:tiny-2.5", *MODEL_ARGS[2:]]
    server = ServerProcess(tmp_path, [], model_args=model_args)
    try:
        server.wait_ready()
        info = httpx.get(f"{server.url}/v1/info", timeout=30).json()
        assert (info["model"], info["family"]["name"]) == ("dummy:tiny-2.5", "IndexTTS-2.5")
        # curl -F text=こんにちは -F voice=sample -F language=ja URL/v1/tts
        response = httpx.post(
            f"{server.url}/v1/tts",
            files=multipart(text="こんにちは", voice="sample", language="ja", duration="1.25"),
            timeout=300,
        )
        assert response.status_code == 200, response.text
        assert load_audio(response.content).duration > 0
        script = Path(sys.executable).parent / "indextts2"
        said = subprocess.run(
            [str(script), "say", "こんにちは", "--lang", "ja", "--server", server.url, "-o", "x.wav"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert said.returncode == 0, said.stderr
        assert load_audio(tmp_path / "x.wav").duration > 0
    finally:
        server.kill()
