"""JWT bearer tokens beside API keys: every way a token can be wrong, the JWKS cache and its bounds,
scopes, and the token's subject as the caller. Tokens are signed here; the JWKS is served over HTTP
on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from identity_provider import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    claims,
    sign,
    tampered,
    unsigned,
)
from server_helpers import multipart
from typer.testing import CliRunner

from indextts2.cli import app as cli_app
from indextts2.errors import ConfigError
from indextts2.server.config import JwtConfig, RateLimit
from indextts2.server.errors import NotReady
from indextts2.server.tokens import MAX_JWKS_BYTES, JwksCache

SECRET = b"a-shared-secret-of-at-least-32-bytes!!"


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("rsa-1", "RS256")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey("ec-1", "ES256")


@pytest.fixture(scope="module")
def rotated_key() -> SigningKey:
    """A key the provider does not publish (yet)."""
    return SigningKey("rsa-2", "RS256")


@pytest.fixture
def provider(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer([rsa_key, ec_key]) as server:
        yield server


def jwt_client(make_client: Any, provider: JwksServer, **changes: Any) -> Any:
    config_changes = {k: changes.pop(k) for k in list(changes) if k in JwtConfig.__dataclass_fields__}
    config = JwtConfig(issuer=ISSUER, audience=AUDIENCE, jwks_url=provider.url, **config_changes)
    return make_client(jwt=config, **changes)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- valid tokens


def test_rs256_and_es256_tokens_are_accepted(
    make_client: Any, provider: JwksServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    client = jwt_client(make_client, provider)
    for key in (rsa_key, ec_key):
        response = client.get("/v1/voices", headers=bearer(sign(key, claims())))
        assert response.status_code == 200, response.text
    assert provider.fetches == 1  # both keys came with one fetch of the set
    # no token, no entry
    missing = client.get("/v1/voices")
    assert missing.status_code == 401
    assert "bearer token" in missing.json()["error"]["message"]


def test_the_subject_or_a_configured_claim_is_the_caller(
    make_client: Any, provider: JwksServer, rsa_key: SigningKey
) -> None:
    client = jwt_client(make_client, provider, identity_claim="client_id")
    token = sign(rsa_key, claims("ignored", client_id="billing-service"))
    assert client.get("/v1/voices", headers=bearer(token)).status_code == 200
    usage = client.get("/v1/usage", headers=bearer(token)).json()
    assert usage["caller"] == "jwt:billing-service"
    nameless = sign(rsa_key, claims())
    refused = client.get("/v1/voices", headers=bearer(nameless))
    assert refused.status_code == 401
    assert "no 'client_id' claim" in refused.json()["error"]["message"]


def test_hs256_tokens_with_a_shared_secret(make_client: Any, rsa_key: SigningKey) -> None:
    client = make_client(jwt=JwtConfig(secret=SECRET, issuer=ISSUER, audience=AUDIENCE))
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert client.get("/v1/voices", headers=bearer(token)).status_code == 200
    wrong_secret = jwt.encode(claims(), SECRET[::-1], algorithm="HS256")
    assert client.get("/v1/voices", headers=bearer(wrong_secret)).status_code == 401
    rsa = client.get("/v1/voices", headers=bearer(sign(rsa_key, claims())))
    assert rsa.status_code == 401
    assert "accepts HS256" in rsa.json()["error"]["message"]


# ---- every way a token can be wrong: 401, a message that says why, never the token


def _bad_tokens(rsa_key: SigningKey, rotated_key: SigningKey) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    good = sign(rsa_key, claims())
    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "expired": (sign(rsa_key, claims(iat=now - 900, exp=now - 600)), "has expired"),
        "wrong audience": (sign(rsa_key, claims(aud="another-api")), "not meant for this server"),
        "wrong issuer": (sign(rsa_key, claims(iss="https://evil.example")), "was not issued by"),
        "unknown kid": (sign(rotated_key, claims()), "not among the signing keys"),
        "alg none": (unsigned(claims()), "alg 'none'"),
        "tampered signature": (tampered(good, sub="admin"), "signature does not verify"),
        "not yet valid": (sign(rsa_key, claims(nbf=now + 600)), "not valid yet"),
        "no expiry": (sign(rsa_key, {k: v for k, v in claims().items() if k != "exp"}), "'exp' claim"),
        # the RSA public key used as an HMAC secret (the classic algorithm confusion)
        "HS256 with the public key": (_hmac_token(public_pem), "accepts RS256, ES256"),
        "garbage": ("eyJhbGciOi.not-base64!.x", "not a well-formed JWT"),
    }


def _hmac_token(secret: bytes) -> str:
    """HS256 over the claims with ``secret`` (PyJWT itself refuses a PEM key as an HMAC secret)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "wrong audience",
        "wrong issuer",
        "unknown kid",
        "alg none",
        "tampered signature",
        "not yet valid",
        "no expiry",
        "HS256 with the public key",
        "garbage",
    ],
)
def test_a_bad_token_gets_a_401_that_says_why(
    make_client: Any, provider: JwksServer, rsa_key: SigningKey, rotated_key: SigningKey, case: str
) -> None:
    token, why = _bad_tokens(rsa_key, rotated_key)[case]
    client = jwt_client(make_client, provider)
    response = client.get("/v1/voices", headers=bearer(token))
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert why in error["message"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    for part in token.split("."):
        if len(part) > 8:
            assert part not in response.text  # the token is never repeated


# ---- the key set: cached, refreshed on an unknown kid within bounds


def test_jwks_is_refetched_for_an_unknown_kid_at_most_once_per_interval(
    provider: JwksServer, rotated_key: SigningKey
) -> None:
    now = [1000.0]
    cache = JwksCache(url=provider.url, max_age=3600, min_refresh=30, clock=lambda: now[0])

    async def scenario() -> None:
        assert await cache.key("rsa-1") is not None
        assert provider.fetches == 1
        # a storm of made-up kids: no fetch before min_refresh has passed
        found = await asyncio.gather(*(cache.key(f"forged-{i}") for i in range(50)))
        assert found == [None] * 50
        assert provider.fetches == 1
        # the provider rotates its keys: the new kid is fetched once the interval has passed
        provider.keys.append(rotated_key)
        now[0] += 31
        concurrent = await asyncio.gather(*(cache.key("rsa-2") for _ in range(20)))
        assert all(key is not None for key in concurrent)
        assert provider.fetches == 2  # twenty requests, one fetch
        assert await cache.key("rsa-1") is not None  # known keys need no fetch
        assert provider.fetches == 2
        now[0] += 3600  # too old: fetched again
        assert await cache.key("rsa-1") is not None
        assert provider.fetches == 3

    asyncio.run(scenario())


def test_jwks_fetch_is_bounded_in_size_and_time(provider: JwksServer) -> None:
    provider.body = b'{"keys": [' + b" " * (MAX_JWKS_BYTES + 1) + b"]}"
    oversize = JwksCache(url=provider.url, min_refresh=0)
    with pytest.raises(NotReady, match="could not be fetched"):
        asyncio.run(oversize.key("rsa-1"))

    provider.body = None
    provider.hold.set()  # the provider accepts the connection and never answers
    hanging = JwksCache(url=provider.url, min_refresh=0, timeout=0.3)
    with pytest.raises(NotReady, match="could not be fetched"):
        asyncio.run(hanging.key("rsa-1"))


def test_known_keys_stay_in_use_while_the_provider_is_down(
    make_client: Any, provider: JwksServer, rsa_key: SigningKey
) -> None:
    client = jwt_client(make_client, provider, jwks_max_age_seconds=0, jwks_min_refresh_seconds=0)
    token = sign(rsa_key, claims())
    assert client.get("/v1/voices", headers=bearer(token)).status_code == 200
    provider.body = b"<html>maintenance</html>"
    assert client.get("/v1/voices", headers=bearer(token)).status_code == 200
    assert provider.fetches >= 2  # it tried, failed, and kept the keys it had


def test_a_provider_that_cannot_be_reached_is_a_503_not_a_401(make_client: Any, rsa_key: SigningKey) -> None:
    with JwksServer([rsa_key]) as gone:
        url = gone.url
    client = make_client(jwt=JwtConfig(issuer=ISSUER, audience=AUDIENCE, jwks_url=url))
    response = client.get("/v1/voices", headers=bearer(sign(rsa_key, claims())))
    assert response.status_code == 503
    assert "signing keys" in response.json()["error"]["message"]


def test_jwks_from_a_file(make_client: Any, tmp_path: Path, rsa_key: SigningKey) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.jwk]}))
    client = make_client(jwt=JwtConfig(issuer=ISSUER, audience=AUDIENCE, jwks_file=path))
    assert client.get("/v1/voices", headers=bearer(sign(rsa_key, claims()))).status_code == 200


