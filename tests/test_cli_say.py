"""``indextts2 say`` and ``indextts2 voice`` on dummy:tiny: the real pipeline, random weights.

One test runs the issue's acceptance command through the installed console script. The others use
Typer's CliRunner with one dummy:tiny Synthesizer shared by the module (``from_pretrained`` is
patched to hand it out, and records what it was asked for), so that each test costs a synthesis,
not a model load. Synthesis is kept short (--max-codes, --steps) where a test is not about defaults.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from indextts2 import Emotion, SynthesisOptions, Synthesizer, Voice
from indextts2.cli import app

pytestmark = pytest.mark.goldens

runner = CliRunner()
QUICK = ["--max-codes", "20", "--steps", "4"]
RATE = 22050


@dataclass
class Calls:
    """What the CLI asked the library for."""

    loads: list[dict[str, Any]] = field(default_factory=list)
    streams: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def tiny() -> Iterator[Synthesizer]:
    tts = Synthesizer.from_pretrained("dummy:tiny", device="cpu")
    yield tts
    tts.close()


@pytest.fixture
def calls(tiny: Synthesizer, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """``Synthesizer.from_pretrained`` returns the shared dummy:tiny; every load and stream is recorded."""
    recorded = Calls()

    def from_pretrained(model: str, **kwargs: Any) -> Synthesizer:
        recorded.loads.append({"model": model, **kwargs})
        return tiny

    real_stream = tiny.stream

    def stream(text: str, **kwargs: Any) -> Any:
        recorded.streams.append({"text": text, **kwargs})
        return real_stream(text, **kwargs)

    monkeypatch.setattr(Synthesizer, "from_pretrained", staticmethod(from_pretrained))
    monkeypatch.setattr(tiny, "close", lambda: None)  # the command's `with` must not close the shared one
    monkeypatch.setattr(tiny, "stream", stream)
    return recorded


@pytest.fixture
def ref(goldens: Path) -> Path:
    return goldens / "inputs" / "ref.wav"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def say(*args: str | Path, input: str | None = None) -> Any:
    return runner.invoke(app, ["say", *map(str, args)], input=input)


def assert_ok(result: Any) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stderr}\n{result.exception!r}"


def assert_one_line_error(result: Any, *, after_load: bool = False) -> str:
    """Exit 2 with one ``error:`` line and no traceback; before a load, stderr holds nothing else."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.output
    if after_load:  # the "loading ..." lines come first
        assert [line for line in lines if line.startswith("error: ")] == lines[-1:], result.stderr
    else:
        assert len(lines) == 1, result.stderr
    assert lines[-1].startswith("error: ")
    return lines[-1]


def wav_samples(path: Path) -> np.ndarray:
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.format) == (RATE, 1, "WAV")
    samples, _ = sf.read(str(path), dtype="int16")
    assert samples.shape[0] > 0
    return samples


# ---------------------------------------------------------------------------------------- acceptance


