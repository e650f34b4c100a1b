"""The root Typer app, its error handling and logging setup."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from typer.core import TyperGroup

from indextts2.__about__ import __version__
from indextts2.cli import bench as bench_command
from indextts2.cli import doctor, models, say, serve, voice
from indextts2.cli import text as text_command
from indextts2.cli._console import err
from indextts2.cli._usage import UsageError, is_help_request, usage_message
from indextts2.errors import IndexTTS2Error
from indextts2.settings import Settings

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class _ErrorMappingGroup(TyperGroup):
    """Turns every usage error and every IndexTTS2Error into one readable line and exit code 2.

    Usage errors are click's (an unknown option or command, a missing argument, a bad value); they
    are raised while the command line is parsed, by this group (its own options) or inside
    :meth:`invoke` (a subcommand's). With INDEXTTS2_DEBUG=1 an IndexTTS2Error propagates, so the full
    traceback is shown.
    """

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except UsageError as exc:
            _usage_error(exc, info_name or "indextts2")

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            subcommand = ctx.invoked_subcommand
            _usage_error(exc, f"{ctx.command_path} {subcommand}" if subcommand else ctx.command_path)
        except IndexTTS2Error as exc:
            if _debug_enabled():
                raise
            _error_line(str(exc))
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None


def _error_line(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_USER_ERROR)


def _usage_error(exc: Exception, command_path: str) -> NoReturn:
    """One line for a command line click could not parse; a group called bare still shows its help."""
    if is_help_request(exc):
        raise exc
    _error_line(usage_message(exc, command_path))


def _debug_enabled() -> bool:
    try:
        return Settings.from_env().debug
    except IndexTTS2Error:
        return False


app = typer.Typer(
    name="indextts2",
    cls=_ErrorMappingGroup,
    help=(
        "IndexTTS2 text-to-speech: synthesize locally, manage models, or serve one GPU to many clients.\n\n"
        "Settings come from flags, then INDEXTTS2_* environment variables, then defaults."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"indextts2 {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output (-v info, -vv debug).")
    ] = 0,
) -> None:
    """IndexTTS2 text-to-speech."""
    settings = Settings.from_env()
    level = {0: settings.log_level, 1: "INFO"}.get(verbose, "DEBUG")
    _configure_logging(level)


def _configure_logging(level: str) -> None:
    from rich.logging import RichHandler

    root_logger = logging.getLogger()
    if any(isinstance(h, RichHandler) for h in root_logger.handlers):
        root_logger.setLevel(level)
        return
    handler = RichHandler(console=err, show_path=False, rich_tracebacks=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root_logger.addHandler(handler)
    root_logger.setLevel(level)


app.command(name="doctor")(doctor.doctor)
app.add_typer(models.app, name="models")
app.add_typer(serve.app, name="serve")
app.command(name="text")(text_command.text)
app.command(name="say")(say.say)
app.add_typer(voice.app, name="voice")
app.command(name="bench")(bench_command.bench)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="indextts2")
    sys.exit(0)
