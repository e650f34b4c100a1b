"""``python -m indextts2.parity``: the table, the exit codes and stage selection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from indextts2.parity import run_parity
from indextts2.parity.__main__ import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "indextts2.parity", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.goldens
def test_audio_stage_passes_and_exits_zero(goldens: Path) -> None:
    result = run_cli(str(goldens), "--stage", "audio")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ref.audio_16k" in result.stdout
    assert "all 8 checks passed" in result.stdout


@pytest.mark.goldens
def test_report_covers_every_named_stage(goldens: Path) -> None:
    report = run_parity(goldens, ["audio"])
    assert {check.stage for check in report.checks} == {"audio"}
    assert report.passed


def test_unimplemented_stage_fails_as_not_implemented(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "inputs").mkdir()
    import indextts2.parity.core as core

    monkeypatch.setattr(core, "load_stage", lambda name, family: None)  # as if no stage module existed
    assert main([str(tmp_path), "--stage", "e2e"]) == 1
    assert "not implemented" in capsys.readouterr().out


def test_not_a_golden_directory_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path))
    assert result.returncode == 2
    assert "not a golden directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_stage_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path), "--stage", "nope")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