# ---- scopes, keys beside tokens, the caller in rate limits


def test_scopes_gate_synthesis_and_voice_management(
    make_client: Any, provider: JwksServer, rsa_key: SigningKey
) -> None:
    client = jwt_client(make_client, provider, synthesis_scope="tts:speak", voices_scope="tts:voices")
    speaker = bearer(sign(rsa_key, claims(scope="openid tts:speak")))
    curator = bearer(sign(rsa_key, claims(scope="tts:voices")))
    form = multipart(text="Hi.", voice="missing")
    assert client.post("/v1/tts", files=form, headers=speaker).status_code == 404  # past the guard
    refused = client.post("/v1/tts", files=form, headers=curator)
    assert refused.status_code == 403
    assert "needs the scope 'tts:speak'" in refused.json()["error"]["message"]
    assert "tts:voices" in refused.json()["error"]["message"]  # what the token has
    voice_form = multipart(consent="false")
    assert client.post("/v1/voices", files=voice_form, headers=speaker).status_code == 403
    assert client.delete("/v1/voices/someone", headers=speaker).status_code == 403
    assert client.delete("/v1/voices/someone", headers=curator).status_code == 404  # past the guard
    for who in (speaker, curator):  # listing voices needs no scope
        assert client.get("/v1/voices", headers=who).status_code == 200


