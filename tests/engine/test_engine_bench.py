"""``indextts2 bench``: a short in-process run with its baseline, and the HTTP variant in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from indextts2.cli.app import app
from indextts2.engine.bench import BENCH_TEXTS, BenchSettings
from indextts2.engine.pacing import spread_codes
from indextts2.model.s2mel import mel_frames_for_codes, mel_frames_for_content


def expected_seconds(codes: int) -> float:
    import torch

    return int(mel_frames_for_codes(torch.tensor([codes]))[0]) * 256 / 22050


def test_codes_are_spread_over_segments_by_their_tokens() -> None:
    assert spread_codes([10, 30], 200) == [50, 150]
    assert spread_codes([1, 1000], 3) == [1, 3]
    assert BenchSettings(codes_per_second=50).codes_for(BENCH_TEXTS[0]) == 150
    plan = BenchSettings(requests_per_client=2).workload(3)
    assert [[index for index, _ in client] for client in plan] == [[0, 1], [2, 3], [4, 5]]
    assert [text.name for _, text in plan[1]] == ["en-short", "zh-long"]  # each client starts elsewhere


def test_bench_runs_levels_and_the_sequential_baseline(tmp_path: Path) -> None:
    report_path = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--model", "dummy:tiny",
            "--device", "cpu",
            "--concurrency", "1,3",
            "--requests-per-client", "1",
            "--diffusion-steps", "2",
            "--codes-per-second", "5",
            "--baseline", "sequential",
            "--json", str(report_path),
            "--markdown", str(tmp_path / "bench.md"),
        ],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "audio s/s" in result.stdout
    assert "sequential" in result.stdout
    report = json.loads(report_path.read_text())
    levels = report["levels"]
    assert [level["concurrency"] for level in levels] == [1, 3]
    assert [level["requests"] for level in levels] == [1, 3]
    assert all(level["failed"] == 0 for level in levels)
    # forced code counts: the audio is exactly what the texts' seconds ask for
    codes = {text.name: max(1, round(text.seconds * 5)) for text in BENCH_TEXTS}
    first_three = [BENCH_TEXTS[i].name for i in range(3)]
    assert abs(levels[1]["audio_seconds"] - sum(expected_seconds(codes[n]) for n in first_three)) < 0.05
    baseline = report["baseline"]
    assert baseline["requests"] == len(BENCH_TEXTS)
    assert levels[1]["speedup"] == levels[1]["throughput"] / baseline["throughput"]
    assert levels[1]["engine"]["largest_batch"]["decode"] >= 2  # three clients shared decode steps
    table = (tmp_path / "bench.md").read_text()
    assert "| sequential (unbatched) | 4 |" in table
    assert f"| 3 | {levels[1]['engine']['decode_steps']} |" in table  # the stage table
    assert report["meta"]["model"] == "dummy:tiny"
    assert report["meta"]["command"].startswith("indextts2 bench")
    # the capacity stated for the default target: a measured level, per GPU
    planned = report["capacity"]
    assert planned["target_first_audio_p95"] == 1.5
    met = [level for level in levels if level["first_audio_p95"] <= 1.5]
    assert planned["clients_per_gpu"] == (max(level["concurrency"] for level in met) if met else 0)
    assert "capacity:" in result.output


def _level(clients: int, p95: float | None, failed: int = 0) -> Any:
    from indextts2.engine.bench import LevelReport

    return LevelReport(clients, clients * 4, failed, 10.0, clients * 20.0, 0.1, 0.2, p95, p95, p95, None)


def test_capacity_is_the_largest_measured_level_within_the_target() -> None:
    from indextts2.engine.bench import BenchReport, capacity
    from indextts2.errors import InvalidInput

    report = BenchReport({}, [_level(1, 0.3), _level(4, 0.6), _level(16, 1.2), _level(64, 2.8)])
    planned = capacity(report, 1.5)
    assert planned["clients_per_gpu"] == 16
    assert planned["limited_by"] == "target"
    assert planned["audio_seconds_per_second_per_gpu"] == 32.0  # 320 audio s in 10 s
    assert capacity(report, 3.0)["limited_by"] == "levels"  # even 64 met it: at least 64
    assert capacity(report, 0.1) == {**capacity(report, 0.1), "clients_per_gpu": 0.0, "limited_by": "none"}
    # a level with failures never counts, whatever its latency; a server's GPUs divide it
    failing = BenchReport({}, [_level(4, 0.6), _level(16, 0.9, failed=2)])
    assert capacity(failing, 1.5)["measured_at"] == 4
    assert capacity(BenchReport({}, [_level(16, 1.2)]), 1.5, gpus=4)["clients_per_gpu"] == 4
    with pytest.raises(InvalidInput):
        capacity(report, 0)


def test_bench_on_indextts_2_5_forces_codes_at_its_25_hz_rate(tmp_path: Path) -> None:
    """By default the forced code count follows the model's code rate, so the audio lasts as long as the
    text is meant to: 3 s of IndexTTS-2.5 speech are 75 codes (2 x 1.72 mel frames each)."""
    report_path = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--model", "dummy:tiny-2.5",
            "--device", "cpu",
            "--concurrency", "1",
            "--requests-per-client", "1",
            "--diffusion-steps", "2",
            "--json", str(report_path),
        ],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    (level,) = report["levels"]
    assert report["meta"]["model"] == "dummy:tiny-2.5"
    assert BENCH_TEXTS[0].seconds == 3.0
    assert level["audio_seconds"] == mel_frames_for_content(2 * 75) * 256 / 22050  # 258 frames
