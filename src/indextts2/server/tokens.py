"""Bearer tokens (JWTs) from an identity provider: signature, expiry, issuer, audience, scopes.

Verification uses PyJWT (the ``jwt`` extra: ``pip install "indextts2[jwt]"``). The signing keys come
from the provider's JWKS (a URL or a file) or, for small setups, a shared HS256 secret.

The JWKS is cached. It is fetched when first needed, again after ``jwks_max_age_seconds``, and when a
token names a key id (``kid``) the cache does not hold (providers rotate keys) - but never more than
once per ``jwks_min_refresh_seconds``, whatever tokens arrive, so forged ``kid``\\ s cannot make the
server hammer the provider. A fetch is bounded in time and size (and in keys kept); when it fails
the keys already known stay in use.

Every refusal is a 401 whose message says what is wrong (expired, wrong audience, unknown key...)
and never repeats the token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

from indextts2.errors import ConfigError
from indextts2.server.config import JwtConfig
from indextts2.server.errors import NotReady, Unauthorized

__all__ = ["JwksCache", "TokenClaims", "TokenVerifier", "looks_like_jwt"]

logger = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 16 * 1024
MAX_JWKS_BYTES = 512 * 1024
MAX_JWKS_KEYS = 64
_MAX_IDENTITY_CHARS = 200


def looks_like_jwt(credential: str) -> bool:
    """Whether a bearer credential is a JWS in compact form (a JSON header, three parts)."""
    return credential.startswith("eyJ") and credential.count(".") == 2


def _require_pyjwt() -> Any:
    try:
        import jwt
    except ImportError:  # pragma: no cover - the dev extra installs it
        raise ConfigError('JWT sign-in needs PyJWT and cryptography: pip install "indextts2[jwt]"') from None
    return jwt


def _printable(value: object, limit: int = 64) -> str:
    """A claim or header value safe to quote in a message (never the token)."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class TokenClaims:
    """What the server takes from a valid token: who (its identity claim) and what it may do."""

    subject: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class _Key:
    """A signing key of the set: the key, its type (kty) and the algorithm it declares, if any."""

    key: Any
    kty: str
    alg: str | None

    def fits(self, algorithm: str) -> bool:
        if self.alg is not None:
            return self.alg == algorithm
        family = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}.get(algorithm[:2])
        return family == self.kty


def _invalid(message: str) -> Unauthorized:
    return Unauthorized(message, scheme="Bearer", error="invalid_token")


