"""What the IndexTTS-2.5 stages share: the golden checkpoint's model, loaded once per directory."""

from __future__ import annotations

from typing import Any

import torch

from indextts2.model.pipeline import TTSModel
from indextts2.options import Emotion
from indextts2.parity.core import GoldenSet

_MODELS: dict[str, TTSModel] = {}

# The five stage texts and the emotion modes of their official calls (README "Stage files").
TEXTS = ("zh", "en", "ja", "es", "ar")


def golden_model(golden: GoldenSet) -> TTSModel:
    """Every network of the golden checkpoint, loaded strictly through the store's layout (float32, CPU)."""
    key = str(golden.root.resolve())
    if key not in _MODELS:
        from indextts2.store import ModelFiles

        _MODELS[key] = TTSModel.from_files(ModelFiles.from_directory(golden.checkpoint))
    return _MODELS[key]


def official_emotion(infer_kwargs: dict[str, Any], text_weights: list[float] | None = None) -> Emotion:
    """The :class:`Emotion` equivalent to an official ``infer`` call's emotion arguments.

    ``use_emo_text`` becomes a text emotion (its classified weights are ``text_weights``).
    """
    alpha = float(infer_kwargs.get("emo_alpha", 1.0))
    random = bool(infer_kwargs.get("use_random", False))
    if infer_kwargs.get("use_emo_text"):
        return Emotion(
            text=str(infer_kwargs.get("emo_text") or infer_kwargs["text"]), alpha=alpha, random=random
        )
    if infer_kwargs.get("emo_vector") is not None:
        return Emotion(vector=infer_kwargs["emo_vector"], alpha=alpha, random=random)
    if infer_kwargs.get("emo_audio_prompt") is not None:
        return Emotion(audio=str(infer_kwargs["emo_audio_prompt"]), alpha=alpha)
    return Emotion()


def emotion_features(golden: GoldenSet, emotion: Emotion) -> torch.Tensor:
    """The w2v-BERT features infer reads on the emotion side: the emotion clip's in audio mode, else
    the speaker clip read again at 16 kHz."""
    voice = golden.tensors("voice")
    return voice["emo.emo_cond_emb"] if emotion.mode == "audio" else voice["ref_as_emo.emo_cond_emb"]
