"""A real ``indextts2 serve`` process as a gateway sees it: API keys and JWTs side by side, JSON logs
at DEBUG that parse line by line and never hold a credential, request ids from the gateway, and
usage that survives a restart of the process."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from identity_provider import tampered
from server_helpers import multipart, tone

from indextts2.server.auth import add_key

pytestmark = pytest.mark.slow

SECRET = b"process-test-hs256-secret-0123456789abcdef"


def _token(subject: str, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": "https://id.test", "aud": "speech", "sub": subject, "iat": now, "exp": now + 300}
    return jwt.encode({**claims, **changes}, SECRET, algorithm="HS256")


def test_keys_tokens_json_logs_and_usage_across_a_restart(start_server: Any, tmp_path: Path) -> None:
    keys = tmp_path / "api-keys"
    _, key = add_key(keys, "alice")
    secret_file = tmp_path / "jwt-secret"
    secret_file.write_bytes(SECRET + b"\n")
    args = [
        "--api-keys-file", str(keys),
        "--jwt-secret-file", str(secret_file),
        "--jwt-issuer", "https://id.test",
        "--jwt-audience", "speech",
        "--jwt-voices-scope", "voices:write",
        "--admin-key", "alice",
        "--log-format", "json",
    ]  # fmt: skip
    debug = {"INDEXTTS2_LOG_LEVEL": "DEBUG"}
    server = start_server(*args, env=debug)
    url = server.url
    as_alice = {"Authorization": f"Bearer {key}"}
    token = _token("svc-7")
    as_service = {"Authorization": f"Bearer {token}"}
    basic = base64.b64encode(f"me:{key}".encode()).decode()
    reference = tone(1.0).to_bytes("wav")
    sent_secrets = [key, token, basic, SECRET.decode()]

    def speak(headers: dict[str, str], **extra: str) -> httpx.Response:
        return httpx.post(
            f"{url}/v1/tts",
            data={"text": "Hello from the gateway.", "consent": "true"},
            files={"reference": ("me.wav", reference, "audio/wav")},
            headers={**headers, **extra},
            timeout=60,
        )

    spoken = speak(as_alice, **{"X-Request-ID": "gw-0001"})
    assert spoken.status_code == 200, spoken.text
    assert spoken.headers["x-request-id"] == "gw-0001"
    assert speak(as_service).status_code == 200
    assert httpx.get(f"{url}/v1/voices", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    # refusals: a wrong key, a token signed with another secret, an expired one, a missing scope
    wrong_key = "itts2_" + "x" * 43
    forged = tampered(token, sub="alice")
    expired = _token("svc-7", iat=int(time.time()) - 900, exp=int(time.time()) - 600)
    sent_secrets += [wrong_key, forged, expired]
    for credential, status in ((wrong_key, 401), (forged, 401), (expired, 401)):
        refused = httpx.get(f"{url}/v1/voices", headers={"Authorization": f"Bearer {credential}"})
        assert refused.status_code == status
        assert credential not in refused.text
    no_scope = httpx.post(f"{url}/v1/voices", files=multipart(consent="true"), headers=as_service)
    assert no_scope.status_code == 403
    assert (
        httpx.get(f"{url}/nowhere", headers={"X-Request-ID": "gw-0404"}).json()["error"]["request_id"]
        == "gw-0404"
    )
    assert server.terminate() == 0

    # the same home again: the usage was kept
    again = start_server(*args, env=debug)
    report = httpx.get(f"{again.url}/v1/usage", headers=as_alice).json()
    rows = {row["caller"]: row for row in report["callers"]}
    assert rows["key:alice"]["requests"] == 2  # /v1/tts and the Basic /v1/voices
    assert rows["key:alice"]["audio_seconds"] == pytest.approx(
        float(spoken.headers["x-audio-duration"]), abs=0.002
    )
    assert rows["jwt:svc-7"]["requests"] == 2  # /v1/tts, and the refused voice upload
    assert rows["jwt:svc-7"]["errors"] == 1
    assert again.terminate() == 0

    for process in (server, again):
        text = process.log()
        entries = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
        assert entries, "the server logged nothing"
        for secret in sent_secrets:
            assert secret not in text  # no key, token, secret or Basic credential, even at DEBUG
            assert secret.split(".")[-1] not in text  # nor a token's signature alone
        assert "authorization" not in text.lower()
    access = [json.loads(line) for line in server.log().splitlines() if '"indextts2.server.access"' in line]
    first = next(line for line in access if line.get("request_id") == "gw-0001")
    assert first["caller"] == "key:alice"
    assert first["route"] == "/v1/tts"
    assert first["status"] == 200
    assert first["audio_seconds"] > 0
    assert {line["status"] for line in access} >= {200, 401, 403, 404}
