"""The Dockerfile, compose.yaml and the container's entry point, checked without a Docker engine.

No daemon runs here, so what matters is checked by reading the files (hadolint-like rules) and by
running the entry point script with a stand-in ``indextts2``: the image's command and compose's are
valid ``indextts2 serve`` command lines, the ports, volume and keys file agree, and a first start
without a key tells, in the log, the one command that creates it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from indextts2.cli import app

REPO = Path(__file__).resolve().parent.parent
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
KEY_COMMAND = "docker compose run --rm indextts2 keys add NAME"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def only(instruction: str) -> str:
    found = [rest for keyword, rest in dockerfile() if keyword == instruction]
    assert len(found) == 1, (instruction, found)
    return found[0]


def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))["services"]["indextts2"]


def env_of_image() -> dict[str, str]:
    pairs = " ".join(rest for keyword, rest in dockerfile() if keyword == "ENV")
    return dict(item.split("=", 1) for item in shlex.split(pairs))


def assert_valid_serve_args(args: list[str]) -> None:
    """The arguments parse as `indextts2 serve` and make a valid server config (no server starts)."""
    result = CliRunner().invoke(app, ["serve", *args, "--print-systemd-unit"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, (args, result.output)
    assert "ExecStart=" in result.stdout


def test_the_dockerfile_follows_the_usual_rules() -> None:
    instructions = dockerfile()
    keywords = [keyword for keyword, _ in instructions]
    base = only("FROM")
    assert ":" in base
    assert not base.endswith(":latest")  # a pinned base image
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")  # the server does not run as root
    assert only("USER") not in ("root", "0")
    assert only("WORKDIR").startswith("/")
    assert only("STOPSIGNAL") == "SIGTERM"
    for keyword, rest in instructions:
        assert "sudo " not in rest
        if keyword == "RUN" and "apt-get install" in rest:
            assert "--no-install-recommends" in rest
        if keyword == "COPY":
            sources = [part for part in rest.split() if not part.startswith("--")][:-1]
            assert all((REPO / source).exists() for source in sources), rest
    assert env_of_image()["PIP_NO_CACHE_DIR"] == "1"
    build_args = dict(rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG")
    assert re.fullmatch(r'"torch==[\d.]+"', build_args["TORCH_SPEC"])  # torch pinned, like the README's


def test_the_image_command_is_a_valid_serve_command() -> None:
    entrypoint = json.loads(only("ENTRYPOINT"))
    command = json.loads(only("CMD"))
    assert entrypoint == ["indextts2-entrypoint"]
    assert "COPY --chmod=755 docker/entrypoint.sh /usr/local/bin/indextts2-entrypoint" in {
        f"{keyword} {rest}" for keyword, rest in dockerfile()
    }
    assert_valid_serve_args(command)
    assert command[command.index("--device") + 1] == "cuda"


def test_compose_agrees_with_the_image() -> None:
    service = compose()
    command = service["command"]
    assert_valid_serve_args(command)
    image_env = env_of_image()
    port = only("EXPOSE")
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"]  # loopback only, for a proxy in front
    mounts = {volume.split(":", 1)[1] for volume in service["volumes"]}
    assert image_env["INDEXTTS2_HOME"] in mounts  # the model store, voices and keys persist
    keys = command[command.index("--api-keys-file") + 1]
    assert keys.startswith(image_env["INDEXTTS2_HOME"] + "/")
    # what `keys add` writes by default (INDEXTTS2_HOME/api-keys) is the file the server reads
    assert keys == f"{image_env['INDEXTTS2_HOME']}/api-keys"
    assert service["stop_signal"] == "SIGTERM"
    grace = float(command[command.index("--grace-period") + 1])
    assert float(service["stop_grace_period"].rstrip("s")) > grace  # in-flight work ends before a kill
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert KEY_COMMAND in (REPO / "compose.yaml").read_text(encoding="utf-8")


@pytest.fixture
def fake_indextts2(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A stand-in `indextts2` on the PATH that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "called"
    stub = bin_dir / "indextts2"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(str(record))}\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return env, record


def run_entrypoint(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, timeout=30)


def test_a_first_start_without_a_key_says_how_to_create_one(
    fake_indextts2: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, record = fake_indextts2
    command = json.loads(only("CMD"))
    keys = tmp_path / "data" / "api-keys"
    args = [str(keys) if arg == "/data/api-keys" else arg for arg in command]
    result = run_entrypoint(args, env)
    assert result.returncode == 78
    assert KEY_COMMAND in result.stderr
    assert str(keys) in result.stderr
    assert not record.exists()  # the server was not started

    keys.parent.mkdir()
    keys.write_text("# keys\n")
    started = run_entrypoint(args, env)
    assert started.returncode == 0, started.stderr
    assert record.read_text().splitlines() == ["serve", *args]


def test_keys_commands_reach_serve_keys(fake_indextts2: tuple[dict[str, str], Path]) -> None:
    env, record = fake_indextts2
    result = run_entrypoint(["keys", "add", "me"], env)
    assert result.returncode == 0, result.stderr
    assert record.read_text().splitlines() == ["serve", "keys", "add", "me"]
    run_entrypoint(["--host", "0.0.0.0", "--api-keys-file=/nonexistent/keys"], env)
    assert record.read_text().splitlines() == ["serve", "keys", "add", "me"]  # refused: not started
