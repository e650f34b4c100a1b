"""CUDA graphs of the GPT decode step, one per (rows, key span) pair (CUDA only).

A decode step is ~30 small kernels per layer; at small batches their launches, not the device,
bound it (the official loop spends 18-21 ms per step on an H100). A captured graph replays them with
one launch. The step (:func:`~indextts2.engine.decode.run_decode_forward`) reads and writes only
the KV pool's tensors, whose addresses never change, so a graph needs no input copies.

Graphs are captured when the engine starts, with the pool empty: a step on ``n`` rows replays the
smallest captured graph of ``>= n`` rows and ``>= span`` key slots. The rows between ``n`` and the
graph's size are free rows; their lengths and positions are reset before the replay, so they write
only into their own first slot (reset again when a sequence takes the row).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable

import torch

from indextts2.engine.kv_pool import KVPool
from indextts2.model.decoding import FIRST_CODE_POSITION

__all__ = ["DecodeGraphs", "span_buckets"]

logger = logging.getLogger(__name__)

SMALLEST_SPAN = 256  # key-span buckets double from here up to the pool's positions


def span_buckets(positions: int) -> list[int]:
    """Key spans captured: 256, 512, ... below ``positions``, then ``positions`` itself."""
    spans = []
    span = SMALLEST_SPAN
    while span < positions:
        spans.append(span)
        span *= 2
    spans.append(positions)
    return spans


class DecodeGraphs:
    """Captured decode steps over the pool's first rows.

    Args:
        forward: ``forward(rows, span)`` runs one step on rows ``[0, rows)`` attending to ``span``
            slots (eagerly; this is what gets captured).
        pool: the KV pool the step works on.
        batch_sizes: the row counts to capture (those above the pool's rows are skipped).
    """

    def __init__(
        self, forward: Callable[[int, int], None], pool: KVPool, batch_sizes: tuple[int, ...]
    ) -> None:
        self._forward = forward
        self._pool = pool
        self.batch_sizes = sorted({min(b, pool.rows) for b in batch_sizes})
        self.spans = span_buckets(pool.positions)
        self._graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        self.replays = 0

    def capture(self) -> None:
        """Capture every (rows, span) pair; the pool must be empty. Largest first (shared memory pool)."""
        if self._pool.used:
            raise RuntimeError("decode graphs are captured on an empty KV pool")
        started = time.monotonic()
        memory = torch.cuda.graph_pool_handle()
        for rows in reversed(self.batch_sizes):
            for span in reversed(self.spans):
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    self._forward(rows, span)  # warm-up: kernels picked, workspaces allocated
                torch.cuda.current_stream().wait_stream(side)
                self._reset_rows(0, self._pool.rows)  # the warm-up advanced the rows' lengths
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=memory):
                    self._forward(rows, span)
                self._graphs[(rows, span)] = graph
        self._reset_rows(0, self._pool.rows)
        torch.cuda.synchronize()
        logger.info(
            "captured %d decode graphs (%d row counts x %d spans) in %.1f s",
            len(self._graphs),
            len(self.batch_sizes),
            len(self.spans),
            time.monotonic() - started,
        )

    def _reset_rows(self, start: int, stop: int) -> None:
        pool = self._pool
        pool.cache.lengths[start:stop].zero_()
        pool.mel_positions[start:stop].fill_(FIRST_CODE_POSITION)

    def step(self, rows: int, span: int) -> None:
        """One decode step: the captured graph that fits, else the eager forward (a longer span)."""
        if not self.run(rows, span):
            self._forward(rows, span)

    def run(self, rows: int, span: int) -> bool:
        """Replay the step for ``rows`` rows and ``span`` key slots; False when no graph fits."""
        size_index = bisect.bisect_left(self.batch_sizes, rows)
        span_index = bisect.bisect_left(self.spans, span)
        if size_index == len(self.batch_sizes) or span_index == len(self.spans):
            return False
        size, bucket = self.batch_sizes[size_index], self.spans[span_index]
        graph = self._graphs.get((size, bucket))
        if graph is None:
            return False
        if size > rows:
            self._reset_rows(rows, size)
        graph.replay()
        self.replays += 1
        return True
