"""Several models in one server (``serve --model A --model B``): the request's ``model`` chooses, the
first is the default (and what OpenAI's aliases mean), an unknown one is a 404 listing what is served,
``/v1/models`` / ``/v1/info`` / ``/readyz`` / ``/metrics`` tell them apart, and a saved voice is
encoded again from its stored clip for the model a request asks for.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from server_helpers import MODEL_ARGS, ServerProcess, multipart
from spy import SpySynthesizer

from indextts2 import Synthesizer
from indextts2.errors import ConfigError
from indextts2.pool import SynthesizerPool
from indextts2.server import ServerConfig
from indextts2.server.config import ModelPlacement

TINY, TINY25 = "dummy:tiny", "dummy:tiny-2.5"
BOTH = (ModelPlacement(TINY), ModelPlacement(TINY25))


def _samples(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return sf.read(io.BytesIO(response.content), dtype="int16")[0]


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["message"])


@pytest.fixture
def spies(tiny_synthesizer: Synthesizer, tiny25_synthesizer: Synthesizer) -> dict[str, SpySynthesizer]:
    return {TINY: SpySynthesizer(tiny_synthesizer), TINY25: SpySynthesizer(tiny25_synthesizer)}


@pytest.fixture
def client(make_client: Callable[..., Any], spies: dict[str, SpySynthesizer]) -> Any:
    return make_client(synth=spies, models=BOTH)


def _tts(client: Any, reference: bytes | None = None, **fields: str) -> Any:
    form = {"text": "Hello there.", "options": '{"seed": 7}', **fields}
    files: dict[str, Any] = multipart(**form)
    if reference is not None:
        files.update(multipart(consent="true"))
        files["reference"] = ("me.wav", reference, "audio/wav")
    return client.post("/v1/tts", files=files)


def _save(client: Any, reference: bytes, name: str, **fields: str) -> Any:
    return client.post(
        "/v1/voices",
        data={"consent": "true", "name": name, **fields},
        files={"reference": ("e.wav", reference, "audio/wav")},
    )


# ---- what a client learns


def test_models_info_readyz_and_metrics_tell_the_models_apart(client: Any, reference_wav: bytes) -> None:
    data = client.get("/v1/models").json()["data"]
    assert [(m["id"], m["family"], m.get("alias_of")) for m in data] == [
        (TINY, "IndexTTS-2", None),
        (TINY25, "IndexTTS-2.5", None),
        ("indextts2", "IndexTTS-2", TINY),
        ("tts-1", "IndexTTS-2", TINY),
        ("tts-1-hd", "IndexTTS-2", TINY),
        ("gpt-4o-mini-tts", "IndexTTS-2", TINY),
    ]
    info = client.get("/v1/info").json()
    assert (info["model"], info["family"]["name"]) == (TINY, "IndexTTS-2")
    assert [(m["id"], m["default"], m["family"]["name"], m["ready"]) for m in info["models"]] == [
        (TINY, True, "IndexTTS-2", True),
        (TINY25, False, "IndexTTS-2.5", True),
    ]
    assert info["models"][1]["family"]["languages"] == ["zh", "en", "ja", "es", "ar"]
    ready = client.get("/readyz").json()
    assert ready["models"] == [TINY, TINY25]
    assert [(e["model"], e["state"]) for e in ready["engines"]] == [(TINY, "serving"), (TINY25, "serving")]
    _samples(_tts(client, reference_wav, model=TINY25))
    metrics = client.get("/metrics").text
    for model in (TINY, TINY25):
        assert f'indextts2_engine_up{{device="cpu",model="{model}"}} 1.0' in metrics
    vocoder = f'indextts2_engine_batches_total{{device="cpu",model="{TINY25}",stage="vocoder"}} '
    assert float(next(line for line in metrics.splitlines() if line.startswith(vocoder)).split()[-1]) >= 1


# ---- the model field chooses


def test_the_model_field_chooses_and_the_first_is_the_default(
    client: Any, spies: dict[str, SpySynthesizer], reference_wav: bytes
) -> None:
    assert _save(client, reference_wav, "erin").status_code == 201

    def served_by(response: Any) -> list[str]:
        _samples(response)
        used = [name for name, spy in spies.items() if spy.options_seen]
        for spy in spies.values():
            spy.options_seen.clear()
        return used

    assert served_by(_tts(client, voice="erin")) == [TINY]
    assert served_by(_tts(client, voice="erin", model=TINY25, language="ja")) == [TINY25]
    assert served_by(_tts(client, voice="erin", model="IndexTTS-2.5")) == [TINY25]  # its family
    speech = {"input": "Hi.", "voice": "erin", "response_format": "wav"}
    for alias in ("tts-1", "tts-1-hd", "indextts2"):
        assert served_by(client.post("/v1/audio/speech", json={**speech, "model": alias})) == [TINY]
    openai25 = {**speech, "model": TINY25, "language": "ja", "speed": 0.8}
    assert served_by(client.post("/v1/audio/speech", json=openai25)) == [TINY25]
    # the voice was encoded when it was saved (for dummy:tiny), then once more for 2.5
    assert (spies[TINY].voices_encoded, spies[TINY25].voices_encoded) == (1, 1)


def test_an_unknown_model_is_a_404_naming_those_served(client: Any, reference_wav: bytes) -> None:
    served = f"{TINY} (IndexTTS-2), {TINY25} (IndexTTS-2.5)"
    for response in (
        _tts(client, reference_wav, model="IndexTeam/IndexTTS-3"),
        client.post("/v1/audio/speech", json={"model": "gpt-9", "input": "Hi.", "voice": "x"}),
        _save(client, reference_wav, "erin", model="nope"),
    ):
        message = _error(response, 404)
        assert "is not served here" in message
        assert served in message
        assert response.json()["error"]["code"] == "model_not_found"


def test_an_option_the_model_lacks_names_the_model_that_has_it(client: Any, reference_wav: bytes) -> None:
    message = _error(_tts(client, reference_wav, language="ja"), 400)
    assert message == (
        f"model {TINY}: IndexTTS-2 takes no language; leave language out, or ask for model {TINY25} "
        "(IndexTTS-2.5), which this server also serves"
    )
    message = _error(_tts(client, reference_wav, duration="1.5"), 400)
    assert f"IndexTTS-2 has no duration factor; leave duration out, or ask for model {TINY25}" in message
    _samples(_tts(client, reference_wav, model=TINY25, language="ja", duration="1.5"))


# ---- voices belong to a model, and are encoded again for another


def test_a_voice_saved_for_one_model_is_encoded_again_from_its_clip_for_the_other(
    client: Any, spies: dict[str, SpySynthesizer], reference_wav: bytes
) -> None:
    saved = _save(client, reference_wav, "erin", model=TINY25)
    assert saved.status_code == 201, saved.text
    assert saved.json()["model_id"] == TINY25
    assert (spies[TINY].voices_encoded, spies[TINY25].voices_encoded) == (0, 1)
    for _ in range(2):  # the other model encodes the stored clip once, then keeps it
        by_name = _samples(_tts(client, voice="erin", model=TINY))
    assert (spies[TINY].voices_encoded, spies[TINY25].voices_encoded) == (1, 1)
    # the same as that clip sent with the request: the conditioning is dummy:tiny's own
    assert (by_name == _samples(_tts(client, reference_wav, model=TINY))).all()
    assert (
        _samples(_tts(client, voice="erin", model=TINY25))
        == _samples(_tts(client, reference_wav, model=TINY25))
    ).all()
    # saving the clip again for the other model: the same voice (it still records its first model)
    again = _save(client, reference_wav, "erin", model=TINY)
    assert (again.status_code, again.json()["model_id"]) == (200, TINY25)


# ---- readiness and health per model


def test_a_model_that_cannot_load_is_named_and_the_other_serves(
    tmp_path: Path, tiny_synthesizer: Synthesizer, reference_wav: bytes
) -> None:
    from litestar.testing import TestClient

    from indextts2.server import create_app

    served = SpySynthesizer(tiny_synthesizer)
    served.close = lambda: None  # type: ignore[method-assign]  # the session's: the app would close it

    def loader(config: ServerConfig) -> Any:
        if config.model == TINY25:
            raise RuntimeError("out of memory (simulated)")
        return served

    config = ServerConfig(voices_dir=tmp_path / "voices", models=BOTH, default_options={"max_codes": 20})
    with TestClient(create_app(config, loader=loader)) as client:
        deadline = time.monotonic() + 120  # the loader runs in the background; a bound against a hang
        while "could not" not in client.get("/readyz").text and time.monotonic() < deadline:
            time.sleep(0.05)
        message = _error(client.get("/readyz"), 503)
        assert message == f"the model could not be loaded: {TINY25}: out of memory (simulated)"
        _samples(_tts(client, reference_wav))  # the default model serves
        refused = _error(_tts(client, reference_wav, model=TINY25), 503)
        assert refused == f"model {TINY25} could not be loaded: out of memory (simulated)"


def test_a_model_whose_engines_all_failed_makes_the_server_unhealthy(
    make_client: Callable[..., Any], tiny25_synthesizer: Synthesizer, reference_wav: bytes
) -> None:
    with SynthesizerPool([Synthesizer.from_pretrained(TINY, device="cpu")]) as pool:
        client = make_client(synth={TINY: pool, TINY25: tiny25_synthesizer}, models=BOTH)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("CUDA error: an illegal memory access was encountered (simulated)")

        pool._members[0].synthesizer.model.gpt.mel_logits = broken
        assert _tts(client, reference_wav).json()["error"]["code"] == "engine_failed"
        message = _error(client.get("/readyz"), 503)
        assert message.startswith(f"every engine of a model has failed ({TINY} on cpu: ")
        assert client.get("/healthz").status_code == 503
        _samples(_tts(client, reference_wav, model=TINY25))  # until the restart, the other still speaks


# ---- configuration


def test_model_placements_parse_and_check(tmp_path: Path) -> None:
    assert ModelPlacement.parse("dummy:tiny") == ModelPlacement(TINY)
    assert ModelPlacement.parse("dummy:tiny-2.5@cpu,cpu") == ModelPlacement(TINY25, ("cpu", "cpu"))
    odd = tmp_path / "models@home"
    odd.mkdir()
    assert ModelPlacement.parse(str(odd)) == ModelPlacement(str(odd))  # a directory keeps its @
    for bad, fragment in (("x@", "name the devices after '@'"), ("@cpu", "names no model")):
        with pytest.raises(ConfigError, match=fragment):
            ModelPlacement.parse(bad)
    with pytest.raises(ConfigError, match="model dummy:tiny is named twice"):
        ServerConfig(models=(ModelPlacement(TINY), ModelPlacement(TINY, ("cpu",))))
    config = ServerConfig(
        device="cpu", devices=("cpu", "cpu"), models=(ModelPlacement(TINY), ModelPlacement(TINY25, ("cpu",)))
    )
    assert config.model == TINY
    assert config.placements == (ModelPlacement(TINY, ("cpu", "cpu")), ModelPlacement(TINY25, ("cpu",)))
    alone = config.for_model(config.placements[1])
    assert (alone.model, alone.models, alone.devices) == (TINY25, (), ())


def test_bench_over_http_runs_on_the_model_it_names(client: Any, spies: dict[str, SpySynthesizer]) -> None:
    from indextts2.engine.bench import BenchSettings
    from indextts2.engine.bench_http import run_over_http

    class InProcess(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response: httpx.Response = client._transport.handle_request(request)
            return response

    settings = BenchSettings(concurrency=(2,), requests_per_client=1, diffusion_steps=2, codes_per_second=4)
    report = run_over_http("http://testserver", settings, transport=InProcess(), model=TINY25)
    assert report.meta["model"] == TINY25
    assert report.levels[0].failed == 0
    assert len(spies[TINY25].options_seen) == 3  # the warm-up and both clients
    assert spies[TINY].options_seen == []


def test_default_options_must_fit_every_served_model() -> None:
    """A server-wide option one model's family lacks would fail each of its requests: refused at start."""
    assert ServerConfig(model=TINY25, default_options={"language": "ja", "duration": 1.2}).default_options
    with pytest.raises(ConfigError, match=r"do not fit model dummy:tiny: IndexTTS-2 takes no language"):
        ServerConfig(models=BOTH, default_options={"language": "ja"})
    with pytest.raises(ConfigError, match=r"do not fit model dummy:tiny: IndexTTS-2 has no duration"):
        ServerConfig(model=TINY, default_options={"duration": 1.2})
    assert ServerConfig(models=BOTH, default_options={"speed": 1.5}).default_options  # both have speed


