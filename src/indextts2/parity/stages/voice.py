"""Parity of the voice stage: w2v-BERT features, semantic codec, CAMPPlus, prompt mel and condition.

Everything is computed from the golden checkpoint and the input wav files through the library's
own path (:func:`load_speaker_clip`, :func:`load_emotion_clip`, ``VoiceEncoder.encode_voice`` and
``encode_emotion``); the SeamlessM4T input features and the raw layer-17 states, which the
conditioning does not keep, come from the encoder's parts.
"""

from __future__ import annotations

import torch

from indextts2.audio.dsp import PROMPT_MEL_FLOOR
from indextts2.model.voice import VoiceEncoder, load_emotion_clip, load_speaker_clip
from indextts2.parity.core import Check, GoldenSet, compare_exact, compare_log_feature, compare_tensor
from indextts2.parity.spectral import input_error, log_mel_error

STAGE = "voice"
TOLERANCE = 1e-4  # fp32, every float tensor of the stage but the prompt mel (docs/parity.md)


def _semantic_checks(
    encoder: VoiceEncoder, name: str, samples: torch.Tensor, audio: dict[str, torch.Tensor], voice: dict
) -> list[Check]:
    inputs = encoder.semantic.features([samples])
    hidden = encoder.semantic.hidden_states(inputs.features, inputs.attention_mask)
    return [
        compare_tensor(
            STAGE, f"{name}.input_features", inputs.features, audio[f"{name}.input_features"], TOLERANCE
        ),
        compare_exact(
            STAGE, f"{name}.attention_mask", inputs.attention_mask, audio[f"{name}.attention_mask"]
        ),
        compare_tensor(STAGE, f"{name}.w2v_hidden17", hidden, voice[f"{name}.w2v_hidden17"], TOLERANCE),
    ]


def _prompt_mel_error(
    encoder: VoiceEncoder, audio_22k: torch.Tensor, reference: torch.Tensor
) -> torch.Tensor:
    """The float32 bound of the prompt mel (the same computation as the audio stage's ``ref.mel``)."""
    mel = encoder.mel
    error = log_mel_error(
        audio_22k.reshape(1, -1),
        sample_rate=mel.sample_rate,
        n_fft=mel.n_fft,
        hop_length=mel.hop_length,
        win_length=mel.win_length,
        n_mels=mel.n_mels,
        fmin=mel.fmin,
        fmax=mel.fmax,
        input_error=input_error(audio_22k, reference),
    )
    return error


@torch.no_grad()
def run(golden: GoldenSet) -> list[Check]:
    audio, voice = golden.tensors("audio"), golden.tensors("voice")
    encoder = VoiceEncoder.from_checkpoint(golden.checkpoint)
    speaker = load_speaker_clip(golden.inputs / "ref.wav")
    emotion = load_emotion_clip(golden.inputs / "emo.wav")

    checks = _semantic_checks(encoder, "ref", speaker.audio_16k, audio, voice)
    checks += _semantic_checks(encoder, "ref_as_emo", speaker.emotion_16k, audio, voice)
    checks += _semantic_checks(encoder, "emo", emotion, audio, voice)

    conditioning = encoder.encode_voice([speaker])
    emotion_conditioning = encoder.encode_emotion([emotion])
    s_ref, semantic_codes = encoder.semantic_tokens(
        conditioning.speaker_features, conditioning.feature_lengths
    )
    pairs = [
        ("ref.spk_cond_emb", conditioning.speaker_features),
        ("ref.S_ref", s_ref),
        ("ref.style", conditioning.speaker_style),
        ("ref.prompt_condition", conditioning.prompt_condition),
        ("ref_as_emo.emo_cond_emb", conditioning.emotion_features),
        ("emo.emo_cond_emb", emotion_conditioning.features),
    ]
    checks += [compare_tensor(STAGE, key, value, voice[key], TOLERANCE) for key, value in pairs]
    checks += [
        compare_exact(STAGE, "ref.semantic_codes", semantic_codes, voice["ref.semantic_codes"]),
        compare_exact(STAGE, "ref.prompt_ylens", conditioning.mel_lengths, voice["ref.prompt_ylens"]),
        compare_log_feature(
            STAGE,
            "ref.mel (prompt_mel)",
            conditioning.prompt_mel,
            audio["ref.mel"],
            value_error=_prompt_mel_error(encoder, speaker.audio_22k, audio["ref.audio_22k"]),
            floor=PROMPT_MEL_FLOOR,
        ),
    ]
    return checks
