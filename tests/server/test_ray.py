"""The server on Ray Serve, on a real local Ray instance (CPU, dummy:tiny, up to 2 replicas): the
HTTP API's main paths through it, autoscaling both ways, and a replica killed mid-request.

One Ray instance and one Serve application for the whole module. Every wait is for an event,
bounded by PATIENCE against a hang: on a busy 2-core machine Ray takes minutes to start a replica."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import free_port, multipart, tone

ray = pytest.importorskip("ray")  # the ray extra is part of dev: CI installs it, so this never skips
import ray_helpers  # noqa: E402
from ray import serve  # noqa: E402

from indextts2.server.config import ServerConfig  # noqa: E402
from indextts2.server.ray_serve import ReplicaSettings, build_app  # noqa: E402

pytestmark = pytest.mark.slow

KEY = "ray-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
APP = "indextts2"
STEP_SECONDS = 0.05
PATIENCE = 600.0  # seconds: a bound against a hang, never a guess at how long something takes
RAY_ENVIRONMENT = {
    # replicas and handles report their load twice a second (each decode step of the replicas
    # sleeps first: a request takes ~1 s or more)
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    # Serve kills an HTTP proxy that is not ready 5 s after it was created, and serve.start() then
    # fails: on a busy machine starting its worker process alone takes longer. A bound against a
    # hang instead of that guess.
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "600",
}


def _replicas() -> dict[str, int]:
    status = serve.status().applications[APP].deployments["Synthesizer"]
    return {str(state): count for state, count in status.replica_states.items()}


def _running() -> int:
    return _replicas().get("RUNNING", 0)


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    pytest.fail(f"{what} did not happen within {PATIENCE:g} s (replicas: {_replicas()})")


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=PATIENCE).status_code == 200
    except httpx.TransportError:  # the proxy is not listening yet
        return False


@pytest.fixture(scope="module")
def signals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the replicas record requests while the test holds them (ray_helpers.HOLD)."""
    return tmp_path_factory.mktemp("ray-signals")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, signals: Path) -> Iterator[str]:
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(ray_helpers)
    home = tmp_path_factory.mktemp("ray-home")
    port = free_port()
    os.environ.update(RAY_ENVIRONMENT)  # read by Ray's processes, started by ray.init()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, logging_level="warning")
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        config = ServerConfig(
            model="dummy:tiny",
            device="cpu",
            api_keys=(KEY,),
            max_text_chars=300,
            voices_dir=home / "voices",
            usage_db=home / "usage.sqlite3",
            sample_voice=True,
            # Serve gives the requests of a replica it removes (scaling down) this long to finish:
            # at 5 s, on a busy machine, a request on the replica removed right after the start
            # was cut (503). A bound against a hang: idle replicas still stop at once.
            grace_period=PATIENCE,
            default_options={"max_codes": 20, "diffusion_steps": 3, "num_beams": 1},
        )
        replicas = ReplicaSettings(
            num_gpus=0,
            num_cpus=0.5,
            min_replicas=1,
            max_replicas=2,
            initial_replicas=2,
            target_ongoing_requests=1,
            max_ongoing_requests=2,  # four requests on two replicas: two each
            upscale_delay_s=0.5,
            downscale_delay_s=3,
            look_back_period_s=11,  # Ray wants it above its 10 s default report interval
        )
        load = functools.partial(ray_helpers.slow_load, STEP_SECONDS, signals)
        serve.run(build_app(config, replicas, load=load), name=APP, route_prefix="/")
        address = f"http://127.0.0.1:{port}"
        _wait_for(lambda: _answers(address), "readiness")
        yield address
    finally:
        serve.shutdown()
        ray.shutdown()
        for variable in RAY_ENVIRONMENT:
            os.environ.pop(variable, None)


def _speak(url: str, text: str = "Through the Ray replicas.") -> httpx.Response:
    body = {"input": text, "voice": "sample", "response_format": "wav"}
    return httpx.post(f"{url}/v1/audio/speech", json=body, headers=AUTH, timeout=PATIENCE)


def test_the_http_api_runs_on_ray(url: str) -> None:
    ready = httpx.get(f"{url}/readyz", timeout=PATIENCE).json()
    assert ready["status"] == "ready"
    assert ready["model"] == "dummy:tiny"
    page = httpx.get(f"{url}/", timeout=PATIENCE)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    refused = httpx.get(f"{url}/v1/voices", timeout=PATIENCE)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    # a saved voice: encoded on a replica, kept in the shared voices directory
    files = {"reference": ("me.wav", tone(1.0).to_bytes("wav"), "audio/wav")}
    saved = httpx.post(
        f"{url}/v1/voices",
        data={"consent": "true", "name": "ray"},
        files=files,
        headers=AUTH,
        timeout=PATIENCE,
    )
    assert saved.status_code == 201, saved.text
    voice = saved.json()["id"]
    form = multipart(text="A saved voice on Ray.", voice=voice, format="wav")
    whole = httpx.post(f"{url}/v1/tts", files=form, headers=AUTH, timeout=PATIENCE)
    assert whole.status_code == 200, whole.text
    assert whole.content[:4] == b"RIFF"
    # streaming: the replica's chunks reach the client as they are made
    form = multipart(text="Streamed. From a replica.", voice=voice, stream="true", format="pcm")
    with httpx.stream("POST", f"{url}/v1/tts", files=form, headers=AUTH, timeout=PATIENCE) as response:
        assert response.status_code == 200
        assert response.headers["x-sample-rate"] == "22050"
        streamed = b"".join(response.iter_bytes())
    assert len(streamed) > 2 * 22050 * 0.2
    # the OpenAI route, and a limit of the server: checked in the ingress, before any replica
    assert _speak(url).status_code == 200
    too_long = _speak(url, "x" * 301)
    assert too_long.status_code in (400, 413)
    assert too_long.json()["error"]["code"] == "text_too_long"
    models = httpx.get(f"{url}/v1/models", headers=AUTH, timeout=PATIENCE).json()
    assert models["data"][0]["id"] == "dummy:tiny"
    assert "indextts2_requests_total" in httpx.get(f"{url}/metrics", headers=AUTH, timeout=PATIENCE).text


