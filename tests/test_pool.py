"""SynthesizerPool: one engine per device behind a router (``serve --devices``), on two CPU engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from indextts2 import SynthesisOptions, Synthesizer
from indextts2.errors import ConfigError, EngineFailed, InvalidInput
from indextts2.pool import SynthesizerPool, engine_names, parse_devices
from indextts2.samples import sample_voice

FAST = SynthesisOptions(max_codes=12, diffusion_steps=2, seed=5)


@pytest.fixture(scope="module")
def pool() -> Iterator[SynthesizerPool]:
    with SynthesizerPool.from_pretrained("dummy:tiny", devices=["cpu", "cpu"]) as loaded:
        yield loaded


def _outstanding(pool: SynthesizerPool) -> dict[str, int]:
    return {engine.name: engine.outstanding for engine in pool.engines()}


def test_device_lists() -> None:
    assert parse_devices("cuda:0, cuda:1") == ["cuda:0", "cuda:1"]
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    assert engine_names(["cpu", "cpu", "cuda:0"]) == ["cpu#0", "cpu#1", "cuda:0"]
    with pytest.raises(ConfigError, match="names no device"):
        parse_devices(" , ")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="has none"):
            parse_devices("all")


def test_requests_go_to_the_engine_with_the_least_outstanding_work(pool: SynthesizerPool) -> None:
    voice = pool.voice(sample_voice())
    assert _outstanding(pool) == {"cpu#0": 0, "cpu#1": 0}
    # a stream counts from the moment it is routed until it is closed or finished
    first = pool.stream("One.", voice=voice, options=FAST)
    second = pool.stream("Two.", voice=voice, options=FAST)
    assert _outstanding(pool) == {"cpu#0": 1, "cpu#1": 1}  # not both on one engine
    chunks = list(second)
    assert chunks
    assert chunks[-1].final
    (idle,) = [name for name, count in _outstanding(pool).items() if count == 0]
    # round-robin would send the third to the first's engine; least work sends it to the idle one
    third = pool.stream("Three.", voice=voice, options=FAST)
    assert _outstanding(pool)[idle] == 1
    assert _outstanding(pool) == {"cpu#0": 1, "cpu#1": 1}
    for stream in (first, third):
        stream.close()  # closed unread: released all the same
    assert _outstanding(pool) == {"cpu#0": 0, "cpu#1": 0}


def test_idle_engines_take_turns_and_give_the_same_audio(pool: SynthesizerPool) -> None:
    voice = pool.voice(sample_voice())
    before = {e.name: (e.stats.finished if e.stats else 0) for e in pool.engines()}
    first = pool.synthesize("The same words.", voice=voice, options=FAST)
    second = pool.synthesize("The same words.", voice=voice, options=FAST)
    after = {e.name: e.stats.finished for e in pool.engines()}
    assert {name: after[name] - before[name] for name in after} == {"cpu#0": 1, "cpu#1": 1}
    # one model, copied: a seeded request sounds the same on either engine
    np.testing.assert_allclose(first.samples, second.samples, atol=1e-5)


def test_a_voice_is_encoded_once_for_every_engine(pool: SynthesizerPool) -> None:
    from indextts2.audio import load_audio

    clip = load_audio(sample_voice())
    clip = type(clip)(clip.samples * 0.5, clip.sample_rate)  # a clip no other test encoded
    encoded = [e.stats.batches.get("voice", 0) for e in pool.engines()]
    first = pool.voice(clip)
    second = pool.voice(clip)
    assert second is first  # from the shared cache, whichever engine was asked
    assert sum(e.stats.batches.get("voice", 0) for e in pool.engines()) == sum(encoded) + 1
    assert str(first.conditioning.speaker_features.device) == "cpu"  # moves to an engine per request


def test_request_errors_are_the_callers_not_the_engines(pool: SynthesizerPool) -> None:
    voice = pool.voice(sample_voice())
    with pytest.raises(InvalidInput):
        pool.stream("x", voice=voice, options=SynthesisOptions(max_codes=10**6))
    assert all(e.healthy for e in pool.engines())
    assert _outstanding(pool) == {"cpu#0": 0, "cpu#1": 0}


def _broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("CUDA error: an illegal memory access was encountered (simulated)")


def test_a_failed_engine_leaves_the_rotation_and_the_other_serves() -> None:
    members = [Synthesizer.from_pretrained("dummy:tiny", device="cpu") for _ in range(2)]
    with SynthesizerPool(members) as pool:
        voice = pool.voice(sample_voice())
        doomed = pool.stream("Lost.", voice=voice, options=FAST)
        (name,) = [n for n, count in _outstanding(pool).items() if count == 1]
        other = "cpu#1" if name == "cpu#0" else "cpu#0"
        healthy = pool.stream("Served.", voice=voice, options=FAST)  # the other engine: less work
        queued = pool.stream("Queued behind it.", voice=voice, options=FAST)  # a tie: the older choice
        assert _outstanding(pool) == {name: 2, other: 1}
        members[int(name[-1])].model.gpt.mel_logits = _broken  # the device breaks under its request
        with pytest.raises(EngineFailed, match=rf"{name} failed .*send it again") as failure:
            list(doomed)
        assert failure.value.http_status == 503
        states = {e.name: (e.healthy, e.error) for e in pool.engines()}
        assert states[other] == (True, None)
        assert states[name][0] is False
        assert "illegal memory access" in str(states[name][1])
        assert pool.healthy
        # what was routed to the failed engine ends with the same clear 503 ...
        with pytest.raises(EngineFailed, match=rf"{name} failed"):
            list(queued)
        # ... while the other engine finishes its request and takes every new one
        assert list(healthy)[-1].final
        for _ in range(3):
            assert pool.synthesize("Still here.", voice=voice, options=FAST).duration > 0
        assert _outstanding(pool) == {"cpu#0": 0, "cpu#1": 0}
        # with no engine left, a clear 503 that says to restart
        members[int(other[-1])].model.gpt.mel_logits = _broken
        with pytest.raises(EngineFailed):
            pool.synthesize("Last one.", voice=voice, options=FAST)
        assert not pool.healthy
        with pytest.raises(EngineFailed, match=r"every engine .* restarted"):
            pool.stream("Nobody left.", voice=voice, options=FAST)
