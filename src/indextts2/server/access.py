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

Browsers resend HTTP Basic credentials by themselves, and a server without keys needs none, so a
page on another site could make a visitor's browser synthesize, save or delete voices (form posts
and ``text/plain`` bodies need no CORS preflight). A request that changes something or uses the GPU
(any method but GET, HEAD and OPTIONS) is therefore refused (403) when a browser says it comes from
another site (``Sec-Fetch-Site: cross-site`` / ``same-site``, or an ``Origin`` that is neither the
server's own nor a ``--cors-origin``), unless it carries a Bearer credential (an API key or a JWT):
a browser sends one only from a page that set it itself, after a preflight that CORS allows.
Programs send neither header.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from indextts2.server.auth import is_bearer
from indextts2.server.config import ServerConfig
from indextts2.server.context import current_request
from indextts2.server.errors import Forbidden, RateLimited, Unauthorized, UnsupportedMediaType
from indextts2.server.identity import ANONYMOUS, Authenticator, Caller, Permission
from indextts2.server.limits import IpAllowList, RateLimiter
from indextts2.server.usage import UsageMeter

__all__ = ["AccessControl", "access_guard", "multipart_only"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _origin_host(origin: str) -> str | None:
    """``host[:port]`` of an Origin header, lower case, without the scheme's default port."""
    try:
        parts = urlsplit(origin.strip().lower())
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None  # "null" (a sandboxed or file: page), or not an origin at all
    return _without_port(parts.netloc, (_DEFAULT_PORTS[parts.scheme],))


def _without_port(netloc: str, ports: tuple[str, ...]) -> str:
    """``netloc`` without its port when the port is one of ``ports``."""
    host, colon, port = netloc.rpartition(":")
    return host if colon and "]" not in port and port in ports else netloc


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
        self.cors_any = "*" in config.cors_origins
        self.cors_hosts = {host for o in config.cors_origins if (host := _origin_host(o))}

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

    def check_site(
        self,
        *,
        method: str,
        authorization: str | None,
        origin: str | None,
        fetch_site: str | None,
        host: str | None,
    ) -> None:
        """Refuse a browser's cross-site request that changes something or uses the GPU.

        Raises:
            Forbidden: the request comes from a page on another site that ``--cors-origin`` does not
                allow, and carries no Bearer credential (API key or JWT).
        """
        if method.upper() in _SAFE_METHODS:
            return
        if is_bearer(authorization):
            return  # an API key or a JWT: set by the page itself, past a CORS preflight
        fetch_site = (fetch_site or "").strip().lower()
        if fetch_site in ("same-origin", "none"):
            return  # the browser itself vouches for it (a proxy may have rewritten Host)
        if origin is None:
            if fetch_site not in ("cross-site", "same-site"):
                return  # not from a browser page on another site: a program, or an old browser
        else:
            origin_host = _origin_host(origin)
            if self.cors_any or origin_host in self.cors_hosts:
                return
            if origin_host is not None and host and origin_host == _without_port(host.lower(), ("80", "443")):
                return
        raise Forbidden(
            f"{method} from a page on {origin or 'another site'} is refused: this server takes such "
            "requests from its own web page only. Add that origin with --cors-origin, or send the API "
            "key or token as 'Authorization: Bearer <key or token>'"
        )

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
    headers = connection.headers
    access.check_site(
        method=str(connection.scope.get("method", "GET")),
        authorization=headers.get("authorization"),
        origin=headers.get("origin"),
        fetch_site=headers.get("sec-fetch-site"),
        host=headers.get("host"),
    )
    caller = await access.check(
        client=client,
        authorization=headers.get("authorization"),
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
