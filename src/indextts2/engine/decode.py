"""Continuous batching of GPT decoding: sequences join and leave the running batch between steps.

Every step, all active sequences (one row each, or ``num_beams`` rows for beam search) take one
decode step together on the rows ``[0, used)`` of the :class:`~indextts2.engine.kv_pool.KVPool`.
New sequences are prefilled into free rows between steps; a finished or cancelled sequence gives
its rows back before the next one (the pool compacts). Each sequence keeps its own sampling
settings and random generator, so its codes do not depend on its neighbours.

Host synchronisation: a step draws the sampled rows' codes, queues their copy to the host, then
queues the forward pass of the next position and only then waits for the copy, so the device runs
the forward while the host does its bookkeeping (who stopped, who reached ``max_codes``). A row
that stopped has one forward pass computed in vain. Beam search is host work every step
(candidates are ranked on the host, as transformers does), so a batch holding a beam-search request
waits for the device once per step.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from indextts2.engine.kv_pool import KVPool
from indextts2.model.decoding import BeamSearch, GeneratedCodes, beam_candidates, prefill
from indextts2.model.pipeline import Segment, TTSModel
from indextts2.model.sampling import process_scores, sample_tokens, top_k_bound

__all__ = ["DecodeBatch", "DecodingSequence"]

logger = logging.getLogger(__name__)

# A forward over rows [0, n) attending to the first `span` cache slots.
Forward = Callable[[int, int], None]


@dataclass(eq=False)
class DecodingSequence:
    """One segment being decoded.

    Attributes:
        segment: what is decoded (prompt, settings, generator).
        owner: the caller's object for this segment (the engine's segment state).
        min_codes: the stop code is refused until this many codes exist (0: never refused).
        rows: the pool rows it occupies (``num_beams`` of them), once prefilled.
        codes: the codes so far (sampling; beam search knows its codes only at the end).
        result: the final codes, once finished.
    """

    segment: Segment
    owner: object
    min_codes: int = 0
    rows: list[int] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    beam: BeamSearch | None = None
    prompt_length: int = 0
    result: GeneratedCodes | None = None

    @property
    def beams(self) -> int:
        return self.segment.generation.num_beams

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def max_codes(self) -> int:
        return self.segment.generation.max_codes


class DecodeBatch:
    """The running batch of the GPT stage: admission into pool rows, one step for all, release."""

    def __init__(self, model: TTSModel, pool: KVPool, *, max_prefill_rows: int) -> None:
        self.model = model
        self.model = model
        self.gpt = model.gpt
        self.pool = pool
        self.max_prefill_rows = max_prefill_rows
        self.stop_code = model.stop_code
        self.sequences: list[DecodingSequence] = []
        self.pending: deque[DecodingSequence] = deque()
        self.steps = 0
        self.forward: Forward = self._eager_forward
        self._row_owner: dict[int, DecodingSequence] = {}
        self._indices: dict[tuple[int, ...], torch.Tensor] = {}
        # codes are read back through one page-locked buffer, so that the copy can be asynchronous
        self._host_tokens: torch.Tensor | None = None
        if pool.device.type == "cuda":
            self._host_tokens = torch.empty(pool.rows, dtype=torch.int64, pin_memory=True)

    # ---- membership

    @property
    def pending_rows(self) -> int:
        return sum(s.beams for s in self.pending)

    def can_take(self, rows: int) -> bool:
        return self.pool.free - self.pending_rows >= rows

    def add(self, sequence: DecodingSequence) -> None:
        """Queue a sequence; it is prefilled before a coming step (when its rows are free)."""
        if sequence.beams > self.pool.rows:
            raise RuntimeError(f"{sequence.beams} beams need more rows than the pool's {self.pool.rows}")
        self.pending.append(sequence)

    def remove(self, sequence: DecodingSequence) -> None:
        """Drop a sequence (cancelled): its rows are free for the next step."""
        if sequence in self.pending:
            self.pending.remove(sequence)
            return
        if sequence in self.sequences:
            self._release([sequence])

    def clear(self) -> list[DecodingSequence]:
        """Drop everything (after a failure); returns what was dropped."""
        dropped = list(self.sequences) + list(self.pending)
        self.pending.clear()
        if self.sequences:
            self._release(list(self.sequences))
        return dropped

    @property
    def idle(self) -> bool:
        return not self.sequences and not self.pending

    def _release(self, leaving: list[DecodingSequence]) -> None:
        rows = [row for s in leaving for row in s.rows]
        for row in rows:
            self._row_owner.pop(row, None)
        gone = set(map(id, leaving))
        self.sequences = [s for s in self.sequences if id(s) not in gone]
        for move in self.pool.release(rows):
            owner = self._row_owner.pop(move.source)
            owner.rows[owner.rows.index(move.source)] = move.target
            self._row_owner[move.target] = owner

    # ---- prefill

    def admit(self) -> int:
        """Prefill the pending sequences whose rows are free (up to ``max_prefill_rows``); returns rows."""
        admitted: list[DecodingSequence] = []
        rows = 0
        while self.pending and rows + self.pending[0].beams <= min(self.pool.free, self.max_prefill_rows):
            sequence = self.pending.popleft()
            rows += sequence.beams
            admitted.append(sequence)
        if not admitted and self.pending and not self.sequences and self.pending[0].beams <= self.pool.free:
            admitted.append(self.pending.popleft())  # more beams than max_prefill_rows: alone
        if not admitted:
            return 0
        gpt = self.gpt
        prompts = self.model.prompts([s.segment for s in admitted])
        expanded = [p for s, p in zip(admitted, prompts, strict=True) for _ in range(s.beams)]
        taken = self.pool.take(len(expanded))
        state = prefill(
            gpt, expanded, capacity=self.pool.positions, cache=self.pool.cache.rows(taken.start, taken.stop)
        )
        self.pool.logits[taken.start : taken.stop] = state.logits
        row = taken.start
        for sequence, prompt in zip(admitted, prompts, strict=True):
            sequence.rows = list(range(row, row + sequence.beams))
            row += sequence.beams
            sequence.prompt_length = int(prompt.shape[0]) + 1  # + the start code
            for r in sequence.rows:
                self.pool.host_lengths[r] = sequence.prompt_length
                self._row_owner[r] = sequence
            self.pool.set_options(sequence.rows, sequence.segment.generation)
            if sequence.min_codes > 0:
                self.pool.ban_stop[sequence.rows[0] : sequence.rows[-1] + 1] = True
            if sequence.beams > 1:
                sequence.beam = BeamSearch(
                    sequence.segment.generation, stop_code=self.stop_code, vocab=self.pool.vocab
                )
            self.sequences.append(sequence)
        return len(expanded)

    # ---- one step

    def step(self) -> list[DecodingSequence]:
        """Take one decode step for every sequence (admitting first what :meth:`admit` has not).

        Returns:
            The sequences that produced codes or finished in this step (finished ones have
            ``result`` set and have already left the batch).
        """
        if self.pending:
            self.admit()
        if not self.sequences:
            return []
        pool = self.pool
        used = pool.used
        sampled = [s for s in self.sequences if s.beam is None]
        searching = [s for s in self.sequences if s.beam is not None]
        host_tokens: torch.Tensor | None = None
        ready: torch.cuda.Event | None = None
        if sampled:
            host_tokens, ready = self._sample(sampled)
        if searching:
            self._search(searching)
        pool.seen[:used].scatter_(1, pool.tokens[:used].unsqueeze(1), True)

        # the next position for every row: the device works on it during the bookkeeping below
        finishing = [s for s in searching if s.beam is not None and s.beam.finished]
        span = max(pool.host_lengths[:used]) + 1
        self.forward(used, span)
        for row in range(used):
            pool.host_lengths[row] += 1
        self.steps += 1

        changed: list[DecodingSequence] = list(finishing)
        if host_tokens is not None:
            if ready is not None:
                ready.synchronize()
            changed += self._note_codes(sampled, host_tokens.tolist())
        for sequence in finishing:
            if sequence.beam is not None:
                sequence.result = sequence.beam.result()
        done = [s for s in changed if s.finished]
        if done:
            self._release(done)
        return changed

    def _index(self, rows: list[int]) -> torch.Tensor:
        """The rows as a device tensor, made again only when they change (a copy from pageable
        memory would make the host wait for the device every step)."""
        key = tuple(rows)
        cached = self._indices.get(key)
        if cached is None:
            host = torch.tensor(rows, dtype=torch.int64)
            if self.pool.device.type == "cuda":
                host = host.pin_memory()
            cached = host.to(self.pool.device, non_blocking=True)
            self._indices = {key: cached}
        return cached

    def _stop_banned(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        banned = self.pool.ban_stop.index_select(0, rows)
        stop_column = logits[:, self.stop_code]
        logits[:, self.stop_code] = torch.where(banned, torch.full_like(stop_column, -torch.inf), stop_column)
        return logits

    def _sample(self, sampled: list[DecodingSequence]) -> tuple[torch.Tensor, torch.cuda.Event | None]:
        pool = self.pool
        rows = self._index([s.rows[0] for s in sampled])
        logits = self._stop_banned(pool.logits.index_select(0, rows).float(), rows)
        params = pool.rows_params(rows, bound=top_k_bound([s.segment.generation for s in sampled]))
        scores = process_scores(logits, seen=pool.seen.index_select(0, rows), params=params, min_keep=1)
        tokens = sample_tokens(scores, [s.segment.generator for s in sampled])
        pool.tokens.index_copy_(0, rows, tokens)
        if self._host_tokens is None:
            return tokens, None
        host = self._host_tokens[: tokens.shape[0]]
        host.copy_(tokens, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return host, event

    def _note_codes(self, sampled: list[DecodingSequence], tokens: list[int]) -> list[DecodingSequence]:
        pool = self.pool
        for sequence, token in zip(sampled, tokens, strict=True):
            if token == self.stop_code:
                sequence.result = GeneratedCodes(torch.tensor(sequence.codes, dtype=torch.int64), True, token)
                continue
            sequence.codes.append(token)
            if len(sequence.codes) >= sequence.max_codes:
                codes = torch.tensor(sequence.codes, dtype=torch.int64)
                sequence.result = GeneratedCodes(codes, False, self.stop_code)
            elif sequence.min_codes and len(sequence.codes) == sequence.min_codes:
                pool.ban_stop[sequence.rows[0]] = False
        return sampled

    def _search(self, searching: list[DecodingSequence]) -> None:
        pool = self.pool
        active = [s for s in searching if s.beam is not None and not s.beam.finished]
        if not active:
            return
        for group in _by_beams(active):
            beams = group[0].beams
            rows = torch.tensor([r for s in group for r in s.rows], dtype=torch.int64, device=pool.device)
            logits = self._stop_banned(pool.logits.index_select(0, rows).float(), rows)
            beam_scores = torch.tensor(
                [score for s in group if s.beam is not None for score in s.beam.scores],
                dtype=torch.float32,
                device=pool.device,
            )
            score_rows, index_rows = beam_candidates(
                logits,
                seen=pool.seen.index_select(0, rows),
                params=pool.rows_params(rows, bound=top_k_bound([s.segment.generation for s in group])),
                beam_scores=beam_scores,
                beams=beams,
                generators=[s.segment.generator for s in group],
            )
            targets: list[int] = []
            sources: list[int] = []
            codes: list[int] = []
            for sequence, drawn_scores, drawn in zip(group, score_rows, index_rows, strict=True):
                if sequence.beam is None:
                    continue
                local_sources, chosen = sequence.beam.advance(drawn_scores, drawn)
                if sequence.min_codes and sequence.beam.steps == sequence.min_codes:
                    pool.ban_stop[torch.tensor(sequence.rows, device=pool.device)] = False
                for beam, source in enumerate(local_sources):
                    if source != beam:
                        targets.append(sequence.rows[beam])
                        sources.append(sequence.rows[source])
                codes += chosen
            pool.copy_rows(targets, sources)
            pool.tokens.index_copy_(0, rows, torch.tensor(codes, dtype=torch.int64, device=pool.device))

    # ---- the forward pass

    def _eager_forward(self, rows: int, span: int) -> None:
        run_decode_forward(self.model, self.pool, rows, span)


def run_decode_forward(model: TTSModel, pool: KVPool, rows: int, span: int | None) -> None:
    """Feed ``pool.tokens[:rows]`` at their mel positions; the next logits land in ``pool.logits``.

    Reads and writes only the pool's tensors (fixed addresses): the function a CUDA graph captures.
    ``span`` None attends over every cache slot.
    """
    gpt = model.gpt
    positions = pool.mel_positions[:rows]
    embedded = gpt.mel_embeddings(pool.tokens[:rows], positions).unsqueeze(1)  # (rows, 1, D)
    positions.add_(1)
    hidden = gpt.gpt(embedded, cache=pool.cache.rows(0, rows), key_span=span)
    pool.logits[:rows] = gpt.mel_logits(hidden[:, 0])


def _by_beams(sequences: list[DecodingSequence]) -> list[list[DecodingSequence]]:
    groups: dict[int, list[DecodingSequence]] = {}
    for sequence in sequences:
        groups.setdefault(sequence.beams, []).append(sequence)
    return list(groups.values())
