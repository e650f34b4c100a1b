"""Every example under examples/ runs, as a user would run it, and writes what it says it writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from indextts2 import Voice

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
def test_synthesize_example_writes_its_files(tmp_path: Path) -> None:
    out = tmp_path / "speech"
    command = [sys.executable, str(EXAMPLES / "synthesize.py"), "--out-dir", str(out)]
    # no --model and no --ref: the defaults are dummy:tiny and the shipped sample voice; no
    # --max-codes either: the dummy speaks for as long as each text takes to read
    result = subprocess.run(
        [*command, "--steps", "4", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "hello.wav: 2.09 s" in result.stdout  # the quick-start text's reading time (test_pacing)
    expected = {
        "hello.wav": "WAV",
        "happy.flac": "FLAC",
        "stream.wav": "WAV",
        "batch-0.wav": "WAV",
        "batch-1.wav": "WAV",
    }
    for name, container in expected.items():
        info = sf.info(str(out / name))
        assert (info.format, info.samplerate, info.channels) == (container, 22050, 1), name
        assert info.frames > 0, name
    voice = Voice.load(out / "voice.safetensors")
    assert voice.model_id == "dummy:tiny"
    assert sorted(p.name for p in out.iterdir()) == sorted([*expected, "voice.safetensors"])


def test_every_example_has_a_test() -> None:
    tested = {"synthesize.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested
