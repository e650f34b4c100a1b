"""Parity of the emotion vectors: every mode of the official infer, and the web UI's normalisation.

Inputs are the golden w2v-BERT features and CAMPPlus style (``voice.safetensors``), so this stage
does not depend on our voice encoder.
"""

from __future__ import annotations

import torch

from indextts2.model.emotion import emotion_vector
from indextts2.model.gpt import merge_emotion_vectors
from indextts2.options import Emotion, normalize_emotion_weights
from indextts2.parity.core import Check, GoldenSet, compare_exact, compare_tensor
from indextts2.parity.stages._gpt_inputs import golden_gpt, official_emotion

STAGE = "emotion"
TOLERANCE = 1e-4
NORMALIZE_TOLERANCE = 1e-12  # pure Python float arithmetic


@torch.no_grad()
def run(golden: GoldenSet) -> list[Check]:
    model, exemplars = golden_gpt(golden)
    voice, expected = golden.tensors("voice"), golden.tensors("emotion")
    speaker_features = voice["ref.spk_cond_emb"]
    checks = []

    speaker = model.emotion_vector(speaker_features)
    clip = model.emotion_vector(voice["emo.emo_cond_emb"])
    ref_as_emo = model.emotion_vector(voice["ref_as_emo.emo_cond_emb"])
    alpha = float(golden.manifest["scalars"]["emovec.merged.alpha"])
    for item, actual in (
        ("emovec.speaker", speaker),
        ("emovec.emo_clip", clip),
        ("emovec.ref_as_emo", ref_as_emo),
        (f"emovec.merged_alpha{alpha:g}", merge_emotion_vectors(speaker, clip, alpha)),
        ("emovec.speaker_mode", merge_emotion_vectors(speaker, ref_as_emo, 1.0)),
    ):
        checks.append(compare_tensor(STAGE, item, actual, expected[item], TOLERANCE))

    # Vector mode, through the same function the synthesizer uses.
    weights = golden.manifest["runs"]["t2.beams3"]["infer_kwargs"]["emo_vector"]
    result = emotion_vector(
        model,
        Emotion(vector=weights),
        speaker_features=speaker_features,
        emotion_features=voice["ref_as_emo.emo_cond_emb"],
        style=voice["ref.style"],
        exemplars=exemplars,
    )
    indices = result.indices if result.indices is not None else torch.empty(0, dtype=torch.int64)
    checks += [
        compare_tensor(
            STAGE,
            "emovec.vector.base",
            merge_emotion_vectors(speaker, ref_as_emo, 1.0),
            expected["emovec.vector.base"],
            TOLERANCE,
        ),
        compare_tensor(
            STAGE,
            "emovec.vector.weights",
            torch.tensor(result.weights),
            expected["emovec.vector.weights"],
            0.0,
        ),
        compare_exact(STAGE, "emovec.vector.indices", indices, expected["emovec.vector.indices"]),
        compare_tensor(
            STAGE,
            "emovec.vector.rows",
            exemplars.rows(indices),
            expected["emovec.vector.rows"],
            TOLERANCE,
        ),
        compare_tensor(
            STAGE, "emovec.vector.final", result.vector, expected["emovec.vector.final"], TOLERANCE
        ),
    ]

    # Vector mode with emo_alpha != 1 (the multi-segment end-to-end call): the weights are scaled.
    multi = golden.manifest["runs"]["e2e.multi"]["infer_kwargs"]
    scaled = emotion_vector(
        model,
        official_emotion(multi),
        speaker_features=speaker_features,
        emotion_features=voice["ref_as_emo.emo_cond_emb"],
        style=voice["ref.style"],
        exemplars=exemplars,
    )
    checks.append(
        compare_tensor(
            STAGE,
            "e2e.multi.emo_vec (alpha-scaled vector)",
            scaled.vector,
            golden.tensors("e2e")["multi.seg0.emo_vec"],
            TOLERANCE,
        )
    )

    checks += normalize_checks(golden)
    return checks


def normalize_checks(golden: GoldenSet) -> list[Check]:
    """The web UI's ``normalize_emo_vec`` (bias and the 0.8 cap) on ``emotion_vectors.json``."""
    checks = []
    for number, case in enumerate(golden.json("emotion_vectors.json")["cases"]):
        for bias in (True, False):
            normalized = normalize_emotion_weights(case["input"], apply_bias=bias)
            item = f"normalize_emo_vec[{number}] apply_bias={bias}"
            checks.append(
                compare_tensor(
                    STAGE,
                    item,
                    torch.tensor(normalized, dtype=torch.float64),
                    torch.tensor(case[f"apply_bias_{str(bias).lower()}"], dtype=torch.float64),
                    NORMALIZE_TOLERANCE,
                )
            )
    return checks
