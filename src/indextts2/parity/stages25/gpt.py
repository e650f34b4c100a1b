"""IndexTTS-2.5 parity of the GPT stage: speaker rows, language vector, prefix, logits, codes.

Each stage text chains our own outputs from the golden voice tensors onwards: ``spk_emb_proj`` of the
CAMPPlus style -> the run's emotion vector -> [speaker + emotion, 0, 0] -> the text rows with the
language vector on each -> decoding with 1 and 3 beams (top_k 1, the official settings of the call).

The official prefix has one masked zero row on the left for each text id it drops (every 0 and 1,
including the trailing 1 infer appends, quirk Q4); ours leaves them out, which changes nothing
(masked rows are neither attended nor positioned). To compare, the zero rows are put back in front of
ours, and the attention mask is built from the same count.
"""

from __future__ import annotations

import torch

from indextts2.model.decoding import generate_codes, prefill
from indextts2.model.emotion import emotion_vector
from indextts2.model.qwen_emotion import QwenEmotion, parse_emotion_reply
from indextts2.options import GenerationOptions
from indextts2.parity.core import Check, GoldenSet, compare_exact, compare_tensor
from indextts2.parity.stages.gpt import TOLERANCE
from indextts2.parity.stages25._golden import TEXTS, emotion_features, golden_model, official_emotion

STAGE = "gpt"
BEAMS = (1, 3)


def _options(infer_kwargs: dict, num_beams: int) -> GenerationOptions:
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
    model = golden_model(golden)
    gpt = model.gpt
    voice, expected = golden.tensors("voice"), golden.tensors("gpt")
    runs = golden.manifest["runs"]
    style = voice["ref.style"]
    checks: list[Check] = []

    def check(key: str, actual: torch.Tensor) -> None:
        checks.append(compare_tensor(STAGE, key, actual, expected[key], TOLERANCE))

    for name in TEXTS:
        speaker = gpt.style_conditioning(style)  # (1, 1, D)
        check(f"{name}.spk_emb_proj", speaker[:, 0])
        check(f"{name}.speech_conditioning_latent", speaker)

        kwargs = runs[f"{name}.beams3"]["infer_kwargs"]
        emotion = official_emotion(kwargs)
        text_weights = None
        if emotion.mode == "text":
            reply = golden.manifest["scalars"]["emo_text.qwen"]["raw_reply"]
            text_weights = QwenEmotion.as_vector(parse_emotion_reply(reply, emotion_text=str(emotion.text)))
        emo_vec = emotion_vector(
            gpt,
            emotion,
            speaker_features=voice["ref.spk_cond_emb"],
            emotion_features=emotion_features(golden, emotion),
            style=style,
            exemplars=model.exemplars,
            text_weights=text_weights,
        ).vector
        check(f"{name}.emo_vec", emo_vec)
        check(f"{name}.conds_latent", gpt.conditioning_block(speaker, emo_vec))

        language = int(expected[f"{name}.langs"][0])
        check(f"{name}.lang_emb", gpt.language_vector(language))
        tokens = expected[f"{name}.text_tokens"][0].to(torch.int64)
        prompt = gpt.prompt_embeddings(speaker, emo_vec, [tokens], [language])[0]
        dropped = int(
            ((tokens == gpt.config.start_text_token) | (tokens == gpt.config.stop_text_token)).sum()
        )
        check(
            f"{name}.prefix_emb",
            torch.cat((prompt.new_zeros(dropped, prompt.shape[-1]), prompt)).unsqueeze(0),
        )
        mask = torch.ones(1, dropped + prompt.shape[0] + 1, dtype=torch.int64)
        mask[:, :dropped] = 0
        checks.append(
            compare_exact(
                STAGE, f"{name}.prefix_attention_mask", mask, expected[f"{name}.prefix_attention_mask"]
            )
        )

        first = prefill(gpt, [prompt], capacity=prompt.shape[0] + 1).logits
        check(f"{name}.beams1.first_step_logits", first)
        for beams in BEAMS:
            key = f"{name}.beams{beams}"
            result = generate_codes(gpt, [prompt], options=_options(runs[key]["infer_kwargs"], beams))[0]
            checks.extend(
                [
                    compare_exact(
                        STAGE,
                        f"{key}.codes_generated",
                        result.generated,
                        expected[f"{key}.codes_generated"][0],
                    ),
                    compare_exact(STAGE, f"{key}.codes", result.codes, expected[f"{key}.codes"][0]),
                ]
            )
    return checks
