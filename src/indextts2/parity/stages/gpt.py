"""Parity of the GPT stage: conditioning, prompt, first-step logits, codes (1 and 3 beams), latents.

Each run chains our own outputs from the golden voice features (``voice.safetensors``) onwards:
conditioning latents -> emotion vector (the run's emotion mode) -> prompt -> decoding with the
official call's settings -> the latent pass over our codes.
"""

from __future__ import annotations

from typing import Any

import torch

from indextts2.model.decoding import generate_codes, prefill
from indextts2.model.emotion import emotion_vector
from indextts2.options import GenerationOptions
from indextts2.parity.core import Check, GoldenSet, compare_exact, compare_tensor
from indextts2.parity.stages._gpt_inputs import emotion_features, golden_gpt, official_emotion

STAGE = "gpt"
TOLERANCE = 1e-4
RUNS = ("t0", "t1", "t2")
BEAMS = (1, 3)


def _options(infer_kwargs: dict[str, Any], num_beams: int) -> GenerationOptions:
    """The official call's decoding settings (infer's defaults for what the call does not set)."""
    defaults = GenerationOptions()
    return GenerationOptions(
        top_k=int(infer_kwargs.get("top_k", defaults.top_k)),
        top_p=float(infer_kwargs.get("top_p", defaults.top_p)),
        temperature=float(infer_kwargs.get("temperature", defaults.temperature)),
        repetition_penalty=float(infer_kwargs.get("repetition_penalty", defaults.repetition_penalty)),
        num_beams=num_beams,
        max_codes=int(infer_kwargs.get("max_mel_tokens", defaults.max_codes)),
        seed=0,
    )


@torch.no_grad()
def run(golden: GoldenSet) -> list[Check]:
    model, exemplars = golden_gpt(golden)
    voice, expected = golden.tensors("voice"), golden.tensors("gpt")
    speaker_features = voice["ref.spk_cond_emb"]
    encoded, mask = model.speaker_encoder_output(speaker_features)
    latents = model.speaker_conditioning(speaker_features)
    checks: list[Check] = []
    for name in RUNS:
        checks += [
            compare_tensor(
                STAGE,
                f"{name}.cond_conformer_out",
                encoded,
                expected[f"{name}.cond_conformer_out"],
                TOLERANCE,
            ),
            compare_exact(
                STAGE, f"{name}.cond_conformer_mask", mask, expected[f"{name}.cond_conformer_mask"]
            ),
            compare_tensor(
                STAGE,
                f"{name}.speech_conditioning_latent",
                latents,
                expected[f"{name}.speech_conditioning_latent"],
                TOLERANCE,
            ),
        ]
        infer_kwargs = golden.manifest["runs"][f"{name}.beams3"]["infer_kwargs"]
        emotion = official_emotion(infer_kwargs)
        emo_vec = emotion_vector(
            model,
            emotion,
            speaker_features=speaker_features,
            emotion_features=emotion_features(golden, emotion),
            style=voice["ref.style"],
            exemplars=exemplars,
        ).vector
        checks.append(
            compare_tensor(STAGE, f"{name}.emo_vec", emo_vec, expected[f"{name}.emo_vec"], TOLERANCE)
        )

        text_ids = expected[f"{name}.text_ids"][0].to(torch.int64)
        prompt = model.prompt_embeddings(latents, emo_vec, [text_ids])[0]
        checks.append(
            compare_tensor(STAGE, f"{name}.prefix_emb", prompt, expected[f"{name}.prefix_emb"][0], TOLERANCE)
        )
        first = prefill(model, [prompt], capacity=prompt.shape[0] + 1).logits
        checks.append(
            compare_tensor(
                STAGE,
                f"{name}.beams1.first_step_logits",
                first,
                expected[f"{name}.beams1.first_step_logits"],
                TOLERANCE,
            )
        )

        for beams in BEAMS:
            run_kwargs = golden.manifest["runs"][f"{name}.beams{beams}"]["infer_kwargs"]
            result = generate_codes(model, [prompt], options=_options(run_kwargs, beams))[0]
            key = f"{name}.beams{beams}"
            checks += [
                compare_exact(
                    STAGE, f"{key}.codes_generated", result.generated, expected[f"{key}.codes_generated"][0]
                ),
                compare_exact(STAGE, f"{key}.codes", result.codes, expected[f"{key}.codes"][0]),
            ]
            latent = model.latents(latents, emo_vec, [text_ids], [result.codes])[0]
            checks.append(
                compare_tensor(STAGE, f"{key}.latent", latent, expected[f"{key}.latent"][0], TOLERANCE)
            )
    return checks