@pytest.mark.slow
def test_acceptance_command_through_the_console_script(ref: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "indextts2"
    command = [str(script), "say", "你好，世界。Hello!", "--ref", str(ref), "--model", "dummy:tiny"]
    result = subprocess.run(
        [*command, "-o", "out.wav", *QUICK], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    wav_samples(tmp_path / "out.wav")
    assert result.stdout == ""  # data goes to stdout only with -o -
    assert "real-time factor" in result.stderr


@pytest.mark.slow
def test_indextts_2_5_acceptance_command_with_a_language(tmp_path: Path) -> None:
    """The issue's command as written (the sample voice speaks), then 25 % longer with --duration."""
    script = Path(sys.executable).parent / "indextts2"
    command = [str(script), "say", "こんにちは", "--lang", "ja", "--model", "dummy:tiny-2.5"]
    lengths = []
    for extra in ([], ["--duration", "1.25"]):
        name = f"out{len(lengths)}.wav"
        result = subprocess.run(
            [*command, *extra, "-o", name], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        assert "real-time factor" in result.stderr
        lengths.append(wav_samples(tmp_path / name).shape[0])
    # the same paced codes, int(2n * 1.72 * duration) mel frames of 256 samples
    assert lengths[1] > lengths[0]
    assert lengths[1] / lengths[0] == pytest.approx(1.25, abs=0.05)


def test_a_language_or_duration_for_indextts_2_is_one_line(calls: Calls, ref: Path, workdir: Path) -> None:
    for flags, message, after_load in (
        (["--lang", "ja"], "IndexTTS-2 takes no language", True),
        (["--duration", "1.2"], "IndexTTS-2 has no duration factor", True),
        (["--duration", "3"], "--duration must be between 0.5 and 2.0", False),
    ):
        result = say("hello", "--ref", ref, "-o", "x.wav", *QUICK, *flags)
        assert message in assert_one_line_error(result, after_load=after_load)


# ---------------------------------------------------------------------------------------- outputs


@pytest.mark.parametrize(
    ("suffix", "container", "rate"),
    [
        ("wav", "WAV", RATE),
        ("flac", "FLAC", RATE),
        ("mp3", "MP3", RATE),
        ("ogg", "OGG", RATE),
        ("opus", "OGG", 24000),  # Opus has no 22.05 kHz mode: encoded at 24 kHz
    ],
)
def test_every_encoded_format(
    calls: Calls, ref: Path, workdir: Path, suffix: str, container: str, rate: int
) -> None:
    result = say("Hello!", "--ref", ref, "-o", f"speech.{suffix}", *QUICK)
    assert_ok(result)
    info = sf.info(str(workdir / f"speech.{suffix}"))
    assert (info.format, info.samplerate, info.channels) == (container, rate, 1)
    assert info.frames > 0


def test_pcm_is_the_wav_samples_without_a_header(calls: Calls, ref: Path, workdir: Path) -> None:
    for name in ("a.wav", "a.pcm"):
        assert_ok(say("Hello!", "--ref", ref, "-o", name, "--seed", "5", *QUICK))
    pcm = np.frombuffer((workdir / "a.pcm").read_bytes(), dtype="<i2").astype(np.int32)
    np.testing.assert_array_equal(pcm, wav_samples(workdir / "a.wav"))  # one quantisation for both


def test_dash_o_writes_the_audio_to_stdout_and_nothing_else(calls: Calls, ref: Path, workdir: Path) -> None:
    result = say("Hello!", "--ref", ref, "-o", "-", "--seed", "5", *QUICK)
    assert_ok(result)
    samples, rate = sf.read(io.BytesIO(result.stdout_bytes), dtype="int16")
    assert rate == RATE
    assert samples.shape[0] > 0
    raw = say("Hello!", "--ref", ref, "-o", "-", "--format", "pcm", "--seed", "5", *QUICK)
    assert_ok(raw)
    np.testing.assert_array_equal(np.frombuffer(raw.stdout_bytes, dtype="<i2"), samples)
    assert list(workdir.iterdir()) == []


def test_without_o_the_audio_goes_to_out_wav_which_is_never_overwritten(
    calls: Calls, ref: Path, workdir: Path
) -> None:
    assert_ok(say("Hello!", "--ref", ref, *QUICK))
    first = (workdir / "out.wav").read_bytes()
    wav_samples(workdir / "out.wav")
    line = assert_one_line_error(say("Again.", "--ref", ref, *QUICK))
    assert "out.wav exists" in line
    assert "-o out.wav" in line
    assert (workdir / "out.wav").read_bytes() == first
    assert len(calls.loads) == 1  # refused before loading the model


def test_a_file_named_with_o_is_replaced(calls: Calls, ref: Path, workdir: Path) -> None:
    target = workdir / "speech.wav"
    target.write_bytes(b"old")
    assert_ok(say("Hello!", "--ref", ref, "-o", target, *QUICK))
    wav_samples(target)
    assert sorted(p.name for p in workdir.iterdir()) == ["speech.wav"]  # no temporary file left


def test_progress_goes_to_stderr_and_ends_with_duration_and_real_time_factor(
    calls: Calls, ref: Path, workdir: Path
) -> None:
    result = say("Hello!", "--ref", ref, "-o", "speech.wav", *QUICK)
    assert_ok(result)
    assert result.stdout == ""
    duration = sf.info(str(workdir / "speech.wav")).duration
    closing = result.stderr.strip().splitlines()[-1]
    assert closing.startswith(f"{duration:.2f} s of audio in ")
    assert "real-time factor" in closing
    assert closing.endswith("-> speech.wav")
    quiet = say("Hello!", "--ref", ref, "-o", "quiet.wav", "--quiet", *QUICK)
    assert_ok(quiet)
    assert "real-time factor" not in quiet.stderr


# ---------------------------------------------------------------------------------------- text


def test_text_from_stdin(calls: Calls, ref: Path, workdir: Path) -> None:
    assert_ok(say("-", "--ref", ref, "-o", "a.wav", *QUICK, input="Read from stdin.\n"))
    assert calls.streams[-1]["text"] == "Read from stdin.\n"
    wav_samples(workdir / "a.wav")


def test_text_from_a_file(calls: Calls, ref: Path, workdir: Path) -> None:
    (workdir / "text.txt").write_text("你好。From a file.", encoding="utf-8")
    assert_ok(say("--file", "text.txt", "--ref", ref, "-o", "a.wav", *QUICK))
    assert calls.streams[-1]["text"] == "你好。From a file."
    wav_samples(workdir / "a.wav")


def test_a_text_of_several_segments_is_written_whole(
    calls: Calls, tiny: Synthesizer, ref: Path, workdir: Path
) -> None:
    text = "One sentence here. Another sentence there. 第三句话。"
    assert len(tiny.text_frontend.analyze(text).segments(8)) >= 3
    args = ["--ref", ref, "--segment-tokens", "8", "--silence-ms", "100", "--seed", "3", *QUICK]
    assert_ok(say(text, *args, "-o", "a.wav"))
    options = SynthesisOptions(
        seed=3, max_text_tokens_per_segment=8, interval_silence_ms=100, max_codes=20, diffusion_steps=4
    )
    expected = tiny.synthesize(text, voice=tiny.voice(ref), options=options)
    samples = wav_samples(workdir / "a.wav")
    assert samples.shape[0] == expected.num_samples
    np.testing.assert_array_equal(samples, np.frombuffer(expected.to_bytes("wav")[44:], dtype="<i2"))


# ---------------------------------------------------------------------------------------- voices


def test_voice_create_info_and_say_with_it(calls: Calls, tiny: Synthesizer, ref: Path, workdir: Path) -> None:
    created = runner.invoke(app, ["voice", "create", str(ref), "-o", "me.safetensors"])
    assert_ok(created)
    assert created.stdout.strip() == "me.safetensors"
    voice = Voice.load(workdir / "me.safetensors")
    assert voice.id == tiny.voice(ref).id

    info = runner.invoke(app, ["voice", "info", "me.safetensors", "--json"])
    assert_ok(info)
    facts = json.loads(info.stdout)
    assert (facts["id"], facts["model"]) == (voice.id, "dummy:tiny")
    assert facts["duration"] == pytest.approx(voice.duration, abs=1e-3)
    table = runner.invoke(app, ["voice", "info", "me.safetensors"], env={"COLUMNS": "200"})
    assert_ok(table)
    assert voice.id in table.stdout
    assert "dummy:tiny" in table.stdout

    assert_ok(say("Hello!", "--voice", "me.safetensors", "-o", "a.wav", *QUICK))
    assert calls.streams[-1]["voice"].id == voice.id
    wav_samples(workdir / "a.wav")


def test_voice_create_default_name_is_never_overwritten(calls: Calls, ref: Path, workdir: Path) -> None:
    assert_ok(runner.invoke(app, ["voice", "create", str(ref)]))
    assert (workdir / "ref.safetensors").is_file()
    line = assert_one_line_error(runner.invoke(app, ["voice", "create", str(ref)]))
    assert "ref.safetensors exists" in line


def test_a_voice_of_another_model_is_refused(
    calls: Calls, tiny: Synthesizer, ref: Path, workdir: Path
) -> None:
    own = tiny.voice(ref)
    Voice(own.id, "elsewhere", "0123456789abcdef", own.duration, own.conditioning).save("other.safetensors")
    result = say("Hello!", "--voice", "other.safetensors", "-o", "a.wav", *QUICK)
    line = assert_one_line_error(result, after_load=True)
    assert "made with model elsewhere" in line
    assert not (workdir / "a.wav").exists()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["missing.wav"], "no such file"),
        (["{ref}", "--name", "me"], "--server"),
        (["{ref}", "--api-key", "k"], "--server"),
        (["{ref}", "--server", "http://127.0.0.1:9"], "--consent"),
        (["{ref}", "--server", "http://127.0.0.1:9", "--consent", "-o", "v.safetensors"], "-o"),
        (["{ref}", "--server", "http://127.0.0.1:9", "--consent", "--device", "cpu"], "--device"),
        (["{ref}", "-o", "no/such/dir/v.safetensors"], "does not exist"),
    ],
)
def test_bad_voice_create_flags_are_one_line_before_any_model_loads(
    calls: Calls, ref: Path, workdir: Path, flags: list[str], words: str
) -> None:
    args = [flag.replace("{ref}", str(ref)) for flag in flags]
    line = assert_one_line_error(runner.invoke(app, ["voice", "create", *args]))
    assert words in line
    assert calls.loads == []
    assert list(workdir.iterdir()) == []


