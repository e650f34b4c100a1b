"""``indextts2 text``: what the front end makes of a text (normalised text, pieces, ids, segments).

A debugging aid: it needs the model's vocabulary at most (``bpe.model``; an IndexTTS-2.5 directory's
``.tiktoken``), never the weights or a GPU. Without a model only the normalised text is shown. For
an IndexTTS-2.5 model ``--lang`` picks the language (detected from the text when left out) and
every step of its front end is shown.
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
from indextts2.errors import InvalidInput
from indextts2.settings import Settings
from indextts2.text import DEFAULT_MAX_TOKENS_PER_SEGMENT, Glossary, TextAnalysis, TextFrontend
from indextts2.text.multilingual import MultilingualAnalysis, MultilingualFrontend, find_vocabulary
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


def _multilingual_json(analysis: MultilingualAnalysis, max_tokens: int) -> dict[str, Any]:
    split = analysis.split(max_tokens)
    detected = analysis.detected
    return {
        "text": analysis.text,
        "language": analysis.language,
        "detected": None if detected is None else {"language": detected.language, "reason": detected.reason},
        "lang_id": analysis.lang_id,
        "lang_prefix": analysis.lang_prefix,
        "text_normalization": analysis.text_normalization,
        "after_clean": analysis.after_clean,
        "normalization": analysis.normalization,
        "after_normalization": analysis.after_normalization,
        "after_case": analysis.after_case,
        "after_annotations": analysis.after_annotations,
        "after_japanese": analysis.after_japanese,
        "final_text": analysis.final_text,
        "max_tokens_per_segment": max_tokens,
        "segments": [
            {"text": text, "tokens": list(segment.tokens), "ids": list(segment.ids)}
            for text, segment in zip(split.texts, split.segments, strict=True)
        ],
    }


def _show_multilingual(analysis: MultilingualAnalysis, max_tokens: int) -> None:
    summary = Table(title="IndexTTS-2.5 text front end", show_header=False)
    summary.add_column("step", style="bold")
    summary.add_column("result", overflow="fold")
    detected = analysis.detected
    how = "given" if detected is None else f"detected: {detected.reason}; --lang to choose"
    summary.add_row("language", f"{analysis.language} ({how})")
    summary.add_row("lang_id / prefix", Text(f"{analysis.lang_id} / {analysis.lang_prefix!r}"))
    summary.add_row("punctuation mapped", Text(analysis.after_clean))
    if analysis.after_normalization is not None:
        summary.add_row(f"normalised ({analysis.normalization})", Text(analysis.after_normalization))
    summary.add_row("case", Text(analysis.after_case))
    summary.add_row("annotations", Text(analysis.after_annotations))
    if analysis.after_japanese is not None:
        summary.add_row("Japanese words (MeCab)", Text(analysis.after_japanese))
    summary.add_row("final text", Text(analysis.final_text))
    out.print(summary)

    split = analysis.split(max_tokens)
    title = f"{len(split.segments)} segment(s), at most {max_tokens} tokens each (prefix included)"
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("text", overflow="fold")
    table.add_column("tokens (␣ = space)", overflow="fold")
    table.add_column("ids", overflow="fold")
    for number, (segment_text, segment) in enumerate(zip(split.texts, split.segments, strict=True), start=1):
        table.add_row(
            str(number),
            str(len(segment)),
            Text(segment_text),
            Text(" ".join(token.replace(" ", "␣") for token in segment.tokens)),
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
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            "-l",
            help="IndexTTS-2.5 models: the language, zh, en, ja, es or ar (also zhen, fr, yue, ... as "
            "the official code). Default: detected from the text's script, and shown.",
        ),
    ] = None,
    text_normalization: Annotated[
        bool,
        typer.Option(
            "--text-normalization/--no-text-normalization",
            help="IndexTTS-2.5 models: spell out numbers, dates and units (zh, en) first.",
        ),
    ] = True,
    official: Annotated[
        bool,
        typer.Option(
            "--official",
            help="The official front end's normalisation, misread numbers included (default: numbers "
            "read as a careful reader says them; docs/parity.md lists the differences).",
        ),
    ] = False,
) -> None:
    """Show the normalised text, the tokens and the segments IndexTTS2 would synthesise.

    With an IndexTTS-2.5 model directory, every step of its front end: e.g.
    indextts2 text "こんにちは" --lang ja --model checkpoints/
    """
    normalization: NormalizationMode = "official" if official else "corrected"
    if content == "-":
        content = sys.stdin.read()
    located = _locate_model(model)
    if located is not None and located.is_dir() and find_vocabulary(located) is not None:
        multilingual = MultilingualFrontend.from_model(
            located, glossary=glossary, normalization=normalization
        )
        steps = multilingual.analyze(content, language=lang, text_normalization=text_normalization)
        if as_json:
            typer.echo(json.dumps(_multilingual_json(steps, max_tokens), ensure_ascii=False))
        else:
            _show_multilingual(steps, max_tokens)
        return
    if lang is not None or not text_normalization:
        flag = "--lang" if lang is not None else "--no-text-normalization"
        raise InvalidInput(
            f"{flag} applies to IndexTTS-2.5 models (a directory with a .tiktoken vocabulary); "
            f"{'this model is IndexTTS-2' if located is not None else 'pass one with --model'}"
        )
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
