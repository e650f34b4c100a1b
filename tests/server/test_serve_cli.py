"""``indextts2 serve``'s command line: refusals, keys, the systemd unit, the pidfile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indextts2.cli import app
from indextts2.errors import ConfigError
from indextts2.server.auth import read_keys_file
from indextts2.server.process import Pidfile
from indextts2.server.runner import SHUTDOWN_MARGIN_SECONDS

runner = CliRunner()


def test_exposed_address_without_a_key_refuses_to_start() -> None:
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without an API key" in result.output
    assert "--insecure" in result.output


def test_conflicting_and_malformed_flags() -> None:
    assert "choose one device, not --gpu and --cpu" in runner.invoke(app, ["serve", "--gpu", "--cpu"]).output
    both = runner.invoke(app, ["serve", "--cpu", "--device", "cuda"]).output
    assert "choose one device, not --cpu and --device cuda" in both
    assert "unknown device 'gpu0'" in runner.invoke(app, ["serve", "--device", "gpu0"]).output
    assert "N/unit" in runner.invoke(app, ["serve", "--rate-limit", "fast"]).output
    assert "not an address or CIDR" in runner.invoke(app, ["serve", "--allow-ip", "lan"]).output
    assert "--basic-auth checks API keys" in runner.invoke(app, ["serve", "--basic-auth"]).output


def test_keys_add_list_rm(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    added = runner.invoke(app, ["serve", "keys", "add", "laptop", "--keys-file", str(keys)])
    assert added.exit_code == 0, added.output
    key = added.stdout.strip().splitlines()[0]
    assert key.startswith("itts2_")
    assert [r.name for r in read_keys_file(keys)] == ["laptop"]
    assert key not in keys.read_text()
    listed = runner.invoke(app, ["serve", "keys", "list", "--keys-file", str(keys)], env={"COLUMNS": "200"})
    assert "laptop" in listed.output
    assert key not in listed.output
    dry = runner.invoke(app, ["serve", "keys", "rm", "laptop", "--keys-file", str(keys), "--dry-run"])
    assert "would remove" in dry.output
    assert len(read_keys_file(keys)) == 1
    removed = runner.invoke(app, ["serve", "keys", "rm", "laptop", "--keys-file", str(keys), "--yes"])
    assert removed.exit_code == 0
    assert read_keys_file(keys) == []
    missing = runner.invoke(app, ["serve", "keys", "rm", "laptop", "--keys-file", str(keys), "--yes"])
    assert missing.exit_code == 2
    assert "no key named 'laptop'" in missing.output


def test_print_systemd_unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys"
    keys.write_text("")
    argv = [
        "indextts2",
        "serve",
        "--host",
        "0.0.0.0",
        "--api-keys-file",
        str(keys),
        "--replace",
        "--grace-period",
        "10",
        "--print-systemd-unit",
    ]
    monkeypatch.setattr("sys.argv", argv)
    result = runner.invoke(app, argv[1:])
    assert result.exit_code == 0, result.output
    unit = result.stdout
    assert "[Service]" in unit
    assert "KillSignal=SIGTERM" in unit
    assert "WantedBy=multi-user.target" in unit
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert f"serve --host 0.0.0.0 --api-keys-file {keys}" in exec_start
    assert "--replace" not in exec_start
    assert "--print-systemd-unit" not in exec_start
    assert f"Environment=INDEXTTS2_HOME={os.environ['INDEXTTS2_HOME']}" in unit
    # systemd waits past the grace period for as long as the server may take to end what is left
    # and exit (uvicorn's own backstop), and some more, before it kills it
    assert "TimeoutStopSec=25" in unit.splitlines()
    assert 10 + SHUTDOWN_MARGIN_SECONDS < 25


def test_pidfile_refuses_a_second_server_and_ignores_stale_pids(tmp_path: Path) -> None:
    pidfile = Pidfile(tmp_path / "serve.pid")
    pidfile.path.write_text("999999999\n")  # no such process: stale
    pidfile.claim(replace=False, wait_seconds=1)
    assert pidfile.read() == os.getpid()
    pidfile.release()
    assert not pidfile.path.exists()
    # a live process that is not a server is never taken for one (the pid may have been reused)
    pidfile.path.write_text(f"{os.getppid()}\n")
    assert Pidfile(pidfile.path).running_pid() is None


def test_pidfile_names_the_running_server(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    # a process whose command line has "serve" in it, as a running server's has
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "serve"])
    try:
        cmdline = Path(f"/proc/{sleeper.pid}/cmdline")
        for _ in range(100):  # until the child has exec'd (before that it shows our command line)
            if b"serve" in cmdline.read_bytes().split(b"\0"):
                break
            time.sleep(0.02)
        pidfile = Pidfile(tmp_path / "serve.pid")
        pidfile.path.write_text(f"{sleeper.pid}\n")
        with pytest.raises(ConfigError, match=f"pid {sleeper.pid}.*--replace"):
            pidfile.claim(replace=False, wait_seconds=1)
        pidfile.claim(replace=True, wait_seconds=5)  # SIGTERM, waited for
        assert sleeper.wait(5) != 0
        assert pidfile.read() == os.getpid()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_the_container_commands_are_valid_serve_flags(tmp_path: Path) -> None:
    import json

    import yaml

    repo = Path(__file__).resolve().parents[2]
    compose_args = yaml.safe_load((repo / "compose.yaml").read_text())["services"]["indextts2"]["command"]
    cmd_line = next(
        line for line in (repo / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")
    )
    for args in (compose_args, json.loads(cmd_line[4:])):
        result = runner.invoke(app, ["serve", *args, "--print-systemd-unit"])
        assert result.exit_code == 0, result.output
        assert "ExecStart=" in result.stdout
