"""Overload, soak and kill -9 against a real ``indextts2 serve`` on 127.0.0.1; prints what it saw.

    python benchmarks/server_faults.py                          # all three, dummy:tiny on the CPU
    python benchmarks/server_faults.py --only overload --clients 64 --requests 4
    python benchmarks/server_faults.py --only soak --soak-seconds 600

- overload: ``--clients`` threads each send ``--requests`` speech requests at once to a server with a
  small queue (``--max-queue``); every answer must be 200 or 429, and every 429 must carry
  Retry-After (exit status 1 otherwise).
- soak: ``--soak-clients`` threads send requests for ``--soak-seconds``; the server's resident memory
  is sampled every few seconds; reports it at the start, the middle and the end, and the growth over
  the second half.
- upload-kill: ``--kill-rounds`` times, ``--upload-clients`` threads upload distinct voices while the
  server is killed with SIGKILL after ``--kill-after`` acknowledged uploads; the server is started
  again on the same directory: every voice acknowledged before the kill must be listed, and no
  temporary file may be left in the voices directory or the server's TMPDIR.

Everything runs in a fresh INDEXTTS2_HOME under a temporary directory, removed at the end. The numbers
depend on the machine; the pass/fail conditions do not.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import soundfile as sf

FAST_OPTIONS = '{"max_codes": 20, "diffusion_steps": 3, "num_beams": 1}'
TEXT = "The quick brown fox jumps over the lazy dog."


def _clip(frequency: float, seconds: float = 1.0, rate: int = 22050) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``indextts2 serve`` in a subprocess, with its own home, TMPDIR and log."""

    def __init__(self, home: Path, args: list[str]) -> None:
        self.home = home
        self.tmp = home / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "indextts2", "serve", "--port", str(self.port), "--cpu"]
        command += ["--model", "dummy:tiny", "--default-options", FAST_OPTIONS, *args]
        env = {**os.environ, "INDEXTTS2_HOME": str(home), "TMPDIR": str(self.tmp)}
        self.log = open(home / f"server-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the server was not ready within {seconds:.0f} s; see {self.log.name}")

    def rss_mib(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(120)
        self.log.close()
        return code


def _save_voice(url: str, name: str, clip: bytes, timeout: float = 60) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/voices",
        data={"consent": "true", "name": name},
        files={"reference": (f"{name}.wav", clip, "audio/wav")},
        timeout=timeout,
    )


def _speak(client: httpx.Client, index: int) -> tuple[int, float, str | None]:
    started = time.monotonic()
    response = client.post(
        "/v1/audio/speech",
        json={
            "model": "tts-1",
            "input": f"{TEXT} Number {index}.",
            "voice": "bench",
            "response_format": "wav",
        },
    )
    return response.status_code, time.monotonic() - started, response.headers.get("retry-after")


# ------------------------------------------------------------------------------------------ overload


