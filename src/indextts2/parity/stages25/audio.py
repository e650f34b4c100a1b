"""IndexTTS-2.5 parity of the audio front end: loading, resampling, kaldi fbank and the prompt mel.

The 2.5 infer reads the clips as IndexTTS-2's does (``librosa.load`` at 22.05 kHz for the speaker,
torchaudio's sinc resampler to 16 kHz, ``librosa.load(sr=16000)`` for the emotion side), so the
same library functions and the same tolerances apply (:mod:`indextts2.parity.stages.audio`). The 2.5
golden set has no separate 22.05 kHz copy: the prompt mel is computed from ``ref.loaded`` itself.
"""

from __future__ import annotations

import torch

from indextts2.audio import resample
from indextts2.parity.core import Check, GoldenSet, compare_tensor
from indextts2.parity.stages.audio import RESAMPLE_TOLERANCE, _load, log_feature_checks

STAGE = "audio"


def run(golden: GoldenSet) -> list[Check]:
    expected = golden.tensors("audio")
    ref_wav, emo_wav = golden.inputs / "ref.wav", golden.inputs / "emo.wav"
    loaded = _load(ref_wav, 22050)
    audio_16k = resample(loaded, 22050, 16000)
    audio_22k = resample(loaded, 22050, 22050)

    def check(item: str, actual: torch.Tensor, tolerance: float) -> Check:
        return compare_tensor(STAGE, item, actual, expected[item], tolerance)

    return [
        check("ref.loaded", loaded, RESAMPLE_TOLERANCE),
        check("ref.audio_16k", audio_16k, RESAMPLE_TOLERANCE),
        *log_feature_checks(audio_16k, audio_22k, expected, reference_22k="ref.loaded"),
        check("emo.loaded_16k", _load(emo_wav, 16000), RESAMPLE_TOLERANCE),
        check("ref_as_emo.loaded_16k", _load(ref_wav, 16000), RESAMPLE_TOLERANCE),
    ]
