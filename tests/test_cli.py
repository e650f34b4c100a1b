"""The CLI skeleton: version, doctor, and the one error handler."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from indextts2 import __version__
from indextts2.cli import app
from indextts2.cli.app import _ErrorMappingGroup
from indextts2.errors import InvalidInput

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"indextts2 {__version__}"


def test_console_script_runs_doctor() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "indextts2"), "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for row in ("Python", "torch", "CUDA", "model cache", "cache disk", "soundfile"):
        assert row in result.stdout


def test_doctor_reports_the_cache_dir_it_was_given(tmp_path) -> None:
    result = runner.invoke(app, ["doctor", "--cache-dir", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    assert str(tmp_path) in result.output


def test_a_bad_setting_is_one_line_and_exit_2() -> None:
    result = runner.invoke(app, ["doctor"], env={"INDEXTTS2_DEBUG": "maybe"})
    assert result.exit_code == 2
    assert "INDEXTTS2_DEBUG" in result.output
    assert "Traceback" not in result.output


def _failing_app() -> typer.Typer:
    demo = typer.Typer(cls=_ErrorMappingGroup)

    @demo.command()
    def fail() -> None:
        raise InvalidInput("the text is empty; give some text")

    @demo.command()
    def other() -> None:
        pass

    return demo


def test_library_errors_become_one_line_exit_2() -> None:
    result = runner.invoke(_failing_app(), ["fail"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: the text is empty; give some text"


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEXTTS2_DEBUG", "1")
    result = runner.invoke(_failing_app(), ["fail"])
    assert isinstance(result.exception, InvalidInput)


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "doctor" in result.output
