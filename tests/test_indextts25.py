"""IndexTTS-2.5: its networks against goldens-2.5, strict loading, the family's rules, the library surface."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from indextts2 import Audio, Emotion, SynthesisOptions, Synthesizer, Voice
from indextts2.errors import CheckpointError, InvalidInput
from indextts2.model.codec import CodecDecoder
from indextts2.model.config import load_preset
from indextts2.model.family import INDEXTTS_2, INDEXTTS_2_5, family_of_preset
from indextts2.model.gpt import UnifiedVoice
from indextts2.model.pipeline import TTSModel
from indextts2.model.s2mel import S2Mel, mel_frames_for_content
from indextts2.parity import run_parity
from indextts2.store import ModelFiles

RATE = 22050


def _tone(seconds: float, frequency: float = 180.0) -> Audio:
    t = np.arange(int(seconds * RATE)) / RATE
    return Audio((0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), RATE)


# ------------------------------------------------------------------------------------------- parity


@pytest.mark.goldens
@pytest.mark.parametrize("stage", ["emotion", "gpt", "codec", "s2mel", "vocoder", "e2e"])
def test_parity_stage_passes_on_goldens25(goldens25: Path, stage: str) -> None:
    report = run_parity(goldens25, [stage])
    assert report.passed, [f"{c.item}: {c.measure} {c.note}" for c in report.failures()]
    assert {check.stage for check in report.checks} == {stage}


@pytest.mark.goldens
def test_the_runner_recognises_each_family_and_its_stage_list(goldens: Path, goldens25: Path) -> None:
    from indextts2.parity import GoldenSet

    assert GoldenSet(goldens).family == "IndexTTS-2"
    assert GoldenSet(goldens25).family == "IndexTTS-2.5"
    with pytest.raises(InvalidInput, match="IndexTTS-2 goldens have no parity stage 'codec'"):
        run_parity(goldens, ["codec"])


# ------------------------------------------------------------------------------------------- loading


@pytest.fixture
def checkpoint25(goldens25: Path, tmp_path: Path) -> Path:
    target = tmp_path / "checkpoint"
    shutil.copytree(goldens25 / "checkpoint", target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


@pytest.mark.goldens
def test_the_golden_checkpoint_loads_as_indextts_2_5(goldens25: Path) -> None:
    files = ModelFiles.from_directory(goldens25 / "checkpoint")
    assert files.family == "IndexTTS-2.5"
    assert files.codec is not None
    assert files.vocabulary is not None
    assert files.bpe is None
    model = TTSModel.from_files(files)
    assert model.family is INDEXTTS_2_5
    assert model.codec is not None
    assert model.voice_encoder.codec is None
    assert model.s2mel.gpt_layer is None
    assert model.gpt.config.conditioning_rows == 3
    assert model.prompt_overhead == 6


@pytest.mark.goldens
@pytest.mark.parametrize("change", ["missing", "unexpected", "shape"])
def test_a_codec_key_that_does_not_fit_is_a_checkpoint_error_naming_file_and_key(
    checkpoint25: Path, change: str
) -> None:
    path = checkpoint25 / "codec.pth"
    data = torch.load(path, weights_only=True)
    state = data["model"]
    if change == "missing":
        del state["up.bias"]
    elif change == "unexpected":
        state["up.extra"] = torch.zeros(1)
    else:
        state["up.bias"] = torch.zeros(3)
    torch.save(data, path)
    decoder = CodecDecoder.from_config(load_preset("tiny-2.5").section("semantic_codec"))
    with pytest.raises(CheckpointError, match=r"codec\.pth.*up\.(bias|extra)"):
        decoder.load(path)


@pytest.mark.goldens
def test_the_encoder_half_of_the_codec_is_not_needed(checkpoint25: Path) -> None:
    path = checkpoint25 / "codec.pth"
    data = torch.load(path, weights_only=True)
    data["model"] = {k: v for k, v in data["model"].items() if not k.startswith(("encoder.", "down."))}
    torch.save(data, path)
    CodecDecoder.from_config(load_preset("tiny-2.5").section("semantic_codec")).load(path)


@pytest.mark.goldens
def test_checkpoints_of_the_other_family_are_refused(goldens: Path, goldens25: Path) -> None:
    config25 = ModelFiles.from_directory(goldens25 / "checkpoint").load_config()
    config2 = ModelFiles.from_directory(goldens / "checkpoint").load_config()
    # IndexTTS-2's GPT has the speaker conformer, not spk_emb_proj / lang_embedding
    with pytest.raises(CheckpointError, match=r"gpt\.pth"):
        UnifiedVoice.from_checkpoint(goldens / "checkpoint" / "gpt.pth", config2, speaker_mode="campplus")
    with pytest.raises(CheckpointError, match=r"gpt\.pth: missing key\(s\) conditioning_encoder"):
        UnifiedVoice.from_checkpoint(goldens25 / "checkpoint" / "gpt.pth", config25, speaker_mode="conformer")
    with pytest.raises(CheckpointError, match=r"net\.gpt_layer"):
        S2Mel.from_checkpoint(config2, goldens / "checkpoint" / "s2mel.pth", gpt_layer=False)
    with pytest.raises(CheckpointError, match=r"missing key net\.gpt_layer"):
        S2Mel.from_checkpoint(config25, goldens25 / "checkpoint" / "s2mel.pth", gpt_layer=True)


def test_a_batch_of_codes_decodes_as_each_row_alone() -> None:
    torch.manual_seed(0)
    decoder = CodecDecoder.from_config(load_preset("tiny-2.5").section("semantic_codec")).eval()
    rows = [torch.randint(0, 8192, (n,)) for n in (7, 2, 11)]
    lengths = torch.tensor([len(r) for r in rows])
    with torch.no_grad():
        batch = decoder.decode(torch.nn.utils.rnn.pad_sequence(rows, batch_first=True), lengths)
        for i, row in enumerate(rows):
            alone = decoder.decode(row[None])
            assert alone.shape == (1, 2 * len(row), 56)
            torch.testing.assert_close(batch[i, : 2 * len(row)], alone[0], atol=1e-5, rtol=0)
            assert torch.count_nonzero(batch[i, 2 * len(row) :]) == 0


# ------------------------------------------------------------------------------------------- the family


def test_the_duration_rule_is_float64_left_to_right() -> None:
    # the goldens README's quirk Q8: exact or float32 arithmetic gives 989, 989, 903
    assert mel_frames_for_content(2 * 230, 1.25) == 988
    assert mel_frames_for_content(2 * 250, 1.15) == 988
    assert mel_frames_for_content(2 * 375, 0.7) == 902
    assert INDEXTTS_2_5.mel_frames(18) == 61  # the goldens' zh text: 36 frames -> 61
    assert INDEXTTS_2_5.mel_frames(18, duration=0.8) == 49
    assert INDEXTTS_2_5.mel_frames(18, duration=1.25) == 77
    assert INDEXTTS_2_5.mel_frames(18, speed=2.0) == INDEXTTS_2_5.mel_frames(18, duration=0.5)
    assert INDEXTTS_2.mel_frames(18) == 30  # IndexTTS-2: int(18 * 1.72) in float32


def test_families_refuse_the_options_they_do_not_have() -> None:
    INDEXTTS_2_5.check_options(language="ja", duration=1.5)
    INDEXTTS_2.check_options(language=None, duration=1.0, speed=1.5)
    with pytest.raises(InvalidInput, match="IndexTTS-2 takes no language"):
        INDEXTTS_2.check_options(language="ja", duration=1.0)
    with pytest.raises(InvalidInput, match=r"IndexTTS-2 has no duration factor.*speed"):
        INDEXTTS_2.check_options(language=None, duration=1.25)
    with pytest.raises(InvalidInput, match=r"between 0\.5 and 2"):
        INDEXTTS_2_5.check_options(language=None, duration=2.0, speed=0.5)
    assert (INDEXTTS_2.code_rate, INDEXTTS_2_5.code_rate) == (50, 25)
    assert (family_of_preset("tiny-2.5"), family_of_preset("full")) == (INDEXTTS_2_5, INDEXTTS_2)


def test_options_validate_language_and_duration() -> None:
    assert SynthesisOptions(language=" JA ", duration=1.5).language == "ja"
    for bad in ({"duration": 0.4}, {"duration": 2.5}, {"duration": float("nan")}, {"language": ""}):
        with pytest.raises(InvalidInput):
            SynthesisOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="language code"):
        SynthesisOptions(language="ja; rm -rf /")


# ------------------------------------------------------------------------------------------- the library


@pytest.fixture(scope="module")
def tts25() -> Synthesizer:
    synthesizer = Synthesizer.from_pretrained("dummy:tiny-2.5", device="cpu", engine=False)
    yield synthesizer
    synthesizer.close()


def test_the_synthesizer_says_which_family_it_runs(tts25: Synthesizer) -> None:
    family = tts25.family
    assert (family.name, family.code_rate, family.supports_duration) == ("IndexTTS-2.5", 25.0, True)
    assert set(family.languages) == {"zh", "en", "ja", "es", "ar"}
    prepared = tts25.segments("こんにちは")
    assert prepared.language == "ja"
    assert prepared.detected is not None  # detected from the script
    assert tts25.segments("Hola, ¿qué tal?", options=SynthesisOptions(language="es")).language_id == 3


def test_duration_lengthens_the_speech_by_the_official_rule(tts25: Synthesizer) -> None:
    voice = tts25.voice(_tone(1.2))
    lengths = {}
    for duration in (1.0, 1.25):
        options = SynthesisOptions(max_codes=10, num_beams=1, diffusion_steps=2, seed=3, duration=duration)
        request = tts25._prepare("你好", voice=voice, emotion=None, options=options)
        chunks = list(tts25._generate(request, exact_codes=[10]))
        lengths[duration] = sum(chunk.samples.size for chunk in chunks)
    # 10 codes -> 20 content frames -> int(20 * 1.72 * duration) mel frames of 256 samples
    assert lengths == {1.0: 34 * 256, 1.25: 43 * 256}


def test_a_voice_of_one_family_is_refused_by_the_other(tts25: Synthesizer, tmp_path: Path) -> None:
    voice25 = tts25.voice(_tone(1.0))
    assert voice25.family == "IndexTTS-2.5"
    again = Voice.load(voice25.save(tmp_path / "v.safetensors"))
    assert again.family == "IndexTTS-2.5"
    with Synthesizer.from_pretrained("dummy:tiny", device="cpu", engine=False) as tts2:
        with pytest.raises(InvalidInput, match=r"made for an IndexTTS-2\.5 model.*runs IndexTTS-2 "):
            tts2.synthesize("hello", voice=again)
        voice2 = tts2.voice(_tone(1.0))
        with pytest.raises(InvalidInput, match="language"):
            tts2.synthesize("hello", voice=voice2, options=SynthesisOptions(language="en"))
    with pytest.raises(InvalidInput, match="made for an IndexTTS-2 model"):
        tts25.synthesize("hello", voice=voice2)


def test_voice_files_without_a_family_are_indextts_2_voices(tts25: Synthesizer) -> None:
    from safetensors.torch import save

    voice = tts25.voice(_tone(0.8))
    header = voice._metadata()
    del header["model_family"]  # as written before IndexTTS-2.5 was supported
    legacy = Voice.from_bytes(save(voice.conditioning.to_tensors(), metadata=header))
    assert legacy.family == "IndexTTS-2"
    with pytest.raises(InvalidInput, match="made for an IndexTTS-2 model"):
        tts25.check_voice(legacy)


def test_an_emotion_text_and_a_language_together(tts25: Synthesizer) -> None:
    voice = tts25.voice(_tone(1.0))
    options = SynthesisOptions(max_codes=6, num_beams=1, diffusion_steps=2, seed=1, language="en")
    audio = tts25.synthesize(
        "Good morning.", voice=voice, emotion=Emotion(vector={"happy": 0.5}), options=options
    )
    assert audio.samples.size > 0
    assert np.isfinite(audio.samples).all()
