"""Autoregressive decoding of semantic codes: prefill, one step, sampling and beam search.

Our own loop on :class:`~indextts2.model.gpt2.KVCache`, reproducing what the official
``inference_speech`` gets from transformers' ``generate`` (see the goldens README, quirks Q6/Q7 and
"Decoding settings and noise"):

- the prompt is [conditioning block] [text] then the start code 8192 at mel position 0; the k-th
  generated code is fed at mel position k + 1 (the official inference model derives the position
  from the attention-mask length, one more than the codes' own index; the latent pass, by contrast,
  numbers them 0, 1, 2, ...);
- the repetition penalty sees the official placeholder prompt: its ids (all 1) and the start code,
  besides the codes generated so far;
- with ``num_beams == 1`` the processors run on raw logits and one code is drawn per step; with
  beams they run on log-softmax scores, the running beam score is added, ``2 * num_beams``
  candidates are drawn without replacement over all beams of a request and ranked by score, and
  finished hypotheses are kept as transformers' ``BeamSearchScorer`` does (its ``length_penalty``
  and its stopping heuristic, ``early_stopping=False``);
- decoding stops at the stop code 8193 or after ``max_codes`` codes.

Rows of a batch may have different prompt lengths and settings (``num_beams`` must agree). Each
request has its own random generator, so its result does not depend on its batch neighbours'
draws; with ``top_k=1`` results do not depend on the generator at all.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from indextts2.errors import InvalidInput
from indextts2.model.gpt import UnifiedVoice
from indextts2.model.gpt2 import KVCache
from indextts2.model.sampling import (
    BEAM_MIN_TOKENS_TO_KEEP,
    SamplingParams,
    draw_without_replacement,
    process_scores,
    sample_tokens,
)
from indextts2.options import GenerationOptions

__all__ = [
    "FIRST_CODE_POSITION",
    "PROMPT_PLACEHOLDER_ID",
    "BeamSearch",
    "DecodeState",
    "GeneratedCodes",
    "beam_candidates",
    "decode_step",
    "generate_codes",
    "initial_seen",
    "make_generator",
    "prefill",
    "refuse_stop",
]

logger = logging.getLogger(__name__)

# The official inference feeds placeholder ids (torch.ones) for the prompt positions; the repetition
# penalty counts them (and the start code) as already generated.
PROMPT_PLACEHOLDER_ID = 1
# The start code sits at mel position 0 and the k-th generated code at k + 1 (module docstring).
FIRST_CODE_POSITION = 2
# transformers' initial score of beams 1..n-1, so that the first step expands beam 0 only.
_INACTIVE_BEAM_SCORE = -1e9


@dataclass(frozen=True)
class GeneratedCodes:
    """The codes of one request.

    Attributes:
        codes: ``(n,)`` int64, cut before the stop code: what the latent pass and s2mel use.
        stopped: True if decoding ended with the stop code, False if it hit ``max_codes``.
        stop_code: the stop code of the model (for :attr:`generated`).
    """

    codes: torch.Tensor
    stopped: bool
    stop_code: int

    @property
    def generated(self) -> torch.Tensor:
        """What the official ``inference_speech`` returns: the codes, then the stop code if it came."""
        if not self.stopped:
            return self.codes
        return torch.cat((self.codes, self.codes.new_tensor([self.stop_code])))


@dataclass
class DecodeState:
    """A batch being decoded: its cache, the logits for the next code, the rows' mel positions.

    Attributes:
        cache: the rows' keys and values.
        logits: ``(rows, V)`` logits of the next code of every row.
        positions: ``(rows,)`` int64, the mel position of each row's next code (updated in place, so
            that a captured step can read it).
        span: the longest row's cache length, kept on the host so that eager steps attend no
            further (None: attend over the whole capacity, as a captured step must).
    """

    cache: KVCache
    logits: torch.Tensor
    positions: torch.Tensor
    span: int | None


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A request's own random generator, seeded with ``seed`` (or a fresh random seed)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(secrets.randbits(63) if seed is None else seed)
    return generator


def prefill(
    model: UnifiedVoice,
    prompts: Sequence[torch.Tensor],
    *,
    copies: int = 1,
    capacity: int,
    cache: KVCache | None = None,
) -> DecodeState:
    """Run the prompts (plus the start code) through the GPT and keep their keys and values.

    Args:
        prompts: ``(P_i, D)`` prefixes from :meth:`UnifiedVoice.prompt_embeddings`.
        copies: rows per prompt (the beams); rows are request-major.
        capacity: cache positions per row (the longest prompt + 1 + the codes to be fed).
        cache: rows to fill (e.g. free rows of an engine's pool, :meth:`KVCache.rows`), one per
            prompt copy, with their lengths at 0; default: a new cache of ``capacity`` positions.
    """
    cfg = model.config
    device = model.mel_embedding.weight.device
    start = model.mel_embeddings(
        torch.tensor([cfg.start_mel_token], device=device), torch.zeros(1, dtype=torch.int64, device=device)
    )
    sequences = [torch.cat((prompt, start), dim=0) for prompt in prompts for _ in range(copies)]
    lengths = torch.tensor([s.shape[0] for s in sequences], device=device)
    span = int(max(s.shape[0] for s in sequences))
    if span > capacity:
        raise ValueError(f"cache capacity {capacity} is shorter than the longest prompt ({span})")
    if cache is None:
        cache = model.gpt.allocate_cache(batch=len(sequences), capacity=capacity)
    elif cache.batch != len(sequences) or cache.capacity < span:
        raise ValueError(
            f"the cache has {cache.batch} rows of {cache.capacity}; {len(sequences)} of {span} needed"
        )
    padded = nn.utils.rnn.pad_sequence(sequences, batch_first=True)  # (rows, P_max, D), right padding
    hidden = model.gpt(padded, cache=cache, new_lengths=lengths, key_span=span)
    last = hidden[torch.arange(len(sequences), device=device), lengths - 1]  # (rows, D)
    positions = torch.full((len(sequences),), FIRST_CODE_POSITION, dtype=torch.int64, device=device)
    return DecodeState(cache=cache, logits=model.mel_logits(last), positions=positions, span=span)


def decode_step(model: UnifiedVoice, state: DecodeState, codes: torch.Tensor) -> None:
    """Feed one code per row ``(rows,)``; updates ``state.logits`` for the next one.

    Everything but the host-side ``span`` bookkeeping is tensor work without host synchronisation.
    """
    embedded = model.mel_embeddings(codes, state.positions).unsqueeze(1)  # (rows, 1, D)
    state.positions.add_(1)
    if state.span is not None:
        state.span += 1
    hidden = model.gpt(embedded, cache=state.cache, key_span=state.span)
    state.logits = model.mel_logits(hidden[:, 0])


class _Hypotheses:
    """Finished beams of one request, kept as transformers' ``BeamHypotheses`` keeps them."""

    def __init__(self, num_beams: int, length_penalty: float) -> None:
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.beams: list[tuple[float, list[int]]] = []
        self.worst_score = 1e9

    def add(self, codes: list[int], sum_logprobs: float, generated_len: int) -> None:
        score = sum_logprobs / (generated_len**self.length_penalty)
        if len(self.beams) < self.num_beams or score > self.worst_score:
            self.beams.append((score, codes))
            if len(self.beams) > self.num_beams:
                ranked = sorted((s, index) for index, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, generated_len: int) -> bool:
        if len(self.beams) < self.num_beams:
            return False
        return self.worst_score >= best_sum_logprobs / generated_len**self.length_penalty

    def best(self) -> list[int]:
        # sorted() is stable and the last of equal scores wins, as in transformers' finalize.
        return sorted(self.beams, key=lambda beam: beam[0])[-1][1]


def _check(
    model: UnifiedVoice, prompts: Sequence[torch.Tensor], options: Sequence[GenerationOptions]
) -> None:
    if not prompts:
        raise InvalidInput("nothing to decode: no prompts given")
    if len(options) != len(prompts):
        raise InvalidInput(f"{len(options)} option sets for {len(prompts)} prompts")
    if len({o.num_beams for o in options}) > 1:
        raise InvalidInput("requests decoded together must use the same num_beams")
    limit = model.config.max_mel_tokens
    for o in options:
        if o.max_codes > limit:
            raise InvalidInput(f"max_codes {o.max_codes} is more than the model's limit of {limit}")
    for prompt in prompts:
        if prompt.ndim != 2 or prompt.shape[1] != model.config.model_dim:
            raise InvalidInput(
                f"a prompt must be (length, {model.config.model_dim}), got {tuple(prompt.shape)}"
            )


def initial_seen(rows: int, vocab: int, start_code: int, device: torch.device) -> torch.Tensor:
    """The repetition penalty's view of a fresh row: the placeholder prompt id and the start code."""
    seen = torch.zeros(rows, vocab, dtype=torch.bool, device=device)
    seen[:, [PROMPT_PLACEHOLDER_ID, start_code]] = True
    return seen


@torch.no_grad()
def generate_codes(
    model: UnifiedVoice,
    prompts: Sequence[torch.Tensor],
    *,
    options: GenerationOptions | Sequence[GenerationOptions] | None = None,
    generators: Sequence[torch.Generator | None] | None = None,
    min_codes: Sequence[int] | None = None,
) -> list[GeneratedCodes]:
    """Decode semantic codes for a batch of prompts.

    Args:
        model: the GPT.
        prompts: one ``(P_i, D)`` prefix per request (:meth:`UnifiedVoice.prompt_embeddings`).
        options: one :class:`GenerationOptions` for all requests, or one per request (default:
            the official settings).
        generators: one random generator per request; default: from each request's ``seed``.
        min_codes: per request, the stop code is refused until this many codes exist (transformers'
            ``min_new_tokens``; with ``max_codes`` equal it decodes exactly that many codes, which
            benchmarks on random weights need). Default: none refused.

    Returns:
        One :class:`GeneratedCodes` per request, in order.

    Raises:
        InvalidInput: mismatched batch sizes, different ``num_beams`` in one batch, ``max_codes``
            beyond the model's limit.
    """
    if options is None:
        options = GenerationOptions()
    per_request = [options] * len(prompts) if isinstance(options, GenerationOptions) else list(options)
    _check(model, prompts, per_request)
    device = model.mel_embedding.weight.device
    if generators is None:
        generators = [make_generator(o.seed, device) for o in per_request]
    if len(generators) != len(prompts):
        raise InvalidInput(f"{len(generators)} generators for {len(prompts)} prompts")
    num_beams = per_request[0].num_beams
    longest = max(int(p.shape[0]) for p in prompts) + 1
    state = prefill(
        model, prompts, copies=num_beams, capacity=longest + max(o.max_codes for o in per_request)
    )
    params = SamplingParams.from_options(per_request, rows_per_request=num_beams, device=device)
    floors = [0] * len(prompts) if min_codes is None else [int(m) for m in min_codes]
    if len(floors) != len(prompts):
        raise InvalidInput(f"{len(floors)} min_codes for {len(prompts)} prompts")
    if num_beams == 1:
        return _sample(model, state, per_request, params, list(generators), floors)
    return _beam_search(model, state, per_request, params, list(generators), floors)


def refuse_stop(logits: torch.Tensor, refused: Sequence[bool], stop_code: int) -> torch.Tensor:
    """``logits`` with the stop code's score at -inf in the rows marked ``refused`` (a new tensor)."""
    if not any(refused):
        return logits
    logits = logits.clone()
    rows = torch.tensor(refused, device=logits.device)
    logits[:, stop_code] = logits[:, stop_code].masked_fill(rows, -torch.inf)
    return logits


def _sample(
    model: UnifiedVoice,
    state: DecodeState,
    options: list[GenerationOptions],
    params: SamplingParams,
    generators: list[torch.Generator | None],
    min_codes: list[int],
) -> list[GeneratedCodes]:
    cfg = model.config
    rows = len(options)
    seen = initial_seen(rows, cfg.number_mel_codes, cfg.start_mel_token, state.logits.device)
    codes: list[list[int]] = [[] for _ in range(rows)]
    stopped = [False] * rows
    finished = [False] * rows
    while True:
        refused = [len(c) < floor for c, floor in zip(codes, min_codes, strict=True)]
        logits = refuse_stop(state.logits.float(), refused, cfg.stop_mel_token)
        scores = process_scores(logits, seen=seen, params=params, min_keep=1)
        tokens = sample_tokens(scores, generators)
        for row, token in enumerate(tokens.tolist()):
            if finished[row]:
                continue
            if token == cfg.stop_mel_token:
                stopped[row] = finished[row] = True
                continue
            codes[row].append(token)
            finished[row] = len(codes[row]) >= options[row].max_codes
        if all(finished):
            break
        seen.scatter_(1, tokens.unsqueeze(1), True)
        decode_step(model, state, tokens)
    return [
        GeneratedCodes(torch.tensor(c, dtype=torch.int64), s, cfg.stop_mel_token)
        for c, s in zip(codes, stopped, strict=True)
    ]


def beam_candidates(
    logits: torch.Tensor,
    *,
    seen: torch.Tensor,
    params: SamplingParams,
    beam_scores: torch.Tensor,
    beams: int,
    generators: Sequence[torch.Generator | None],
) -> tuple[list[list[float]], list[list[int]]]:
    """One step's candidates of several beam searches: ``2 * beams`` draws per request, best first.

    Args:
        logits: ``(requests * beams, V)``, request-major.
        seen, params: the rows' repetition-penalty state and settings.
        beam_scores: ``(requests * beams,)`` float32 running scores.
        generators: one per request.

    Returns:
        Per request, the drawn candidates' scores and flat indices ``beam * V + code``, sorted by
        score (read back to the host: beam bookkeeping is host work, as in transformers).
    """
    rows, vocab = logits.shape
    requests = rows // beams
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    scores = process_scores(log_probs, seen=seen, params=params, min_keep=BEAM_MIN_TOKENS_TO_KEEP)
    flat = (scores + beam_scores.view(rows, 1)).view(requests, beams * vocab)
    drawn = draw_without_replacement(flat, 2 * beams, generators)  # (requests, 2 * beams)
    drawn_scores, order = flat.gather(1, drawn).sort(dim=1, descending=True)
    drawn = drawn.gather(1, order)
    return drawn_scores.tolist(), drawn.tolist()


class BeamSearch:
    """The host-side state of one request's beam search (transformers' ``BeamSearchScorer``).

    Rows are the request's beams, in order. Each :meth:`advance` takes that step's candidates
    (:func:`beam_candidates`) and says which beam each row continues and with which code.
    """

    def __init__(self, options: GenerationOptions, *, stop_code: int, vocab: int) -> None:
        self.beams = options.num_beams
        self.max_codes = options.max_codes
        self.stop_code = stop_code
        self.vocab = vocab
        # transformers starts beams 1..n-1 so low that the first step expands beam 0 only.
        self.scores = [0.0] + [_INACTIVE_BEAM_SCORE] * (self.beams - 1)
        self.histories: list[list[int]] = [[] for _ in range(self.beams)]
        self.hypotheses = _Hypotheses(self.beams, options.length_penalty)
        self.steps = 0
        self.finished = False

    def advance(self, drawn_scores: list[float], drawn_indices: list[int]) -> tuple[list[int], list[int]]:
        """Take one step's candidates; returns ``(sources, codes)``: row i continues beam ``sources[i]``."""
        beams, stop = self.beams, self.stop_code
        sources, codes = list(range(beams)), [stop] * beams
        next_scores = list(self.scores)
        filled = 0
        for rank, (score, index) in enumerate(zip(drawn_scores, drawn_indices, strict=True)):
            beam, code = divmod(index, self.vocab)
            if code == stop:
                if rank < beams:  # a stop ranked below the top num_beams is ignored
                    self.hypotheses.add(list(self.histories[beam]), score, self.steps + 1)
            else:
                sources[filled], codes[filled], next_scores[filled] = beam, code, score
                filled += 1
            if filled == beams:
                break
        if filled < beams:  # cannot happen: each beam contributes at most one stop candidate
            raise RuntimeError(f"beam search found only {filled} continuations for {beams} beams")
        self.finished = self.hypotheses.is_done(max(drawn_scores), self.steps + 1)
        self.histories = [self.histories[s] + [c] for s, c in zip(sources, codes, strict=True)]
        self.scores = next_scores
        self.steps += 1
        if not self.finished and self.steps >= self.max_codes:
            for beam in range(beams):
                self.hypotheses.add(self.histories[beam], next_scores[beam], len(self.histories[beam]))
            self.finished = True
        return sources, codes

    def result(self) -> GeneratedCodes:
        best = self.hypotheses.best()
        return GeneratedCodes(
            torch.tensor(best, dtype=torch.int64), len(best) < self.max_codes, self.stop_code
        )


def _beam_search(
    model: UnifiedVoice,
    state: DecodeState,
    options: list[GenerationOptions],
    params: SamplingParams,
    generators: list[torch.Generator | None],
    min_codes: list[int],
) -> list[GeneratedCodes]:
    cfg = model.config
    device = state.logits.device
    requests, beams = len(options), options[0].num_beams
    rows, vocab, stop = requests * beams, cfg.number_mel_codes, cfg.stop_mel_token
    seen = initial_seen(rows, vocab, cfg.start_mel_token, device)
    searches = [BeamSearch(o, stop_code=stop, vocab=vocab) for o in options]
    while True:
        beam_scores = torch.tensor(
            [s for search in searches for s in search.scores], dtype=torch.float32, device=device
        )
        refused = [search.steps < floor for search, floor in zip(searches, min_codes, strict=True)]
        logits = refuse_stop(state.logits, [r for r in refused for _ in range(beams)], stop)
        score_rows, index_rows = beam_candidates(
            logits, seen=seen, params=params, beam_scores=beam_scores, beams=beams, generators=generators
        )
        sources, next_codes = list(range(rows)), [stop] * rows
        for request, search in enumerate(searches):
            if search.finished:  # its rows idle on the stop code until the others finish
                continue
            local_sources, codes = search.advance(score_rows[request], index_rows[request])
            base = request * beams
            sources[base : base + beams] = [base + s for s in local_sources]
            next_codes[base : base + beams] = codes
        if all(search.finished for search in searches):
            break
        if sources != list(range(rows)):
            source_rows = torch.tensor(sources, device=device)
            state.cache.reorder_(source_rows, span=state.span)
            state.positions.copy_(state.positions.index_select(0, source_rows))
            seen = seen.index_select(0, source_rows)
        tokens = torch.tensor(next_codes, device=device)
        seen.scatter_(1, tokens.unsqueeze(1), True)
        decode_step(model, state, tokens)
    return [search.result() for search in searches]
