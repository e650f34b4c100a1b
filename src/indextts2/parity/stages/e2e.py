"""End-to-end parity: two complete official ``infer`` calls reproduced through the public API.

``Synthesizer.from_pretrained(<golden checkpoint>)``, ``tts.voice(ref.wav)`` and ``tts.synthesize``,
with the official decoding settings of the recording (top_k=1, so decoding is deterministic) and the
flow noise the official solver drew, replayed through the Synthesizer's test-only noise hook. The
waveform is compared in float scale ([-1, 1]); the recording holds it at PCM scale (x 32767).
"""

from __future__ import annotations

from typing import Any

import torch

from indextts2.options import Emotion, SynthesisOptions
from indextts2.parity.core import Check, GoldenSet, compare_exact, compare_tensor
from indextts2.synthesizer import Synthesizer

STAGE = "e2e"
TOLERANCE = 1e-3  # on the waveform in [-1, 1]
PCM_SCALE = 32767.0  # infer_v2: torch.clamp(32767 * wav, -32767, 32767)


def _cases(golden: GoldenSet) -> list[dict[str, Any]]:
    runs = golden.manifest["runs"]
    cases = []
    for name in ("single", "multi"):
        kwargs = runs[f"e2e.{name}"]["infer_kwargs"]
        emotion = Emotion()
        if "emo_vector" in kwargs:
            emotion = Emotion(
                vector=kwargs["emo_vector"], alpha=kwargs.get("emo_alpha", 1.0), random=kwargs["use_random"]
            )
        options = SynthesisOptions(
            top_k=kwargs["top_k"],
            num_beams=kwargs["num_beams"],
            max_codes=kwargs["max_mel_tokens"],
            max_text_tokens_per_segment=kwargs["max_text_tokens_per_segment"],
            seed=0,
        )
        cases.append(
            {
                "name": name,
                "text": kwargs["text"],
                "emotion": emotion,
                "options": options,
                "segments": runs[f"e2e.{name}"]["segments"],
            }
        )
    return cases


@torch.inference_mode()
def run(golden: GoldenSet) -> list[Check]:
    recorded = golden.tensors("e2e")
    checks: list[Check] = []
    with Synthesizer.from_pretrained(
        golden.checkpoint, device="cpu", dtype="fp32", normalization="official"
    ) as tts:
        voice = tts.voice(golden.inputs / "ref.wav")
        for case in _cases(golden):
            name = case["name"]
            segments = tts.text_frontend.prepare(
                case["text"], max_tokens_per_segment=case["options"].max_text_tokens_per_segment
            )
            checks.append(
                compare_exact(STAGE, f"{name}.segments", [list(s.tokens) for s in segments], case["segments"])
            )
            noise = [recorded[f"{name}.noise.{i}"] for i in range(len(segments))]
            tts._noise_source = lambda segment, shape, noise=noise: noise[segment.index]
            audio = tts.synthesize(
                case["text"], voice=voice, emotion=case["emotion"], options=case["options"]
            )
            expected = recorded[f"{name}.wave_pcm"][0] / PCM_SCALE
            checks.append(
                compare_tensor(STAGE, f"{name}.wave", torch.from_numpy(audio.samples), expected, TOLERANCE)
            )
    return checks
