"""Small helpers shared by the server tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from log_scan import PROCESS_LOGS

from indextts2.audio import Audio

HERE = Path(__file__).resolve().parent

# How the process tests start a server: the real command on the tiny random-weight model, with
# server-wide defaults that keep it fast (see spy.FAST_OPTIONS).
SERVE_COMMAND: list[str] = [sys.executable, "-m", "indextts2"]
MODEL_ARGS: list[str] = [
    "--model",
    "dummy:tiny",
    "--cpu",
    "--default-options",
    '{"max_codes": 20, "diffusion_steps": 3, "num_beams": 1}',
]


def tone(seconds: float = 1.0, *, rate: int = 22050, frequency: float = 220.0) -> Audio:
    """A sine tone: a stand-in reference clip that is neither silent nor too short."""
    t = np.arange(int(seconds * rate)) / rate
    return Audio((0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate)


def multipart(**fields: str) -> dict[str, tuple[None, str]]:
    """Form fields sent as multipart/form-data even without a file (httpx's ``files=``)."""
    return {name: (None, value) for name, value in fields.items()}


REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """One ``indextts2 serve`` process (or ``program serve ...``), its log, and how to stop it."""

    def __init__(
        self,
        home: Path,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        program: list[str] | None = None,
    ) -> None:
        self.port = free_port() if "--port" not in args else int(args[args.index("--port") + 1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"server-{self.port}-{time.monotonic_ns()}.log"
        PROCESS_LOGS.append(self.log_path)  # scanned for credentials when the run ends
        port_args = [] if "--port" in args else ["--port", str(self.port)]
        command = [*(program or SERVE_COMMAND), "serve", *port_args, *MODEL_ARGS, *args]
        environment = {**os.environ, "INDEXTTS2_HOME": str(home), **(env or {})}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=environment)
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"the server was not ready within {STARTUP_SECONDS} s:\n{self.log()[-3000:]}")

    def rss(self) -> int:
        import psutil

        return int(psutil.Process(self.pid).memory_info().rss)

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()