# ---- under uvicorn, the real command


@pytest.mark.slow
def test_serve_two_models_each_on_its_devices(tmp_path: Path) -> None:
    fast = MODEL_ARGS[MODEL_ARGS.index("--default-options") :]
    args = ["--model", f"{TINY}@cpu", "--model", f"{TINY25}@cpu,cpu", *fast]
    server = ServerProcess(tmp_path, [], model_args=args)
    try:
        server.wait_ready()
        ready = httpx.get(f"{server.url}/readyz", timeout=30).json()
        assert [(e["model"], e["device"]) for e in ready["engines"]] == [
            (TINY, "cpu"),
            (TINY25, "cpu#0"),
            (TINY25, "cpu#1"),
        ]
        script = Path(sys.executable).parent / "indextts2"

        def say(*flags: str) -> subprocess.CompletedProcess[str]:
            command = [str(script), "say", *flags, "--server", server.url]
            return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)

        said = say("こんにちは", "--lang", "ja", "--model", TINY25, "-o", "ja.wav")
        assert said.returncode == 0, said.stderr
        assert say("hello", "-o", "en.wav").returncode == 0  # the default, IndexTTS-2
        refused = say("こんにちは", "--lang", "ja", "-o", "no.wav")
        assert refused.returncode == 2
        assert f"ask for model {TINY25}" in refused.stderr
        unknown = say("hello", "--model", "dummy:full", "-o", "no.wav")
        assert unknown.returncode == 2
        assert "is not served here" in unknown.stderr
        speech = {"input": "Hi.", "voice": "sample", "response_format": "wav"}
        for model in ("tts-1", TINY25):
            response = httpx.post(
                f"{server.url}/v1/audio/speech", json={**speech, "model": model}, timeout=300
            )
            assert response.status_code == 200, response.text
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        assert f'indextts2_engine_up{{device="cpu#1",model="{TINY25}"}} 1.0' in metrics
    finally:
        server.kill()
