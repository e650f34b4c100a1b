"""Who is calling: an API key, a bearer token (JWT) from an identity provider, or nobody in particular.

A :class:`Caller`'s ``id`` is what rate limits, usage metering, quotas and log lines know it by:
``key:NAME`` for an API key (its name in the keys file, ``cli-1``... for ``--api-key``),
``jwt:SUBJECT`` for a token (its ``sub``, or the claim ``--jwt-identity-claim`` names), and
``anonymous`` on a server without authentication.

What a caller may do: API keys may do everything but read other callers' usage (unless named by
``--admin-key``); tokens may do what their scopes allow, when the server asks for scopes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from indextts2.server.auth import KeyRing, credentials_from_header, is_bearer
from indextts2.server.config import ServerConfig
from indextts2.server.errors import Forbidden, Unauthorized

__all__ = ["ANONYMOUS", "Authenticator", "Caller", "Permission"]

Permission = Literal["synthesis", "voices"]

_WHAT = {"synthesis": "synthesize speech", "voices": "save or delete voices"}


@dataclass(frozen=True)
class Caller:
    """An authenticated caller.

    Attributes:
        id: ``key:NAME``, ``jwt:SUBJECT`` or ``anonymous``.
        kind: how it proved who it is.
        scopes: a token's scopes; None for callers scopes do not apply to.
        admin: may read every caller's usage.
    """

    id: str
    kind: Literal["key", "token", "anonymous"]
    scopes: frozenset[str] | None = None
    admin: bool = False

    @property
    def key_name(self) -> str | None:
        """The API key's name, for a key."""
        return self.id.removeprefix("key:") if self.kind == "key" else None


ANONYMOUS = Caller("anonymous", "anonymous", admin=True)
"""Everyone, on a server without keys or tokens (which only loopback or --insecure allow)."""


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Caller`: API keys and, when configured, JWTs."""

    def __init__(self, config: ServerConfig) -> None:
        self.keys = KeyRing(plain_keys=config.api_keys, keys_file=config.api_keys_file)
        self.jwt = config.jwt
        self.admin_keys = frozenset(config.admin_keys)
        self.tokens = None
        if config.jwt is not None:
            from indextts2.server.tokens import TokenVerifier

            self.tokens = TokenVerifier(config.jwt)

    @property
    def enabled(self) -> bool:
        return self.keys.enabled or self.tokens is not None

    async def authenticate(self, authorization: str | None) -> Caller | None:
        """The caller the header proves; None when it carries no credentials.

        Raises:
            Unauthorized: the key is unknown, or the token is not valid (the message says why).
            NotReady: the token's signing keys cannot be fetched.
        """
        presented = credentials_from_header(authorization)
        if presented is None:
            return None
        if self.tokens is not None and is_bearer(authorization):
            from indextts2.server.tokens import looks_like_jwt

            if looks_like_jwt(presented):
                claims = await self.tokens.verify(presented)
                admin_scope = self.tokens.config.admin_scope
                return Caller(
                    f"jwt:{claims.subject}",
                    "token",
                    scopes=claims.scopes,
                    admin=admin_scope is not None and admin_scope in claims.scopes,
                )
        name = self.keys.authenticate(presented) if self.keys.enabled else None
        if name is None:
            if not self.keys.enabled:
                raise Unauthorized(
                    f"this server takes bearer tokens (JWTs) from {self._issuer()}; the credential sent "
                    "is not one",
                    error="invalid_token",
                )
            raise Unauthorized("the API key is not valid; check it, or ask the operator for one")
        return Caller(f"key:{name}", "key", admin=name in self.admin_keys)

    def missing_credentials(self) -> str:
        """What to say to a request without credentials."""
        if not self.keys.enabled:
            return (
                f"this server needs a bearer token from {self._issuer()}: "
                "send the header 'Authorization: Bearer <token>'"
            )
        tokens = f" or a bearer token from {self._issuer()}" if self.tokens is not None else ""
        return (
            f"this server needs an API key{tokens}: send the header 'Authorization: Bearer <key>' "
            "(the web page has a field for it)"
        )

    def _issuer(self) -> str:
        return repr(self.jwt.issuer) if self.jwt is not None and self.jwt.issuer else "the identity provider"

    def authorize(self, caller: Caller, permission: Permission) -> None:
        """Raise unless ``caller`` may do ``permission``.

        Raises:
            Forbidden: a token without the scope the server asks for.
        """
        if caller.scopes is None or self.jwt is None:
            return
        needed = self.jwt.synthesis_scope if permission == "synthesis" else self.jwt.voices_scope
        if needed is not None and needed not in caller.scopes:
            held = ", ".join(sorted(caller.scopes)) or "none"
            raise Forbidden(
                f"this token may not {_WHAT[permission]}: that needs the scope {needed!r} "
                f"(the token's scopes: {held})"
            )
