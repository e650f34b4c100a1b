"""IndexTTS-2.5 parity of the voice stage: w2v-BERT features, CAMPPlus style, prompt mel and condition.

Computed from the golden checkpoint and the input clips through the library's own path
(:func:`load_speaker_clip`, ``VoiceEncoder.encode_voice`` / ``encode_emotion``). Unlike IndexTTS-2,
the prompt condition is the length regulator applied to the continuous normalised features (the
2.5 voice encoder has no codec).
"""

from __future__ import annotations

import torch

from indextts2.audio.dsp import PROMPT_MEL_FLOOR
from indextts2.model.voice import load_emotion_clip, load_speaker_clip
from indextts2.parity.core import Check, GoldenSet, compare_exact, compare_log_feature, compare_tensor
from indextts2.parity.stages.voice import TOLERANCE, _prompt_mel_error, _semantic_checks
from indextts2.parity.stages25._golden import golden_model

STAGE = "voice"


@torch.no_grad()
def run(golden: GoldenSet) -> list[Check]:
    audio, voice = golden.tensors("audio"), golden.tensors("voice")
    encoder = golden_model(golden).voice_encoder
    speaker = load_speaker_clip(golden.inputs / "ref.wav")
    emotion = load_emotion_clip(golden.inputs / "emo.wav")

    checks = _semantic_checks(encoder, "ref", speaker.audio_16k, audio, voice)
    checks += _semantic_checks(encoder, "ref_as_emo", speaker.emotion_16k, audio, voice)
    checks += _semantic_checks(encoder, "emo", emotion, audio, voice)

    conditioning = encoder.encode_voice([speaker])
    pairs = [
        ("ref.spk_cond_emb", conditioning.speaker_features),
        ("ref.style", conditioning.speaker_style),
        ("ref.prompt_condition", conditioning.prompt_condition),
        ("ref_as_emo.emo_cond_emb", conditioning.emotion_features),
        ("emo.emo_cond_emb", encoder.encode_emotion([emotion]).features),
    ]
    checks += [compare_tensor(STAGE, key, value, voice[key], TOLERANCE) for key, value in pairs]
    checks += [
        compare_exact(STAGE, "ref.prompt_ylens", conditioning.mel_lengths, voice["ref.prompt_ylens"]),
        compare_log_feature(
            STAGE,
            "ref.mel (prompt_mel)",
            conditioning.prompt_mel,
            audio["ref.mel"],
            value_error=_prompt_mel_error(encoder, speaker.audio_22k, audio["ref.loaded"]),
            floor=PROMPT_MEL_FLOOR,
        ),
    ]
    return checks
