"""What ``indextts2 say`` and ``indextts2 voice`` share: the text, the emotion, the options, the model.

Every check here runs before a model is loaded, so a mistyped flag costs a second, not a model load.
torch and the model code are imported only inside the functions that need them: ``--help`` stays fast.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from indextts2.cli._console import err
from indextts2.errors import EmptyText, InvalidInput
from indextts2.options import EMOTIONS, Emotion, SynthesisOptions
from indextts2.settings import Settings

if TYPE_CHECKING:
    from indextts2.synthesizer import Synthesizer

__all__ = [
    "MODEL_PANEL",
    "AcceptLicenseOpt",
    "CacheDirOpt",
    "DeviceOpt",
    "DtypeOpt",
    "ModelFlags",
    "ModelOpt",
    "OfflineOpt",
    "RevisionOpt",
    "build_emotion",
    "build_options",
    "check_audio_file",
    "parse_emotion_spec",
    "read_text",
]

MODEL_PANEL = "Model (local synthesis)"

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model id (downloaded on first use), a checkpoints directory, or dummy:tiny / dummy:tiny-2.5 "
        "(random weights: the whole pipeline runs, the output is noise). Default: INDEXTTS2_MODEL, "
        "else IndexTeam/IndexTTS-2.5. With --server: which of the server's models (default: its first).",
        rich_help_panel=MODEL_PANEL,
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps. Default: INDEXTTS2_DEVICE, else auto.",
        rich_help_panel=MODEL_PANEL,
    ),
]
DtypeOpt = Annotated[
    str | None,
    typer.Option(
        "--dtype",
        help="The GPT's precision: fp16, bf16 or fp32. Default: fp16 on CUDA, fp32 elsewhere.",
        rich_help_panel=MODEL_PANEL,
    ),
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Model store root (default: INDEXTTS2_HOME, else the user cache dir).",
        rich_help_panel=MODEL_PANEL,
    ),
]
RevisionOpt = Annotated[
    str | None,
    typer.Option(
        "--revision",
        help="Branch, tag or commit of the model's repo (default: main).",
        rich_help_panel=MODEL_PANEL,
    ),
]
OfflineOpt = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="Never use the network: the model must be in the cache (INDEXTTS2_OFFLINE=1).",
        rich_help_panel=MODEL_PANEL,
    ),
]
AcceptLicenseOpt = Annotated[
    bool,
    typer.Option(
        "--accept-license",
        help="Accept the model weights' licence for the first download (INDEXTTS2_ACCEPT_LICENSE=1).",
        rich_help_panel=MODEL_PANEL,
    ),
]


# ---------------------------------------------------------------------------------------- the text


def read_text(text: str | None, file: Path | None) -> str:
    """The text to speak: the TEXT argument, stdin for ``-``, or the ``--file``'s content (UTF-8)."""
    words = _text_source(text, file)
    if not words.strip():
        source = "--file" if file is not None else "stdin" if text == "-" else "TEXT"
        raise EmptyText(f"the text from {source} is empty; give the words to speak")
    return words


def _text_source(text: str | None, file: Path | None) -> str:
    if text is not None and file is not None:
        raise InvalidInput("give the text either as TEXT or with --file, not both")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(f"--file {file}: no such file") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"--file {file} is not UTF-8 text") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read --file {file}: {exc.strerror or exc}") from None
    if text is None:
        raise InvalidInput("give the text to speak: TEXT, '-' to read it from stdin, or --file FILE")
    if text == "-":
        try:
            return sys.stdin.read()
        except UnicodeDecodeError:
            raise InvalidInput("the text on stdin is not UTF-8") from None
    return text


def check_audio_file(path: Path, flag: str) -> Path:
    """A clip given on the command line must be a readable file; decoding errors come later, typed."""
    if not path.exists():
        raise InvalidInput(f"{flag} {path}: no such file")
    if not path.is_file():
        raise InvalidInput(f"{flag} {path} is not a file")
    return path


# ---------------------------------------------------------------------------------------- emotion


def parse_emotion_spec(spec: str) -> dict[str, float]:
    """``happy=0.6,sad=0.2`` -> ``{"happy": 0.6, "sad": 0.2}``; the ranges are checked by ``Emotion``."""
    example = "e.g. --emotion happy=0.6,sad=0.2"
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        raise InvalidInput(f"--emotion is empty; {example} (names: {', '.join(EMOTIONS)})")
    weights: dict[str, float] = {}
    for item in items:
        name, separator, value = item.partition("=")
        name = name.strip().lower()
        if not separator or not name or not value.strip():
            raise InvalidInput(f"--emotion: {item!r} is not NAME=WEIGHT; {example}")
        if name not in EMOTIONS:
            raise InvalidInput(f"--emotion: unknown emotion {name!r}; use {', '.join(EMOTIONS)}")
        if name in weights:
            raise InvalidInput(f"--emotion names {name} twice")
        try:
            weights[name] = float(value)
        except ValueError:
            raise InvalidInput(f"--emotion: {value.strip()!r} is not a number (in {item!r})") from None
        if not math.isfinite(weights[name]) or weights[name] < 0:
            raise InvalidInput(
                f"--emotion {item}: a weight is a number from 0 to 1 (negative is not allowed)"
            )
    total = sum(weights.values())
    if total > 1:
        raise InvalidInput(
            f"--emotion {spec}: the weights sum to {total:g}, more than 1; the speaker's own emotion gets "
            "1 - sum, so make them add up to 1 or less, e.g. happy=0.6,surprised=0.2"
        )
    return weights


