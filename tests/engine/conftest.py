"""Fixtures of the engine tests: each model family's tiny dummy on the CPU, a small KV pool, short requests.

The engine tests run once per family (``dummy:tiny`` is IndexTTS-2, ``dummy:tiny-2.5`` IndexTTS-2.5):
batched equals alone, cancellation, streaming and the rest hold for both.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_helpers import SMALL_ENGINE, tone

from indextts2 import Synthesizer, Voice


@pytest.fixture(scope="module", params=["dummy:tiny", "dummy:tiny-2.5"])
def model_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def tts(model_name: str) -> Iterator[Synthesizer]:
    with Synthesizer.from_pretrained(model_name, device="cpu", engine=SMALL_ENGINE) as synthesizer:
        yield synthesizer


@pytest.fixture(scope="module")
def alone(model_name: str) -> Iterator[Synthesizer]:
    """The same model without the engine: every request alone (the reference results)."""
    with Synthesizer.from_pretrained(model_name, device="cpu", engine=False) as synthesizer:
        yield synthesizer


@pytest.fixture(scope="module")
def voice(tts: Synthesizer) -> Voice:
    return tts.voice(tone(1.5))
