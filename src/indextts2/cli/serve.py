"""``indextts2 serve``: one GPU, many clients. Also ``serve keys add/list/rm`` for the API keys file."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from indextts2.cli._console import err, out
from indextts2.cli.serve_gateway import caller_quotas, default_usage_db, jwt_config
from indextts2.cli.serve_gateway import usage as usage_command
from indextts2.errors import ConfigError
from indextts2.settings import Settings

__all__ = ["app"]

app = typer.Typer(
    name="serve",
    help="Serve speech over HTTP: a web page, a REST API and an OpenAI-compatible API.",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode="rich",
)
keys_app = typer.Typer(
    name="keys", help="Manage the API keys file (only hashes are stored).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.command("usage")(usage_command)

# flags that shape one run, not the service: left out of --print-systemd-unit's ExecStart
_RUN_ONLY_FLAGS = {"--print-systemd-unit", "--replace"}


def _default_keys_file(settings: Settings) -> Path:
    return settings.home / "api-keys"


@app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 7860,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps. Default: INDEXTTS2_DEVICE, else auto.",
        ),
    ] = None,
    devices: Annotated[
        str | None,
        typer.Option(
            "--devices",
            help="One engine per device, each with its own model copy, behind a router: "
            "cuda:0,cuda:1 or all (every GPU); cpu,cpu tries two engines on the CPU.",
        ),
    ] = None,
    gpu: Annotated[bool, typer.Option("--gpu", help="Same as --device cuda.")] = False,
    cpu: Annotated[bool, typer.Option("--cpu", help="Same as --device cpu.")] = False,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            metavar="NAME[@DEVICES]",
            help="Model id, directory or dummy:tiny (default: INDEXTTS2_MODEL). Repeat it to serve several "
            "models, the first the default (a request's 'model' field chooses); NAME@cuda:1 or "
            "NAME@cuda:0,cuda:1 runs one on its own devices, else on --device / --devices.",
        ),
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option("--api-key", help="An accepted API key (repeatable; prefer a keys file)."),
    ] = None,
    api_keys_file: Annotated[
        Path | None, typer.Option(help="Keys file from 'indextts2 serve keys add' (re-read when it changes).")
    ] = None,
    basic_auth: Annotated[
        bool, typer.Option(help="Ask browsers for HTTP Basic on the web page (password: an API key).")
    ] = False,
    insecure: Annotated[bool, typer.Option(help="Allow a non-loopback address without API keys.")] = False,
    max_queue: Annotated[int, typer.Option(help="Requests that may wait for the GPU; more get 429.")] = 16,
    concurrency: Annotated[
        int, typer.Option(help="Requests served at once; the engine batches their GPU work.")
    ] = 32,
    low_latency_streaming: Annotated[
        bool,
        typer.Option(
            help="Streams start with a short segment rendered in chunks (sooner, not the same audio)."
        ),
    ] = False,
    max_text_chars: Annotated[int, typer.Option(help="Longest text accepted.")] = 2000,
    default_options: Annotated[
        str | None,
        typer.Option(
            help="Synthesis options for every request that does not set them, as JSON, "
            'e.g. \'{"diffusion_steps": 15, "max_codes": 900}\' (see /v1/info for the names).'
        ),
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body (uploads), MiB.")] = 20.0,
    max_reference_seconds: Annotated[float, typer.Option(help="Longest reference clip, seconds.")] = 60.0,
    timeout: Annotated[float, typer.Option(help="Seconds a request may take; then 504.")] = 300.0,
    rate_limit: Annotated[
        str | None, typer.Option(help="Per API key (or per address without keys), e.g. 60/minute.")
    ] = None,
    ip_rate_limit: Annotated[str | None, typer.Option(help="Per client address, e.g. 120/minute.")] = None,
    allow_ip: Annotated[
        list[str] | None, typer.Option("--allow-ip", help="CIDR allowed to connect (repeatable).")
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Origin allowed by CORS (repeatable; '*' = any)."),
    ] = None,
    voices_dir: Annotated[
        Path | None, typer.Option(help="Where saved voices live (default: INDEXTTS2_HOME/voices).")
    ] = None,
    sample_voice: Annotated[
        bool,
        typer.Option(
            help="Offer the sample voice shipped with indextts2 (a synthetic clip) as the voice 'sample'."
        ),
    ] = True,
    pidfile: Annotated[
        Path | None, typer.Option(help="Pidfile (default: INDEXTTS2_HOME/run/serve-PORT.pid).")
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Stop the server recorded in the pidfile and take over its port.")
    ] = False,
    grace_period: Annotated[float, typer.Option(help="Seconds in-flight work gets after SIGTERM.")] = 30.0,
    forwarded_allow_ips: Annotated[
        str | None, typer.Option(help="Proxies trusted for X-Forwarded-For (default 127.0.0.1).")
    ] = None,
    jwt_issuer: Annotated[
        str | None,
        typer.Option(help="Accept JWTs from this issuer (iss), e.g. https://id.example.org/realms/x."),
    ] = None,
    jwt_audience: Annotated[str | None, typer.Option(help="The audience (aud) tokens must name.")] = None,
    jwt_jwks_url: Annotated[
        str | None, typer.Option(help="The issuer's signing keys (jwks_uri of its OpenID configuration).")
    ] = None,
    jwt_jwks_file: Annotated[Path | None, typer.Option(help="The signing keys as a JWKS file.")] = None,
    jwt_secret_file: Annotated[
        Path | None, typer.Option(help="A file holding an HS256 secret (32+ bytes), instead of a JWKS.")
    ] = None,
    jwt_algorithm: Annotated[
        list[str] | None,
        typer.Option(
            "--jwt-algorithm", help="Accepted algorithm (repeatable; default RS256 + ES256 / HS256)."
        ),
    ] = None,
    jwt_identity_claim: Annotated[
        str, typer.Option(help="The claim naming the caller (sub, client_id, azp, email...).")
    ] = "sub",
    jwt_scope_claim: Annotated[
        str, typer.Option(help="The claim holding scopes or roles (scope, scp, realm_access.roles...).")
    ] = "scope",
    jwt_synthesis_scope: Annotated[
        str | None, typer.Option(help="Scope a token needs to synthesize (default: none needed).")
    ] = None,
    jwt_voices_scope: Annotated[
        str | None, typer.Option(help="Scope a token needs to save or delete voices (default: none needed).")
    ] = None,
    jwt_admin_scope: Annotated[
        str | None, typer.Option(help="Scope that lets a token read every caller's usage.")
    ] = None,
    admin_key: Annotated[
        list[str] | None,
        typer.Option(
            "--admin-key", help="Name of an API key that may read every caller's usage (repeatable)."
        ),
    ] = None,
    usage_db: Annotated[
        Path | None, typer.Option(help="Usage per caller, SQLite (default: INDEXTTS2_HOME/usage.sqlite3).")
    ] = None,
    daily_audio_quota: Annotated[
        float | None, typer.Option(help="Seconds of audio each caller may have per UTC day; then 429.")
    ] = None,
    caller_quota: Annotated[
        list[str] | None,
        typer.Option(
            "--caller-quota", help="CALLER=SECONDS per UTC day for one caller, e.g. key:alice=3600."
        ),
    ] = None,
    metrics_callers: Annotated[
        int, typer.Option(help="Callers labelled in /metrics (the first seen); later ones count as 'other'.")
    ] = 20,
    request_id_header: Annotated[
        str, typer.Option(help="Header the gateway's request id comes in (and goes back in).")
    ] = "X-Request-ID",
    log_format: Annotated[
        str, typer.Option(help="Log lines as 'text' or 'json' (one object per line, for Loki/ELK).")
    ] = "text",
    otel: Annotated[
        bool,
        typer.Option("--otel", help="OpenTelemetry spans over OTLP/HTTP (OTEL_* variables; otel extra)."),
    ] = False,
    print_systemd_unit: Annotated[
        bool, typer.Option(help="Print a systemd unit running this command, and exit.")
    ] = False,
) -> None:
    """Serve speech over HTTP: a web page, a REST API and an OpenAI-compatible API.

    Listens on 127.0.0.1:7860 by default. Any other address needs API keys (--api-keys-file), or
    --insecure on a trusted network. Several models in one server, each on its own GPU:
    --model IndexTeam/IndexTTS-2.5@cuda:0 --model IndexTeam/IndexTTS-2@cuda:1 (requests choose with
    their 'model' field; the first is the default).
    """
    if ctx.invoked_subcommand is not None:
        return
    from indextts2.server.config import RateLimit, ServerConfig
    from indextts2.server.process import render_systemd_unit

    aliases = [flag for flag, given in (("--gpu", gpu), ("--cpu", cpu)) if given]
    chosen = [
        *aliases,
        *([f"--device {device}"] if device is not None else []),
        *([f"--devices {devices}"] if devices is not None else []),
    ]
    if len(chosen) > 1:
        raise ConfigError(f"choose one device, not {' and '.join(chosen)}")
    from indextts2.pool import parse_devices

    device_list = tuple(parse_devices(devices)) if devices is not None and not print_systemd_unit else ()
    alias = "cuda" if gpu else "cpu" if cpu else None
    from indextts2.server.config import ModelPlacement

    placements = tuple(ModelPlacement.parse(m) for m in model or ()) if not print_systemd_unit else ()
    first = placements[0].name if placements else (model[0] if model else None)
    settings = Settings.from_env().with_overrides(model=first, device=device or alias)
    from indextts2.server.logs import LOG_FORMATS

    if log_format not in LOG_FORMATS:
        raise ConfigError(f"--log-format {log_format!r}: use one of {', '.join(LOG_FORMATS)}")
    config = ServerConfig(
        host=host,
        port=port,
        model=settings.model,
        models=placements if len(placements) > 1 or any(p.devices for p in placements) else (),
        device=settings.device,
        devices=device_list,
        api_keys=tuple(api_key or ()),
        api_keys_file=api_keys_file.expanduser().resolve() if api_keys_file else None,
        basic_auth=basic_auth,
        insecure=insecure,
        max_queue=max_queue,
        gpu_workers=concurrency,
        low_latency_streaming=low_latency_streaming,
        request_timeout=timeout,
        max_text_chars=max_text_chars,
        default_options=_parse_default_options(default_options),
        max_upload_mb=max_upload_mb,
        max_reference_seconds=max_reference_seconds,
        rate_limit=RateLimit.parse(rate_limit) if rate_limit else None,
        ip_rate_limit=RateLimit.parse(ip_rate_limit) if ip_rate_limit else None,
        allow_ips=tuple(allow_ip or ()),
        cors_origins=tuple(cors_origin or ()),
        voices_dir=(voices_dir or settings.home / "voices").expanduser().resolve(),
        sample_voice=sample_voice,
        grace_period=grace_period,
        pidfile=(pidfile or settings.home / "run" / f"serve-{port}.pid").expanduser().resolve(),
        jwt=jwt_config(
            issuer=jwt_issuer,
            audience=jwt_audience,
            jwks_url=jwt_jwks_url,
            jwks_file=jwt_jwks_file,
            secret_file=jwt_secret_file,
            algorithms=jwt_algorithm,
            identity_claim=jwt_identity_claim,
            scope_claim=jwt_scope_claim,
            synthesis_scope=jwt_synthesis_scope,
            voices_scope=jwt_voices_scope,
            admin_scope=jwt_admin_scope,
        ),
        admin_keys=tuple(admin_key or ()),
        usage_db=(usage_db or default_usage_db(settings)).expanduser().resolve(),
        daily_audio_quota=daily_audio_quota,
        caller_quotas=caller_quotas(caller_quota),
        metrics_callers=metrics_callers,
        request_id_header=request_id_header,
        tracing=otel,
    )
    if basic_auth and not config.needs_key:
        raise ConfigError("--basic-auth checks API keys: give --api-keys-file (or --api-key) too")
    config.check_exposure()
    if not print_systemd_unit:  # a unit may be written for another machine
        from indextts2.synthesizer import resolve_device

        for placement in config.placements:  # an unknown device, or CUDA where there is none:
            for name in placement.devices:  # one line now
                resolve_device(name)
    if print_systemd_unit:
        serve_args = _serve_args_for_unit()
        writable = [settings.home]
        if config.voices_dir is not None and settings.home not in config.voices_dir.parents:
            writable.append(config.voices_dir)
        if config.usage_db is not None and settings.home not in config.usage_db.parents:
            writable.append(config.usage_db.parent)
        out.print(
            render_systemd_unit(serve_args, home=settings.home, writable=writable, grace_period=grace_period),
            end="",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    from indextts2.server import runner

    _server_logging(log_format)
    if otel:
        from indextts2.server.telemetry import configure_otlp_export

        configure_otlp_export()
    runner.serve(config, replace=replace, forwarded_allow_ips=forwarded_allow_ips)


def _serve_args_for_unit() -> list[str]:
    """The arguments this serve command was given, without the run-only flags."""
    argv = sys.argv[1:]
    if "serve" in argv:
        argv = argv[argv.index("serve") + 1 :]
    return [arg for arg in argv if arg.split("=", 1)[0] not in _RUN_ONLY_FLAGS]


def _server_logging(log_format: str) -> None:
    """A server tells what it does: INFO unless the user asked for another level; each line with its
    request id. Text: Rich on a terminal, plain lines with timestamps elsewhere (journald, docker
    logs); JSON: one object per line (``server/logs.py``)."""
    root = logging.getLogger()
    if root.level > logging.INFO and Settings.from_env().log_level == "WARNING":
        root.setLevel(logging.INFO)
    from indextts2.server.logs import configure_server_logging

    configure_server_logging(log_format, stream=sys.stderr)  # type: ignore[arg-type]  # checked in serve


# ---- keys


KeysFileOption = Annotated[
    Path | None, typer.Option("--keys-file", help="The keys file (default: INDEXTTS2_HOME/api-keys).")
]


def _keys_path(keys_file: Path | None) -> Path:
    return (keys_file or _default_keys_file(Settings.from_env())).expanduser().resolve()


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="A name for the key (who or what uses it).")],
    keys_file: KeysFileOption = None,
) -> None:
    """Create a key: prints it once (stdout); only its hash is stored."""
    from indextts2.server.auth import add_key

    path = _keys_path(keys_file)
    _, key = add_key(path, name)
    out.print(key, markup=False, highlight=False)
    err.print(
        f"added key {name!r} to {path}; it is shown only now. Serve with: "
        f"indextts2 serve --api-keys-file {path}",
        markup=False,
        highlight=False,
    )


@keys_app.command("list")
def keys_list(keys_file: KeysFileOption = None) -> None:
    """List the keys' names and when they were made (never the keys)."""
    from indextts2.server.auth import read_keys_file

    path = _keys_path(keys_file)
    records = read_keys_file(path)
    table = Table(title=str(path))
    table.add_column("name")
    table.add_column("created")
    table.add_column("hash")
    for record in records:
        table.add_row(record.name, record.created, record.digest[:19] + "…")
    out.print(table)


@keys_app.command("rm")
def keys_rm(
    name: Annotated[str, typer.Argument(help="The key to remove.")],
    keys_file: KeysFileOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Say what would be removed, remove nothing.")] = False,
) -> None:
    """Remove a key; a running server refuses it from its next request on."""
    from indextts2.server.auth import read_keys_file, remove_key

    path = _keys_path(keys_file)
    if not any(r.name == name for r in read_keys_file(path)):
        raise ConfigError(f"there is no key named {name!r} in {path}")
    if dry_run:
        out.print(f"would remove key {name!r} from {path}", markup=False)
        return
    if not yes and not typer.confirm(f"remove key {name!r} from {path}?", err=True):
        raise typer.Exit(1)
    remove_key(path, name)
    err.print(f"removed key {name!r}", markup=False)


def _parse_default_options(raw: str | None) -> dict[str, Any]:
    """``--default-options`` JSON -> a dict (ServerConfig checks the names and values)."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f'--default-options is not valid JSON ({exc.msg}); e.g. {{"diffusion_steps": 15}}'
        ) from exc
    if not isinstance(value, dict):
        raise ConfigError('--default-options must be a JSON object, e.g. {"diffusion_steps": 15}')
    return value
