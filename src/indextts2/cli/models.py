"""``indextts2 models``: download, list, verify, locate, import, export and remove model checkpoints."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Annotated, ClassVar, NoReturn

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table

from indextts2.cli._console import err, out
from indextts2.errors import InvalidInput, ModelFilesMissing
from indextts2.settings import Settings
from indextts2.store import progress as store_progress
from indextts2.store.manifest import DEFAULT_MODEL_ID

EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

HELP = """Get the IndexTTS2 weights onto this machine, check them, and carry them to machines without network.

The default model, IndexTeam/IndexTTS-2.5, is four hub repos (it and the w2v-BERT, CAMPPlus and BigVGAN
models it runs with); IndexTeam/IndexTTS-2 (name it on any command) adds MaskGCT's codec. They are kept
once under the cache root: INDEXTTS2_HOME or --cache-dir, else the user cache directory. Downloads
resume after Ctrl-C and are checked against the hub's hashes.
Keep the cache: downloading again takes hours.

[bold]Examples[/bold]

  indextts2 models download --accept-license      first time: about 5 GB from huggingface.co
  HF_ENDPOINT=https://hf-mirror.com indextts2 models download      the same through a mirror
  indextts2 models list                           what is cached: complete, or which files are missing
  indextts2 models verify                         every file against its recorded SHA-256
  indextts2 models path                           the model directory, for scripts

[bold]An air-gapped server[/bold]

  On a machine with network:
    indextts2 models download --accept-license
    indextts2 models export indextts2-model.tar
  Carry indextts2-model.tar over (a disk, scp through a bastion...), then on the server:
    indextts2 models import indextts2-model.tar   copied into the cache and verified
    indextts2 models verify
    export INDEXTTS2_OFFLINE=1                     never try the network from now on

  A checkpoints directory (or a tar of one) in the official layout imports the same way.