def test_voice_info_of_a_non_voice_file_is_one_line(workdir: Path) -> None:
    (workdir / "x.safetensors").write_bytes(b"not a voice")
    assert_one_line_error(runner.invoke(app, ["voice", "info", "x.safetensors"]))


# ---------------------------------------------------------------------------------------- emotion


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--emotion", "happy=0.6,sad=0.2"], Emotion(vector={"happy": 0.6, "sad": 0.2})),
        (["--emotion", " Happy = 0.5 ", "--emotion-random"], Emotion(vector={"happy": 0.5}, random=True)),
        (["--emotion", "calm=0.4", "--emotion-alpha", "0.5"], Emotion(vector={"calm": 0.4}, alpha=0.5)),
        (["--emotion-text", "furious and impatient"], Emotion(text="furious and impatient")),
        (["--emotion-text", "sad", "--emotion-alpha", "0.7"], Emotion(text="sad", alpha=0.7)),
    ],
    ids=["vector", "vector-random", "vector-alpha", "text", "text-alpha"],
)
def test_emotion_flags(calls: Calls, ref: Path, workdir: Path, flags: list[str], expected: Emotion) -> None:
    assert_ok(say("Hello!", "--ref", ref, "-o", "a.wav", *flags, *QUICK))
    assert calls.streams[-1]["emotion"] == expected
    wav_samples(workdir / "a.wav")