def build_emotion(
    *,
    audio: Path | None,
    alpha: float | None,
    spec: str | None,
    text: str | None,
    random: bool,
) -> Emotion | None:
    """The one Emotion the flags describe (None: the speaker's own), or InvalidInput naming the flags."""
    sources = [
        flag
        for flag, value in (("--emotion-audio", audio), ("--emotion", spec), ("--emotion-text", text))
        if value is not None
    ]
    if len(sources) > 1:
        raise InvalidInput(f"choose one emotion source, not {' and '.join(sources)}")
    if not sources:
        if alpha is not None:
            raise InvalidInput(
                "--emotion-alpha sets the strength of --emotion-audio, --emotion or --emotion-text"
            )
        if random:
            raise InvalidInput("--emotion-random applies to --emotion or --emotion-text")
        return None
    if random and audio is not None:
        raise InvalidInput("--emotion-random applies to --emotion or --emotion-text, not to --emotion-audio")
    if alpha is not None and not 0 <= alpha <= 1:
        raise InvalidInput(f"--emotion-alpha {alpha:g}: the strength is a number from 0 to 1")
    strength = 1.0 if alpha is None else alpha
    if audio is not None:
        return Emotion(audio=str(check_audio_file(audio, "--emotion-audio")), alpha=strength)
    if spec is not None:
        return Emotion(vector=parse_emotion_spec(spec), alpha=strength, random=random)
    try:
        return Emotion(text=text, alpha=strength, random=random)
    except InvalidInput as exc:
        raise InvalidInput(f"--emotion-text: {exc}") from None


# ---------------------------------------------------------------------------------------- options

# CLI flag -> SynthesisOptions field (the flags keep the user's words short)
OPTION_FLAGS: dict[str, str] = {
    "--seed": "seed",
    "--max-codes": "max_codes",
    "--segment-tokens": "max_text_tokens_per_segment",
    "--steps": "diffusion_steps",
    "--cfg-rate": "cfg_rate",
    "--speed": "speed",
    "--lang": "language",
    "--duration": "duration",
    "--temperature": "temperature",
    "--top-k": "top_k",
    "--top-p": "top_p",
    "--beams": "num_beams",
    "--silence-ms": "interval_silence_ms",
}


def build_options(flags: dict[str, Any]) -> SynthesisOptions:
    """SynthesisOptions from ``{flag: value}`` (None = not given: the library's default stays).

    Each value is checked on its own so that an error names the flag it came from.
    """
    options = SynthesisOptions()
    for flag, value in flags.items():
        if value is None:
            continue
        field = OPTION_FLAGS[flag]
        try:
            options = options.replace(**{field: value})
        except InvalidInput as exc:
            # the library's message names the field ("diffusion_steps must be ..."): name the flag
            message = str(exc)
            for other_flag, other_field in OPTION_FLAGS.items():  # "(use top_k=1 ...)"
                message = message.replace(f"{other_field}=", f"{other_flag} ")
            if message.startswith(f"{field} "):
                raise InvalidInput(flag + message[len(field) :]) from None
            raise InvalidInput(f"{flag} {value}: {message}") from None
    return options


# ---------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ModelFlags:
    """The flags that choose the local model; None / False = not given (settings, then defaults)."""

    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    cache_dir: Path | None = None
    revision: str | None = None
    offline: bool = False
    accept_license: bool = False

    def given(self) -> list[str]:
        """The flags given, as the user typed them (to refuse them where they do not apply)."""
        return [
            "--" + item.name.replace("_", "-")
            for item in fields(self)
            if getattr(self, item.name) not in (None, False)
        ]

    def load(self, *, quiet: bool = False) -> Synthesizer:
        """Load the model these flags (then INDEXTTS2_*, then the defaults) name, with download progress."""
        from indextts2.cli.models import StoreProgress, ensure_license
        from indextts2.store import MODELS, dummy_preset
        from indextts2.synthesizer import Synthesizer

        settings = Settings.from_env().with_overrides(
            model=self.model,
            device=self.device,
            home=self.cache_dir,
            offline=self.offline or None,
            accept_license=self.accept_license or None,
        )
        if settings.model in MODELS and dummy_preset(settings.model) is None and not settings.offline:
            ensure_license(settings.model, settings, self.accept_license)  # asks on a terminal
        if not quiet:
            err.print(f"loading {settings.model} ...", highlight=False)
        started = time.perf_counter()
        with StoreProgress() as progress:  # shows only when files are downloaded
            tts = Synthesizer.from_pretrained(
                settings.model,
                device=settings.device,
                dtype=self.dtype,
                cache_dir=settings.home,
                revision=self.revision,
                offline=settings.offline,
                accept_license=settings.accept_license,
                progress=progress,
            )
        if not quiet:
            seconds = time.perf_counter() - started
            err.print(f"loaded {tts.model_id} on {tts.device} in {seconds:.1f} s", highlight=False)
        return tts
