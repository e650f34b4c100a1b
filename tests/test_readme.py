"""The README's two commands: the first, run verbatim, writes the file it says, as long as it says.

The second (``bash .ci/run``) is what CI itself runs, so it is only checked to be that script here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def quick_start() -> list[str]:
    """The commands of the README's first code block, in order, without their comments."""
    block = re.search(r"^## Quick start.*?```bash\n(.*?)```", README, re.S | re.M)
    assert block is not None, "the README starts with a Quick start section and its commands"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_starts_with_the_two_commands() -> None:
    assert README.index("## Quick start") < README.index("## Install") < README.index("## Usage")
    assert quick_start() == ["bash scripts/quickstart.sh", "bash .ci/run"]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in ci
    assert "python -m pytest -q" in ci


@pytest.mark.slow
def test_the_first_command_speaks_what_the_readme_says(tmp_path: Path) -> None:
    # a clone whose virtualenv is active already (this one's): the script skips the installs, which
    # .ci/run exercises on a fresh clone, and speaks; hello.wav lands in the current directory
    (tmp_path / "scripts").symlink_to(REPO / "scripts", target_is_directory=True)
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix, "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    command = quick_start()[0]
    result = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    said = re.search(r"hello\.wav, ([\d.]+) s of audio", README)
    assert said is not None
    seconds = float(said.group(1))
    info = sf.info(str(tmp_path / "hello.wav"))
    assert (info.format, info.samplerate, info.channels) == ("WAV", 22050, 1)
    assert info.duration == pytest.approx(seconds, abs=0.005)
    assert f"{seconds:.2f} s of audio in " in result.stderr  # the closing line the README quotes
    assert result.stderr.rstrip().endswith("-> hello.wav")
    assert "warn" not in result.stderr.lower()  # neither <unk> pieces nor max_codes
    assert result.stdout == ""


def test_the_quick_start_names_an_old_python(tmp_path: Path) -> None:
    old = tmp_path / "python3"
    old.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.8.10'\nexit 1\n")
    old.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "quickstart.sh")],
        cwd=tmp_path,
        env={**env, "PYTHON": str(old)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "needs Python 3.10 or newer" in result.stderr
    assert "Python 3.8.10" in result.stderr
