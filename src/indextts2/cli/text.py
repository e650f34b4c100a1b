"""``indextts2 text``: what the front end makes of a text (normalised text, pieces, ids, segments).

A debugging aid: it needs the model's ``bpe.model`` at most, never the weights or a GPU. Without a
model only the normalised text is shown.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from indextts2.cli._console import err, out
from indextts2.settings import Settings
from indextts2.text import DEFAULT_MAX_TOKENS_PER_SEGMENT, Glossary, TextAnalysis, TextFrontend
from indextts2.text.normalize import NormalizationMode


def _locate_model(model: str | None) -> Path | None:
    """The local directory or bpe.model to read, or None for normalisation only.

    ``--model`` is a local directory, a ``bpe.model`` file, a model id already in the store (never
    downloaded here: this is a debugging aid) or ``dummy:tiny`` / ``dummy:full`` (their small
    vocabulary). Without it the configured model (INDEXTTS2_MODEL) is used when it is local or cached.
    """
    from indextts2.errors import ModelFilesMissing, ModelNotFound
    from indextts2.store import dummy_preset, resolve_model

    explicit = model is not None
    name = model if model is not None else Settings.from_env().model
    if dummy_preset(name) is not None:
        from indextts2.synthesizer import dummy_bpe_model

        return dummy_bpe_model()
    path = Path(name).expanduser()
    if path.exists():
        return path
    try:
        return resolve_model(name, offline=True).root
    except (ModelNotFound, ModelFilesMissing):
        if explicit:
            raise
        return None


def _analysis_json(analysis: TextAnalysis, max_tokens: int) -> dict[str, Any]:
    return {
        "text": analysis.text,
        "language": analysis.language,
        "normalized": analysis.normalized,
        "sp_input": analysis.sp_input,
        "tokens": list(analysis.tokens),
        "ids": list(analysis.ids),
        "unknown_tokens": list(analysis.unknown_tokens),
        "max_tokens_per_segment": max_tokens,
        "segments": [
            {"tokens": list(segment.tokens), "ids": list(segment.ids)}
            for segment in analysis.segments(max_tokens)
        ],
    }


def _show(analysis: TextAnalysis, max_tokens: int) -> None:
    summary = Table(title="text front end", show_header=False)
    summary.add_column("step", style="bold")
    summary.add_column("result", overflow="fold")
    summary.add_row("language", analysis.language)
    summary.add_row("normalized", Text(analysis.normalized))
    summary.add_row("SentencePiece input", Text(analysis.sp_input or ""))
    summary.add_row(f"tokens ({len(analysis.tokens)})", Text(" ".join(analysis.tokens)))
    summary.add_row("ids", " ".join(str(i) for i in analysis.ids))
    if analysis.unknown_tokens:
        summary.add_row("unknown (<unk>)", Text(" ".join(analysis.unknown_tokens), style="yellow"))
    out.print(summary)

    segments = analysis.segments(max_tokens)
    table = Table(title=f"{len(segments)} segment(s), at most {max_tokens} tokens each")
    table.add_column("#", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("pieces", overflow="fold")
    table.add_column("ids", overflow="fold")
    for number, segment in enumerate(segments, start=1):
        table.add_row(
            str(number),
            str(len(segment)),
            Text(" ".join(segment.tokens)),
            " ".join(str(i) for i in segment.ids),
        )
    out.print(table)


def text(
    content: Annotated[str, typer.Argument(metavar="TEXT", help="The text to look at; '-' reads stdin.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model directory (official layout) or a bpe.model file. Default: INDEXTTS2_MODEL "
            "when it is a local path; without one only the normalised text is shown.",
        ),
    ] = None,
    max_tokens: Annotated[
        int,
        typer.Option("--max-tokens", min=1, help="Most tokens per segment (max_text_tokens_per_segment)."),
    ] = DEFAULT_MAX_TOKENS_PER_SEGMENT,
    glossary: Annotated[
        Path | None,
        typer.Option("--glossary", help="A glossary YAML laid over the model's glossary.yaml."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    official: Annotated[
        bool,
        typer.Option(
            "--official",
            help="The official front end's normalisation, misread numbers included (default: numbers "
            "read as a careful reader says them; docs/parity.md lists the differences).",
        ),
    ] = False,
) -> None:
    """Show the normalised text, the tokens and the segments IndexTTS2 would synthesise."""
    normalization: NormalizationMode = "official" if official else "corrected"
    if content == "-":
        content = sys.stdin.read()
    located = _locate_model(model)
    if located is None:
        frontend = TextFrontend(
            glossary=Glossary.from_yaml(glossary) if glossary else None, normalization=normalization
        )
        normalized = frontend.normalize(frontend.check(content))
        if as_json:
            typer.echo(json.dumps({"text": content, "normalized": normalized}, ensure_ascii=False))
        else:
            out.print(Text(normalized))
        err.print("no model given: pass --model DIR (or a bpe.model) to see tokens and segments")
        return
    frontend = TextFrontend.from_model(located, glossary=glossary, normalization=normalization)
    analysis = frontend.analyze(content)
    if as_json:
        typer.echo(json.dumps(_analysis_json(analysis, max_tokens), ensure_ascii=False))
    else:
        _show(analysis, max_tokens)
