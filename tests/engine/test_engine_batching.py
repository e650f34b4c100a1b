"""The engine on dummy:tiny: batched equals alone, continuous batching, cancellation, queue, memory."""

from __future__ import annotations

import gc
import threading
from typing import Any

import numpy as np
import pytest
import torch
from engine_helpers import FAST, SMALL_ENGINE, wait_for

from indextts2 import SynthesisOptions, Synthesizer, Voice
from indextts2.engine import Engine, EngineClosed, EngineConfig, SynthesisJob
from indextts2.errors import InvalidInput, Overloaded

# Different settings per request: greedy, sampled, beam search, other flow steps and speed.
MIXED = [
    ("你好，世界。", FAST.replace(top_k=1, seed=1)),
    ("Hello there, nice to meet you!", FAST.replace(temperature=1.1, top_p=0.9, seed=2)),
    ("How are you today?", FAST.replace(num_beams=3, seed=3)),
    ("再见，明天见。", FAST.replace(diffusion_steps=3, speed=1.5, seed=4, repetition_penalty=2.0)),
    ("One more, please.", FAST.replace(top_k=5, seed=5, max_codes=9)),
]


def submit(tts: Synthesizer, text: str, voice: Voice, options: SynthesisOptions, **job: Any) -> Any:
    """Queue a request on the engine without waiting for it (what stream() does on first read)."""
    request = tts._prepare(text, voice=voice, emotion=None, options=options)
    return tts.engine.submit(tts._job(request, **job))


def collect(handle: Any) -> np.ndarray:
    return np.concatenate([chunk.samples for chunk in handle])


def test_requests_batched_together_get_their_solo_audio(
    tts: Synthesizer, alone: Synthesizer, voice: Voice
) -> None:
    before = tts.engine.stats()
    requests = [tts._prepare(text, voice=voice, emotion=None, options=options) for text, options in MIXED]
    handles = [tts.engine.submit(tts._job(request)) for request in requests]  # all at once
    together = [collect(handle) for handle in handles]
    stats = tts.engine.stats()
    assert stats.largest_batch["decode"] >= 4  # rows of several requests in one decode step
    assert stats.items["decode"] - before.items["decode"] > stats.steps - before.steps  # not one at a time
    for (text, options), audio in zip(MIXED, together, strict=True):
        solo = alone.synthesize(text, voice=voice, options=options)
        assert audio.shape == solo.samples.shape, text
        np.testing.assert_allclose(audio, solo.samples, atol=1e-5, err_msg=text)


def test_greedy_codes_are_identical_alone_or_joined_midway(
    tts: Synthesizer, alone: Synthesizer, voice: Voice
) -> None:
    from indextts2.engine.decode import DecodeBatch, DecodingSequence
    from indextts2.engine.kv_pool import KVPool

    model = alone.model
    greedy = FAST.replace(top_k=1, max_codes=20)
    texts = ["First of all.", "第二个句子比较长一些。", "Third one, with a comma.", "Fourth."]

    def segments() -> list[Any]:
        return [
            alone._segments(alone._prepare(t, voice=voice, emotion=None, options=greedy))[0] for t in texts
        ]

    solo = [model.decode([segment])[0].codes.tolist() for segment in segments()]
    pool = KVPool(model.gpt, rows=6, positions=256, device=model.device)
    batch = DecodeBatch(model, pool, max_prefill_rows=2)  # at most two join per step
    sequences = [DecodingSequence(segment, owner=None) for segment in segments()]
    batch.add(sequences[0])
    for _ in range(5):  # the first decodes alone for a while, then the others join
        batch.step()
    for sequence in sequences[1:]:
        batch.add(sequence)
    sizes = []
    while not batch.idle:
        sizes.append(pool.used)
        batch.step()
    assert max(sizes) == 4
    assert [s.result.codes.tolist() for s in sequences if s.result is not None] == solo
    assert pool.used == 0


def test_a_request_joins_a_running_batch_and_leaves_first(
    tts: Synthesizer, alone: Synthesizer, voice: Voice
) -> None:
    long_options = FAST.replace(max_codes=300, seed=8)
    short_options = FAST.replace(max_codes=8, seed=9)
    request = tts._prepare("A long one.", voice=voice, emotion=None, options=long_options)
    long_run = tts.engine.submit(tts._job(request, exact_codes=[300]))
    steps = tts.engine.stats().steps
    wait_for(lambda: tts.engine.stats().steps >= steps + 10)  # the long request is decoding
    short_request = tts._prepare("Short.", voice=voice, emotion=None, options=short_options)
    short_run = tts.engine.submit(tts._job(short_request, exact_codes=[8]))
    short_audio = collect(short_run)
    assert not long_run.finished  # the short one joined, finished and left while the long one runs
    long_audio = collect(long_run)
    assert tts.engine.stats().largest_batch["decode"] >= 2
    solo = alone._generate(
        alone._prepare("Short.", voice=voice, emotion=None, options=short_options), exact_codes=[8]
    )
    np.testing.assert_allclose(short_audio, np.concatenate([c.samples for c in solo]), atol=1e-5)
    assert long_audio.size > short_audio.size


