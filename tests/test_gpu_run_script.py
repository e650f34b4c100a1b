"""benchmarks/gpu_run.sh, the one command a GPU session runs, works: checked on the CPU with dummy:tiny."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_run_script_leaves_the_tables_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "WHEELS": str(tmp_path / "no-wheels"),  # the project is installed here: nothing to carry
        "MODEL": "dummy:tiny",
        "DEVICE": "cpu",
        "DTYPE": "fp32",
        "SWEEP": "1,2",
        "ROWS": "1 2",
        "BENCH_ARGS": "--diffusion-steps 2 --requests-per-client 1",
    }
    done = subprocess.run(
        ["bash", "benchmarks/gpu_run.sh", str(out), "sweep", "steps"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "sweep.json").read_text())
    assert [level["concurrency"] for level in report["levels"]] == [1, 2]
    assert all(level["failed"] == 0 and level["speedup"] > 0 for level in report["levels"])
    assert report["baseline"]["requests"] == 4  # the same mix, one request at a time
    assert "sequential (unbatched)" in (out / "sweep.md").read_text()
    assert "torch" in (out / "machine.txt").read_text()
    steps = (out / "steps.md").read_text()
    assert "| rows | eager | no forward |" in steps
    assert "| 2 |" in steps


def test_the_gpu_run_script_refuses_an_unknown_part(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", "benchmarks/gpu_run.sh", str(tmp_path), "warp-speed"],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable, "WHEELS": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown part: warp-speed" in done.stderr
