"""Streaming: chunked rendering while codes are decoded, the joins, a short first segment."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import FAST

from indextts2 import Synthesizer, Voice
from indextts2.engine import StreamingOptions
from indextts2.engine.streaming import ChunkPlanner, CrossFader
from indextts2.errors import InvalidInput

CHUNKED = StreamingOptions(chunked=True, first_chunk_codes=8, chunk_codes=12, context_codes=12)


def frames(codes: int) -> int:
    return int(codes * 1.72)


def test_the_planner_waits_for_the_first_chunk_then_overlaps_each_piece() -> None:
    planner = ChunkPlanner(CHUNKED, frames, chunked=True)
    assert planner.next(7, decoding_done=False) is None
    first = planner.next(9, decoding_done=False)
    assert first is not None
    assert (first.start, first.end, first.first_frame, first.final) == (0, 9, 0, False)
    assert planner.next(20, decoding_done=False) is None  # 11 new codes: fewer than chunk_codes
    second = planner.next(21, decoding_done=False)
    assert second is not None
    assert (second.start, second.end) == (0, 21)
    assert planner.next(44, decoding_done=False) is None  # the next piece waits for 2 x 12 codes
    third = planner.next(45, decoding_done=False)
    assert third is not None
    assert (third.start, third.end) == (9, 45)
    assert (third.first_frame, third.frames) == (frames(9), frames(45) - frames(9))
    last = planner.next(48, decoding_done=True)
    assert last is not None
    assert last.final
    assert (last.start, last.end) == (33, 48)
    assert planner.next(48, decoding_done=True) is None


def test_unchunked_segments_are_one_piece_when_decoding_ends() -> None:
    planner = ChunkPlanner(StreamingOptions(), frames, chunked=False)
    assert planner.next(500, decoding_done=False) is None
    piece = planner.next(500, decoding_done=True)
    assert piece is not None
    assert (piece.start, piece.end, piece.final) == (0, 500, True)
    assert ChunkPlanner(StreamingOptions(), frames, chunked=False).next(0, decoding_done=True) is None


def test_pieces_that_agree_join_into_the_same_signal() -> None:
    reference = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    fader = CrossFader(crossfade=64, holdback=128)
    sent = [
        fader.add(reference[0:1000], start=0, final=False),
        fader.add(reference[700:2600], start=700, final=False),
        fader.add(reference[2300:5000], start=2300, final=True),
    ]
    assert [len(s) for s in sent] == [872, 1600, 2528]  # each holds back 128 samples for the next
    np.testing.assert_allclose(np.concatenate(sent), reference, atol=1e-6)


def test_the_cross_fade_moves_smoothly_from_one_piece_to_the_next() -> None:
    fader = CrossFader(crossfade=100, holdback=100)
    head = fader.add(np.ones(300, np.float32), start=0, final=False)
    tail = fader.add(np.zeros(400, np.float32), start=100, final=True)
    joined = np.concatenate([head, tail])
    assert len(joined) == 500
    assert np.all(joined[:200] == 1.0)
    assert np.all(joined[300:] == 0.0)
    fade = joined[200:300]
    assert np.all(np.diff(fade) < 0)
    assert 0.0 < fade[-1] < fade[0] < 1.0
    with pytest.raises(ValueError, match="gap"):
        CrossFader(crossfade=10, holdback=10).add(np.ones(5, np.float32), start=3, final=True)


def test_streaming_options_are_checked() -> None:
    with pytest.raises(InvalidInput, match="holdback_frames"):
        StreamingOptions(crossfade_frames=8, holdback_frames=4)
    with pytest.raises(InvalidInput, match="context_codes"):
        StreamingOptions(chunked=True, context_codes=4)
    with pytest.raises(InvalidInput, match="first_chunk_codes"):
        StreamingOptions(first_chunk_codes=0)
    assert StreamingOptions.low_latency().chunked


def test_a_chunked_stream_yields_audio_while_its_segment_is_still_decoding(
    tts: Synthesizer, voice: Voice
) -> None:
    options = FAST.replace(max_codes=300)
    request = tts._prepare("One segment.", voice=voice, emotion=None, options=options, streaming=CHUNKED)
    handle = tts.engine.submit(tts._job(request, exact_codes=[300]))
    first = next(handle)
    decoding_then = tts.engine.stats().decoding
    rest = list(handle)
    assert 0 < first.samples.size < 300 * 1.72 * 256 / 4  # from the first codes, not the segment
    assert not first.final
    assert decoding_then == 1  # the segment's codes were not complete when its first audio came
    assert len(rest) >= 3
    assert rest[-1].final
    streamed = np.concatenate([first.samples] + [c.samples for c in rest])
    whole_request = tts._prepare("One segment.", voice=voice, emotion=None, options=options)
    whole = np.concatenate([c.samples for c in tts._generate(whole_request, exact_codes=[300])])
    assert streamed.shape == whole.shape  # same frames: the pieces tile the segment
    # the first piece is rendered from the first codes alone; it differs from the whole render
    # (the DiT attends over the whole segment), but not wildly: same scale of signal
    assert 0.3 < np.std(streamed) / np.std(whole) < 3.0


def test_beam_search_streams_whole_segments(tts: Synthesizer, voice: Voice) -> None:
    options = FAST.replace(num_beams=2, max_codes=30)
    chunks = list(tts.stream("Beams.", voice=voice, options=options, streaming=CHUNKED))
    assert len(chunks) == 1  # its codes are only final at the end: nothing to chunk
    whole = tts.synthesize("Beams.", voice=voice, options=options)
    np.testing.assert_allclose(chunks[0].samples, whole.samples, atol=1e-5)


def test_quick_streaming_tokens_make_the_first_segment_short(tts: Synthesizer, voice: Voice) -> None:
    # Longer than one segment in both families' vocabularies (IndexTTS-2.5 cuts only a text that does
    # not fit: quick streaming then shortens the segments its first tokens fall in).
    text = (
        "Hi there. How are you doing today? I am fine, thanks. See you soon, my friend. Take care now. Bye. "
    ) * 2
    options = FAST.replace(max_text_tokens_per_segment=60, max_codes=4)
    quick = StreamingOptions(quick_streaming_tokens=40)
    plain = tts.segments(text, options=options).segments
    short = tts.segments(text, options=options, streaming=quick).segments
    assert len(short) > len(plain) >= 2
    assert len(short[0].ids) < len(plain[0].ids)
    chunks = list(tts.stream(text, voice=voice, options=options, streaming=quick))
    # each segment, and the silence before every segment but the first
    assert [c.segment for c in chunks] == [0] + [i for i in range(1, len(short)) for _ in range(2)]


def test_chunk_sizes_follow_the_model_code_rate() -> None:
    options = StreamingOptions(chunked=True, first_chunk_codes=16, chunk_codes=40, context_codes=23)
    assert options.at_code_rate(50) is options
    half = options.at_code_rate(25)  # IndexTTS-2.5: the same stretch of speech in half the codes
    assert (half.first_chunk_codes, half.chunk_codes, half.context_codes) == (8, 20, 12)
    assert half.holdback_frames == options.holdback_frames  # frames, not codes: unchanged