def test_cancelling_frees_the_rows_at_the_next_step(tts: Synthesizer, voice: Voice) -> None:
    engine = tts.engine
    request = tts._prepare("Cancel me.", voice=voice, emotion=None, options=FAST.replace(max_codes=400))
    before = engine.stats()
    handle = engine.submit(tts._job(request, exact_codes=[400]))
    wait_for(lambda: engine.stats().decoding == 1)
    handle.cancel()
    steps_at_cancel = engine.stats().steps
    wait_for(lambda: engine.stats().kv_rows_free == engine.stats().kv_rows and engine.stats().active == 0)
    after = engine.stats()
    assert after.steps - steps_at_cancel <= 2  # dropped at the next step, not decoded to the end
    assert after.cancelled == before.cancelled + 1
    assert list(handle) == []  # a cancelled handle ends


def test_a_full_queue_refuses_with_overloaded(alone: Synthesizer, voice: Voice) -> None:
    gate = threading.Event()
    request = alone._prepare("Queued.", voice=voice, emotion=None, options=FAST)

    def blocked(model: Any) -> list[Any]:
        gate.wait(60)  # released by the test; the bound only ends a hang
        return alone._segments(request)

    config = EngineConfig(max_active=1, max_queue=1, kv_rows=2, max_positions=256)
    with Engine(alone.model, config) as engine:
        job = SynthesisJob(prepare=blocked, sample_rate=22050)
        first = engine.submit(job)
        wait_for(lambda: engine.stats().waiting == 0 and engine.stats().active == 1)
        second = engine.submit(job)
        with pytest.raises(Overloaded, match="busy") as refused:
            engine.submit(job)
        assert refused.value.http_status == 429
        gate.set()
        assert collect(first).size > 0
        assert collect(second).size > 0
        assert collect(engine.submit(job)).size > 0  # room again


def test_a_failing_request_does_not_disturb_the_others(tts: Synthesizer, voice: Voice) -> None:
    def broken(model: Any) -> list[Any]:
        raise InvalidInput("this request is broken")

    bad = tts.engine.submit(SynthesisJob(prepare=broken, sample_rate=22050))
    good = submit(tts, "Still fine.", voice, FAST)
    with pytest.raises(InvalidInput, match="broken"):
        list(bad)
    assert collect(good).size > 0
    assert tts.engine.running


def test_kv_rows_and_memory_are_released(tts: Synthesizer, voice: Voice) -> None:
    def round_of_requests() -> None:
        handles = [submit(tts, text, voice, options) for text, options in MIXED]
        for handle in handles:
            collect(handle)
        wait_for(lambda: tts.engine.idle)  # the thread has let go of the finished requests

    round_of_requests()  # warm-up: caches of voices and latents fill here
    tensors = live_tensors()
    for _ in range(2):
        round_of_requests()
    stats = tts.engine.stats()
    assert stats.kv_rows_free == stats.kv_rows == SMALL_ENGINE.kv_rows
    assert (stats.active, stats.waiting, stats.decoding) == (0, 0, 0)
    assert live_tensors() <= tensors


def live_tensors() -> int:
    gc.collect()
    # type() rather than isinstance(): no attribute lookups on arbitrary objects
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor))


def test_a_seed_gives_the_same_audio_alone_and_in_company(tts: Synthesizer, voice: Voice) -> None:
    options = FAST.replace(seed=77, top_k=50, top_p=0.95)
    first = tts.synthesize("Same every time.", voice=voice, options=options).samples
    before = tts.engine.stats()
    crowd = [submit(tts, text, voice, o) for text, o in MIXED]
    again = collect(submit(tts, "Same every time.", voice, options))
    for handle in crowd:
        collect(handle)
    after = tts.engine.stats()
    assert after.items["decode"] - before.items["decode"] > after.steps - before.steps  # in company
    np.testing.assert_allclose(first, again, atol=1e-5)  # batch neighbours change float rounding only
    other = tts.synthesize("Same every time.", voice=voice, options=options.replace(seed=78)).samples
    assert not np.array_equal(first, other)


