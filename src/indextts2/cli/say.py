"""``indextts2 say``: text to speech, on this machine or on a server (``--server``).

Every flag is checked before the model is loaded (or the server is called). Progress and the closing
line go to stderr; stdout carries audio only with ``-o -``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from indextts2.cli._console import err
from indextts2.cli._output import AudioSink, OutputTarget, resolve_output
from indextts2.cli._synthesis import (
    AcceptLicenseOpt,
    CacheDirOpt,
    DeviceOpt,
    DtypeOpt,
    ModelFlags,
    ModelOpt,
    OfflineOpt,
    RevisionOpt,
    build_emotion,
    build_options,
    check_audio_file,
    read_text,
)
from indextts2.errors import InvalidInput
from indextts2.options import Emotion, SynthesisOptions
from indextts2.samples import SAMPLE_VOICE_NAME, sample_voice

if TYPE_CHECKING:
    from indextts2.audio import Audio
    from indextts2.synthesizer import Synthesizer

__all__ = ["say"]

EMOTION_PANEL = "Emotion (one source)"
OPTIONS_PANEL = "Synthesis options (default: the official infer's)"
SERVER_PANEL = "Remote synthesis"
REMOTE_DEFAULT_RATE = 22050  # IndexTTS2's rate; only used when a server sends no audio at all

RefOpt = Annotated[
    Path | None,
    typer.Option(
        "--ref",
        help="A clip of the speaker to clone (wav, flac, ogg, opus, mp3; 5-15 s works best). "
        "Without --ref or --voice: the sample voice shipped with indextts2.",
    ),
]
VoiceOpt = Annotated[
    str | None,
    typer.Option(
        "--voice",
        help="A voice file from `indextts2 voice create` (with --server: a voice saved on the server).",
    ),
]


def _segment_count(tts: Synthesizer, text: str, options: SynthesisOptions) -> int:
    return tts.segment_count(text, options)


class _Bar:
    """One bar on stderr: segments done out of the total (local) or audio received (remote)."""

    def __init__(self, *, total: int | None, quiet: bool) -> None:
        counted = (BarColumn(), MofNCompleteColumn(), TextColumn("segments,")) if total is not None else ()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            *counted,
            TextColumn("{task.fields[audio]:.1f} s of audio"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=quiet or not err.is_terminal,  # no bar in logs and pipes
        )
        self._task = self._progress.add_task("speaking", total=total, audio=0.0)

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def update(self, *, segments_done: int | None, audio_seconds: float) -> None:
        if segments_done is None:
            self._progress.update(self._task, audio=audio_seconds)
        else:
            self._progress.update(self._task, completed=segments_done, audio=audio_seconds)


def _speak(
    pieces: Iterator[tuple[np.ndarray, int, int | None]],
    sink: AudioSink,
    *,
    total: int | None,
    default_rate: int,
    quiet: bool,
    started: float,
) -> tuple[Audio, float]:
    """Feed (samples, rate, segments done) pieces to the sink under a progress bar.

    Returns the audio and the seconds synthesis took since ``started`` (encoding and writing the
    file excluded: the real-time factor is the synthesis's).
    """
    received = 0.0
    with _Bar(total=total, quiet=quiet) as bar:
        for samples, rate, segments_done in pieces:
            sink.add(samples, rate)
            received += samples.shape[0] / rate
            bar.update(segments_done=segments_done, audio_seconds=received)
    seconds = time.perf_counter() - started
    return sink.finish(default_rate), seconds


def _closing_line(audio: Audio, seconds: float, target: OutputTarget) -> str:
    factor = f"{seconds / audio.duration:.2f}" if audio.duration > 0 else "n/a"
    return (
        f"{audio.duration:.2f} s of audio in {seconds:.2f} s (real-time factor {factor}) "
        f"-> {escape(target.describe())}"
    )


def _check_voice_flags(ref: Path | None, voice: str | None) -> None:
    if ref is not None and voice is not None:
        raise InvalidInput("give either --ref (a clip) or --voice (a voice file), not both")


def say(
    text: Annotated[
        str | None,
        typer.Argument(metavar="[TEXT]", help="What to say; '-' reads it from stdin.", show_default=False),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the text from this UTF-8 file.")
    ] = None,
    ref: RefOpt = None,
    voice: VoiceOpt = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Audio file to write (format from the suffix; replaced if it exists), or '-' for stdout. "
            "Default: out.wav, never overwritten.",
            show_default=False,
        ),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option("--format", help="wav, flac, mp3, opus, ogg or pcm (raw 16-bit); default: from -o."),
    ] = None,
    emotion_audio: Annotated[
        Path | None,
        typer.Option("--emotion-audio", help="A clip whose emotion to carry.", rich_help_panel=EMOTION_PANEL),
    ] = None,
    emotion_alpha: Annotated[
        float | None,
        typer.Option(
            "--emotion-alpha",
            help="Strength of the emotion, 0 to 1 (default 1).",
            rich_help_panel=EMOTION_PANEL,
            show_default=False,
        ),
    ] = None,
    emotion: Annotated[
        str | None,
        typer.Option(
            "--emotion",
            help="Weights of named emotions, e.g. happy=0.6,sad=0.2 (sum <= 1): happy, angry, sad, afraid, "
            "disgusted, melancholic, surprised, calm.",
            rich_help_panel=EMOTION_PANEL,
        ),
    ] = None,
    emotion_text: Annotated[
        str | None,
        typer.Option(
            "--emotion-text",
            help='The emotion in words ("furious and impatient"), read by the model\'s emotion classifier.',
            rich_help_panel=EMOTION_PANEL,
        ),
    ] = None,
    emotion_random: Annotated[
        bool,
        typer.Option(
            "--emotion-random",
            help="Pick the emotion exemplars at random (with --emotion or --emotion-text).",
            rich_help_panel=EMOTION_PANEL,
        ),
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Same seed, same audio (default: a fresh one).", rich_help_panel=OPTIONS_PANEL
        ),
    ] = None,
    max_codes: Annotated[
        int | None,
        typer.Option(
            "--max-codes",
            help=f"Most semantic codes per segment, ~50 a second [{SynthesisOptions.max_codes}].",
            rich_help_panel=OPTIONS_PANEL,
            show_default=False,
        ),
    ] = None,
    segment_tokens: Annotated[
        int | None,
        typer.Option(
            "--segment-tokens",
            help=f"Most text tokens per segment [{SynthesisOptions.max_text_tokens_per_segment}].",
            rich_help_panel=OPTIONS_PANEL,
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            help=f"Diffusion steps; fewer is faster and coarser [{SynthesisOptions.diffusion_steps}].",
            rich_help_panel=OPTIONS_PANEL,
            show_default=False,
        ),
    ] = None,
    cfg_rate: Annotated[
        float | None,
        typer.Option(
            "--cfg-rate",
            help=f"Classifier-free guidance; 0 turns it off [{SynthesisOptions.cfg_rate}].",
            rich_help_panel=OPTIONS_PANEL,
            show_default=False,
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed",
            help="Speaking rate, 0.5 to 2 [1.0].",
            rich_help_panel=OPTIONS_PANEL,
            show_default=False,
        ),
    ] = None,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            help="IndexTTS-2.5: the text's language, zh, en, ja, es or ar [detected from the script].",
            rich_help_panel=OPTIONS_PANEL,
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            help="IndexTTS-2.5: length of the speech, 0.5 to 2; 1.25 = 25 % longer [1.0].",
            rich_help_panel=OPTIONS_PANEL,
            show_default=False,
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(
            "--temperature",
            help=f"Sampling temperature [{SynthesisOptions.temperature}].",
            rich_help_panel=OPTIONS_PANEL,
            show_default=False,
        ),
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k",
            help=f"Keep the k best codes, 0 = all; 1 = deterministic [{SynthesisOptions.top_k}].",
            rich_help_panel=OPTIONS_PANEL,
            show_default=False,
        ),
    ] = None,
    top_p: Annotated[
        float | None,
        typer.Option(
            "--top-p",
            help=f"Nucleus sampling [{SynthesisOptions.top_p}].",
            rich_help_panel=OPTIONS_PANEL,
            show_default=False,
        ),
    ] = None,
    beams: Annotated[
        int | None,
        typer.Option(
            "--beams",
            help=f"Beam-search width; 1 samples one sequence [{SynthesisOptions.num_beams}].",
            rich_help_panel=OPTIONS_PANEL,
            show_default=False,
        ),
    ] = None,
    silence_ms: Annotated[
        int | None,
        typer.Option(
            "--silence-ms",
            help=f"Silence between segments, ms [{SynthesisOptions.interval_silence_ms}].",
            rich_help_panel=OPTIONS_PANEL,
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
            "--server",
            help="Speak on a remote `indextts2 serve` at this URL (e.g. http://gpu-box:7860).",
            rich_help_panel=SERVER_PANEL,
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", help="The server's API key, if it asks for one.", rich_help_panel=SERVER_PANEL
        ),
    ] = None,
    consent: Annotated[
        bool,
        typer.Option(
            "--consent",
            help="With --server and --ref: you state that the voice is yours, or that its speaker allowed "
            "you to use it. The server refuses an uploaded clip without it.",
            rich_help_panel=SERVER_PANEL,
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no closing line.")] = False,
) -> None:
    """Speak TEXT in the voice of a reference clip (or a saved voice); write the audio.

    [bold]Examples[/bold]

      indextts2 say "你好，世界。Hello!" --ref me.wav -o hello.wav
      indextts2 say --file article.txt --voice me.safetensors -o article.mp3
      echo "Good morning." | indextts2 say - --ref me.wav -o morning.flac
      indextts2 say "Hi" --ref me.wav --emotion happy=0.6,surprised=0.2
      indextts2 say "Hi" --ref me.wav -o - --format pcm | aplay -f S16_LE -r 22050
      indextts2 say "你好" --model dummy:tiny -o hi.wav     sample voice, random weights: noise

    [bold]Output[/bold]: the format comes from the -o suffix (.wav .flac .mp3
    .opus .ogg .pcm). A file you name with -o is replaced; without -o the
    audio goes to out.wav, which is never overwritten. '-o -' writes the
    audio to stdout (wav unless --format says otherwise).

    [bold]Server[/bold]: with --server URL a remote `indextts2 serve` speaks.
    There --voice names a voice saved on the server, and --ref uploads your
    clip with the request, which needs --consent: your statement that the
    voice is yours, or that its speaker allowed you to use it.
    """
    # Check everything that needs no model first: a typo must not cost a model load.
    words = read_text(text, file)
    target = resolve_output(output, format)
    the_emotion = build_emotion(
        audio=emotion_audio, alpha=emotion_alpha, spec=emotion, text=emotion_text, random=emotion_random
    )
    options = build_options(
        {
            "--seed": seed,
            "--max-codes": max_codes,
            "--segment-tokens": segment_tokens,
            "--steps": steps,
            "--cfg-rate": cfg_rate,
            "--speed": speed,
            "--lang": lang,
            "--duration": duration,
            "--temperature": temperature,
            "--top-k": top_k,
            "--top-p": top_p,
            "--beams": beams,
            "--silence-ms": silence_ms,
        }
    )
    _check_voice_flags(ref, voice)
    if ref is not None:
        check_audio_file(ref, "--ref")
    elif voice is None:
        # the sample voice: the shipped clip locally, the server's voice of the same name remotely
        if server is None:
            ref = sample_voice()
        else:
            voice = SAMPLE_VOICE_NAME
        if not quiet:
            err.print(
                "no --ref or --voice: speaking in the sample voice (a synthetic clip shipped with "
                "indextts2); give --ref CLIP to clone a voice",
                highlight=False,
            )
    model_flags = ModelFlags(model, device, dtype, cache_dir, revision, offline, accept_license)
    sink = AudioSink(target)
    if server is not None:
        local_only = [flag for flag in model_flags.given() if flag != "--model"]
        if local_only:
            raise InvalidInput(
                f"{', '.join(local_only)}: only for local synthesis; with --server the server's own "
                "models run (--model chooses one of them)"
            )
        audio, seconds = _say_remote(
            server,
            api_key=api_key,
            text=words,
            ref=ref,
            voice=voice,
            consent=consent,
            emotion=the_emotion,
            options=options,
            model=model,
            sink=sink,
            quiet=quiet,
        )
    else:
        if api_key is not None:
            raise InvalidInput("--api-key is for --server; local synthesis needs none")
        audio, seconds = _say_local(
            model_flags,
            text=words,
            ref=ref,
            voice=voice,
            emotion=the_emotion,
            options=options,
            sink=sink,
            quiet=quiet,
        )
    if not quiet:
        err.print(_closing_line(audio, seconds, target), highlight=False, soft_wrap=True)


def _say_local(
    model: ModelFlags,
    *,
    text: str,
    ref: Path | None,
    voice: str | None,
    emotion: Emotion | None,
    options: SynthesisOptions,
    sink: AudioSink,
    quiet: bool,
) -> tuple[Audio, float]:
    from indextts2.audio import load_audio
    from indextts2.voice import Voice

    # Read the clip or the voice file before the model: a bad file fails fast.
    reference = load_audio(ref) if ref is not None else None
    saved = Voice.load(voice) if voice is not None else None
    tts = model.load(quiet=quiet)
    with tts:
        if reference is not None:
            speaker = tts.voice(reference)
        elif saved is not None:
            tts.check_voice(saved)
            speaker = saved
        else:  # say() always gives one of them
            raise InvalidInput("give --ref CLIP or --voice FILE")
        started = time.perf_counter()
        chunks = tts.stream(text, voice=speaker, emotion=emotion, options=options)
        total = _segment_count(tts, text, options)
        pieces = ((chunk.samples, chunk.sample_rate, chunk.segment + 1) for chunk in chunks)
        return _speak(pieces, sink, total=total, default_rate=tts.sample_rate, quiet=quiet, started=started)


def _say_remote(
    server: str,
    *,
    api_key: str | None,
    text: str,
    ref: Path | None,
    voice: str | None,
    consent: bool,
    emotion: Emotion | None,
    options: SynthesisOptions,
    model: str | None,
    sink: AudioSink,
    quiet: bool,
) -> tuple[Audio, float]:
    from indextts2.client import Client

    if ref is not None and not consent:
        raise InvalidInput(
            "--ref uploads the clip to the server, which needs --consent: your statement that the voice "
            "is yours, or that its speaker allowed you to use it"
        )
    if voice is not None and (voice.endswith(".safetensors") or Path(voice).is_file()):
        raise InvalidInput(
            f"with --server, --voice names a voice saved on the server, not a local file ({voice}); "
            "send the clip with --ref CLIP --consent instead"
        )
    with Client(server, api_key=api_key) as client:
        started = time.perf_counter()
        blocks = client.stream(
            text, voice=voice, reference=ref, consent=consent, emotion=emotion, options=options, model=model
        )
        pieces = ((block.samples, block.sample_rate, None) for block in blocks)
        if not quiet:
            err.print(f"speaking on {escape(server)} ...", highlight=False)
        return _speak(
            pieces, sink, total=None, default_rate=REMOTE_DEFAULT_RATE, quiet=quiet, started=started
        )
