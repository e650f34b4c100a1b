"""Calls other than synthesis that must run on the engine thread (they use the model)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from indextts2.engine.stats import StageCounters
from indextts2.model.pipeline import TTSModel
from indextts2.model.voice_types import SpeakerClip

__all__ = ["ModelCall", "run_calls"]


@dataclass(eq=False)
class ModelCall:
    """``function(model)``, or a voice encoding (``clip``), and its outcome for the waiting caller."""

    function: Callable[[TTSModel], Any]
    clip: SpeakerClip | None = None  # a voice encoding (batched with the others)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


def run_calls(model: TTSModel, calls: list[ModelCall], counters: StageCounters) -> None:
    """Run the calls; the voice encodings among them in one batch. Each caller gets its outcome."""
    voices = [c for c in calls if c.clip is not None]
    for call in calls:
        if call.clip is None:
            try:
                call.result = call.function(model)
            except Exception as error:  # noqa: BLE001 - handed to the caller
                call.error = error
            call.done.set()
    if voices:
        counters.timed("voice", lambda: _encode_voices(model, voices, counters))


def _encode_voices(model: TTSModel, calls: list[ModelCall], counters: StageCounters) -> None:
    encoder = model.voice_encoder
    clips = [c.clip for c in calls if c.clip is not None]
    try:
        batch = encoder.encode_voice(clips)
        counters.note("voice", len(calls))
        for row, call in enumerate(calls):
            call.result = batch.item(row).to("cpu", torch.float32)
    except Exception:  # noqa: BLE001 - one bad clip must not fail the others: encode alone
        for call, clip in zip(calls, clips, strict=True):
            try:
                call.result = encoder.encode_voice(clip).to("cpu", torch.float32)
                counters.note("voice", 1)
            except Exception as error:  # noqa: BLE001 - handed to the caller
                call.error = error
    for call in calls:
        call.done.set()