def test_closing_ends_the_running_requests(model_name: str, voice: Voice) -> None:
    tts = Synthesizer.from_pretrained(model_name, device="cpu", engine=SMALL_ENGINE)
    request = tts._prepare("Interrupted.", voice=voice, emotion=None, options=FAST.replace(max_codes=400))
    handle = tts.engine.submit(tts._job(request, exact_codes=[400]))
    wait_for(lambda: tts.engine.stats().decoding == 1)
    tts.close()
    with pytest.raises(EngineClosed, match="closed"):
        list(handle)
    with pytest.raises(Exception, match="closed"):
        tts.synthesize("Too late.", voice=voice, options=FAST)


def test_segments_that_cannot_fit_the_cache_are_refused_before_any_audio(
    tts: Synthesizer, voice: Voice
) -> None:
    with pytest.raises(InvalidInput, match="KV-cache positions"):
        tts.stream("Too many codes.", voice=voice, options=FAST.replace(max_codes=1000))


class _EagerReplay:
    """Stands in for a captured CUDA graph: replays the step at the graph's own rows and key span."""

    def __init__(self, forward: Any, rows: int, span: int) -> None:
        self.forward, self.rows, self.span = forward, rows, span
        self.replays = 0

    def replay(self) -> None:
        self.forward(self.rows, self.span)
        self.replays += 1


def test_graph_shaped_steps_decode_the_same_codes_as_exact_steps(alone: Synthesizer, voice: Voice) -> None:
    """What a CUDA graph changes, checked on the CPU: idle rows padded in, a wider key span."""
    from indextts2.engine.decode import DecodeBatch, DecodingSequence, run_decode_forward
    from indextts2.engine.graphs import DecodeGraphs
    from indextts2.engine.kv_pool import KVPool

    model = alone.model
    settings = [
        FAST.replace(top_k=1, max_codes=24),
        FAST.replace(top_k=20, temperature=0.9, seed=11, max_codes=30),
        FAST.replace(top_k=1, repetition_penalty=3.0, max_codes=16),
    ]
    texts = ["Graphs replay the step.", "你好，世界。", "A third voice joins late."]

    def segments() -> list[Any]:
        return [
            alone._segments(alone._prepare(t, voice=voice, emotion=None, options=o))[0]
            for t, o in zip(texts, settings, strict=True)
        ]

    solo = [model.decode([segment])[0].codes.tolist() for segment in segments()]
    pool = KVPool(model.gpt, rows=8, positions=600, device=model.device)

    def forward(rows: int, span: int) -> None:
        run_decode_forward(model, pool, rows, span)

    graphs = DecodeGraphs(forward, pool, (1, 2, 4, 8))
    replays = {(b, s): _EagerReplay(forward, b, s) for b in graphs.batch_sizes for s in graphs.spans}
    graphs._graphs = replays  # type: ignore[assignment]
    batch = DecodeBatch(model, pool, max_prefill_rows=2)
    batch.forward = graphs.step
    # full rows left by earlier occupants: an idle row replayed without a reset writes past its end
    pool.cache.lengths.fill_(pool.positions)
    sequences = [DecodingSequence(segment, owner=None) for segment in segments()]
    batch.add(sequences[0])
    batch.add(sequences[1])
    for _ in range(4):
        batch.step()
    batch.add(sequences[2])  # joins midway: 3 rows run in the 4-row graph
    while not batch.idle:
        batch.step()
    assert [s.result.codes.tolist() for s in sequences if s.result is not None] == solo
    assert replays[(4, 256)].replays > 0  # three rows in the four-row graph
    assert replays[(2, 256)].replays > 0
    assert graphs.replays == batch.steps


@pytest.mark.slow
# torch's inductor imports torch.utils.mkldnn, which still uses the deprecated torch.jit.script_method
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_a_compiled_dit_renders_the_same_audio_and_is_undone_on_close(
    alone: Synthesizer, voice: Voice
) -> None:
    options = FAST.replace(seed=3, top_k=1)
    texts = ["Hello there, compiled.", "Short."]
    solo = [alone.synthesize(text, voice=voice, options=options).samples for text in texts]
    estimator = alone.model.s2mel.cfm.estimator
    config = EngineConfig(compile_dit=True, kv_rows=4, max_positions=256)
    with Engine(alone.model, config) as engine:
        assert "forward" in vars(estimator)  # compiled while the engine runs
        requests = [alone._prepare(text, voice=voice, emotion=None, options=options) for text in texts]
        together = [collect(engine.submit(alone._job(request))) for request in requests]
    assert "forward" not in vars(estimator)  # the model is eager again for its other users
    for text, audio, reference in zip(texts, together, solo, strict=True):
        np.testing.assert_allclose(audio, reference, atol=1e-5, err_msg=text)
