"""IndexTTS-2.5 parity of the emotion vectors: every mode, the stub Qwen replies, the web UI's rule.

Inputs are the golden voice tensors (``voice.safetensors``), so this stage does not depend on our
voice encoder. The emotion path is IndexTTS-2's (conformer + perceiver at the feature width, lengths
= the width W, quirk Q5); the text mode classifies with the Qwen model, whose replies are parsed as
the 2.5 ``QwenEmotion`` does (``qwen_emotion.json``: a score that is not a number is an error, Q10).
"""

from __future__ import annotations

import torch

from indextts2.model.emotion import emotion_vector
from indextts2.model.gpt import merge_emotion_vectors
from indextts2.model.qwen_emotion import EmotionModelError, QwenEmotion, parse_emotion_reply
from indextts2.parity.core import Check, GoldenSet, compare_exact, compare_tensor
from indextts2.parity.stages.emotion import TOLERANCE, normalize_checks
from indextts2.parity.stages25._golden import golden_model, official_emotion

STAGE = "emotion"


def _reply_weights(reply: str, emotion_text: str) -> list[float]:
    return QwenEmotion.as_vector(parse_emotion_reply(reply, emotion_text=emotion_text))


def _qwen_checks(golden: GoldenSet) -> list[Check]:
    """Reply parsing: the same eight scores, or an error where the official code raises."""
    checks = []
    for case in golden.json("qwen_emotion.json")["cases"]:
        item = f"qwen_reply[{case['id']}]"
        if "error" in case:
            try:
                got = _reply_weights(case["raw_reply"], case["emo_text"])
            except EmotionModelError:
                checks.append(Check(STAGE, item, "error", True, note="refused (EmotionModelError)"))
            else:
                checks.append(
                    Check(STAGE, item, "error", False, note=f"accepted as {got}; official: {case['error']}")
                )
            continue
        got = _reply_weights(case["raw_reply"], case["emo_text"])
        expected = torch.tensor(case["vector"], dtype=torch.float64)
        # Parsing is exact Python float arithmetic: equal numbers or a wrong parse.
        checks.append(compare_tensor(STAGE, item, torch.tensor(got, dtype=torch.float64), expected, 0.0))
    return checks


@torch.no_grad()
def run(golden: GoldenSet) -> list[Check]:
    model = golden_model(golden)
    gpt, exemplars = model.gpt, model.exemplars
    voice, expected = golden.tensors("voice"), golden.tensors("emotion")
    speaker_features = voice["ref.spk_cond_emb"]
    runs = golden.manifest["runs"]
    checks: list[Check] = []

    def check(item: str, actual: torch.Tensor) -> None:
        checks.append(compare_tensor(STAGE, item, actual, expected[item], TOLERANCE))

    for name, features in (("spk", speaker_features), ("emo", voice["emo.emo_cond_emb"])):
        encoded, mask = gpt.emotion_encoder_output(features)
        check(f"{name}.conformer_out", encoded)
        checks.append(
            compare_exact(STAGE, f"{name}.conformer_mask", mask, expected[f"{name}.conformer_mask"])
        )
        if name == "emo":
            check("emo.perceiver_out", gpt.emotion_pooled(encoded, mask))

    speaker = gpt.emotion_vector(speaker_features)
    clip = gpt.emotion_vector(voice["emo.emo_cond_emb"])
    ref_as_emo = gpt.emotion_vector(voice["ref_as_emo.emo_cond_emb"])
    check("emovec.speaker", speaker)
    check("emovec.emo_clip", clip)
    check("emovec.ref_as_emo", ref_as_emo)
    check("emovec.speaker_mode", merge_emotion_vectors(speaker, ref_as_emo, 1.0))
    for text in ("zh", "ar"):  # emotion-clip calls, alpha 0.6 and 1.0
        alpha = official_emotion(runs[f"{text}.beams3"]["infer_kwargs"]).alpha
        check(f"emovec.{text}.merged", merge_emotion_vectors(speaker, clip, alpha))

    # Vector mode (the ja call) and text mode (the es call, its stub Qwen reply), through the same
    # function the synthesizer uses.
    for mode, run_name in (("vector", "ja.beams3"), ("emo_text", "es.beams3")):
        emotion = official_emotion(runs[run_name]["infer_kwargs"])
        text_weights = None
        if emotion.mode == "text":
            stub = golden.manifest["scalars"]["emo_text.qwen"]
            text_weights = _reply_weights(stub["raw_reply"], str(emotion.text))
        result = emotion_vector(
            gpt,
            emotion,
            speaker_features=speaker_features,
            emotion_features=voice["ref_as_emo.emo_cond_emb"],
            style=voice["ref.style"],
            exemplars=exemplars,
            text_weights=text_weights,
        )
        indices = result.indices if result.indices is not None else torch.empty(0, dtype=torch.int64)
        prefix = f"emovec.{mode}"
        check(f"{prefix}.base", merge_emotion_vectors(speaker, ref_as_emo, 1.0))
        # The weights are the official float arithmetic (alpha scaling, 4-decimal truncation).
        checks.append(
            compare_tensor(
                STAGE, f"{prefix}.weights", torch.tensor(result.weights), expected[f"{prefix}.weights"], 0.0
            )
        )
        checks.append(compare_exact(STAGE, f"{prefix}.indices", indices, expected[f"{prefix}.indices"]))
        check(f"{prefix}.rows", exemplars.rows(indices))
        check(f"{prefix}.final", result.vector)

    checks += _qwen_checks(golden)
    checks += normalize_checks(golden)  # pure Python floats (NORMALIZE_TOLERANCE, as in IndexTTS-2)
    return checks
