"""``GET /v1/usage``: requests, errors, characters and audio seconds per caller over a time window."""

from __future__ import annotations

import functools
import time
from typing import Any

import anyio
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from indextts2.errors import InvalidInput
from indextts2.server.errors import Forbidden
from indextts2.server.identity import ANONYMOUS, Caller
from indextts2.server.openapi import documented
from indextts2.server.usage import DAY, UsageMeter, parse_time

__all__ = ["HANDLERS"]

Usage = NamedDependency[UsageMeter]

_TIME_HELP = "'now', a duration ago (90m, 24h, 7d, 2w) or ISO 8601 (2026-12-01T08:00:00Z); whole UTC hours"


@get(
    "/v1/usage",
    operation_class=documented(400, 401, 403, 503),
    tags=["operations"],
    summary="Usage per caller over a time window",
    description=(
        "Totals per caller (`key:NAME`, `jwt:SUBJECT`) of requests, errors, characters of text and "
        "seconds of audio, by whole UTC hours, kept across restarts. An admin key (`--admin-key`) or "
        "token (`--jwt-admin-scope`) sees every caller; anyone else sees only themselves. With daily "
        "quotas, each row also says the caller's quota and what it has used today."
    ),
)
async def usage_report(
    request: Request[Any, Any, Any],
    usage: Usage,
    since: str = Parameter(default="24h", description=f"Start of the window: {_TIME_HELP}."),
    until: str = Parameter(default="now", description=f"End of the window: {_TIME_HELP}."),
    caller: str | None = Parameter(default=None, description="Only this caller (admins)."),
) -> dict[str, Any]:
    me: Caller = getattr(request.state, "caller", None) or ANONYMOUS
    if not me.admin:
        if caller is not None and caller != me.id:
            raise Forbidden(
                f"only an admin key may read the usage of other callers; you are {me.id} "
                "(leave out 'caller' to see your own)"
            )
        caller = me.id
    now = time.time()
    start, end = parse_time(since, now=now), parse_time(until, now=now)
    if start >= end:
        raise InvalidInput(f"the window is empty: since ({since}) must come before until ({until})")
    report = await anyio.to_thread.run_sync(functools.partial(usage.report, start, end, caller))
    body = report.to_json()
    body["caller"] = me.id
    body["admin"] = me.admin
    if usage.quotas:
        renews = (int(now // DAY) + 1) * DAY
        for row in body["callers"]:
            row["daily_audio_quota"] = usage.quota_of(row["caller"])
            row["audio_seconds_today"] = round(usage.used_today(row["caller"]), 3)
        body["quota_renews"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(renews))
    return body


HANDLERS = [usage_report]
