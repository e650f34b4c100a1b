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


def test_doctor_names_the_optional_pieces_and_where_they_are_missing(tmp_path: Path) -> None:
    env = {
        "COLUMNS": "300",
        "INDEXTTS2_GOLDENS": str(tmp_path / "no-goldens"),
        "INDEXTTS2_CHROMIUM": str(tmp_path / "no-chromium"),
    }
    result = runner.invoke(app, ["doctor", "--cache-dir", str(tmp_path)], env=env)
    assert result.exit_code == 0
    assert f"missing at {tmp_path / 'no-goldens'}" in result.stdout
    assert "missing (apt-get install chromium, or set INDEXTTS2_CHROMIUM)" in result.stdout

    (tmp_path / "goldens" / "checkpoint").mkdir(parents=True)
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    env = {**env, "INDEXTTS2_GOLDENS": str(tmp_path / "goldens"), "INDEXTTS2_CHROMIUM": str(chromium)}
    result = runner.invoke(app, ["doctor", "--cache-dir", str(tmp_path)], env=env)
    assert f"python -m indextts2.parity {tmp_path / 'goldens'}" in result.stdout
    assert f"{chromium}  the web page tests drive it headless" in result.stdout


def test_doctor_shows_each_gpu_and_its_free_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "NVIDIA H100")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (60 * 2**30, 80 * 2**30))
    result = runner.invoke(app, ["doctor", "--cache-dir", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    assert "NVIDIA H100, 60.0 GiB free of 80.0 GiB" in result.stdout


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
