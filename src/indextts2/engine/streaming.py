"""Chunked rendering of a segment whose codes are still being decoded: which piece next, and the joins.

A segment's mel has ``F(n)`` frames for ``n`` codes (``F`` = the s2mel rule, ~1.72 frames per code).
The first piece waits for ``first_chunk_codes`` codes, the next for ``chunk_codes`` more, and each
later one for ``chunk_growth`` times more than the one before. A piece covers codes
``[start, end)`` and renders the frames ``[F(start), F(end))`` of the segment, with the segment's
own noise at those frames. Pieces overlap: each later piece starts
``context_codes`` codes before the end of the previous one, and the previous piece's last
``holdback_frames`` frames are held back until the next piece arrives; the two are cross-faded
(raised cosine) over ``crossfade_frames`` frames. The last piece is sent whole.

Everything here is host-side arithmetic on sample counts and numpy arrays (unit-tested alone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from indextts2.engine.config import StreamingOptions

__all__ = ["ChunkPlanner", "CrossFader", "PiecePlan"]


@dataclass(frozen=True)
class PiecePlan:
    """Codes ``[start, end)`` of a segment, its mel frames ``[first_frame, first_frame + frames)``."""

    start: int
    end: int
    first_frame: int
    frames: int
    final: bool


class ChunkPlanner:
    """Decides when a segment's next piece is rendered and what it covers.

    Args:
        options: the request's streaming settings (``chunked`` False: one piece, when decoding ends).
        frames_for: mel frames of the first ``n`` codes of the segment.
    """

    def __init__(self, options: StreamingOptions, frames_for: Callable[[int], int], *, chunked: bool) -> None:
        self.options = options
        self.frames_for = frames_for
        self.chunked = chunked
        self.pieces = 0
        self.covered = 0  # codes rendered so far (the end of the last piece)

    def next(self, codes: int, *, decoding_done: bool) -> PiecePlan | None:
        """The piece to render now, given ``codes`` known codes; None: wait for more.

        Call it only when no piece of the segment is being rendered.
        """
        if decoding_done:
            if codes == 0 or (self.pieces and self.covered >= codes):
                return None
            return self._plan(codes, final=True)
        if not self.chunked:
            return None
        options = self.options
        if self.pieces == 0:
            wanted = options.first_chunk_codes
        else:
            wanted = round(options.chunk_codes * options.chunk_growth ** (self.pieces - 1))
        if codes - self.covered < wanted:
            return None
        return self._plan(codes, final=False)

    def _plan(self, end: int, *, final: bool) -> PiecePlan:
        start = 0 if self.pieces == 0 else max(0, self.covered - self.options.context_codes)
        first = self.frames_for(start)
        plan = PiecePlan(
            start=start, end=end, first_frame=first, frames=max(1, self.frames_for(end) - first), final=final
        )
        self.pieces += 1
        self.covered = end
        return plan


class CrossFader:
    """Joins a segment's overlapping pieces into one stream of samples.

    Args:
        crossfade: samples over which a piece fades into the next.
        holdback: samples at the end of a non-final piece kept back for the next one (>= crossfade).
    """

    def __init__(self, *, crossfade: int, holdback: int) -> None:
        if holdback < crossfade:
            raise ValueError(f"holdback ({holdback}) must be at least crossfade ({crossfade})")
        self.crossfade = crossfade
        self.holdback = holdback
        self.sent = 0  # samples of the segment sent so far
        self._held = np.zeros(0, dtype=np.float32)  # the previous piece's samples from `sent` on

    def add(self, wave: np.ndarray, *, start: int, final: bool) -> np.ndarray:
        """A piece covering samples ``[start, start + len(wave))`` of the segment -> samples to send.

        ``start`` must not lie past what was sent (pieces overlap the audio sent before them).
        """
        if start > self.sent:
            raise ValueError(f"a piece starting at sample {start} leaves a gap after sample {self.sent}")
        fresh = np.asarray(wave, dtype=np.float32)[self.sent - start :]
        overlap = min(self.crossfade, len(self._held), len(fresh))
        if overlap:
            # raised-cosine fade (the gains sum to 1): the two pieces render the same audio from
            # slightly different contexts, so they are strongly correlated and keep their loudness
            ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
            fade_in = np.sin(0.5 * np.pi * ramp).astype(np.float32) ** 2
            fade_out = 1.0 - fade_in
            joined = np.concatenate(
                [self._held[:overlap] * fade_out + fresh[:overlap] * fade_in, fresh[overlap:]]
            )
        else:
            joined = fresh
        cut = len(joined) if final else max(0, len(joined) - self.holdback)
        self._held = joined[cut:]
        self.sent += cut
        return joined[:cut]
