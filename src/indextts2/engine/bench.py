"""The engine benchmark: N concurrent clients speaking fixed texts, and the same work done serially.

Each concurrency level starts N client threads together; each client sends ``requests_per_client``
requests back to back (the fixed texts in turn, offset by the client's number, so every level has
the same mix). Random weights never choose to stop, so with ``force_codes`` every text decodes
exactly ``codes_per_second`` codes per second of its intended speech (spread over its segments by
their token counts; by default the model's own code rate: 50 for IndexTTS-2, 25 for IndexTTS-2.5),
which makes runs comparable. Per level the report gives the aggregate
audio-seconds per second, per-request real-time factor, time to first audio and peak GPU memory;
the baseline runs the same mix one request at a time through the unbatched path.

The HTTP variant (``bench_http``) sends the same workload to a running server.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from indextts2.audio import Audio
from indextts2.engine.config import StreamingOptions
from indextts2.engine.pacing import codes_for_seconds, spread_codes
from indextts2.errors import IndexTTS2Error
from indextts2.options import SynthesisOptions

if TYPE_CHECKING:
    from indextts2.synthesizer import Synthesizer
    from indextts2.voice import Voice

__all__ = [
    "BENCH_TEXTS",
    "BenchReport",
    "BenchSettings",
    "BenchText",
    "LevelReport",
    "RequestResult",
    "capacity",
    "markdown",
    "reference_clip",
    "run_in_process",
]

logger = logging.getLogger(__name__)

SEGMENT_TOKENS = 200  # every bench text is one segment (unless quick streaming splits its start)


@dataclass(frozen=True)
class BenchText:
    """A fixed text and the seconds of speech it is meant to last (for forced code counts)."""

    name: str
    text: str
    seconds: float


BENCH_TEXTS: tuple[BenchText, ...] = (
    BenchText("zh-short", "今天天气很好，我们一起去公园散步吧。", 3.0),
    BenchText("en-short", "The weather is lovely today, so let us take a walk in the park.", 4.0),
    BenchText(
        "zh-long",
        "语音合成技术近年来发展迅速。新的模型不仅能够模仿说话人的音色，还可以控制情感和语速，"
        "让机器的声音听起来更加自然。许多应用，例如有声读物、智能助手和视频配音，都因此受益。",
        14.0,
    ),
    BenchText(
        "en-long",
        "Speech synthesis has improved quickly in recent years. Modern models can imitate the timbre "
        "of a speaker from a short recording, control emotion and speaking rate, and sound natural "
        "enough for audiobooks, assistants and video dubbing.",
        14.0,
    ),
)


@dataclass(frozen=True)
class BenchSettings:
    """What a benchmark run does.

    Args:
        concurrency: the client counts to run, in order.
        requests_per_client: requests each client sends, one after the other.
        texts: the fixed texts.
        force_codes: decode exactly ``codes_per_second`` x the text's seconds (random weights).
        codes_per_second: see ``force_codes``; None: the model family's code rate
            (:meth:`with_code_rate`).
        diffusion_steps, num_beams: synthesis settings of every request (others are the defaults).
        stream: read each request as a stream (time to first audio = its first chunk); False:
            first audio = the whole file.
        low_latency: stream with :meth:`StreamingOptions.low_latency` (chunked rendering).
        seed: requests are seeded ``seed + i``.
    """

    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    requests_per_client: int = 4
    texts: tuple[BenchText, ...] = BENCH_TEXTS
    force_codes: bool = True
    codes_per_second: float | None = None
    diffusion_steps: int = 25
    num_beams: int = 1
    stream: bool = True
    low_latency: bool = True
    seed: int = 1234

    def options(self, index: int, text: BenchText) -> SynthesisOptions:
        codes = self.codes_for(text)
        return SynthesisOptions(
            diffusion_steps=self.diffusion_steps,
            num_beams=self.num_beams,
            max_text_tokens_per_segment=SEGMENT_TOKENS,
            max_codes=codes if self.force_codes else SynthesisOptions().max_codes,
            seed=self.seed + index,
        )

    def with_code_rate(self, codes_per_second: float) -> BenchSettings:
        """These settings with ``codes_per_second`` filled in when it was left to the model."""
        if self.codes_per_second is not None:
            return self
        return dataclasses.replace(self, codes_per_second=codes_per_second)

    def codes_for(self, text: BenchText) -> int:
        if self.codes_per_second is None:
            raise ValueError("codes_per_second is not set: call with_code_rate(the model's rate) first")
        return codes_for_seconds(text.seconds, self.codes_per_second)

    def streaming(self) -> StreamingOptions:
        return StreamingOptions.low_latency() if self.stream and self.low_latency else StreamingOptions()

    def workload(self, clients: int) -> list[list[tuple[int, BenchText]]]:
        """Per client, its (request index, text) list."""
        texts = self.texts
        return [
            [
                (client * self.requests_per_client + k, texts[(client + k) % len(texts)])
                for k in range(self.requests_per_client)
            ]
            for client in range(clients)
        ]


@dataclass(frozen=True)
class RequestResult:
    """One request as its client saw it (seconds from the request's start)."""

    text: str
    audio_seconds: float
    seconds: float
    first_audio: float | None
    error: str | None = None

    @property
    def real_time_factor(self) -> float:
        return self.seconds / self.audio_seconds if self.audio_seconds else math.inf


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) if values else None


