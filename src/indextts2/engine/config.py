"""The engine's settings and the streaming settings of a request: frozen, validated on construction."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from indextts2.errors import InvalidInput

# The code rate StreamingOptions' code counts are given at: IndexTTS-2's, 50 codes per second.
REFERENCE_CODE_RATE = 50.0

__all__ = ["EngineConfig", "StreamingOptions"]


def _positive_int(name: str, value: object, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class EngineConfig:
    """How the engine shares the device between requests.

    Args:
        max_queue: requests allowed to wait for admission; one more raises
            :class:`~indextts2.errors.Overloaded`.
        max_active: requests in progress at once (conditioning, decoding or rendering).
        kv_rows: rows of the GPT's KV-cache pool (one per sequence, ``num_beams`` per beam-search
            request). None: sized from free GPU memory x ``kv_memory_fraction`` on CUDA, 16 elsewhere.
        kv_memory_fraction: the share of free GPU memory (after loading) the KV pool may take.
        max_positions: cache positions per row (prompt + codes). None: the model's limits (the
            longest text segment plus ``max_mel_tokens``); smaller saves memory and refuses requests
            whose segments could need more.
        max_prefill_rows: new rows prefilled between two decode steps (bounds the pause a burst of
            arrivals causes to running sequences).
        max_flow_batch: segments (or streamed pieces) per s2mel batch.
        max_flow_frames: mel frames (prompt included, padded, before the CFG doubling) per s2mel batch.
        bucket_ratio: the longest piece of an s2mel batch is at most this many times the shortest.
        max_vocoder_frames: mel frames (padded) per BigVGAN call; an s2mel batch is vocoded in as
            many calls as it needs (BigVGAN's activations are ~256x the mel's length). None: 4096
            on CUDA, 256 elsewhere (on a CPU a batch gains nothing and only raises the peak).
        flow_steps_per_iteration: flow-matching steps taken per scheduler iteration while the GPT
            is decoding (all remaining steps when it is idle).
        cuda_graphs: capture the GPT decode step in CUDA graphs (CUDA only; ignored elsewhere).
        graph_batch_sizes: the row counts captured (a step runs the smallest graph that fits).
        compile_dit: ``torch.compile`` the DiT estimator while the engine runs (experimental; the
            first batches wait for the compilation: ~30 s for dummy:tiny on two CPU cores).
        max_buffered_chunks: a request starts no new segment while this many of its chunks wait
            unread (a slow reader does not make the engine run ahead).
        profile: measure the time spent in every stage (the device is synchronised after each, which
            costs a little speed); see :meth:`Engine.stats`.
    """

    max_queue: int = 64
    max_active: int = 64
    kv_rows: int | None = None
    kv_memory_fraction: float = 0.5
    max_positions: int | None = None
    max_prefill_rows: int = 32
    max_flow_batch: int = 16
    max_flow_frames: int = 32_768
    bucket_ratio: float = 1.5
    max_vocoder_frames: int | None = None
    flow_steps_per_iteration: int = 1
    cuda_graphs: bool = True
    graph_batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    compile_dit: bool = False
    max_buffered_chunks: int = 8
    profile: bool = False

    def __post_init__(self) -> None:
        for name in (
            "max_queue",
            "max_active",
            "max_prefill_rows",
            "max_flow_batch",
            "max_flow_frames",
            "flow_steps_per_iteration",
            "max_buffered_chunks",
        ):
            _positive_int(name, getattr(self, name))
        if self.kv_rows is not None:
            _positive_int("kv_rows", self.kv_rows)
        if self.max_vocoder_frames is not None:
            _positive_int("max_vocoder_frames", self.max_vocoder_frames)
        if self.max_positions is not None:
            _positive_int("max_positions", self.max_positions, minimum=64)
        if not 0.0 < self.kv_memory_fraction <= 0.95:
            raise InvalidInput(f"kv_memory_fraction must be in (0, 0.95], got {self.kv_memory_fraction!r}")
        if not self.bucket_ratio >= 1.0:
            raise InvalidInput(f"bucket_ratio must be >= 1, got {self.bucket_ratio!r}")
        if not self.graph_batch_sizes or any(
            isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.graph_batch_sizes
        ):
            raise InvalidInput(f"graph_batch_sizes must be positive integers, got {self.graph_batch_sizes!r}")
        object.__setattr__(self, "graph_batch_sizes", tuple(sorted(set(self.graph_batch_sizes))))


@dataclass(frozen=True)
class StreamingOptions:
    """How a streamed request trades quality for a shorter wait before its first audio.

    The defaults change nothing: a stream then yields each segment whole, and its audio equals
    :meth:`~indextts2.Synthesizer.synthesize`'s. :meth:`low_latency` turns both tools on.

    Args:
        quick_streaming_tokens: while the first this-many text tokens are segmented, segments are
            merged only up to half the segment limit (the official ``quick_streaming_tokens``): the
            first segment is short, so its audio comes sooner. 0 = off.
        chunked: render a segment in pieces while its codes are still being decoded: the first piece
            once ``first_chunk_codes`` codes exist, then whenever the previous piece is out and
            ``chunk_codes`` more codes exist. Each later piece is rendered again from
            ``context_codes`` codes before the audio already sent, and cross-faded over
            ``crossfade_frames`` mel frames (256 samples each) into the held-back tail of the last.
        first_chunk_codes, chunk_codes, context_codes, crossfade_frames: see ``chunked``. Code counts
            are IndexTTS-2 codes (50 per second of speech); the engine scales them to the model's
            code rate (:meth:`at_code_rate`: half as many for IndexTTS-2.5's 25 Hz codes).
        chunk_growth: each later piece waits for this many times more new codes than the one before
            (fewer, longer pieces as the stream gets ahead of the listener: every piece renders its
            context and the voice's prompt again).
        holdback_frames: frames at the end of a piece that are not sent until the next piece
            replaces them (the end of a piece is generated without its right context); at least
            ``crossfade_frames``.
    """

    quick_streaming_tokens: int = 0
    chunked: bool = False
    first_chunk_codes: int = 16
    chunk_codes: int = 40
    context_codes: int = 24
    crossfade_frames: int = 4
    holdback_frames: int = 8
    chunk_growth: float = 2.0

    def __post_init__(self) -> None:
        _positive_int("quick_streaming_tokens", self.quick_streaming_tokens, minimum=0)
        if not isinstance(self.chunked, bool):
            raise InvalidInput(f"chunked must be True or False, got {self.chunked!r}")
        for name in ("first_chunk_codes", "chunk_codes", "context_codes"):
            _positive_int(name, getattr(self, name))
        _positive_int("crossfade_frames", self.crossfade_frames, minimum=0)
        _positive_int("holdback_frames", self.holdback_frames, minimum=0)
        if (
            isinstance(self.chunk_growth, bool)
            or not isinstance(self.chunk_growth, (int, float))
            or not (1.0 <= self.chunk_growth <= 8.0)
        ):
            raise InvalidInput(f"chunk_growth must be between 1 and 8, got {self.chunk_growth!r}")
        if self.holdback_frames < self.crossfade_frames:
            raise InvalidInput(
                f"holdback_frames ({self.holdback_frames}) must be at least crossfade_frames "
                f"({self.crossfade_frames}): the cross-fade needs that much of the previous piece"
            )
        # A later piece starts context_codes codes before the end of the previous piece; what it
        # regenerates must reach back past the audio held back (1.72 frames per code at speed 2
        # gives 0.86 frames per code: the worst case the options allow).
        if self.chunked and int(self.context_codes * 0.86) <= self.holdback_frames:
            raise InvalidInput(
                f"context_codes ({self.context_codes}) must cover more than holdback_frames "
                f"({self.holdback_frames}) mel frames (about 0.86 frames per code at speed 2)"
            )

    def at_code_rate(self, codes_per_second: float) -> StreamingOptions:
        """These options for a model whose codes run at ``codes_per_second``.

        The code counts here are IndexTTS-2 codes (:data:`REFERENCE_CODE_RATE`, 50 per second of
        speech); a model at another rate (IndexTTS-2.5: 25) waits for, and regenerates, the same
        stretch of speech: ``ceil(count * rate / 50)`` of its own codes.
        """
        if codes_per_second == REFERENCE_CODE_RATE:
            return self
        scale = codes_per_second / REFERENCE_CODE_RATE

        def scaled(count: int) -> int:
            return max(1, math.ceil(count * scale))

        # Not dataclasses.replace: the checks of __post_init__ are stated in 50 Hz codes (a model at
        # half the rate gives each code twice the frames, so the scaled counts cover as much).
        result = copy.copy(self)
        for name in ("first_chunk_codes", "chunk_codes", "context_codes"):
            object.__setattr__(result, name, scaled(getattr(self, name)))
        return result

    @classmethod
    def low_latency(cls) -> StreamingOptions:
        """A short first segment and chunked rendering (see docs/benchmarks.md for the cost)."""
        return cls(quick_streaming_tokens=40, chunked=True)