def overload(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    server = Server(root / "overload", ["--max-queue", str(args.max_queue), "--concurrency", "8"])
    try:
        server.wait_ready()
        assert _save_voice(server.url, "bench", _clip(220)).status_code == 201
        limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
        with (
            httpx.Client(base_url=server.url, timeout=600, limits=limits) as client,
            concurrent.futures.ThreadPoolExecutor(args.clients) as pool,
        ):
            barrier = threading.Barrier(args.clients)

            def one_client(worker: int) -> list[tuple[int, float, str | None]]:
                barrier.wait()  # all at once
                return [_speak(client, worker * args.requests + i) for i in range(args.requests)]

            started = time.monotonic()
            results = [r for batch in pool.map(one_client, range(args.clients)) for r in batch]
            seconds = time.monotonic() - started
    finally:
        server.stop()
    statuses = [status for status, _, _ in results]
    refused = [r for r in results if r[0] == 429]
    served = sorted(t for status, t, _ in results if status == 200)
    figures = {
        "clients": args.clients,
        "requests": len(results),
        "200": statuses.count(200),
        "429": statuses.count(429),
        "other": sorted({s for s in statuses if s not in (200, 429)}),
        "429_without_retry_after": sum(1 for _, _, retry in refused if not retry),
        "retry_after_seconds": sorted({int(retry) for _, _, retry in refused if retry}),
        "latency_200_p50_s": round(served[len(served) // 2], 2) if served else None,
        "latency_200_max_s": round(served[-1], 2) if served else None,
        "seconds": round(seconds, 1),
    }
    figures["ok"] = not figures["other"] and figures["429_without_retry_after"] == 0
    return figures


# ---------------------------------------------------------------------------------------------- soak


def soak(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    server = Server(root / "soak", ["--max-queue", "16", "--concurrency", "8"])
    samples: list[tuple[float, float]] = []
    statuses: dict[int, int] = {}
    try:
        server.wait_ready()
        assert _save_voice(server.url, "bench", _clip(220)).status_code == 201
        stop = threading.Event()
        lock = threading.Lock()

        def client_loop(worker: int) -> None:
            with httpx.Client(base_url=server.url, timeout=600) as client:
                index = 0
                while not stop.is_set():
                    status, _, retry = _speak(client, worker * 1_000_000 + index)
                    index += 1
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1
                    if status == 429:
                        time.sleep(float(retry or 1))

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.soak_clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while time.monotonic() - started < args.soak_seconds:
            samples.append((time.monotonic() - started, server.rss_mib()))
            time.sleep(args.sample_seconds)
        samples.append((time.monotonic() - started, server.rss_mib()))
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    middle = min(samples, key=lambda s: abs(s[0] - args.soak_seconds / 2))
    second_half = [rss for t, rss in samples if t >= middle[0]]
    figures = {
        "seconds": args.soak_seconds,
        "clients": args.soak_clients,
        "responses": dict(sorted(statuses.items())),
        "rss_start_mib": round(samples[0][1], 1),
        "rss_middle_mib": round(middle[1], 1),
        "rss_end_mib": round(samples[-1][1], 1),
        "rss_max_mib": round(max(rss for _, rss in samples), 1),
        "growth_second_half_mib": round(samples[-1][1] - middle[1], 1),
        "second_half_range_mib": round(max(second_half) - min(second_half), 1),
    }
    figures["ok"] = set(statuses) <= {200, 429}
    return figures


# --------------------------------------------------------------------------------------- upload-kill


def _leftovers(home: Path) -> list[str]:
    voices = home / "voices"
    temporary = [p for p in voices.rglob("*") if p.name.startswith((".tmp-", ".meta-"))]
    temporary += [p for p in (home / "tmp").rglob("*") if p.is_file()]
    return sorted(str(p.relative_to(home)) for p in temporary)


def upload_kill(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    home = root / "upload-kill"
    acknowledged: dict[str, str] = {}  # name -> id
    rounds: list[dict[str, Any]] = []
    frequency = iter(range(150, 100_000, 7))
    for round_index in range(args.kill_rounds):
        server = Server(home, [])
        server.wait_ready()
        listed_before = {v["id"] for v in httpx.get(f"{server.url}/v1/voices").json()["data"]}
        lost = sorted(name for name, voice_id in acknowledged.items() if voice_id not in listed_before)
        left = _leftovers(home)
        if round_index:
            rounds[-1].update(lost_after_restart=lost, temporary_files_after_restart=left)
        this_round: dict[str, Any] = {"acknowledged": 0, "failed_in_flight": 0}
        lock = threading.Lock()
        enough = threading.Event()

        def uploader(
            worker: int,
            server: Server = server,
            this_round: dict[str, Any] = this_round,
            round_index: int = round_index,
            lock: threading.Lock = lock,
            enough: threading.Event = enough,
        ) -> None:
            while not enough.is_set():
                name = f"r{round_index}-w{worker}-{next(frequency)}"
                clip = _clip(float(name.rsplit("-", 1)[1]))
                try:
                    response = _save_voice(server.url, name, clip, timeout=30)
                except httpx.TransportError:
                    with lock:
                        this_round["failed_in_flight"] += 1
                    return
                if response.status_code in (200, 201):
                    with lock:
                        acknowledged[name] = response.json()["id"]
                        this_round["acknowledged"] += 1
                        if this_round["acknowledged"] >= args.kill_after:
                            enough.set()

        threads = [threading.Thread(target=uploader, args=(i,)) for i in range(args.upload_clients)]
        for thread in threads:
            thread.start()
        enough.wait(300)
        server.process.send_signal(signal.SIGKILL)  # while the other uploads are in flight
        enough.set()
        for thread in threads:
            thread.join()
        server.stop()
        this_round["temporary_files_right_after_kill"] = _leftovers(home)
        rounds.append(this_round)
    # a last start: every acknowledged voice must be there, and nothing temporary
    server = Server(home, [])
    server.wait_ready()
    listed = {v["id"] for v in httpx.get(f"{server.url}/v1/voices").json()["data"]}
    server.stop()
    rounds[-1].update(
        lost_after_restart=sorted(n for n, i in acknowledged.items() if i not in listed),
        temporary_files_after_restart=_leftovers(home),
    )
    figures = {
        "rounds": args.kill_rounds,
        "voices_acknowledged": len(acknowledged),
        "voices_listed_at_the_end": len(listed),
        "voices_lost": sum(len(r["lost_after_restart"]) for r in rounds),
        "temporary_files_after_restart": sum(len(r["temporary_files_after_restart"]) for r in rounds),
        "temporary_files_right_after_kill": sum(len(r["temporary_files_right_after_kill"]) for r in rounds),
        "uploads_cut_by_the_kill": sum(r["failed_in_flight"] for r in rounds),
    }
    figures["ok"] = figures["voices_lost"] == 0 and figures["temporary_files_after_restart"] == 0
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("overload", "soak", "upload-kill"), action="append")
    parser.add_argument("--clients", type=int, default=64, help="overload: concurrent clients")
    parser.add_argument("--requests", type=int, default=3, help="overload: requests per client")
    parser.add_argument("--max-queue", type=int, default=8, help="overload: the server's --max-queue")
    parser.add_argument("--soak-seconds", type=float, default=180.0)
    parser.add_argument("--soak-clients", type=int, default=8)
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="soak: RSS sampling period")
    parser.add_argument("--kill-rounds", type=int, default=3)
    parser.add_argument("--kill-after", type=int, default=5, help="upload-kill: acknowledged uploads")
    parser.add_argument("--upload-clients", type=int, default=6)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    checks = {"overload": overload, "soak": soak, "upload-kill": upload_kill}
    chosen = args.only or list(checks)
    root = Path(tempfile.mkdtemp(prefix="indextts2-faults-"))
    results: dict[str, Any] = {}
    try:
        for name in chosen:
            if not args.json:
                print(f"== {name}", flush=True)
            results[name] = checks[name](root, args)
            if not args.json:
                for key, value in results[name].items():
                    print(f"   {key}: {value}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results))
    if not all(figures["ok"] for figures in results.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
