"""Usage per caller: counted over HTTP, reported by GET /v1/usage and `indextts2 serve usage`, kept
across a restart, exported in /metrics with bounded labels, and daily quotas answered with 429."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from server_helpers import multipart
from spy import FAST_OPTIONS
from typer.testing import CliRunner

from indextts2.cli import app as cli_app
from indextts2.errors import InvalidInput
from indextts2.server import ServerConfig, create_app
from indextts2.server.auth import add_key
from indextts2.server.context import RequestContext
from indextts2.server.errors import QuotaExceeded
from indextts2.server.usage import DAY, HOUR, UsageMeter, parse_time


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, dict[str, dict[str, str]]]:
    """A keys file with alice, bob and ops; the headers of each."""
    path = tmp_path / "keys"
    headers = {}
    for name in ("alice", "bob", "ops"):
        _, key = add_key(path, name)
        headers[name] = {"Authorization": f"Bearer {key}"}
    return path, headers


def speak(client: Any, headers: dict[str, str], reference_wav: bytes, text: str) -> Any:
    return client.post(
        "/v1/tts",
        data={"text": text, "consent": "true"},
        files={"reference": ("me.wav", reference_wav, "audio/wav")},
        headers=headers,
    )


def test_usage_is_counted_per_caller_and_reported(
    make_client: Any, keys: Any, reference_wav: bytes, tmp_path: Path
) -> None:
    path, headers = keys
    client = make_client(api_keys_file=path, admin_keys=("ops",), usage_db=tmp_path / "usage.sqlite3")
    texts = ["Hello there.", "Second sentence, a bit longer."]
    durations = []
    for text in texts:
        response = speak(client, headers["alice"], reference_wav, text)
        assert response.status_code == 200, response.text
        durations.append(float(response.headers["x-audio-duration"]))
    missing_voice = client.post(
        "/v1/tts", files=multipart(text="Hi.", voice="nobody"), headers=headers["alice"]
    )
    assert missing_voice.status_code == 404
    assert speak(client, headers["bob"], reference_wav, "Bob speaks.").status_code == 200
    assert client.get("/v1/voices").status_code == 401  # no caller, not metered
    assert client.get("/healthz").status_code == 200  # public, not metered

    report = client.get("/v1/usage", headers=headers["ops"])
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["admin"] is True
    rows = {row["caller"]: row for row in body["callers"]}
    assert set(rows) == {"key:alice", "key:bob"}  # ops's own request is counted when it is complete
    alice = rows["key:alice"]
    assert alice["requests"] == 3
    assert alice["errors"] == 1
    assert alice["characters"] == sum(len(t) for t in texts)  # the failed request's text does not count
    assert alice["audio_seconds"] == pytest.approx(sum(durations), abs=0.002)
    assert rows["key:bob"]["requests"] == 1
    assert body["total"]["requests"] == 4
    assert body["since"].endswith(":00:00Z")
    assert body["resolution_seconds"] == 3600

    # everyone else sees only themselves
    own = client.get("/v1/usage", headers=headers["bob"]).json()
    assert [row["caller"] for row in own["callers"]] == ["key:bob"]
    other = client.get("/v1/usage", params={"caller": "key:alice"}, headers=headers["bob"])
    assert other.status_code == 403
    assert "admin key" in other.json()["error"]["message"]
    # a window, and a window that is wrong
    empty = client.get(
        "/v1/usage", params={"since": "2001-01-01", "until": "2001-01-02"}, headers=headers["ops"]
    )
    assert empty.json()["callers"] == []
    backwards = client.get("/v1/usage", params={"since": "now", "until": "1h"}, headers=headers["ops"])
    assert backwards.status_code == 400
    assert client.get("/v1/usage", params={"since": "yesterday"}, headers=headers["ops"]).status_code == 400

    metrics = client.get("/metrics", headers=headers["ops"]).text
    assert 'indextts2_caller_requests_total{caller="key:alice"} 3.0' in metrics
    assert 'indextts2_caller_errors_total{caller="key:alice"} 1.0' in metrics


def test_usage_and_quotas_survive_a_restart(
    tiny_synthesizer: Any, reference_wav: bytes, tmp_path: Path
) -> None:
    config = ServerConfig(
        api_keys=("the-key",),
        voices_dir=tmp_path / "voices",
        usage_db=tmp_path / "usage.sqlite3",
        default_options=FAST_OPTIONS,
        daily_audio_quota=0.01,
    )
    headers = {"Authorization": "Bearer the-key"}
    with TestClient(create_app(config, tiny_synthesizer)) as first:
        assert speak(first, headers, reference_wav, "Before the restart.").status_code == 200
        over = speak(first, headers, reference_wav, "Over the quota.")
        assert over.status_code == 429
    with TestClient(create_app(config, tiny_synthesizer)) as second:
        body = second.get("/v1/usage", headers=headers).json()
        (row,) = body["callers"]
        assert row["caller"] == "key:cli-1"
        assert row["requests"] == 2
        assert row["errors"] == 1  # the refusal counts
        assert row["audio_seconds"] > 0
        assert row["audio_seconds_today"] == row["audio_seconds"]
        assert row["daily_audio_quota"] == 0.01
        # today's audio was read back: the quota still holds after the restart
        assert speak(second, headers, reference_wav, "After the restart.").status_code == 429


def test_daily_quotas_answer_429_with_a_clear_message(
    make_client: Any, keys: Any, reference_wav: bytes, tmp_path: Path
) -> None:
    path, headers = keys
    client = make_client(
        api_keys_file=path,
        usage_db=tmp_path / "usage.sqlite3",
        daily_audio_quota=0.01,
        caller_quotas={"key:bob": 0, "key:ops": 1e6},
    )
    assert speak(client, headers["alice"], reference_wav, "First one.").status_code == 200
    refused = speak(client, headers["alice"], reference_wav, "Second one.")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "key:alice has used" in error["message"]
    assert "renews at 00:00 UTC" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= DAY
    assert speak(client, headers["bob"], reference_wav, "Zero for bob.").status_code == 429
    for _ in range(2):
        assert speak(client, headers["ops"], reference_wav, "Plenty.").status_code == 200
    assert client.get("/v1/voices", headers=headers["alice"]).status_code == 200  # only synthesis


def _finished(caller: str, *, status: int = 200, characters: int = 0, audio: float = 0.0) -> RequestContext:
    return RequestContext(
        request_id="r",
        method="POST",
        path="/v1/tts",
        client=None,
        headers={},
        started=0.0,
        caller=caller,
        metered=True,
        status=status,
        characters=characters,
        audio_seconds=audio,
    )


def test_quota_renews_at_midnight_utc(tmp_path: Path) -> None:
    now = [10 * DAY + 23 * HOUR]
    meter = UsageMeter(tmp_path / "usage.sqlite3", daily_quota=5.0, clock=lambda: now[0])
    meter.start()
    try:
        meter.record(_finished("key:a", audio=6.0))
        with pytest.raises(QuotaExceeded, match="in 1 h 0 min") as refused:
            meter.check_quota("key:a")
        assert refused.value.retry_after == pytest.approx(HOUR)
        meter.check_quota("key:b")  # another caller
        now[0] += HOUR  # midnight UTC
        meter.check_quota("key:a")
        meter.record(_finished("key:a", audio=1.0))
        assert meter.used_today("key:a") == 1.0
        report = meter.report(9 * DAY, 12 * DAY)
        assert [(c.caller, c.audio_seconds) for c in report.callers] == [("key:a", 7.0)]
        assert meter.report(11 * DAY, 12 * DAY).callers[0].audio_seconds == 1.0  # by the hour
    finally:
        meter.stop()


def test_metrics_labels_stay_bounded(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    meter = UsageMeter(tmp_path / "usage.sqlite3", registry=registry, metrics_callers=2)
    meter.start()
    try:
        for index in range(6):
            meter.record(_finished(f"jwt:user-{index}", characters=10, audio=1.0))
        meter.record(_finished("jwt:user-0", status=500))
    finally:
        meter.stop()
    text = generate_latest(registry).decode()
    assert 'indextts2_caller_requests_total{caller="jwt:user-0"} 2.0' in text
    assert 'indextts2_caller_requests_total{caller="jwt:user-1"} 1.0' in text
    assert 'indextts2_caller_requests_total{caller="other"} 4.0' in text
    assert 'indextts2_caller_audio_seconds_total{caller="other"} 4.0' in text
    assert "user-2" not in text  # later callers never get a series of their own
    assert 'indextts2_caller_errors_total{caller="jwt:user-0"} 1.0' in text


def test_parse_time() -> None:
    now = 1_800_000_000.0
    assert parse_time("now", now=now) == now
    assert parse_time("90m", now=now) == now - 5400
    assert parse_time("24h", now=now) == now - DAY
    assert parse_time("2w", now=now) == now - 14 * DAY
    assert parse_time("2026-12-01T08:00:00Z", now=now) == parse_time("2026-12-01T09:00:00+01:00", now=now)
    assert parse_time("2026-12-01", now=now) % DAY == 0  # a date alone is midnight UTC
    with pytest.raises(InvalidInput, match="not a time"):
        parse_time("last tuesday", now=now)


def test_serve_usage_prints_the_file(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    meter = UsageMeter(path)
    meter.start()
    meter.record(_finished("key:alice", characters=12, audio=2.5))
    meter.record(_finished("key:alice", status=429))
    meter.record(_finished("jwt:svc-7", characters=3, audio=0.5))
    meter.stop()
    runner = CliRunner()
    table = runner.invoke(cli_app, ["serve", "usage", "--usage-db", str(path)], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "key:alice" in table.output
    assert "jwt:svc-7" in table.output
    as_json = runner.invoke(
        cli_app, ["serve", "usage", "--usage-db", str(path), "--json", "--caller", "key:alice"]
    )
    body = json.loads(as_json.stdout)
    assert body["callers"] == [
        {"caller": "key:alice", "requests": 2, "errors": 1, "characters": 12, "audio_seconds": 2.5}
    ]
    missing = runner.invoke(cli_app, ["serve", "usage", "--usage-db", str(tmp_path / "none.sqlite3")])
    assert missing.exit_code == 2
    assert "no usage has been recorded" in missing.output
    bad = runner.invoke(cli_app, ["serve", "usage", "--usage-db", str(path), "--since", "soon"])
    assert bad.exit_code == 2
    assert "not a time" in bad.output
