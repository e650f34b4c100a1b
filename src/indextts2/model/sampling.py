"""Score processing and random draws for decoding, as Hugging Face ``generate`` does them.

The official IndexTTS2 decodes with transformers' ``generate``; its processors run in this order:
repetition penalty, temperature, top-k, top-p. We reproduce each one's arithmetic (including ties
and the ``min_tokens_to_keep`` rule: beam search keeps at least 2 codes per beam) on batched
tensors with one value per row, so that requests with different settings share a batch. Nothing
here synchronises with the host, so a decode step built on it can be graph-captured.

Random draws use the exponential race (``argmax p / E`` with ``E ~ Exp(1)``; the ``k`` largest
for draws without replacement), which has the same distribution as ``torch.multinomial``, with
one generator per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from indextts2.options import GenerationOptions

__all__ = [
    "BEAM_MIN_TOKENS_TO_KEEP",
    "SamplingParams",
    "apply_repetition_penalty",
    "apply_temperature",
    "apply_top_k",
    "apply_top_p",
    "draw_without_replacement",
    "process_scores",
    "sample_tokens",
    "top_k_bound",
]

# transformers keeps len(eos_token_ids) + 1 = 2 candidates per beam in its top-k/top-p warpers.
BEAM_MIN_TOKENS_TO_KEEP = 2


@dataclass(frozen=True)
class SamplingParams:
    """Per-row sampling settings as tensors (rows = requests x beams).

    Attributes:
        temperature: ``(R, 1)`` float32.
        top_k: ``(R, 1)`` int64; 0 means no top-k filter.
        top_p: ``(R, 1)`` float32.
        top_p_cut: ``(R, 1)`` float32, ``1 - top_p`` computed in double precision first, as Python does
            in transformers (the cumulative-probability threshold).
        repetition_penalty: ``(R, 1)`` float32.
        top_k_bound: the largest ``top_k`` of the rows, known on the host; 0 when unknown or when a
            row keeps every code. Top-k then ranks only that many codes per row instead of sorting
            the whole vocabulary (the same threshold, far less work).
    """

    temperature: torch.Tensor
    top_k: torch.Tensor
    top_p: torch.Tensor
    top_p_cut: torch.Tensor
    repetition_penalty: torch.Tensor
    top_k_bound: int = 0

    @classmethod
    def from_options(
        cls, options: Sequence[GenerationOptions], *, rows_per_request: int, device: torch.device | str
    ) -> SamplingParams:
        def column(values: list[float] | list[int], dtype: torch.dtype) -> torch.Tensor:
            tensor = torch.tensor(values, dtype=dtype, device=device)
            return tensor.repeat_interleave(rows_per_request).unsqueeze(1)

        return cls(
            temperature=column([o.temperature for o in options], torch.float32),
            top_k=column([o.top_k for o in options], torch.int64),
            top_p=column([o.top_p for o in options], torch.float32),
            top_p_cut=column([1.0 - o.top_p for o in options], torch.float32),
            repetition_penalty=column([o.repetition_penalty for o in options], torch.float32),
            top_k_bound=top_k_bound(options),
        )


def top_k_bound(options: Sequence[GenerationOptions]) -> int:
    """The largest ``top_k`` of ``options``, or 0 when one of them has none (see :class:`SamplingParams`)."""
    ks = [o.top_k for o in options]
    return max(ks) if ks and min(ks) > 0 else 0


def apply_repetition_penalty(scores: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """Scores of seen codes: divided by the penalty when positive, multiplied when negative.

    Args:
        scores: ``(R, V)``; seen: ``(R, V)`` bool; penalty: ``(R, 1)``.
    """
    penalized = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalized, scores)


def apply_temperature(scores: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    return scores / temperature


def apply_top_k(
    scores: torch.Tensor, top_k: torch.Tensor, *, min_keep: int = 1, bound: int = 0
) -> torch.Tensor:
    """Keep, per row, the codes scoring at least the k-th best score (ties kept); the rest -> -inf.

    ``bound`` > 0 promises that no row's ``top_k`` exceeds it: only that many codes are ranked.
    """
    vocab = scores.shape[-1]
    k = torch.where(top_k > 0, top_k, vocab).clamp(min=min_keep, max=vocab)  # (R, 1)
    if 0 < bound < vocab:
        ranked = torch.topk(scores, min(max(bound, min_keep), vocab), dim=-1).values  # sorted, best first
    else:
        ranked = torch.sort(scores, dim=-1, descending=True).values
    threshold = ranked.gather(-1, k - 1)
    return scores.masked_fill(scores < threshold, -torch.inf)


def apply_top_p(
    scores: torch.Tensor, top_p: torch.Tensor, top_p_cut: torch.Tensor, *, min_keep: int = 1
) -> torch.Tensor:
    """Nucleus filter: drop the least likely codes whose cumulative probability is <= 1 - top_p.

    Rows with ``top_p >= 1`` are returned unchanged (transformers adds no filter then).
    """
    ascending, order = torch.sort(scores, dim=-1, descending=False)
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= top_p_cut
    drop_sorted[..., -min_keep:] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    filtered = scores.masked_fill(drop, -torch.inf)
    return torch.where(top_p < 1.0, filtered, scores)


def process_scores(
    scores: torch.Tensor, *, seen: torch.Tensor, params: SamplingParams, min_keep: int
) -> torch.Tensor:
    """Repetition penalty, temperature, top-k, top-p: transformers' order."""
    scores = apply_repetition_penalty(scores, seen, params.repetition_penalty)
    scores = apply_temperature(scores, params.temperature)
    scores = apply_top_k(scores, params.top_k, min_keep=min_keep, bound=params.top_k_bound)
    return apply_top_p(scores, params.top_p, params.top_p_cut, min_keep=min_keep)


def _race_keys(probs: torch.Tensor, generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """``probs / E`` with E ~ Exp(1), row ``i`` drawn from ``generators[i]`` (None: torch's global RNG)."""
    if len(generators) != probs.shape[0]:
        raise ValueError(f"{len(generators)} generators for {probs.shape[0]} rows")
    noise = torch.empty_like(probs)
    for row, generator in enumerate(generators):
        noise[row].exponential_(generator=generator)
    return probs / noise


def sample_tokens(scores: torch.Tensor, generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """One code per row ``(R,)`` from ``softmax(scores)``; row ``i`` uses ``generators[i]``.

    A row whose filter left a single code always returns it (top_k=1 is deterministic).
    """
    probs = scores.softmax(dim=-1)
    return _race_keys(probs, generators).argmax(dim=-1)


def draw_without_replacement(
    scores: torch.Tensor, count: int, generators: Sequence[torch.Generator | None]
) -> torch.Tensor:
    """``count`` distinct indices per row ``(R, count)``, drawn from ``softmax(scores)`` without replacement.

    When fewer than ``count`` indices have a non-zero probability, the rest are zero-probability
    indices (as torch.multinomial does); callers rank the draws by score, so those come last.
    """
    probs = scores.softmax(dim=-1)
    return _race_keys(probs, generators).topk(count, dim=-1).indices
