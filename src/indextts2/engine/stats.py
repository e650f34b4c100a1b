"""What the engine reports about itself: batch sizes per stage, time per stage, occupancy; and, to a
request that asks (``SynthesisJob.observer``), the stretches of its own time in each stage."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

__all__ = ["STAGES", "EngineStats", "StageCounters", "StageObserver", "StageSpan"]

R = TypeVar("R")

STAGES = ("voice", "conditioning", "prefill", "decode", "latent", "s2mel", "vocoder")


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of the engine.

    Attributes:
        waiting: requests queued for admission; active: requests in progress.
        decoding: sequences in the GPT batch; kv_rows / kv_rows_free: the pool's rows.
        kv_bytes: memory of the pool.
        steps: decode steps taken.
        batches, items: per stage, batches run and items processed (mean batch = items / batches).
        last_batch: per stage, the size of the latest batch; largest_batch: the largest so far.
        stage_seconds: per stage, time spent (measured only with ``EngineConfig(profile=True)``).
        segments_started: segments that entered decoding.
        finished, cancelled, failed: requests by outcome.
    """

    waiting: int
    active: int
    decoding: int
    kv_rows: int
    kv_rows_free: int
    kv_bytes: int
    steps: int
    batches: dict[str, int]
    items: dict[str, int]
    last_batch: dict[str, int]
    largest_batch: dict[str, int]
    stage_seconds: dict[str, float]
    segments_started: int
    finished: int
    cancelled: int
    failed: int


@dataclass(frozen=True)
class StageSpan:
    """A stretch of one request's time in the engine (monotonic seconds), for tracing.

    Attributes:
        stage: ``queue`` (waiting to be admitted), ``conditioning``, ``decode`` (a segment, from the
            moment it joins the decode batch to its last code), ``latent``, ``s2mel``, ``vocoder``
            (a piece of a segment; s2mel from the start of its solve to the end, decode steps of
            other requests in between).
        segment: the segment's index (None for the whole request).
        batch: items that ran together (the pieces of a latent, s2mel or vocoder batch).
    """

    stage: str
    start: float
    end: float
    segment: int | None = None
    batch: int = 1


StageObserver = Callable[[StageSpan], None]
"""Called on the engine thread with each :class:`StageSpan` of a request: keep it quick."""


class StageCounters:
    """Batches and items per stage; with ``profile``, the time each stage took (device synchronised)."""

    def __init__(self, *, profile: bool, device: torch.device) -> None:
        self.profile = profile
        self.device = device
        self.batches = dict.fromkeys(STAGES, 0)
        self.items = dict.fromkeys(STAGES, 0)
        self.last = dict.fromkeys(STAGES, 0)
        self.largest = dict.fromkeys(STAGES, 0)
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def note(self, stage: str, size: int) -> None:
        """One batch of ``size`` items ran in ``stage``."""
        self.batches[stage] += 1
        self.items[stage] += size
        self.last[stage] = size
        self.largest[stage] = max(self.largest[stage], size)

    def timed(self, stage: str, function: Callable[[], R]) -> R:
        """``function()``, its time added to ``stage`` when profiling."""
        if not self.profile:
            return function()
        started = time.perf_counter()
        result = function()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds[stage] += time.perf_counter() - started
        return result
