"""IndexTTS-2.5 end-to-end parity: three complete official ``infer`` calls through the public API.

``Synthesizer.from_pretrained(<golden checkpoint>)``, ``tts.voice(ref.wav)`` and ``tts.synthesize``
with the official call's language, emotion, duration factor and decoding settings (top_k=1, so
decoding is deterministic), and the flow noise the official solver drew, replayed through the
Synthesizer's test-only noise hook. The multi-segment call (``zhen``, a 16-token budget, an alpha-
scaled emotion vector, duration factor 1.15) also checks its five segments' text tokens and codes.
The waveform is compared in float scale ([-1, 1]); the recording holds it at PCM scale (x 32767).
"""

from __future__ import annotations

from typing import Any

import torch

from indextts2.options import SynthesisOptions
from indextts2.parity.core import Check, GoldenSet, compare_exact, compare_tensor
from indextts2.parity.stages.e2e import PCM_SCALE, TOLERANCE
from indextts2.parity.stages25._golden import official_emotion
from indextts2.synthesizer import Synthesizer

STAGE = "e2e"
CALLS = ("zh", "en", "multi")


def _options(kwargs: dict[str, Any]) -> SynthesisOptions:
    return SynthesisOptions(
        top_k=kwargs["top_k"],
        num_beams=kwargs["num_beams"],
        max_codes=kwargs["max_mel_tokens"],
        max_text_tokens_per_segment=kwargs["max_text_tokens_per_segment"],
        language=kwargs["lang"],
        duration=kwargs.get("duration_factor", 1.0),
        seed=0,
    )


@torch.inference_mode()
def run(golden: GoldenSet) -> list[Check]:
    recorded = golden.tensors("e2e")
    runs = golden.manifest["runs"]
    checks: list[Check] = []
    with Synthesizer.from_pretrained(golden.checkpoint, device="cpu", dtype="fp32") as tts:
        voice = tts.voice(golden.inputs / "ref.wav")
        for name in CALLS:
            kwargs = dict(runs[f"e2e.{name}"]["infer_kwargs"])
            if kwargs.get("emo_audio_prompt"):
                kwargs["emo_audio_prompt"] = str(golden.root / kwargs["emo_audio_prompt"])
            options = _options(kwargs)
            prepared = tts.text_frontend.prepare(
                kwargs["text"],
                language=options.language,
                max_tokens_per_segment=options.max_text_tokens_per_segment,
            )
            checks.append(
                compare_exact(
                    STAGE, f"{name}.segments", list(prepared.texts), runs[f"e2e.{name}"]["segments"]
                )
            )
            count = len(prepared.segments)
            noise = [recorded[f"{name}.noise.{i}"] for i in range(count)]
            tts._noise_source = lambda segment, shape, noise=noise: noise[segment.index]
            audio = tts.synthesize(
                kwargs["text"], voice=voice, emotion=official_emotion(kwargs), options=options
            )
            expected = recorded[f"{name}.wave_pcm"][0] / PCM_SCALE
            checks.append(
                compare_tensor(STAGE, f"{name}.wave", torch.from_numpy(audio.samples), expected, TOLERANCE)
            )
            if name == "multi":
                for index, segment in enumerate(prepared.segments):
                    tokens = recorded[f"multi.seg{index}.text_tokens"][0].tolist()
                    # infer appends the stop id 1 to every segment's ids (dropped again in the prompt)
                    checks.append(
                        compare_exact(STAGE, f"multi.seg{index}.text_tokens", [*segment.ids, 1], tokens)
                    )
    return checks