@dataclass(frozen=True)
class LevelReport:
    """One concurrency level (or the sequential baseline)."""

    concurrency: int
    requests: int
    failed: int
    wall_seconds: float
    audio_seconds: float
    rtf_p50: float | None
    rtf_p95: float | None
    first_audio_p50: float | None
    first_audio_p95: float | None
    first_audio_p99: float | None
    peak_gpu_bytes: int | None
    engine: dict[str, Any] = field(default_factory=dict)
    errors: tuple[str, ...] = ()

    @property
    def throughput(self) -> float:
        """Aggregate audio-seconds produced per second of wall time."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0

    @classmethod
    def from_results(
        cls,
        concurrency: int,
        results: Sequence[RequestResult],
        wall_seconds: float,
        *,
        peak_gpu_bytes: int | None = None,
        engine: dict[str, Any] | None = None,
    ) -> LevelReport:
        good = [r for r in results if r.error is None]
        firsts = [r.first_audio for r in good if r.first_audio is not None]
        rtfs = [r.real_time_factor for r in good if r.audio_seconds]
        return cls(
            concurrency=concurrency,
            requests=len(results),
            failed=len(results) - len(good),
            wall_seconds=wall_seconds,
            audio_seconds=sum(r.audio_seconds for r in good),
            rtf_p50=_percentile(rtfs, 50),
            rtf_p95=_percentile(rtfs, 95),
            first_audio_p50=_percentile(firsts, 50),
            first_audio_p95=_percentile(firsts, 95),
            first_audio_p99=_percentile(firsts, 99),
            peak_gpu_bytes=peak_gpu_bytes,
            engine=engine or {},
            errors=tuple(sorted({r.error for r in results if r.error})),
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["throughput"] = self.throughput
        data["errors"] = list(self.errors)
        return data


@dataclass(frozen=True)
class BenchReport:
    """A whole run: what ran where, each level, the baseline and the speed-ups."""

    meta: dict[str, Any]
    levels: list[LevelReport]
    baseline: LevelReport | None = None

    def speedup(self, level: LevelReport) -> float | None:
        """The level's throughput over the sequential baseline's, measured in the same run."""
        if self.baseline is None or not self.baseline.throughput:
            return None
        return level.throughput / self.baseline.throughput

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "levels": [{**level.to_json(), "speedup": self.speedup(level)} for level in self.levels],
            "baseline": self.baseline.to_json() if self.baseline is not None else None,
        }


def capacity(report: BenchReport, target_first_audio_p95: float, *, gpus: int = 1) -> dict[str, Any]:
    """How many concurrent clients one GPU served within a first-audio p95 target, as measured.

    The answer is the largest measured client count whose every request succeeded and whose first
    audio p95 met the target, divided by the GPUs that served it (``gpus``: 1 in-process; a
    server's engines with ``--server``). Only measured levels count: between two levels the true
    figure is unknown, so run the levels around it (``--concurrency 8,12,16``) to narrow it down.
    ``limited_by``: ``target`` when a larger level missed it, ``levels`` when even the largest
    level met it (the capacity is at least that), ``none`` when no level met it.

    Raises:
        InvalidInput: a target or GPU count that is not positive.
    """
    from indextts2.errors import InvalidInput

    if not target_first_audio_p95 > 0 or gpus < 1:
        raise InvalidInput("the first-audio p95 target must be positive and gpus at least 1")
    met = [
        level
        for level in report.levels
        if level.failed == 0
        and level.first_audio_p95 is not None
        and level.first_audio_p95 <= target_first_audio_p95
    ]
    best = max(met, key=lambda level: level.concurrency, default=None)
    larger = [level for level in report.levels if best is None or level.concurrency > best.concurrency]
    return {
        "target_first_audio_p95": target_first_audio_p95,
        "gpus": gpus,
        "clients_per_gpu": best.concurrency / gpus if best is not None else 0.0,
        "measured_at": best.concurrency if best is not None else None,
        "first_audio_p95": best.first_audio_p95 if best is not None else None,
        "audio_seconds_per_second_per_gpu": best.throughput / gpus if best is not None else None,
        "limited_by": "none" if best is None else "target" if larger else "levels",
    }


def markdown(report: BenchReport) -> str:
    """The report as Markdown tables: the levels, then the engine's mean batch and time per stage."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f}"

    def num(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "| clients | requests | audio s | wall s | audio s/s | speed-up | RTF p50 | RTF p95 "
        "| first audio p50 / p95 / p99 ms | peak GPU MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [(str(level.concurrency), level) for level in report.levels]
    if report.baseline is not None:
        rows.append(("sequential (unbatched)", report.baseline))
    for name, level in rows:
        speedup = None if level is report.baseline else report.speedup(level)
        peak = "-" if level.peak_gpu_bytes is None else f"{level.peak_gpu_bytes / 2**20:.0f}"
        failed = f" ({level.failed} failed)" if level.failed else ""
        ratio = "-" if speedup is None else f"{speedup:.2f}x"
        first = f"{ms(level.first_audio_p50)} / {ms(level.first_audio_p95)} / {ms(level.first_audio_p99)}"
        lines.append(
            f"| {name} | {level.requests}{failed} | {level.audio_seconds:.1f} | {level.wall_seconds:.1f} "
            f"| {level.throughput:.2f} | {ratio} | {num(level.rtf_p50)} | {num(level.rtf_p95)} "
            f"| {first} | {peak} |"
        )
    stages = ["conditioning", "prefill", "decode", "latent", "s2mel", "vocoder"]
    lines += [
        "",
        "| clients | decode steps | mean batch: "
        + " / ".join(stages)
        + " | seconds: "
        + " / ".join(stages)
        + " |",
        "|---|---|---|---|",
    ]
    for level in report.levels:
        engine = level.engine
        if not engine:
            continue
        means = " / ".join(num(engine["mean_batch"].get(stage), 1) for stage in stages)
        seconds = engine["stage_seconds"]
        timed = " / ".join(num(seconds.get(stage), 2) for stage in stages) if any(seconds.values()) else "-"
        lines.append(f"| {level.concurrency} | {engine['decode_steps']} | {means} | {timed} |")
    return "\n".join(lines) + "\n"


def reference_clip(seconds: float = 3.0, rate: int = 22050) -> Audio:
    """A fixed synthetic speaker clip (a voiced-like harmonic tone with vibrato; weights are random)."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140.0 + 15.0 * np.sin(2 * np.pi * 3.0 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t) ** 2
    return Audio((0.2 * wave * envelope).astype(np.float32), rate)


# ---------------------------------------------------------------------------------------------- in-process


def _one_request(
    tts: Synthesizer, voice: Voice, index: int, text: BenchText, settings: BenchSettings
) -> RequestResult:
    started = time.perf_counter()
    first: float | None = None
    samples = 0
    try:
        request = tts._prepare(
            text.text,
            voice=voice,
            emotion=None,
            options=settings.options(index, text),
            streaming=settings.streaming(),
        )
        codes = None
        if settings.force_codes:
            codes = spread_codes([len(s.ids) for s in request.segments], settings.codes_for(text))
        for chunk in tts._generate(request, exact_codes=codes):
            if first is None and chunk.samples.size and settings.stream:
                first = time.perf_counter() - started
            samples += chunk.samples.size
    except IndexTTS2Error as error:
        return RequestResult(text.name, 0.0, time.perf_counter() - started, None, str(error))
    seconds = time.perf_counter() - started
    return RequestResult(text.name, samples / tts.sample_rate, seconds, first if settings.stream else seconds)


def run_clients(
    clients: int, work: Callable[[int, int, BenchText], RequestResult], settings: BenchSettings
) -> tuple[list[RequestResult], float]:
    """Run ``clients`` threads over their workloads, started together; returns results and wall time."""
    plan = settings.workload(clients)
    results: list[RequestResult] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(number: int) -> None:
        start.wait()
        for index, text in plan[number]:
            result = work(number, index, text)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=client, args=(n,), name=f"bench-client-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - began


def _engine_delta(before: Any, after: Any) -> dict[str, Any]:
    if before is None or after is None:
        return {}
    batches = {k: after.batches[k] - before.batches[k] for k in after.batches}
    items = {k: after.items[k] - before.items[k] for k in after.items}
    return {
        "mean_batch": {k: items[k] / batches[k] for k in batches if batches[k]},
        "largest_batch": dict(after.largest_batch),
        "batches": batches,
        "stage_seconds": {k: after.stage_seconds[k] - before.stage_seconds[k] for k in after.stage_seconds},
        "decode_steps": after.steps - before.steps,
        "kv_rows": after.kv_rows,
        "kv_bytes": after.kv_bytes,
    }


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def run_in_process(
    tts: Synthesizer,
    settings: BenchSettings,
    *,
    baseline: Synthesizer | None = None,
    meta: dict[str, Any] | None = None,
    on_level: Callable[[LevelReport], None] | None = None,
) -> BenchReport:
    """Run every concurrency level on ``tts`` (batching engine), then the baseline if given.

    Args:
        tts: a Synthesizer with the engine.
        baseline: a Synthesizer on the same model with ``engine=False``: the same request mix, one
            request at a time.
        meta: recorded as is in the report (command, device...).
        on_level: called after each level (progress output).
    """
    settings = settings.with_code_rate(tts.family.code_rate)
    voice = tts.voice(reference_clip())
    device = tts.device
    # one warm-up request: voice latents, kernels, first allocations
    _one_request(tts, voice, 0, settings.texts[0], dataclasses.replace(settings, codes_per_second=5))
    levels = []
    for clients in settings.concurrency:
        before = tts.engine_stats()
        _reset_peak(device)
        results, wall = run_clients(
            clients, lambda c, i, t: _one_request(tts, voice, i, t, settings), settings
        )
        level = LevelReport.from_results(
            clients,
            results,
            wall,
            peak_gpu_bytes=_peak(device),
            engine=_engine_delta(before, tts.engine_stats()),
        )
        levels.append(level)
        if on_level is not None:
            on_level(level)
    base = None
    if baseline is not None:
        serial = dataclasses.replace(
            settings, requests_per_client=settings.requests_per_client * len(settings.texts)
        )
        _reset_peak(device)
        results, wall = run_clients(1, lambda c, i, t: _one_request(baseline, voice, i, t, serial), serial)
        base = LevelReport.from_results(1, results, wall, peak_gpu_bytes=_peak(device))
        if on_level is not None:
            on_level(base)
    info = {
        "date": _dt.date.today().isoformat(),
        "device": _device_name(device),
        "settings": {
            **{k: v for k, v in dataclasses.asdict(settings).items() if k != "texts"},
            "texts": {t.name: {"seconds": t.seconds, "codes": settings.codes_for(t)} for t in settings.texts},
        },
    }
    return BenchReport(meta={**info, **(meta or {})}, levels=levels, baseline=base)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    import platform

    return f"{platform.processor() or platform.machine()} ({device.type}, {torch.get_num_threads()} threads)"
