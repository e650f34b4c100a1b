"""Usage errors: one line on stderr, exit 2, in the user's words, with a suggestion that fits.

click's own errors (unknown option or command, missing argument, bad value, extra arguments) and our
flag checks alike; plus the flag defaults that depend on the device (``bench``).
"""

from __future__ import annotations

import enum
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from indextts2.cli import app
from indextts2.cli.app import _ErrorMappingGroup
from indextts2.errors import InvalidInput

runner = CliRunner()


def one_line_error(result: Any) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["say", "hi", "--loud"], "error: indextts2 say has no option --loud; see 'indextts2 say --help'"),
        (
            ["say", "hi", "--stpes", "3"],
            "error: indextts2 say has no option --stpes; did you mean --steps? (see 'indextts2 say --help')",
        ),
        (
            ["say", "hi", "--gpu"],
            "error: indextts2 say has no option --gpu; did you mean --device cuda? "
            "(see 'indextts2 say --help')",
        ),
        (["--bogus"], "error: indextts2 has no option --bogus; see 'indextts2 --help'"),
        (
            ["bogus"],
            "error: indextts2 has no command 'bogus'; the commands are bench, doctor, models, say, serve, "
            "text, voice (see 'indextts2 --help')",
        ),
        (
            ["sya", "hi"],
            "error: indextts2 has no command 'sya'; did you mean 'say'? (see 'indextts2 --help')",
        ),
        (
            ["models", "lst"],
            "error: indextts2 models has no command 'lst'; did you mean 'list'? "
            "(see 'indextts2 models --help')",
        ),
        (
            ["say", "hello", "world"],
            "error: indextts2 say got more arguments than it takes: world; put text with spaces in quotes "
            "(see 'indextts2 say --help')",
        ),
        (["serve", "keys", "add"], "error: Missing argument 'name'; see 'indextts2 serve keys add --help'"),
        (["say", "--format"], "error: Option '--format' requires an argument; see 'indextts2 say --help'"),
        (
            ["serve", "keys", "add", "me", "--nope"],
            "error: indextts2 serve keys add has no option --nope; see 'indextts2 serve keys add --help'",
        ),
    ],
)
def test_click_usage_errors_are_one_line(args: list[str], line: str) -> None:
    assert one_line_error(runner.invoke(app, args)) == line


def test_a_bad_value_names_the_option_and_what_was_typed() -> None:
    line = one_line_error(runner.invoke(app, ["say", "hi", "--seed", "abc"]))
    assert line.startswith("error: Invalid value for '--seed': ")
    assert "'abc'" in line or "integer" in line
    assert line.endswith("; see 'indextts2 say --help'")


class Colour(str, enum.Enum):
    red = "red"
    green = "green"


def test_a_bad_choice_lists_the_choices() -> None:
    demo = typer.Typer(cls=_ErrorMappingGroup)

    @demo.command()
    def paint(colour: Annotated[Colour, typer.Option()] = Colour.red) -> None:
        pass

    @demo.command()
    def other() -> None:
        pass

    line = one_line_error(runner.invoke(demo, ["paint", "--colour", "pink"]))
    assert "'--colour'" in line
    assert "'pink'" in line
    assert "red" in line
    assert "green" in line


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["say", "hi", "--emotion", "happy=2"],
            "error: --emotion happy=2: the weights sum to 2, more than 1; the speaker's own emotion gets "
            "1 - sum, so make them add up to 1 or less, e.g. happy=0.6,surprised=0.2",
        ),
        (
            ["say", "hi", "--emotion", "happy=-1"],
            "error: --emotion happy=-1: a weight is a number from 0 to 1 (negative is not allowed)",
        ),
        (
            ["say", "hi", "--emotion", "sad=0.5", "--emotion-alpha", "2"],
            "error: --emotion-alpha 2: the strength is a number from 0 to 1",
        ),
        (["say", "hi", "--steps", "0"], "error: --steps must be between 1 and 1000, got 0"),
        (
            ["say", "hi", "--temperature", "0"],
            "error: --temperature must be > 0, got 0.0 (use --top-k 1 for greedy)",
        ),
        (["say", "hi", "--segment-tokens", "0"], "error: --segment-tokens must be >= 1, got 0"),
        (["serve", "--gpu", "--cpu"], "error: choose one device, not --gpu and --cpu"),
        (["serve", "--device", "gpu0"], "error: unknown device 'gpu0'; use auto, cpu, cuda, cuda:N or mps"),
        (
            ["bench", "--server", "http://127.0.0.1:9", "--baseline", "sequential"],
            "error: --baseline sequential runs in-process; leave out --server to use it",
        ),
    ],
)
def test_flag_errors_name_what_the_user_typed(args: list[str], line: str) -> None:
    got = one_line_error(runner.invoke(app, args, env={"COLUMNS": "400"}))
    assert got == line
    for internal in ("normalize_emotion_weights", "diffusion_steps", "top_k", "max_text_tokens"):
        assert internal not in got


def test_the_console_script_prints_the_same_one_line() -> None:
    script = Path(sys.executable).parent / "indextts2"
    result = subprocess.run([str(script), "say", "hi", "--loud"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "error: indextts2 say has no option --loud; see 'indextts2 say --help'\n"
    assert result.stdout == ""


def test_a_bare_group_still_shows_its_help() -> None:
    result = runner.invoke(app, ["serve", "keys"])
    assert "add" in result.output
    assert "list" in result.output
    assert "error:" not in result.output


@pytest.fixture
def bench_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """``bench``'s local run, recorded instead of run (it stops the command with a one-line error)."""
    from indextts2.cli import bench

    runs: list[dict[str, Any]] = []

    def run_local(settings: Any, **kwargs: Any) -> Any:
        runs.append({"settings": settings, **kwargs})
        raise InvalidInput("recorded")

    monkeypatch.setattr(bench, "_run_local", run_local)
    return runs


def test_bench_on_a_cpu_picks_a_small_run_and_says_so(bench_runs: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["bench", "--device", "cpu"], env={"COLUMNS": "400"})
    assert result.exit_code == 2
    assert (
        "running on the CPU: --model dummy:tiny --concurrency 1,4 --diffusion-steps 10 (give them to choose)"
        in result.stderr
    )
    (run,) = bench_runs
    assert run["model"] == "dummy:tiny"
    assert run["settings"].concurrency == (1, 4)
    assert run["settings"].diffusion_steps == 10


def test_bench_flags_given_are_kept_and_not_announced(bench_runs: list[dict[str, Any]]) -> None:
    args = [
        "bench",
        "--device",
        "cpu",
        "--model",
        "dummy:full",
        "--concurrency",
        "2",
        "--diffusion-steps",
        "3",
    ]
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert "running on" not in result.stderr
    (run,) = bench_runs
    assert (run["model"], run["settings"].concurrency, run["settings"].diffusion_steps) == (
        "dummy:full",
        (2,),
        3,
    )
