"""Who gets in: API keys (file and flags), HTTP Basic, rate limits, the IP allow-list, CORS, exposure."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from server_helpers import multipart

from indextts2.errors import ConfigError, InvalidInput
from indextts2.server.auth import (
    KeyRing,
    add_key,
    credentials_from_header,
    hash_key,
    read_keys_file,
    remove_key,
)
from indextts2.server.config import RateLimit, ServerConfig
from indextts2.server.limits import IpAllowList, RateLimiter

# ---- keys file


def test_keys_file_stores_only_hashes(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    record, key = add_key(path, "alice")
    text = path.read_text()
    assert key not in text
    assert hash_key(key) in text
    assert record.name == "alice"
    assert (path.stat().st_mode & 0o777) == 0o600
    assert [r.name for r in read_keys_file(path)] == ["alice"]


def test_keys_file_add_rm_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    add_key(path, "a")
    add_key(path, "b", key="chosen-key")
    with pytest.raises(InvalidInput, match="exists already"):
        add_key(path, "a")
    with pytest.raises(InvalidInput, match="not allowed"):
        add_key(path, "bad name!")
    assert remove_key(path, "a") is True
    assert remove_key(path, "a") is False
    assert KeyRing(keys_file=path).authenticate("chosen-key") == "b"


def test_malformed_keys_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# comment\nalice sha256:" + "0" * 64 + "\nbob plaintext-key\n")
    with pytest.raises(ConfigError, match="line 3"):
        read_keys_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        read_keys_file(tmp_path / "missing")


def test_keyring_rereads_the_file_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    _, first = add_key(path, "first")
    ring = KeyRing(keys_file=path, plain_keys=("flag-key",))
    assert ring.authenticate(first) == "first"
    assert ring.authenticate("flag-key") == "cli-1"
    _, second = add_key(path, "second")
    assert ring.authenticate(second) == "second"
    remove_key(path, "first")
    assert ring.authenticate(first) is None
    assert ring.authenticate(None) is None
    assert ring.authenticate("") is None


def test_credentials_from_headers() -> None:
    assert credentials_from_header("Bearer abc") == "abc"
    assert credentials_from_header("bearer   abc ") == "abc"
    basic = base64.b64encode(b"anyone:the-key").decode()
    assert credentials_from_header(f"Basic {basic}") == "the-key"
    assert credentials_from_header("Basic !!!") is None
    assert credentials_from_header("Digest x") is None
    assert credentials_from_header(None) is None


# ---- limits


def test_rate_limit_parsing() -> None:
    assert RateLimit.parse("60/minute") == RateLimit(60, 60.0)
    assert RateLimit.parse("5 / second") == RateLimit(5, 1.0)
    assert RateLimit.parse("10/5minutes") == RateLimit(10, 300.0)
    assert str(RateLimit.parse("1000/day")) == "1000/day"
    with pytest.raises(ConfigError, match="N/unit"):
        RateLimit.parse("lots")


def test_token_bucket_allows_a_burst_then_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimit(3, 3.0), clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(1.0)
    assert limiter.acquire("b") == 0.0  # clients have their own buckets
    now[0] = 1.0
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0


def test_ip_allow_list() -> None:
    allow = IpAllowList(("10.0.0.0/8", "192.168.1.7", "::1"))
    assert allow.allows("10.2.3.4")
    assert allow.allows("192.168.1.7")
    assert allow.allows("::ffff:10.0.0.1")  # IPv4-mapped IPv6
    assert allow.allows("::1")
    assert not allow.allows("192.168.1.8")
    assert not allow.allows("not-an-ip")
    assert not allow.allows(None)
    assert IpAllowList(()).allows("203.0.113.9")
    with pytest.raises(ConfigError, match="not an address or CIDR"):
        ServerConfig(allow_ips=("10.0.0.0/33",))


def test_exposed_bind_needs_a_key_or_insecure() -> None:
    ServerConfig(host="127.0.0.1").check_exposure()
    ServerConfig(host="::1").check_exposure()
    ServerConfig(host="0.0.0.0", api_keys=("k",)).check_exposure()
    ServerConfig(host="0.0.0.0", insecure=True).check_exposure()
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0 without an API key"):
        ServerConfig(host="0.0.0.0").check_exposure()


# ---- over HTTP


def _error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def test_a_key_is_needed_when_the_server_has_keys(make_client: Any) -> None:
    client = make_client(api_keys=("secret-key",))
    missing = client.get("/v1/voices")
    assert missing.status_code == 401
    assert _error_code(missing) == "unauthorized"
    assert "Authorization: Bearer" in missing.json()["error"]["message"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = client.get("/v1/voices", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "not valid" in wrong.json()["error"]["message"]
    assert client.get("/v1/voices", headers={"Authorization": "Bearer secret-key"}).status_code == 200
    assert client.get("/metrics").status_code == 401
    # public: liveness, readiness, server facts, the page and the docs
    for path in ("/healthz", "/readyz", "/v1/info", "/", "/ui/app.js", "/docs", "/docs/openapi.json"):
        assert client.get(path).status_code == 200, path
    assert client.get("/v1/info").json()["auth_required"] is True


def test_a_bad_key_is_refused_before_the_upload_is_read(make_client: Any) -> None:
    client = make_client(api_keys=("k",), max_upload_mb=0.01)
    response = client.post("/v1/tts", files={"reference": ("a.wav", b"\0" * 100_000)})
    assert response.status_code == 401  # not 413: the guard runs before the body is parsed


def test_keys_file_works_over_http(make_client: Any, tmp_path: Path) -> None:
    path = tmp_path / "keys"
    _, key = add_key(path, "svc")
    client = make_client(api_keys_file=path)
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/v1/models").status_code == 401


def test_basic_auth_protects_the_web_page(make_client: Any) -> None:
    client = make_client(api_keys=("page-key",), basic_auth=True)
    page = client.get("/")
    assert page.status_code == 401
    assert page.headers["www-authenticate"].startswith("Basic")
    credentials = base64.b64encode(b"me:page-key").decode()
    assert client.get("/", headers={"Authorization": f"Basic {credentials}"}).status_code == 200
    # the API accepts the same credentials, which the browser resends on its fetches
    assert client.get("/v1/voices", headers={"Authorization": f"Basic {credentials}"}).status_code == 200


def test_rate_limit_per_key(make_client: Any) -> None:
    client = make_client(api_keys=("a", "b"), rate_limit=RateLimit(2, 60.0))
    a = {"Authorization": "Bearer a"}
    b = {"Authorization": "Bearer b"}
    form = multipart(text="Hi.", voice="missing")
    statuses = [client.post("/v1/tts", files=form, headers=a).status_code for _ in range(3)]
    assert statuses == [404, 404, 429]
    limited = client.post("/v1/tts", files=form, headers=a)
    assert _error_code(limited) == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert client.post("/v1/tts", files=form, headers=b).status_code == 404  # b has its own bucket
    assert client.get("/v1/voices", headers=a).status_code == 200  # listing is not rate limited


def test_rate_limit_per_address(make_client: Any) -> None:
    client = make_client(ip_rate_limit=RateLimit(1, 60.0))
    form = multipart(text="Hi.", voice="missing")
    assert client.post("/v1/tts", files=form).status_code == 404
    response = client.post("/v1/tts", files=form)
    assert response.status_code == 429
    assert "testclient" in response.json()["error"]["message"]


def test_allow_list_refuses_other_addresses(make_client: Any) -> None:
    # Litestar's test client connects from the address "testclient", which is in no network
    client = make_client(allow_ips=("10.0.0.0/8",))
    response = client.get("/healthz")
    assert response.status_code == 403
    assert "--allow-ip" in response.json()["error"]["message"]


def test_cors_is_off_by_default_and_configurable(make_client: Any) -> None:
    origin = {"Origin": "https://app.example"}
    plain = make_client()
    assert "access-control-allow-origin" not in plain.get("/v1/models", headers=origin).headers
    cors = make_client(cors_origins=("https://app.example",))
    preflight = cors.options(
        "/v1/tts",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    other = cors.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


# ---- cross-site requests: a browser resends Basic credentials, so a page elsewhere must not use them

EVIL = {"Origin": "http://evil.example"}
SPEECH_JSON = b'{"model": "tts-1", "input": "Hi.", "voice": "nobody"}'


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"me:{key}".encode()).decode()}


def test_cross_site_requests_with_basic_credentials_are_refused(make_client: Any) -> None:
    client = make_client(api_keys=("page-key",), basic_auth=True)
    basic = _basic("page-key")
    # the shapes a page on another site can send without a preflight: text/plain JSON, forms
    attempts = [
        client.post(
            "/v1/audio/speech", content=SPEECH_JSON, headers={**basic, **EVIL, "Content-Type": "text/plain"}
        ),
        client.post("/v1/tts", files=multipart(text="Hi.", voice="nobody"), headers={**basic, **EVIL}),
        client.post("/v1/voices", files=multipart(consent="true"), headers={**basic, **EVIL}),
        client.delete("/v1/voices/nobody", headers={**basic, **EVIL}),
        # a browser that names no Origin still says where the request comes from
        client.post(
            "/v1/tts",
            files=multipart(text="Hi.", voice="nobody"),
            headers={**basic, "Sec-Fetch-Site": "cross-site"},
        ),
        client.post("/v1/tts", files=multipart(text="Hi."), headers={**basic, "Origin": "null"}),
    ]
    for response in attempts:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
        assert "--cors-origin" in response.json()["error"]["message"]
    # reading is not refused: another site cannot see the answer without CORS anyway
    assert client.get("/v1/voices", headers={**basic, **EVIL}).status_code == 200


def test_the_servers_own_page_programs_and_bearer_keys_are_not_refused(make_client: Any) -> None:
    client = make_client(api_keys=("page-key",), basic_auth=True)
    basic = _basic("page-key")
    form = multipart(text="Hi.", voice="nobody")
    own = {"Origin": "http://testserver.local"}  # the test client's Host
    allowed = [
        client.post("/v1/tts", files=form, headers={**basic, **own}),
        client.post("/v1/tts", files=form, headers={**basic, **EVIL, "Sec-Fetch-Site": "same-origin"}),
        client.post("/v1/tts", files=form, headers=basic),  # curl, httpx, the openai client
        client.post("/v1/tts", files=form, headers={"Authorization": "Bearer page-key", **EVIL}),
    ]
    assert [response.status_code for response in allowed] == [404] * 4  # past the guard: no such voice


def test_cors_origins_are_allowed_and_servers_without_keys_are_protected_too(make_client: Any) -> None:
    form = multipart(text="Hi.", voice="nobody")
    app_origin = {"Origin": "https://app.example"}
    open_server = make_client(cors_origins=("https://app.example",))
    assert open_server.post("/v1/tts", files=form, headers=app_origin).status_code == 404
    assert open_server.post("/v1/tts", files=form, headers=EVIL).status_code == 403
    assert make_client(cors_origins=("*",)).post("/v1/tts", files=form, headers=EVIL).status_code == 404