def test_emotion_audio_with_alpha(calls: Calls, goldens: Path, ref: Path, workdir: Path) -> None:
    clip = goldens / "inputs" / "emo.wav"
    flags = ["--emotion-audio", clip, "--emotion-alpha", "0.6"]
    assert_ok(say("Hello!", "--ref", ref, "-o", "emo.wav", *flags, *QUICK))
    assert calls.streams[-1]["emotion"] == Emotion(audio=str(clip), alpha=0.6)
    wav_samples(workdir / "emo.wav")


# ---------------------------------------------------------------------------------------- options


def test_synthesis_flags_become_the_options(calls: Calls, ref: Path, workdir: Path) -> None:
    flags = [
        "--seed", "11", "--max-codes", "24", "--segment-tokens", "40", "--steps", "3",
        "--cfg-rate", "0.5", "--speed", "1.2", "--temperature", "0.9", "--top-k", "5",
        "--top-p", "0.95", "--beams", "1", "--silence-ms", "50",
    ]  # fmt: skip
    assert_ok(say("Hello!", "--ref", ref, "-o", "a.wav", *flags))
    assert calls.streams[-1]["options"] == SynthesisOptions(
        seed=11,
        max_codes=24,
        max_text_tokens_per_segment=40,
        diffusion_steps=3,
        cfg_rate=0.5,
        speed=1.2,
        temperature=0.9,
        top_k=5,
        top_p=0.95,
        num_beams=1,
        interval_silence_ms=50,
    )


def test_no_flags_means_the_library_defaults(calls: Calls, ref: Path, workdir: Path) -> None:
    result = say("Hi.", "--ref", ref, "-o", "a.wav", "--max-codes", "20", "--steps", "4")
    assert_ok(result)
    assert calls.streams[-1]["options"] == SynthesisOptions(max_codes=20, diffusion_steps=4)
    assert calls.streams[-1]["emotion"] is None


