"""What ``indextts2 serve`` needs behind an API gateway: the JWT and quota flags turned into config,
and ``indextts2 serve usage`` (usage per caller, read from the server's SQLite file)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from indextts2.cli._console import out
from indextts2.errors import ConfigError, InvalidInput
from indextts2.settings import Settings

__all__ = ["caller_quotas", "jwt_config", "usage"]


def default_usage_db(settings: Settings) -> Path:
    return settings.home / "usage.sqlite3"


def jwt_config(
    *,
    issuer: str | None,
    audience: str | None,
    jwks_url: str | None,
    jwks_file: Path | None,
    secret_file: Path | None,
    algorithms: list[str] | None,
    identity_claim: str,
    scope_claim: str,
    synthesis_scope: str | None,
    voices_scope: str | None,
    admin_scope: str | None,
) -> Any:
    """The ``JwtConfig`` of the ``--jwt-*`` flags; None when none of them asks for tokens."""
    from indextts2.server.config import JwtConfig

    if not (jwks_url or jwks_file or secret_file):
        given = [
            name
            for name, value in (
                ("--jwt-issuer", issuer),
                ("--jwt-audience", audience),
                ("--jwt-synthesis-scope", synthesis_scope),
                ("--jwt-voices-scope", voices_scope),
                ("--jwt-admin-scope", admin_scope),
            )
            if value
        ]
        if given:
            raise ConfigError(
                f"{', '.join(given)} need(s) a source of signing keys: --jwt-jwks-url, --jwt-jwks-file "
                "or --jwt-secret-file"
            )
        return None
    if jwks_file is not None and not jwks_file.expanduser().is_file():
        raise ConfigError(f"--jwt-jwks-file {jwks_file} does not exist")
    secret = None
    if secret_file is not None:
        try:
            secret = secret_file.expanduser().read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read --jwt-secret-file {secret_file}: {exc.strerror}") from exc
    return JwtConfig(
        issuer=issuer,
        audience=audience,
        jwks_url=jwks_url,
        jwks_file=jwks_file.expanduser().resolve() if jwks_file else None,
        secret=secret,
        algorithms=tuple(algorithms or ()),
        identity_claim=identity_claim,
        scope_claim=scope_claim,
        synthesis_scope=synthesis_scope,
        voices_scope=voices_scope,
        admin_scope=admin_scope,
    )


def caller_quotas(values: list[str] | None) -> dict[str, float]:
    """``--caller-quota key:alice=3600`` (repeatable) -> ``{"key:alice": 3600.0}``."""
    quotas: dict[str, float] = {}
    for value in values or ():
        caller, _, seconds = value.rpartition("=")
        try:
            quotas[caller.strip()] = float(seconds)
        except ValueError:
            caller = ""
        if not caller.strip():
            raise ConfigError(
                f"--caller-quota {value!r} is not CALLER=SECONDS, e.g. key:alice=3600 or jwt:svc-42=600"
            )
    return quotas


def usage(
    since: Annotated[
        str, typer.Option(help="Start: 'now', a duration ago (24h, 7d, 2w) or ISO 8601 (2026-12-01).")
    ] = "24h",
    until: Annotated[str, typer.Option(help="End, in the same forms.")] = "now",
    caller: Annotated[
        str | None, typer.Option(help="Only this caller (key:NAME, jwt:SUBJECT, anonymous).")
    ] = None,
    usage_db: Annotated[
        Path | None, typer.Option(help="The usage file (default: INDEXTTS2_HOME/usage.sqlite3).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (as GET /v1/usage answers).")] = False,
) -> None:
    """Usage per caller over a time window: requests, errors, characters, seconds of audio.

    Reads the file a server records usage in (also while it runs); totals are by whole UTC hours.
    """
    from indextts2.server.usage import UsageStore, parse_time

    path = (usage_db or default_usage_db(Settings.from_env())).expanduser().resolve()
    now = time.time()
    try:
        start, end = parse_time(since, now=now), parse_time(until, now=now)
    except InvalidInput as exc:
        raise ConfigError(str(exc)) from None
    if start >= end:
        raise ConfigError(f"the window is empty: --since {since} must come before --until {until}")
    store = UsageStore(path, readonly=True)
    try:
        report = store.report(start, end, caller)
    finally:
        store.close()
    if as_json:
        out.print_json(json.dumps(report.to_json()))
        return
    body = report.to_json()
    table = Table(title=f"usage {body['since']} - {body['until']} ({path})")
    for column in ("caller", "requests", "errors", "characters", "audio seconds"):
        table.add_column(column, justify="left" if column == "caller" else "right")
    for row in [*report.callers, report.total] if report.callers else []:
        table.add_row(
            row.caller, str(row.requests), str(row.errors), str(row.characters), f"{row.audio_seconds:.1f}"
        )
    if not report.callers:
        out.print(f"no usage recorded between {body['since']} and {body['until']}", markup=False)
        return
    out.print(table)
