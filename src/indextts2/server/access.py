"""Access control, as one Litestar guard: the IP allow-list, API keys and tokens, HTTP Basic,
scopes, rate limits and daily quotas.

Route handlers say what they need through ``opt``:

- ``opt={"public": True}``: no key needed (health checks, the schema, static assets);
- ``opt={"web_page": True}``: public, unless the server asks browsers for HTTP Basic;
- ``opt={"rate_limited": True}``: counts against the key's and the address's rate limits;
- ``opt={"permission": "synthesis"}`` or ``"voices"``: a token needs the scope the server asks for
  (``identity.py``); synthesis also checks the caller's daily audio quota.

Everything else needs a key (or a token) whenever the server has them. The allow-list applies to
every route. The caller found here is the request's (``context.py``): metering and logs use it.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from indextts2.server.config import ServerConfig
from indextts2.server.context import current_request
from indextts2.server.errors import Forbidden, RateLimited, Unauthorized, UnsupportedMediaType
from indextts2.server.identity import ANONYMOUS, Authenticator, Caller, Permission
from indextts2.server.limits import IpAllowList, RateLimiter
from indextts2.server.usage import UsageMeter

__all__ = ["AccessControl", "access_guard", "multipart_only"]


class AccessControl:
    """The server's access rules, built once from its config."""

    def __init__(self, config: ServerConfig, *, usage: UsageMeter | None = None) -> None:
        self.authenticator = Authenticator(config)
        self.keys = self.authenticator.keys
        self.usage = usage
        self.allow_list = IpAllowList(config.allow_ips)
        self.basic_auth = config.basic_auth
        self.key_limiter = RateLimiter(config.rate_limit) if config.rate_limit else None
        self.ip_limiter = RateLimiter(config.ip_rate_limit) if config.ip_rate_limit else None

    @property
    def needs_key(self) -> bool:
        return self.authenticator.enabled

    async def check(
        self,
        *,
        client: str | None,
        authorization: str | None,
        public: bool,
        web_page: bool,
        rate_limited: bool,
        permission: Permission | None = None,
    ) -> Caller | None:
        """Admit a request or raise; returns the caller (None on a public route, where nobody is asked).

        Raises:
            Forbidden: the address is not allowed, or the token lacks the scope.
            Unauthorized: a key or token is needed and missing or not valid.
            RateLimited: the key or the address is over its rate limit.
            QuotaExceeded: the caller has used its audio seconds for today.
        """
        if not self.allow_list.allows(client):
            raise Forbidden(f"address {client or 'unknown'} is not allowed to use this server (--allow-ip)")
        needs_key = not public and (not web_page or self.basic_auth)
        if not needs_key:
            return None
        caller = ANONYMOUS
        if self.authenticator.enabled:
            scheme = "Basic" if web_page else "Bearer"
            try:
                found = await self.authenticator.authenticate(authorization)
            except Unauthorized as exc:
                exc.scheme = scheme
                raise
            if found is None:
                raise Unauthorized(self.authenticator.missing_credentials(), scheme=scheme)
            caller = found
        context = current_request()
        if context is not None:  # from here on, refusals count as the caller's errors
            context.caller = caller.id
            context.metered = True
        if permission is not None:
            self.authenticator.authorize(caller, permission)
        if rate_limited:
            self._charge(caller, client)
        if permission == "synthesis" and self.usage is not None:
            self.usage.check_quota(caller.id)
        return caller

    def _charge(self, caller: Caller, client: str | None) -> None:
        address = client or "unknown"
        if self.ip_limiter is not None:
            wait = self.ip_limiter.acquire(address)
            if wait > 0:
                raise RateLimited(
                    f"too many requests from {address} (limit {self.ip_limiter.limit}); "
                    f"retry in {RateLimiter.retry_after_seconds(wait)} s",
                    retry_after=wait,
                )
        if self.key_limiter is not None:
            # per caller; without authentication, per address
            anonymous = caller.kind == "anonymous"
            wait = self.key_limiter.acquire(f"ip:{address}" if anonymous else caller.id)
            if wait > 0:
                who = address if anonymous else caller.id.replace(":", " ", 1)
                raise RateLimited(
                    f"too many requests for {who} (limit {self.key_limiter.limit}); "
                    f"retry in {RateLimiter.retry_after_seconds(wait)} s",
                    retry_after=wait,
                )


async def access_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The app-wide guard: applies the app's :class:`AccessControl` to every route.

    Async on purpose: Litestar runs synchronous guards on its thread pool, for every request.
    """
    access: AccessControl = connection.app.state.access
    opt = handler.opt
    client = connection.client.host if connection.client else None
    caller = await access.check(
        client=client,
        authorization=connection.headers.get("authorization"),
        public=bool(opt.get("public")),
        web_page=bool(opt.get("web_page")),
        rate_limited=bool(opt.get("rate_limited")),
        permission=opt.get("permission"),
    )
    connection.state.caller = caller


async def multipart_only(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard of the form routes: refuse other encodings before reading the body, saying what to send."""
    media_type = connection.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType(
            f"send this form as multipart/form-data (curl -F 'text=...' -F reference=@clip.wav), "
            f"not {media_type or 'a body without Content-Type'}"
        )
