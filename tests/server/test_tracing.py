"""Request tracing: X-Request-ID on every response and in error bodies, the id in every log line of
the request (also those of the engine's thread), JSON log lines, no credentials in logs, and
OpenTelemetry spans for queueing, each engine stage and encoding."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from log_scan import credentials_in
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from server_helpers import multipart

from indextts2.server.logs import JsonFormatter, RequestContextFilter, TextFormatter, redact

# ---- request ids


def test_every_response_carries_a_request_id(make_client: Any) -> None:
    client = make_client(api_keys=("k",))
    made = client.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert client.get("/healthz").headers["x-request-id"] != made  # one per request
    # the gateway's id is kept, on success and in error bodies (unknown route, no key, bad input)
    for method, path in (
        ("GET", "/healthz"),
        ("GET", "/nowhere"),
        ("GET", "/v1/voices"),
        ("POST", "/v1/tts"),
    ):
        response = client.request(method, path, headers={"X-Request-ID": "gw-7f3a.1"})
        assert response.headers["x-request-id"] == "gw-7f3a.1", path
        if response.status_code >= 400:
            assert response.json()["error"]["request_id"] == "gw-7f3a.1"
    # an id that could forge log lines or grow without bound is replaced
    for bad in ("two words", "x" * 200, "id\r\nforged: yes", ""):
        replaced = client.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", replaced), bad


def test_the_request_id_header_is_configurable(make_client: Any) -> None:
    client = make_client(request_id_header="Kong-Request-ID")
    response = client.get("/nowhere", headers={"Kong-Request-ID": "kong-42"})
    assert response.headers["kong-request-id"] == "kong-42"
    assert response.json()["error"]["request_id"] == "kong-42"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The root logger's INFO records, as the server's JSON handler writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_every_log_line_of_a_request_carries_its_id_and_caller(
    make_client: Any,
    reference_wav: bytes,
    json_log: io.StringIO,
    tiny_synthesizer: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # taken for a trained model, the dummy is not paced: it runs to max_codes and the engine warns
    monkeypatch.setattr(tiny_synthesizer.model, "random_weights", False)
    client = make_client(api_keys=("secret-key-1234567",))
    response = client.post(
        "/v1/tts",
        data={"text": "Log me.", "consent": "true"},
        files={"reference": ("me.wav", reference_wav, "audio/wav")},
        headers={"X-Request-ID": "req-logged-1", "Authorization": "Bearer secret-key-1234567"},
    )
    assert response.status_code == 200
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    mine = [line for line in lines if line.get("request_id") == "req-logged-1"]
    loggers = {line["logger"] for line in mine}
    # the engine thread's warning (the tiny model runs to max_codes) and the access line
    assert "indextts2.engine.scheduler" in loggers
    assert "indextts2.server.access" in loggers
    assert all(line["caller"] == "key:cli-1" for line in mine)
    # every line logged while the request ran is the request's (this test runs one at a time), but
    # for the process's own: the app's start (voice store) and the engine's (started on first use)
    process = ("voice store", "engine ready")
    during = [line for line in lines if line["logger"].startswith("indextts2")]
    assert [line for line in during if line.get("request_id") != "req-logged-1"] == [
        line for line in during if line["message"].startswith(process)
    ]
    access = next(line for line in mine if line["logger"] == "indextts2.server.access")
    assert access["route"] == "/v1/tts"
    assert access["status"] == 200
    assert access["method"] == "POST"
    assert access["latency"] > 0
    assert access["audio_seconds"] == pytest.approx(float(response.headers["x-audio-duration"]), abs=0.002)
    assert "secret-key-1234567" not in json_log.getvalue()


def test_json_lines_parse_one_by_one() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        failure = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed: %s", ("naïve 中文",), sys.exc_info()
        )
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "multi\nline", (), None)
    plain.status = 201
    for record in (failure, plain):
        line = formatter.format(record)
        assert "\n" not in line
        entry = json.loads(line)
        assert entry["time"].endswith("Z")
        assert entry["level"] == logging.getLevelName(record.levelno)
    assert json.loads(formatter.format(failure))["message"] == "failed: naïve 中文"
    assert "boom" in json.loads(formatter.format(failure))["exception"]
    assert json.loads(formatter.format(plain))["status"] == 201


def test_credentials_are_redacted_whatever_logged_them() -> None:
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"
    text = (
        f"Authorization: Bearer itts2_abcdefghijklmnop; basic: Basic YWxhZGRpbjpvcGVuc2VzYW1l; "
        f"token={jwt_like}; key itts2_0123456789abcdef"
    )
    cleaned = redact(text)
    for secret in ("itts2_abcdefghijklmnop", "YWxhZGRpbjpvcGVuc2VzYW1l", jwt_like, "itts2_0123456789abcdef"):
        assert secret not in cleaned
    assert (
        redact("HTTP Basic on the web page; a bearer token") == "HTTP Basic on the web page; a bearer token"
    )
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "got %s", (f"Bearer {jwt_like}",), None)
    assert jwt_like not in TextFormatter().format(record)
    assert jwt_like not in JsonFormatter().format(record)


# ---- OpenTelemetry


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """The process's tracer provider (set once), keeping finished spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def test_spans_for_queueing_each_engine_stage_and_encoding(
    make_client: Any, reference_wav: bytes, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    client = make_client(tracing=True)
    gateway_trace, gateway_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    response = client.post(
        "/v1/tts",
        data={
            "text": "Trace me. Twice.",
            "consent": "true",
            "format": "flac",
            "options": '{"max_text_tokens_per_segment": 5}',
        },
        files={"reference": ("me.wav", reference_wav, "audio/wav")},
        headers={"traceparent": f"00-{gateway_trace}-{gateway_span}-01", "X-Request-ID": "traced-1"},
    )
    assert response.status_code == 200, response.text
    finished: list[ReadableSpan] = list(spans.get_finished_spans())
    (server,) = [s for s in finished if s.name == "POST /v1/tts"]
    assert server.context is not None
    assert server.parent is not None
    assert f"{server.context.trace_id:032x}" == gateway_trace  # a child of the gateway's span
    assert f"{server.parent.span_id:016x}" == gateway_span
    assert server.attributes is not None
    assert server.attributes["indextts2.request_id"] == "traced-1"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["enduser.id"] == "anonymous"
    children = [s for s in finished if s.parent is not None and s.parent.span_id == server.context.span_id]
    names = {s.name for s in children}
    assert names >= {
        "admission.queue",
        "engine.queue",
        "engine.conditioning",
        "engine.decode",
        "engine.latent",
        "engine.s2mel",
        "engine.vocoder",
        "encode",
    }
    decodes = [s for s in children if s.name == "engine.decode"]
    assert sorted(s.attributes["indextts2.segment"] for s in decodes if s.attributes) == [
        0,
        1,
    ]  # two segments
    for child in children:  # within the request, in order
        assert child.start_time is not None
        assert child.end_time is not None
        assert server.start_time is not None
        assert server.end_time is not None
        assert server.start_time <= child.start_time <= child.end_time <= server.end_time


def test_no_spans_when_tracing_is_off(make_client: Any, spans: InMemorySpanExporter) -> None:
    spans.clear()
    client = make_client()
    assert client.post("/v1/tts", files=multipart(text="Hi.", voice="missing")).status_code == 404
    assert spans.get_finished_spans() == ()


def test_the_log_scan_of_the_test_run_finds_credentials(tmp_path: Any) -> None:
    """The end-of-run scan (conftest.py) would see a leak, and does not cry wolf."""
    log = tmp_path / "server.log"
    log.write_text(
        "indextts2.x INFO key itts2_Qm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0\n"
        "indextts2.x INFO token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.sig\n"
        "indextts2.x DEBUG headers {'authorization': 'Basic bWU6c2VjcmV0LWtleQ=='}\n"
        "httpcore DEBUG (b'www-authenticate', b'Bearer realm=\"indextts2\"')\n"
        "indextts2.server.access INFO GET /v1/voices 401 0.001s\n"
    )
    found = credentials_in([log])
    assert [line.split(":")[1] for line in found] == ["1", "2", "3"]
