"""The GPT's KV-cache pool: preallocated rows that sequences take and give back between decode steps.

Occupied rows are always ``[0, used)``: a sequence takes rows at the end, and when one leaves, the
last rows move into its place (their keys, values and per-row decoding state are copied), so that a
decode step runs on one contiguous block of rows, of a size a captured CUDA graph can have.

Besides keys and values, the pool holds every per-row tensor a decode step reads or writes: the
next code's logits and mel position, the code fed next, the repetition penalty's ``seen`` set and
the sampling settings. They live at fixed addresses for the pool's lifetime (what graph capture
needs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from indextts2.model.decoding import FIRST_CODE_POSITION, initial_seen
from indextts2.model.gpt import UnifiedVoice
from indextts2.model.sampling import SamplingParams
from indextts2.options import GenerationOptions

__all__ = ["KVPool", "kv_bytes_per_position", "plan_rows"]

logger = logging.getLogger(__name__)

DEFAULT_CPU_ROWS = 16
# Per-row tensors besides keys and values: logits (vocab), seen (vocab), a few scalars.
_ROW_OVERHEAD_FACTOR = 3


def kv_bytes_per_position(gpt: UnifiedVoice) -> int:
    """Bytes of keys and values one cache position of one row takes (all layers)."""
    cfg = gpt.config
    element = torch.empty((), dtype=next(gpt.parameters()).dtype).element_size()
    return 2 * cfg.layers * cfg.model_dim * element


def plan_rows(
    gpt: UnifiedVoice,
    *,
    positions: int,
    rows: int | None,
    memory_fraction: float,
    device: torch.device,
) -> int:
    """How many rows the pool gets: ``rows`` if given; else from free CUDA memory; else 16."""
    if rows is not None:
        return rows
    if device.type != "cuda":
        return DEFAULT_CPU_ROWS
    free, _total = torch.cuda.mem_get_info(device)
    per_row = kv_bytes_per_position(gpt) * positions + _ROW_OVERHEAD_FACTOR * gpt.config.number_mel_codes * 4
    planned = int(free * memory_fraction) // per_row
    logger.info(
        "KV pool: %d rows of %d positions (%.1f MiB each) in %.0f%% of %.1f GiB free",
        planned,
        positions,
        per_row / 2**20,
        memory_fraction * 100,
        free / 2**30,
    )
    return max(1, planned)


@dataclass(frozen=True)
class RowMove:
    """Row ``source`` now lives at row ``target`` (after a compaction)."""

    source: int
    target: int


class KVPool:
    """Preallocated decoding state for ``rows`` sequences of up to ``positions`` positions each."""

    def __init__(self, gpt: UnifiedVoice, *, rows: int, positions: int, device: torch.device) -> None:
        cfg = gpt.config
        self.rows = rows
        self.positions = positions
        self.vocab = cfg.number_mel_codes
        self.device = device
        dtype = next(gpt.parameters()).dtype
        self.cache = gpt.gpt.allocate_cache(batch=rows, capacity=positions, device=device)
        self.logits = torch.zeros(rows, self.vocab, dtype=dtype, device=device)
        self.mel_positions = torch.full((rows,), FIRST_CODE_POSITION, dtype=torch.int64, device=device)
        self.tokens = torch.zeros(rows, dtype=torch.int64, device=device)
        self.seen = torch.zeros(rows, self.vocab, dtype=torch.bool, device=device)
        self.ban_stop = torch.zeros(rows, dtype=torch.bool, device=device)
        ones = torch.ones(rows, 1, device=device)
        self.params = SamplingParams(
            temperature=ones.clone(),
            top_k=torch.zeros(rows, 1, dtype=torch.int64, device=device),
            top_p=ones.clone(),
            top_p_cut=torch.zeros(rows, 1, device=device),
            repetition_penalty=ones.clone(),
        )
        self._start_code = cfg.start_mel_token
        self.host_lengths = [0] * rows
        """Cache length of every row, kept on the host (no device read needed for the span)."""
        self.used = 0

    @property
    def free(self) -> int:
        return self.rows - self.used

    @property
    def bytes(self) -> int:
        tensors = [self.cache.keys, self.cache.values, self.logits, self.seen]
        return sum(t.numel() * t.element_size() for t in tensors)

    def take(self, count: int) -> range:
        """Rows for a new sequence (or several): ``[used, used + count)``, reset."""
        if count > self.free:
            raise RuntimeError(f"the KV pool has {self.free} free rows, {count} asked for")
        start = self.used
        self.used += count
        rows = range(start, self.used)
        self.cache.lengths[start : self.used].zero_()
        self.mel_positions[start : self.used].fill_(FIRST_CODE_POSITION)
        self.seen[start : self.used] = initial_seen(count, self.vocab, self._start_code, self.device)
        self.ban_stop[start : self.used] = False
        for row in rows:
            self.host_lengths[row] = 0
        return rows

    def set_options(self, rows: range | list[int], options: GenerationOptions) -> None:
        """Write one request's sampling settings into its rows."""
        index = torch.as_tensor(list(rows), dtype=torch.int64, device=self.device)
        values = SamplingParams.from_options([options], rows_per_request=len(index), device=self.device)
        for name in ("temperature", "top_k", "top_p", "top_p_cut", "repetition_penalty"):
            getattr(self.params, name).index_copy_(0, index, getattr(values, name))

    def release(self, rows: list[int]) -> list[RowMove]:
        """Give rows back; the last occupied rows move into the holes. Returns the moves made."""
        if not rows:
            return []
        leaving = set(rows)
        remaining = self.used - len(leaving)
        holes = sorted(r for r in leaving if r < remaining)
        movers = [r for r in range(remaining, self.used) if r not in leaving]
        moves = [RowMove(source, target) for source, target in zip(movers, holes, strict=True)]
        if moves:
            self._copy_rows([m.target for m in moves], [m.source for m in moves])
        self.used = remaining
        return moves

    def copy_rows(self, targets: list[int], sources: list[int]) -> None:
        """Rows ``targets[i]`` take the whole state of rows ``sources[i]`` (beam search's reorder)."""
        if targets:
            self._copy_rows(targets, sources)

    def _copy_rows(self, targets: list[int], sources: list[int]) -> None:
        span = max(self.host_lengths[s] for s in sources)
        target_index = torch.tensor(targets, dtype=torch.int64, device=self.device)
        source_index = torch.tensor(sources, dtype=torch.int64, device=self.device)
        self.cache.copy_rows_(target_index, source_index, span=max(span, 1))
        for tensor in (self.logits, self.mel_positions, self.tokens, self.seen, self.ban_stop):
            tensor.index_copy_(0, target_index, tensor.index_select(0, source_index))
        for name in ("temperature", "top_k", "top_p", "top_p_cut", "repetition_penalty"):
            column = getattr(self.params, name)
            column.index_copy_(0, target_index, column.index_select(0, source_index))
        lengths = [self.host_lengths[s] for s in sources]
        for target, length in zip(targets, lengths, strict=True):
            self.host_lengths[target] = length

    def rows_params(self, index: torch.Tensor, *, bound: int = 0) -> SamplingParams:
        """The sampling settings of some rows (a gathered copy); ``bound``: their largest top_k, if known."""
        p = self.params
        return SamplingParams(
            temperature=p.temperature.index_select(0, index),
            top_k=p.top_k.index_select(0, index),
            top_p=p.top_p.index_select(0, index),
            top_p_cut=p.top_p_cut.index_select(0, index),
            repetition_penalty=p.repetition_penalty.index_select(0, index),
            top_k_bound=bound,
        )