def test_model_flags_reach_the_loader(calls: Calls, ref: Path, workdir: Path) -> None:
    flags = ["--model", "dummy:tiny", "--device", "cpu", "--dtype", "fp32", "--revision", "v1"]
    assert_ok(say("Hi.", "--ref", ref, "-o", "a.wav", *flags, "--cache-dir", workdir / "cache", *QUICK))
    load = calls.loads[-1]
    assert (load["model"], load["device"], load["dtype"], load["revision"]) == (
        "dummy:tiny",
        "cpu",
        "fp32",
        "v1",
    )
    assert load["cache_dir"] == workdir / "cache"
    assert load["offline"] is False


def test_model_and_device_default_to_the_settings(
    calls: Calls, ref: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INDEXTTS2_MODEL", "dummy:tiny")
    monkeypatch.setenv("INDEXTTS2_DEVICE", "cpu")
    monkeypatch.setenv("INDEXTTS2_OFFLINE", "1")
    assert_ok(say("Hi.", "--ref", ref, "-o", "a.wav", *QUICK))
    load = calls.loads[-1]
    assert (load["model"], load["device"], load["offline"]) == ("dummy:tiny", "cpu", True)


def test_offline_without_the_model_names_what_is_missing(ref: Path, workdir: Path) -> None:
    # the real loader and store: an empty cache, no network allowed
    result = say("Hi.", "--ref", ref, "-o", "a.wav", "--model", "IndexTeam/IndexTTS-2", "--offline")
    line = assert_one_line_error(result, after_load=True)
    assert "IndexTeam/IndexTTS-2" in line
    assert "missing" in line


def test_a_download_needs_the_licence_accepted(ref: Path, workdir: Path) -> None:
    result = say("Hi.", "--ref", ref, "-o", "a.wav", "--model", "IndexTeam/IndexTTS-2")
    line = assert_one_line_error(result, after_load=True)
    assert "--accept-license" in line


# ---------------------------------------------------------------------------------------- bad flags


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["Hi", "--ref", "{ref}", "--voice", "v.safetensors"], "not both"),
        ([], "TEXT"),
        (["Hi", "--file", "t.txt", "--ref", "{ref}"], "not both"),
        (["--file", "missing.txt", "--ref", "{ref}"], "no such file"),
        (["", "--ref", "{ref}"], "empty"),
        (["  \n", "--ref", "{ref}"], "empty"),
        (["-", "--ref", "{ref}"], "stdin is empty"),
        (["Hi", "--voice", "missing.safetensors"], "does not exist"),
        (["Hi", "--ref", "missing.wav"], "no such file"),
        (["Hi", "--ref", "{ref}", "--emotion", "happy=0.5", "--emotion-text", "joy"], "one emotion source"),
        (["Hi", "--ref", "{ref}", "--emotion-audio", "{ref}", "--emotion", "sad=0.1"], "one emotion source"),
        (["Hi", "--ref", "{ref}", "--emotion", "happy"], "NAME=WEIGHT"),
        (["Hi", "--ref", "{ref}", "--emotion", "happy=lots"], "not a number"),
        (["Hi", "--ref", "{ref}", "--emotion", "joy=0.5"], "unknown emotion"),
        (["Hi", "--ref", "{ref}", "--emotion", "sad=0.5,sad=0.1"], "twice"),
        (["Hi", "--ref", "{ref}", "--emotion", ","], "empty"),
        (["Hi", "--ref", "{ref}", "--emotion", "happy=0.8,sad=0.8"], "sum"),
        (["Hi", "--ref", "{ref}", "--emotion", "happy=-0.1"], "negative"),
        (["Hi", "--ref", "{ref}", "--emotion-alpha", "0.5"], "--emotion-alpha"),
        (["Hi", "--ref", "{ref}", "--emotion", "happy=0.5", "--emotion-alpha", "2"], "alpha"),
        (["Hi", "--ref", "{ref}", "--emotion-random"], "--emotion-random"),
        (["Hi", "--ref", "{ref}", "--emotion-audio", "{ref}", "--emotion-random"], "--emotion-random"),
        (["Hi", "--ref", "{ref}", "--steps", "0"], "--steps"),
        (["Hi", "--ref", "{ref}", "--speed", "9"], "--speed"),
        (["Hi", "--ref", "{ref}", "-o", "a.xyz"], "format"),
        (["Hi", "--ref", "{ref}", "-o", "a.mp3", "--format", "wav"], "--format"),
        (["Hi", "--ref", "{ref}", "--format", "aiff"], "--format"),
        (["Hi", "--ref", "{ref}", "-o", "no/such/dir/a.wav"], "does not exist"),
        (["Hi", "--ref", "{ref}", "--api-key", "k"], "--server"),
        (["Hi", "--ref", "{ref}", "--server", "http://127.0.0.1:9"], "--consent"),
        (["Hi", "--ref", "{ref}", "--server", "http://127.0.0.1:9", "--consent", "--device", "cpu"], "local"),
        (["Hi", "--voice", "v.safetensors", "--server", "http://127.0.0.1:9"], "saved on the server"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2_before_any_model_loads(
    calls: Calls, ref: Path, workdir: Path, flags: list[str], words: str
) -> None:
    line = assert_one_line_error(say(*(flag.replace("{ref}", str(ref)) for flag in flags)))
    assert words in line
    assert calls.loads == []
    assert list(workdir.iterdir()) == []


def test_an_unreadable_reference_is_one_line(calls: Calls, workdir: Path) -> None:
    (workdir / "noise.wav").write_bytes(b"RIFF not really")
    assert_one_line_error(say("Hi", "--ref", "noise.wav", "-o", "a.wav"))
    assert calls.loads == []


# ---------------------------------------------------------------------------------------- --server


@pytest.mark.slow
def test_say_and_voice_create_through_a_real_server(
    ref: Path, workdir: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "server"))
    import server_helpers  # the server tests' process helpers

    # the real server whatever the server tests currently start
    monkeypatch.setattr(server_helpers, "SERVE_COMMAND", [sys.executable, "-m", "indextts2"])
    monkeypatch.setattr(server_helpers, "MODEL_ARGS", [])
    server = server_helpers.ServerProcess(
        tmp_path_factory.mktemp("serve-home"), ["--model", "dummy:tiny", "--cpu"], model_args=[]
    )
    try:
        server.wait_ready()
        url = server.url
        uploaded = say("Hello!", "--server", url, "--ref", ref, "--consent", "-o", "a.wav", *QUICK)
        assert_ok(uploaded)
        wav_samples(workdir / "a.wav")
        assert "real-time factor" in uploaded.stderr

        created = runner.invoke(
            app, ["voice", "create", str(ref), "--server", url, "--consent", "--name", "me"]
        )
        assert_ok(created)
        assert len(created.stdout.strip()) == 64  # the voice's content id
        # the same clip under another name: the name is added to the saved voice, never dropped
        again = runner.invoke(
            app, ["voice", "create", str(ref), "--server", url, "--consent", "--name", "me2"]
        )
        assert_ok(again)
        assert again.stdout == created.stdout
        assert "(me, me2)" in again.stderr
        assert_ok(say("Hi.", "--server", url, "--voice", "me2", "-o", "again.wav", *QUICK))

        flags = ["--emotion", "happy=0.5", "--seed", "4", *QUICK]
        assert_ok(say("Hello!", "--server", url, "--voice", "me", "-o", "b.mp3", *flags))
        info = sf.info(str(workdir / "b.mp3"))
        assert (info.format, info.samplerate) == ("MP3", RATE)
        raw = say("Hello!", "--server", url, "--voice", "me", "-o", "-", "--format", "pcm", *flags)
        assert_ok(raw)
        assert len(raw.stdout_bytes) > 0
        assert len(raw.stdout_bytes) % 2 == 0

        # no --ref and no --voice: the server's built-in sample voice
        default = say("Hello!", "--server", url, "-o", "d.wav", *QUICK)
        assert_ok(default)
        assert "sample voice" in default.stderr
        wav_samples(workdir / "d.wav")

        missing = say("Hello!", "--server", url, "--voice", "nobody", "-o", "c.wav", *QUICK)
        line = assert_one_line_error(missing, after_load=True)
        assert "nobody" in line
        assert not (workdir / "c.wav").exists()
    finally:
        server.terminate()
