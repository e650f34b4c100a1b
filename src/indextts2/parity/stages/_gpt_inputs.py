"""What the ``emotion`` and ``gpt`` parity stages share: the golden GPT and the official call settings."""

from __future__ import annotations

from typing import Any

import torch

from indextts2.model.config import load_config
from indextts2.model.emotion import EmotionExemplars
from indextts2.model.gpt import UnifiedVoice
from indextts2.options import Emotion
from indextts2.parity.core import GoldenSet

_MODELS: dict[str, tuple[UnifiedVoice, EmotionExemplars]] = {}


def golden_gpt(golden: GoldenSet) -> tuple[UnifiedVoice, EmotionExemplars]:
    """The golden checkpoint's GPT (eval mode) and emotion exemplars, loaded once per directory."""
    key = str(golden.root.resolve())
    if key not in _MODELS:
        checkpoint = golden.checkpoint
        config = load_config(
            checkpoint / "config.yaml",
            w2v_bert_dir=checkpoint / "w2v-bert-2.0",
            bigvgan_dir=checkpoint / "bigvgan",
        )
        model = UnifiedVoice.from_checkpoint(checkpoint / str(config.section("gpt_checkpoint")), config)
        _MODELS[key] = (model, EmotionExemplars.from_files(config, checkpoint))
    return _MODELS[key]


def official_emotion(infer_kwargs: dict[str, Any]) -> Emotion:
    """The :class:`Emotion` equivalent to an official ``infer`` call's emotion arguments."""
    alpha = float(infer_kwargs.get("emo_alpha", 1.0))
    if infer_kwargs.get("emo_vector") is not None:
        return Emotion(
            vector=infer_kwargs["emo_vector"], alpha=alpha, random=bool(infer_kwargs.get("use_random", False))
        )
    if infer_kwargs.get("emo_audio_prompt") is not None:
        return Emotion(audio=str(infer_kwargs["emo_audio_prompt"]), alpha=alpha)
    return Emotion()


def emotion_features(golden: GoldenSet, emotion: Emotion) -> torch.Tensor:
    """The w2v-BERT features infer reads for the emotion side: the emotion clip's or the speaker clip's
    re-read at 16 kHz (quirk Q1)."""
    voice = golden.tensors("voice")
    return voice["emo.emo_cond_emb"] if emotion.mode == "audio" else voice["ref_as_emo.emo_cond_emb"]
