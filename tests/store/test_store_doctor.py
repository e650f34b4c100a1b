"""``indextts2 doctor`` reports the model cache as the store sees it: complete, or what is missing."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from indextts2.cli import app
from indextts2.store import ModelFiles

runner = CliRunner()


def doctor_lines(cache: Path) -> dict[str, str]:
    result = runner.invoke(app, ["doctor", "--cache-dir", str(cache)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


def test_an_empty_cache_says_how_to_fill_it(cache: Path) -> None:
    rows = doctor_lines(cache)
    assert rows["model IndexTeam/IndexTTS-2"] == "not cached  indextts2 models download --accept-license"
    assert rows["model dummy:tiny / dummy:full"].startswith("always available")
    assert "free of" in rows["cache disk"]
    assert not cache.exists()  # looking creates nothing


def test_a_complete_model(downloaded: ModelFiles, cache: Path) -> None:
    status = doctor_lines(cache)["model IndexTeam/IndexTTS-2"]
    assert status.startswith(f"complete (main {downloaded.revision[:8]}, ")


def test_an_incomplete_model_names_what_is_missing(downloaded: ModelFiles, cache: Path) -> None:
    (downloaded.root / "gpt.pth").resolve().unlink()
    status = doctor_lines(cache)["model IndexTeam/IndexTTS-2"]
    assert status.startswith(f"incomplete (main {downloaded.revision[:8]}, ")
    assert "1 file(s) missing: IndexTeam/IndexTTS-2/gpt.pth" in status
    assert "indextts2 models download resumes" in status