"""

app = typer.Typer(
    name="models",
    help=HELP,
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

ModelArg = Annotated[str, typer.Argument(help="Model id.", show_default=True)]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", help="Branch, tag or commit of the model's repo (default: main).")
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Cache root (default: INDEXTTS2_HOME, else the user cache dir)."),
]


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n_bytes) < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"  # pragma: no cover - the loop returns at GiB


class StoreProgress:
    """Draws a store operation on stderr: one bar per file while it runs, and one for the total."""

    VERBS: ClassVar[dict[str, str]] = {
        "download": "Downloading",
        "verify": "Verifying",
        "import": "Importing",
        "export": "Exporting",
    }

    def __init__(self) -> None:
        self._bars = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self._sizes: dict[str, int] = {}
        self._done: dict[str, int] = {}
        self._tasks: dict[str, TaskID] = {}
        self._total: TaskID | None = None
        self._started = False

    def __enter__(self) -> StoreProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._started:
            self._bars.stop()

    def start(self, action: str, items: Sequence[store_progress.ProgressItem]) -> None:
        self._sizes = {item.name: item.size for item in items}
        self._done = {item.name: item.done for item in items}
        if not items:
            return
        if not self._started:
            self._bars.start()
            self._started = True
        verb = self.VERBS.get(action, action)
        self._total = self._bars.add_task(
            f"[bold]{verb} {len(items)} file(s)[/]",
            total=sum(self._sizes.values()),
            completed=sum(self._done.values()),
        )

    def _task(self, name: str) -> TaskID:
        if name not in self._tasks:
            self._tasks[name] = self._bars.add_task(
                f"  {escape(name)}", total=self._sizes.get(name), completed=self._done.get(name, 0)
            )
        return self._tasks[name]

    def advance(self, name: str, n_bytes: int) -> None:
        self._bars.advance(self._task(name), n_bytes)
        if self._total is not None:
            self._bars.advance(self._total, n_bytes)

    def finish(self, name: str) -> None:
        task = self._task(name)
        self._bars.update(task, completed=self._sizes.get(name, 0))
        self._bars.remove_task(task)
        self._tasks.pop(name, None)


def _report_missing(exc: ModelFilesMissing) -> NoReturn:
    """Name every missing file, one a line (the error's own message stops at ten)."""
    hint = exc.message.split("; ", 1)[1] if "; " in exc.message else ""
    err.print(
        f"[bold red]error:[/] {escape(exc.model)} is missing {len(exc.missing)} file(s):", highlight=False
    )
    for name in exc.missing:
        err.print(f"  {escape(name)}", highlight=False, soft_wrap=True)
    if hint:
        err.print(escape(hint), highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_USER_ERROR)


def _settings(cache_dir: Path | None, **overrides: object) -> Settings:
    return Settings.from_env().with_overrides(home=cache_dir, **overrides)


def ensure_license(model: str, settings: Settings, accept_flag: bool) -> None:
    """Accept the licence from the flag, the environment or an interactive question; else leave it to the
    library, which refuses with a message saying where the licence is."""
    from indextts2.store import accept_license, license_status

    status = license_status(model, cache_dir=settings.home)
    if status.accepted:
        return
    if accept_flag:
        accept_license(model, cache_dir=settings.home, accepted_by="--accept-license")
    elif settings.accept_license:
        accept_license(model, cache_dir=settings.home, accepted_by="INDEXTTS2_ACCEPT_LICENSE")
    elif _stdin_is_tty():
        err.print(
            f"The {status.model_id} weights come under the {status.license_name}:\n  {status.license_url}\n"
            "Read it before you go on."
        )
        if typer.confirm("Do you accept it?", default=False, err=True):
            accept_license(model, cache_dir=settings.home, accepted_by="interactive prompt")


@app.command()
def download(
    model: ModelArg = DEFAULT_MODEL_ID,
    revision: RevisionOpt = None,
    cache_dir: CacheDirOpt = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Hub or mirror to download from (default: HF_ENDPOINT).")
    ] = None,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Use the cache only and name every missing file (HF_HUB_OFFLINE)."),
    ] = False,
    accept_license: Annotated[
        bool,
        typer.Option("--accept-license", help="Accept the weights' licence (INDEXTTS2_ACCEPT_LICENSE=1)."),
    ] = False,
) -> None:
    """Download a model into the cache (only what is missing); print its directory."""
    from indextts2.store import download_model

    settings = _settings(cache_dir, offline=offline or None, hub_endpoint=endpoint)
    if not settings.offline:
        ensure_license(model, settings, accept_license)
    try:
        with StoreProgress() as progress:
            files = download_model(
                model,
                revision=revision,
                cache_dir=settings.home,
                offline=settings.offline,
                accept_license=False,
                endpoint=settings.hub_endpoint,
                progress=progress,
            )
    except KeyboardInterrupt:
        err.print("interrupted: what arrived is kept; run the same command again to resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ModelFilesMissing as exc:
        _report_missing(exc)
    err.print(f"{files.model_id} (commit {(files.revision or '')[:12]}) is complete")
    typer.echo(str(files.root))


@app.command(name="list")
def list_(cache_dir: CacheDirOpt = None) -> None:
    """What is cached: each model revision, its size, and complete or which files are missing."""
    from indextts2.store import list_models

    report = list_models(cache_dir=_settings(cache_dir).home)
    if not report.revisions:
        err.print(f"no model in {report.root}; get one with `indextts2 models download` or `models import`")
    else:
        table = Table(title=f"models in {report.root}", title_justify="left")
        for column in ("model", "revision", "commit", "size", "status"):
            table.add_column(column, overflow="fold")
        for item in report.revisions:
            status = (
                "[green]complete[/]" if item.complete else f"[yellow]{len(item.missing)} file(s) missing[/]"
            )
            table.add_row(
                item.model_id, ", ".join(item.refs) or "-", item.commit[:12], _size(item.size), status
            )
        out.print(table)
        for item in report.revisions:
            if item.missing:
                out.print(f"{item.model_id} {item.commit[:12]} is missing:", highlight=False)
                for name in item.missing:
                    out.print(f"  {escape(name)}", highlight=False, soft_wrap=True)
    if report.partial_bytes:
        err.print(f"{_size(report.partial_bytes)} of interrupted downloads wait to be resumed")


@app.command()
def verify(
    model: ModelArg = DEFAULT_MODEL_ID,
    revision: RevisionOpt = None,
    cache_dir: CacheDirOpt = None,
    fix: Annotated[
        bool,
        typer.Option("--fix", help="Delete damaged files, so that `models download` fetches them again."),
    ] = False,
) -> None:
    """Check every cached file against the size and SHA-256 recorded when it came in (exit 1 on a problem)."""
    from indextts2.store import verify_model

    with StoreProgress() as progress:
        report = verify_model(
            model, revision=revision, cache_dir=_settings(cache_dir).home, repair=fix, progress=progress
        )
    if report.ok:
        out.print(f"{report.model_id}: all {len(report.checks)} files intact")
        return
    table = Table(title=f"{report.model_id}: {len(report.problems)} problem(s)", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("problem")
    for check in report.problems:
        table.add_row(escape(check.name), check.status)
    out.print(table)
    if all(check.status == "missing" for check in report.problems):
        err.print("get them with `indextts2 models download` (or `indextts2 models import`)")
    elif report.removed:
        err.print(
            f"removed {len(report.removed)} damaged file(s); "
            "run `indextts2 models download` to fetch them again"
        )
    else:
        err.print(
            "run `indextts2 models verify --fix` then `indextts2 models download` (or import the model again)"
        )
    raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def path(
    model: Annotated[str, typer.Argument(help="Model id or a local model directory.")] = DEFAULT_MODEL_ID,
    revision: RevisionOpt = None,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Print the model's directory (official checkpoints layout), from the cache only: for scripts."""
    from indextts2.store import resolve_model

    try:
        files = resolve_model(model, revision=revision, cache_dir=_settings(cache_dir).home, offline=True)
    except ModelFilesMissing as exc:
        _report_missing(exc)
    typer.echo(str(files.root))


@app.command(name="import")
def import_(
    source: Annotated[Path, typer.Argument(help="A checkpoints directory, or a .tar / .tar.gz of one.")],
    model: Annotated[
        str | None,
        typer.Option("--model", help="Which model it must be (default: recognised by its files)."),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option("--revision", help="Name to file it under (default: the archive's, or main)."),
    ] = None,
    link: Annotated[
        bool,
        typer.Option("--link", help="Hard-link files of a directory instead of copying (same disk only)."),
    ] = False,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Copy a model from a directory or archive into the cache, hashing every file; print its directory."""
    from indextts2.store import import_model

    with StoreProgress() as progress:
        files = import_model(
            source,
            model_id=model,
            revision=revision,
            cache_dir=_settings(cache_dir).home,
            link=link,
            progress=progress,
        )
    err.print(f"imported {files.model_id} (commit {(files.revision or '')[:12]})")
    typer.echo(str(files.root))


@app.command()
def export(
    destination: Annotated[Path, typer.Argument(help="The archive to write: .tar, .tar.gz or .tgz.")],
    model: Annotated[str, typer.Option("--model", help="Model id.")] = DEFAULT_MODEL_ID,
    revision: RevisionOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing archive.")] = False,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Write a cached model, verified file by file, to an archive for `models import` on another machine."""
    from indextts2.store import export_model

    with StoreProgress() as progress:
        written = export_model(
            destination,
            model_id=model,
            revision=revision,
            cache_dir=_settings(cache_dir).home,
            overwrite=force,
            progress=progress,
        )
    err.print(f"wrote {written} ({_size(written.stat().st_size)})")
    typer.echo(str(written))


@app.command()
def rm(
    model: Annotated[str | None, typer.Argument(help="Model id (omit with --all).")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Remove only this revision.")] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Remove every model (the licence stays accepted).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be removed; remove nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Remove a model (or one revision, or everything) from the cache, and say how much that frees."""
    from indextts2.store import plan_removal, remove

    if model is None and not everything:
        raise InvalidInput("name a model to remove, or pass --all")
    if model is not None and everything:
        raise InvalidInput("give either a model or --all, not both")
    home = _settings(cache_dir).home
    plan = plan_removal(model, revision=revision, everything=everything, cache_dir=home)
    if plan.empty:
        err.print(f"nothing of {plan.target} in {plan.root}")
        return
    err.print(
        f"{plan.target} in {plan.root}: {len(plan.records)} commit record(s), {len(plan.refs)} ref(s), "
        f"{len(plan.views)} model view(s), {len(plan.blobs)} file(s), "
        f"{len(plan.partials)} interrupted download(s)",
        highlight=False,
        soft_wrap=True,
    )
    if dry_run:
        out.print(f"would free {_size(plan.freed_bytes)} (dry run: nothing removed)")
        return
    if not yes:
        if not _stdin_is_tty():
            raise InvalidInput(
                "refusing to remove without --yes (no terminal to ask); use --dry-run to look first"
            )
        if not typer.confirm(
            f"Remove {plan.target} and free {_size(plan.freed_bytes)}?", default=False, err=True
        ):
            err.print("nothing removed")
            raise typer.Exit(EXIT_CHECK_FAILED)
    done = remove(plan, cache_dir=home)
    out.print(f"freed {_size(done.freed_bytes)}")
