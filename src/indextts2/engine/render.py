"""The render stages of the engine: content, s2mel (length-bucketed, stepped) and BigVGAN.

Pieces (whole segments, or streamed parts of them) queue here once their codes are known. Each
scheduler iteration the renderer makes the content of every queued piece in one batch (the GPT's
latent pass for IndexTTS-2, the codec decoder for IndexTTS-2.5: :meth:`TTSModel.content_pass`), keeps
one s2mel batch in flight and advances it by a flow step or a few (so the GPT's decode steps keep
coming between them), and when the solve is done runs BigVGAN on that batch.

An s2mel batch is drawn from pieces with the same diffusion settings, starting with the oldest,
adding those of similar length (within ``bucket_ratio``) up to ``max_flow_batch`` pieces and
``max_flow_frames`` padded frames; each piece is masked to its own length, and classifier-free
guidance doubles the batch inside the solver.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from indextts2.engine.config import EngineConfig
from indextts2.model.pipeline import MelPiece, NoiseSource, NoiseStream, Segment, TTSModel
from indextts2.model.s2mel import S2MelOutput, S2MelSolve

__all__ = ["RenderPiece", "Renderer"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class RenderPiece:
    """Codes of a segment to be rendered to audio.

    Attributes:
        owner: the engine's state of the segment (the renderer does not look into it).
        segment: the segment.
        codes: ``(end,)`` int64, every code of the segment known up to the piece's end (the content
            pass reads them all).
        start: the piece's first code; it renders ``codes[start:]``.
        first_frame, frames: the mel frames it covers in the segment; ``frames`` None: the segment
            whole, by the s2mel rule.
        final: the segment's last piece.
        noise: the segment's noise stream.
        content_frames: the mel frames it generates (the s2mel rule at the segment's speed, also
            when ``frames`` is None): what length buckets and the frame budget count.
        noise_source: test hook for whole segments (see :data:`~indextts2.model.pipeline.NoiseSource`).
        timings: ``(stage, start, end, batch)`` of each render stage it went through.
    """

    owner: object
    segment: Segment
    codes: torch.Tensor
    start: int
    first_frame: int
    frames: int | None
    final: bool
    noise: NoiseStream
    content_frames: int
    noise_source: NoiseSource | None = None
    prompt_frames: int = 0
    content: torch.Tensor | None = None
    wave: torch.Tensor | None = None
    queued_at: float = field(default_factory=time.monotonic)
    timings: list[tuple[str, float, float, int]] = field(default_factory=list)

    @property
    def total_frames(self) -> int:
        return self.prompt_frames + self.content_frames


@dataclass(eq=False)
class _FlowBatch:
    pieces: list[RenderPiece]
    solve: S2MelSolve
    started: float = field(default_factory=time.monotonic)


class Renderer:
    """Queues of pieces between the GPT and the audio; one s2mel batch in flight at a time."""

    def __init__(
        self,
        model: TTSModel,
        config: EngineConfig,
        *,
        on_batch: Callable[[str, int], None] | None = None,
        timed: Callable[[str, Callable[[], Any]], Any] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self._on_batch = on_batch or (lambda stage, size: None)
        self._timed = timed or (lambda stage, function: function())
        self._latent_queue: list[RenderPiece] = []
        self._flow_queue: list[RenderPiece] = []
        self._flow: _FlowBatch | None = None

    @property
    def idle(self) -> bool:
        return not self._latent_queue and not self._flow_queue and self._flow is None

    def add(self, piece: RenderPiece) -> None:
        piece.prompt_frames = int(piece.segment.voice.mel_lengths[0])
        self._latent_queue.append(piece)

    def drop(self, keep: Callable[[RenderPiece], bool]) -> None:
        """Forget queued pieces for which ``keep`` is False (cancelled requests).

        A batch already in the solver runs to its end; its pieces come back and the caller ignores
        those it no longer wants.
        """
        self._latent_queue = [p for p in self._latent_queue if keep(p)]
        self._flow_queue = [p for p in self._flow_queue if keep(p)]

    def in_flight(self) -> list[RenderPiece]:
        """Every piece the renderer holds (queued or in the solver)."""
        held = self._latent_queue + self._flow_queue
        return held + (self._flow.pieces if self._flow is not None else [])

    def step(self, *, decoding: bool) -> list[RenderPiece]:
        """One scheduler iteration of rendering; returns the pieces whose audio is ready."""
        if self._latent_queue:
            pieces, started = self._latent_queue, time.monotonic()
            self._timed("latent", self._content_pass)
            ended = time.monotonic()
            for piece in pieces:
                piece.timings.append(("latent", started, ended, len(pieces)))
        if self._flow is None and self._flow_queue:
            self._timed("s2mel", self._start_flow)
        if self._flow is None:
            return []
        flow = self._flow
        steps = self.config.flow_steps_per_iteration if decoding else flow.solve.steps_left

        def advance() -> None:
            for _ in range(min(steps, flow.solve.steps_left)):
                flow.solve.step()

        self._timed("s2mel", advance)
        if not flow.solve.done:
            return []
        self._flow = None
        mel = flow.solve.result()
        solved = time.monotonic()
        for piece in flow.pieces:
            piece.timings.append(("s2mel", flow.started, solved, len(flow.pieces)))
        waves: list[torch.Tensor] = []
        for rows in self._vocoder_groups(mel.lengths.tolist()):
            longest = max(int(mel.lengths[row]) for row in rows)
            index = torch.tensor(rows, device=mel.mel.device)
            part = S2MelOutput(
                mel.mel.index_select(0, index)[:, :, :longest], mel.lengths.index_select(0, index)
            )
            started = time.monotonic()
            waves += self._timed("vocoder", functools.partial(self.model.vocode, part))
            ended = time.monotonic()
            for row in rows:
                flow.pieces[row].timings.append(("vocoder", started, ended, len(rows)))
            self._on_batch("vocoder", len(rows))
        for piece, wave in zip(flow.pieces, waves, strict=True):
            piece.wave = wave
        return flow.pieces

    def _vocoder_groups(self, lengths: list[int]) -> list[list[int]]:
        """Consecutive rows per BigVGAN call, at most ``max_vocoder_frames`` padded frames each."""
        limit = self.config.max_vocoder_frames
        if limit is None:
            limit = 4096 if self.model.device.type == "cuda" else 256
        groups: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for row, length in enumerate(lengths):
            if current and max(longest, length) * (len(current) + 1) > limit:
                groups.append(current)
                current, longest = [], 0
            current.append(row)
            longest = max(longest, length)
        if current:
            groups.append(current)
        return groups

    def fail(self) -> list[RenderPiece]:
        """Drop everything (after an error); returns the pieces dropped."""
        dropped = self.in_flight()
        self._latent_queue, self._flow_queue, self._flow = [], [], None
        return dropped

    # ---- stages

    def _content_pass(self) -> None:
        pieces, self._latent_queue = self._latent_queue, []
        content = self.model.content_pass(
            [p.segment for p in pieces], [p.codes for p in pieces], [p.start for p in pieces]
        )
        self._on_batch("latent", len(pieces))
        for piece, rows in zip(pieces, content, strict=True):
            piece.content = rows
            self._flow_queue.append(piece)

    def _choose(self) -> list[RenderPiece]:
        queue = self._flow_queue
        oldest = min(queue, key=lambda p: p.queued_at)
        config = self.config
        candidates = [p for p in queue if p is not oldest and p.segment.flow == oldest.segment.flow]
        size = oldest.total_frames
        low, high = size / config.bucket_ratio, size * config.bucket_ratio
        close = sorted(
            (p for p in candidates if low <= p.total_frames <= high),
            key=lambda p: (abs(p.total_frames - size), p.queued_at),
        )
        chosen = [oldest]
        longest = size
        for piece in close:
            if len(chosen) >= config.max_flow_batch:
                break
            longest_if = max(longest, piece.total_frames)
            if longest_if * (len(chosen) + 1) > config.max_flow_frames:
                break
            chosen.append(piece)
            longest = longest_if
        return chosen

    def _start_flow(self) -> None:
        started = time.monotonic()
        chosen = self._choose()
        taken = set(map(id, chosen))
        self._flow_queue = [p for p in self._flow_queue if id(p) not in taken]
        device = self.model.device
        mel_pieces = []
        for piece in chosen:
            if piece.content is None:
                raise RuntimeError("a piece reached s2mel without its content")
            mel_pieces.append(
                MelPiece(
                    piece.segment,
                    piece.codes[piece.start :].to(device),
                    piece.content,
                    piece.first_frame,
                    piece.frames,
                )
            )
        noise = self.model.flow_noise(
            mel_pieces,
            [p.noise for p in chosen],
            [p.noise_source if p.frames is None else None for p in chosen],
        )
        solve = self.model.begin_mel(mel_pieces, noise=noise)
        self._on_batch("s2mel", len(chosen))
        self._flow = _FlowBatch(chosen, solve, started)