class JwksCache:
    """The provider's signing keys, by ``kid``: fetched, cached, refreshed within bounds.

    Args:
        url / file: where the JWKS is (one of them).
        max_age: seconds a fetched set is used before it is fetched again.
        min_refresh: least seconds between two fetches (also after a failure).
        timeout: seconds a fetch may take.
        clock: monotonic seconds (tests move it).
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        file: Path | None = None,
        max_age: float = 3600.0,
        min_refresh: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (url is None) == (file is None):
            raise ValueError("give a JWKS url or a file")
        self.url = url
        self.file = file
        self.max_age = max_age
        self.min_refresh = min_refresh
        self.timeout = timeout
        self._clock = clock
        self._keys: dict[str | None, _Key] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self.fetches = 0
        """Fetches tried so far (successful or not)."""

    @property
    def source(self) -> str:
        return self.url or str(self.file)

    async def key(self, kid: str | None) -> _Key | None:
        """The key for ``kid``; None when the set does not hold it.

        Raises:
            NotReady: no key could be fetched yet (the provider is unreachable).
        """
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self.max_age
        if stale or self._lookup(kid) is None:
            await self._refresh()
        if self._fetched_at is None:
            raise NotReady(
                f"the server cannot check tokens yet: the signing keys at {self.source} could not be "
                "fetched; try again shortly"
            )
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> _Key | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))  # a one-key set needs no kid
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        attempted_before = self._attempted_at
        async with self._lock:
            now = self._clock()
            if self._attempted_at != attempted_before:
                return  # another request fetched while this one waited
            if self._attempted_at is not None and now - self._attempted_at < self.min_refresh:
                return  # fetched a moment ago: an unknown kid stays unknown until min_refresh
            self._attempted_at = now
            self.fetches += 1
            try:
                raw = await self._read()
                keys = _parse_jwks(raw, self.source)
            except (OSError, httpx.HTTPError, ValueError) as exc:
                logger.warning("cannot fetch the JWT signing keys from %s: %s", self.source, exc)
                return
            self._keys = keys
            self._fetched_at = now
            logger.info("fetched %d JWT signing key(s) from %s", len(keys), self.source)

    async def _read(self) -> bytes:
        if self.file is not None:
            size = self.file.stat().st_size
            if size > MAX_JWKS_BYTES:
                raise ValueError(f"the JWKS file has {size} bytes, more than {MAX_JWKS_BYTES}")
            return self.file.read_bytes()
        assert self.url is not None
        body = bytearray()
        # the whole fetch within the timeout (httpx's own applies to each read: a server trickling
        # bytes would pass it), and never more than MAX_JWKS_BYTES read
        with anyio.fail_after(self.timeout):
            async with (
                httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client,
                client.stream("GET", self.url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}")
                async for piece in response.aiter_bytes():
                    body += piece
                    if len(body) > MAX_JWKS_BYTES:
                        raise ValueError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
        return bytes(body)


def _parse_jwks(raw: bytes, source: str) -> dict[str | None, _Key]:
    jwt = _require_pyjwt()
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('not a JWKS: no "keys" list')
    keys: dict[str | None, _Key] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") == "oct":
            continue  # a shared secret has no place in a public key set
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            logger.debug("skipping a key of %s: %s", source, exc)
            continue
        if len(keys) >= MAX_JWKS_KEYS:
            logger.warning(
                "the JWKS at %s has more than %d keys; the rest are ignored", source, MAX_JWKS_KEYS
            )
            break
        declared = entry.get("alg")
        keys[entry.get("kid")] = _Key(
            key.key, str(entry.get("kty")), declared if isinstance(declared, str) else None
        )
    if not keys:
        raise ValueError("the JWKS holds no usable signing key")
    return keys


class TokenVerifier:
    """Checks bearer tokens against a :class:`JwtConfig`."""

    def __init__(self, config: JwtConfig) -> None:
        self._jwt = _require_pyjwt()
        self.config = config
        self.algorithms = config.accepted_algorithms
        self.jwks = (
            JwksCache(
                url=config.jwks_url,
                file=config.jwks_file,
                max_age=config.jwks_max_age_seconds,
                min_refresh=config.jwks_min_refresh_seconds,
                timeout=config.jwks_timeout_seconds,
            )
            if config.secret is None
            else None
        )

    async def verify(self, token: str) -> TokenClaims:
        """The identity and scopes of a valid token.

        Raises:
            Unauthorized: the token is malformed, unsigned, signed with an unknown key or badly,
                expired, not yet valid, or for another issuer or audience.
            NotReady: the signing keys cannot be fetched.
        """
        jwt = self._jwt
        if len(token) > MAX_TOKEN_BYTES:
            raise _invalid(f"the bearer token is longer than {MAX_TOKEN_BYTES} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("the bearer token is not a well-formed JWT (header.payload.signature)") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise _invalid("unsigned tokens (alg 'none') are not accepted; send a signed token")
        if algorithm not in self.algorithms:
            raise _invalid(
                f"the token is signed with {_printable(algorithm)}; this server accepts "
                f"{', '.join(self.algorithms)}"
            )
        key = await self._key(header, algorithm)
        config = self.config
        required = ["exp"] + (["iss"] if config.issuer else []) + (["aud"] if config.audience else [])
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_seconds,
                options={"require": required, "verify_aud": config.audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise _invalid(self._explain(exc)) from None
        return TokenClaims(subject=self._identity(claims), scopes=self._scopes(claims))

    async def _key(self, header: dict[str, Any], algorithm: str) -> Any:
        if self.config.secret is not None:
            return self.config.secret
        assert self.jwks is not None
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _invalid("the token's key id (kid) is not a string")
        jwk = await self.jwks.key(kid)
        if jwk is None:
            named = f"key id (kid) {_printable(kid)!r}" if kid else "no key id (kid)"
            raise _invalid(
                f"the token names {named}, which is not among the signing keys of {self.config.issuer}; "
                "it was not issued by the configured identity provider, or its key was retired"
            )
        if not jwk.fits(algorithm):
            raise _invalid(
                f"the token says {algorithm}, but its key ({jwk.kty}) is for {jwk.alg or 'another algorithm'}"
            )
        return jwk.key

    def _explain(self, exc: Exception) -> str:
        jwt = self._jwt
        config = self.config
        if isinstance(exc, jwt.ExpiredSignatureError):
            return "the bearer token has expired; get a new one from the identity provider"
        if isinstance(exc, jwt.ImmatureSignatureError):
            return "the bearer token is not valid yet (nbf or iat lies in the future; check the clocks)"
        if isinstance(exc, jwt.InvalidAudienceError):
            return (
                f"the bearer token is not meant for this server: its audience (aud) lacks {config.audience!r}"
            )
        if isinstance(exc, jwt.InvalidIssuerError):
            return f"the bearer token was not issued by {config.issuer!r} (its iss claim differs)"
        if isinstance(exc, jwt.MissingRequiredClaimError):
            return f"the bearer token lacks the {exc.claim!r} claim, which this server requires"
        if isinstance(exc, jwt.InvalidSignatureError):
            return "the bearer token's signature does not verify; it was altered or signed with another key"
        if isinstance(exc, jwt.DecodeError):
            return "the bearer token cannot be decoded; it is damaged or not a JWT"
        return f"the bearer token is not valid: {_printable(exc, 200)}"

    def _identity(self, claims: dict[str, Any]) -> str:
        name = self.config.identity_claim
        value = _claim(claims, name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise _invalid(f"the bearer token has no {name!r} claim to name the caller by")
        value = value.strip()
        if len(value) > _MAX_IDENTITY_CHARS or not value.isprintable():
            raise _invalid(f"the token's {name!r} claim is too long or holds control characters")
        return value

    def _scopes(self, claims: dict[str, Any]) -> frozenset[str]:
        value = _claim(claims, self.config.scope_claim)
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list):
            return frozenset(str(item) for item in value if isinstance(item, (str, int)))
        return frozenset()


def _claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (``realm_access.roles``)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