def test_scopes_from_a_list_or_a_nested_claim(
    make_client: Any, provider: JwksServer, rsa_key: SigningKey
) -> None:
    client = jwt_client(make_client, provider, scope_claim="realm_access.roles", synthesis_scope="speaker")
    form = multipart(text="Hi.", voice="missing")
    allowed = sign(rsa_key, claims(realm_access={"roles": ["speaker", "reader"]}))
    assert client.post("/v1/tts", files=form, headers=bearer(allowed)).status_code == 404
    denied = sign(rsa_key, claims(realm_access={"roles": ["reader"]}))
    assert client.post("/v1/tts", files=form, headers=bearer(denied)).status_code == 403


def test_api_keys_work_beside_tokens(make_client: Any, provider: JwksServer, rsa_key: SigningKey) -> None:
    client = jwt_client(make_client, provider, api_keys=("plain-key",))
    assert client.get("/v1/voices", headers=bearer("plain-key")).status_code == 200
    assert client.get("/v1/voices", headers=bearer(sign(rsa_key, claims()))).status_code == 200
    wrong = client.get("/v1/voices", headers=bearer("other-key"))
    assert wrong.status_code == 401
    assert "API key is not valid" in wrong.json()["error"]["message"]
    missing = client.get("/v1/voices").json()["error"]["message"]
    assert "API key or a bearer token" in missing


def test_a_token_passes_the_cross_site_check_like_a_bearer_key(make_client: Any) -> None:
    # a browser sends an Authorization header only from a page that set it, past a CORS preflight
    client = make_client(jwt=JwtConfig(secret=SECRET, issuer=ISSUER, audience=AUDIENCE))
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    form = multipart(text="Hi.", voice="nobody")
    evil = {"Origin": "http://evil.example"}
    for site in (evil, {"Sec-Fetch-Site": "cross-site"}):
        passed = client.post("/v1/tts", files=form, headers={**bearer(token), **site})
        assert passed.status_code == 404, passed.text  # past the guard: no such voice
    refused = client.post("/v1/tts", files=form, headers=evil)
    assert refused.status_code == 403
    assert "key or token" in refused.json()["error"]["message"]
    # a bearer header only gets the request to the token check, which still refuses a bad token
    forged_token = jwt.encode(claims(), SECRET[::-1], algorithm="HS256")
    forged = client.post("/v1/tts", files=form, headers={**bearer(forged_token), **evil})
    assert forged.status_code == 401


def test_the_token_subject_is_the_rate_limit_identity(
    make_client: Any, provider: JwksServer, rsa_key: SigningKey
) -> None:
    client = jwt_client(make_client, provider, rate_limit=RateLimit(1, 60.0))
    form = multipart(text="Hi.", voice="missing")
    alice = bearer(sign(rsa_key, claims("alice")))
    assert client.post("/v1/tts", files=form, headers=alice).status_code == 404
    limited = client.post("/v1/tts", files=form, headers=alice)
    assert limited.status_code == 429
    assert "jwt alice" in limited.json()["error"]["message"]
    # another subject has its own bucket, even with a fresh token of the same issuer
    assert client.post("/v1/tts", files=form, headers=bearer(sign(rsa_key, claims("bob")))).status_code == 404


# ---- configuration


def test_jwt_config_refuses_unsafe_setups(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one source of keys"):
        JwtConfig(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ConfigError, match="give --jwt-issuer and --jwt-audience"):
        JwtConfig(jwks_url="https://id.example.test/jwks")
    with pytest.raises(ConfigError, match="at least 32"):
        JwtConfig(secret=b"short")
    with pytest.raises(ConfigError, match="must be an https URL"):
        JwtConfig(issuer=ISSUER, audience=AUDIENCE, jwks_url="http://id.example.test/jwks")
    with pytest.raises(ConfigError, match="alg 'none'"):
        JwtConfig(secret=SECRET, algorithms=("none",))
    with pytest.raises(ConfigError, match="does not fit the key source"):
        JwtConfig(
            issuer=ISSUER, audience=AUDIENCE, jwks_url="https://id.example.test/jwks", algorithms=("HS256",)
        )
    JwtConfig(issuer=ISSUER, audience=AUDIENCE, jwks_url="http://127.0.0.1:8080/jwks")  # loopback http
    assert "SSSSSSSS" not in repr(JwtConfig(secret=b"S" * 40))  # the secret never reaches a log


def test_serve_jwt_flags() -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", "--jwt-issuer", ISSUER])
    assert result.exit_code == 2
    assert "need(s) a source of signing keys" in result.output
    missing = runner.invoke(cli_app, ["serve", "--jwt-jwks-file", "/nonexistent/jwks.json"])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
    short = runner.invoke(cli_app, ["serve", "--caller-quota", "alice"])
    assert short.exit_code == 2
    assert "CALLER=SECONDS" in short.output
