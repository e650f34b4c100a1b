"""``indextts2 voice``: encode a speaker's clip once into a voice file, and look inside one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from indextts2.cli._console import err, out
from indextts2.cli._synthesis import (
    AcceptLicenseOpt,
    CacheDirOpt,
    DeviceOpt,
    DtypeOpt,
    ModelFlags,
    ModelOpt,
    OfflineOpt,
    RevisionOpt,
    check_audio_file,
)
from indextts2.errors import InvalidInput

__all__ = ["app"]

VOICE_SUFFIX = ".safetensors"
SERVER_PANEL = "Save on a server instead"

app = typer.Typer(
    name="voice",
    help="Voices: a speaker's clip encoded once (a .safetensors file) and used by `indextts2 say --voice`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _output_path(output: Path | None, clip: Path) -> Path:
    """``-o`` (replaced if it exists) or ``<clip name>.safetensors`` here (never replaced)."""
    if output is None:
        path = Path(clip.stem + VOICE_SUFFIX)
        if path.exists():
            raise InvalidInput(f"{path} exists and is only replaced when you name it: pass -o {path}")
    else:
        path = output.expanduser()
    if path.is_dir():
        raise InvalidInput(f"-o {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise InvalidInput(f"cannot write {path}: the directory {path.parent} does not exist")
    return path


@app.command()
def create(
    clip: Annotated[Path, typer.Argument(help="A recording of the speaker (5-15 s works best).")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="The voice file to write (replaced if it exists). Default: CLIP's name with .safetensors, "
            "in the current directory, never overwritten.",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    cache_dir: CacheDirOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    accept_license: AcceptLicenseOpt = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server", help="Save the voice on this `indextts2 serve` instead.", rich_help_panel=SERVER_PANEL
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="The server's API key.", rich_help_panel=SERVER_PANEL)
    ] = None,
    consent: Annotated[
        bool,
        typer.Option(
            "--consent",
            help="You state that the voice is yours, or that its speaker allowed you to use it (needed "
            "with --server).",
            rich_help_panel=SERVER_PANEL,
        ),
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="A name to use instead of the voice's id on the server.",
            rich_help_panel=SERVER_PANEL,
        ),
    ] = None,
) -> None:
    """Encode CLIP into a voice file (prints its path) for `indextts2 say --voice FILE`.

    A voice works only with the model it was made with. With --server the clip is saved on the
    server instead (prints the voice's id), for `indextts2 say --server URL --voice ID`.
    """
    check_audio_file(clip, "CLIP")
    model_flags = ModelFlags(model, device, dtype, cache_dir, revision, offline, accept_license)
    if server is not None:
        given = (["-o"] if output is not None else []) + [f for f in model_flags.given() if f != "--model"]
        if given:
            raise InvalidInput(f"{', '.join(given)}: only for a local voice file, not with --server")
        _create_remote(server, clip, api_key=api_key, consent=consent, name=name, model=model)
        return
    for flag, value in (("--api-key", api_key), ("--name", name)):
        if value is not None:
            raise InvalidInput(f"{flag} is for --server; a local voice file is named with -o")
    from indextts2.audio import load_audio

    target = _output_path(output, clip)
    reference = load_audio(clip)  # a bad clip fails before the model loads
    with model_flags.load() as tts:
        voice = tts.voice(reference)
    voice.save(target)
    err.print(
        f"voice {voice.id[:12]} ({voice.duration:.2f} s of speech, model {escape(voice.model_id)}) "
        f"-> {escape(str(target))}",
        highlight=False,
        soft_wrap=True,
    )
    typer.echo(str(target))


def _create_remote(
    server: str, clip: Path, *, api_key: str | None, consent: bool, name: str | None, model: str | None
) -> None:
    from indextts2.client import Client

    if not consent:
        raise InvalidInput(
            "saving a voice on a server needs --consent: your statement that the voice is yours, or that "
            "its speaker allowed you to use it"
        )
    with Client(server, api_key=api_key) as client:
        saved = client.create_voice(clip, consent=True, name=name, model=model)
    names = [str(n) for n in [saved.get("name"), *saved.get("aliases", [])] if n]
    label = f" ({escape(', '.join(names))})" if names else ""
    err.print(f"saved voice {escape(str(saved['id']))}{label} on {escape(server)}", highlight=False)
    typer.echo(str(saved["id"]))


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A voice file from `indextts2 voice create`.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """What a voice file holds: its id, the model it was made with, the seconds of speech, the tensors."""
    from indextts2.voice import VOICE_FORMAT_VERSION, Voice

    voice = Voice.load(file)
    tensors = {name: list(tensor.shape) for name, tensor in voice.conditioning.to_tensors().items()}
    facts = {
        "file": str(file),
        "id": voice.id,
        "model": voice.model_id,
        "model_fingerprint": voice.model_fingerprint,
        "model_family": voice.family,
        "duration": round(voice.duration, 3),
        "format_version": VOICE_FORMAT_VERSION,
        "tensors": tensors,
    }
    if as_json:
        typer.echo(json.dumps(facts, ensure_ascii=False))
        return
    table = Table(title=f"voice {escape(str(file))}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("id", voice.id)
    table.add_row("model", escape(voice.model_id))
    table.add_row("model fingerprint", voice.model_fingerprint)
    table.add_row("model family", voice.family)
    table.add_row("speech", f"{voice.duration:.2f} s")
    table.add_row("format version", str(VOICE_FORMAT_VERSION))
    for name, shape in tensors.items():
        table.add_row(f"  {name}", " x ".join(str(size) for size in shape))
    out.print(table)