def test_load_adds_replicas_and_idleness_removes_them(url: str) -> None:
    _wait_for(lambda: _running() == 1, "scaling down to one replica when idle")
    results: list[int] = []
    scaled = threading.Event()

    def client() -> None:  # one request after another until the second replica runs
        while not scaled.is_set():
            results.append(_speak(url, "Enough words to keep a replica busy for a while. " * 2).status_code)

    clients = [threading.Thread(target=client) for _ in range(6)]
    for thread in clients:
        thread.start()
    try:
        _wait_for(lambda: _running() == 2, "scaling up to two replicas under load")
    finally:
        scaled.set()
        for thread in clients:
            thread.join(PATIENCE)
    assert len(results) >= 6
    assert results == [200] * len(results)
    _wait_for(lambda: _running() == 1, "scaling down again once idle")


def test_a_replica_killed_mid_request_ends_that_request_with_a_503(url: str, signals: Path) -> None:
    results: list[httpx.Response] = []
    keep_busy = threading.Event()

    def load() -> None:  # until both replicas run
        while not keep_busy.is_set():
            _speak(url, "Busy.")

    loaders = [threading.Thread(target=load) for _ in range(3)]
    for loader in loaders:
        loader.start()
    try:
        _wait_for(lambda: _running() == 2, "two replicas under load")
    finally:
        keep_busy.set()
        for loader in loaders:
            loader.join(PATIENCE)

    def one() -> None:
        results.append(_speak(url, "This request may lose its replica. " * 3))

    def requests_per_replica() -> list[int]:
        arrived = [path.name.split("-")[1] for path in signals.glob("arrived-*")]  # arrived-<pid>-<n>
        return sorted(Counter(arrived).values())

    hold = signals / ray_helpers.HOLD
    hold.touch()  # the replicas record each request and hold their decode steps until it is gone
    clients = [threading.Thread(target=one) for _ in range(4)]
    try:
        for client in clients:
            client.start()
        # two on each replica (max_ongoing_requests=2), all four certainly running there
        _wait_for(lambda: requests_per_replica() == [2, 2], "two requests on each replica")
        names = [n for n in ray.util.list_named_actors(all_namespaces=True) if "SERVE_REPLICA::" in str(n)]
        replica = next(
            entry["name"] for entry in names if isinstance(entry, dict) and "#Synthesizer#" in entry["name"]
        )
        ray.kill(ray.get_actor(replica, namespace="serve"), no_restart=True)
    finally:
        hold.unlink()  # the survivor's two requests go on
        for client in clients:
            client.join(PATIENCE)
    statuses = sorted(response.status_code for response in results)
    assert statuses == [200, 200, 503, 503], [r.text[:200] for r in results]
    for response in results:
        if response.status_code == 503:
            error = response.json()["error"]
            assert error["code"] == "engine_failed"
            assert "send the request again" in error["message"]
    assert _speak(url).status_code == 200  # served by the survivor (or its replacement)


def test_the_plain_server_never_imports_ray(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from indextts2.cli import main\n"
        "from indextts2.server import ServerConfig, create_app, runner\n"
        "create_app(ServerConfig(devices=('cpu', 'cpu')))\n"
        "print(sorted(name for name in sys.modules if name == 'ray' or name.startswith('ray.')))\n"
    )
    env = {**os.environ, "INDEXTTS2_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_app_builder_takes_serve_run_arguments(tmp_path: Path) -> None:
    from indextts2.errors import ConfigError
    from indextts2.server.ray_serve import app_builder

    args = {
        "model": "dummy:tiny",
        "device": "cpu",
        "voices_dir": str(tmp_path),
        "api_keys": "one,two",
        "rate_limit": "60/minute",
        "max_queue": "8",
        "sample_voice": "true",
        "num_gpus": "0",
        "min_replicas": "1",
        "max_replicas": "4",
        "target_ongoing_requests": "6",
    }
    application = app_builder(args)
    assert application is not None
    with pytest.raises(ConfigError, match="unknown argument 'replicas'"):
        app_builder({**args, "replicas": "2"})
    with pytest.raises(ConfigError, match="voices_dir"):
        app_builder({key: value for key, value in args.items() if key != "voices_dir"})
    with pytest.raises(ConfigError, match="min_replicas <= max_replicas"):
        app_builder({**args, "min_replicas": "5"})
    with pytest.raises(ConfigError, match="whoever reaches the Serve proxy"):
        app_builder({key: value for key, value in args.items() if key != "api_keys"})
    assert app_builder({**{k: v for k, v in args.items() if k != "api_keys"}, "insecure": "true"})
    # one model per Ray application (serve --model A --model B is the plain server's)
    with pytest.raises(ConfigError, match="unknown argument 'models'"):
        app_builder({**args, "models": "dummy:tiny,dummy:tiny-2.5"})
    from indextts2.server.config import ModelPlacement

    two = ServerConfig(
        api_keys=("k",), models=(ModelPlacement("dummy:tiny"), ModelPlacement("dummy:tiny-2.5"))
    )
    with pytest.raises(ConfigError, match="one application per model"):
        build_app(two, ReplicaSettings())
