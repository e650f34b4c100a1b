"""IndexTTS-2.5's text front end: languages, detection, annotations, MeCab's dictionary, the segmenter,
the vocabulary file and the validation synthesis relies on."""

from __future__ import annotations

import base64
import logging
import shutil
import sys
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indextts2.errors import (
    CheckpointError,
    ConfigError,
    EmptyText,
    InvalidInput,
    ModelFilesMissing,
    ModelNotFound,
    TextTooLong,
)
from indextts2.text.multilingual import (
    LANGUAGE_CODES,
    SPECIAL_TOKENS,
    VOCABULARY_FILE_NAME,
    JapaneseSegmenter,
    MultilingualFrontend,
    Vocabulary,
    detect_language,
    find_vocabulary,
    language_id,
    language_rules,
    split_text_by_tokens,
)
from indextts2.text.multilingual import japanese as japanese_module
from indextts2.text.multilingual.languages import apply_annotations, upper_case_markers
from indextts2.text.multilingual.split import TokenCounter
from indextts2.text.multilingual.vocabulary import PAT_STR


def _write_byte_vocabulary(directory: Path, name: str = VOCABULARY_FILE_NAME) -> Path:
    """A ranks file of the 256 single bytes (no merges): every byte is one token."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"{base64.b64encode(bytes([b])).decode()} {b}" for b in range(256)]
    path = directory / name
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


@pytest.fixture(scope="module")
def golden_frontend(goldens25: Path) -> MultilingualFrontend:
    return MultilingualFrontend.from_model(goldens25 / "checkpoint")


@pytest.fixture
def byte_frontend(tmp_path: Path) -> MultilingualFrontend:
    return MultilingualFrontend(_write_byte_vocabulary(tmp_path), max_text_chars=200)


# --- language detection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("こんにちは", "ja"),
        ("今日はいい天気ですね。", "ja"),  # ideographs with kana
        ("コーヒーをください", "ja"),
        ("你好，今天天气不错！", "zh"),
        ("我今天用iPhone 15 Pro拍了很多照片。", "zh"),  # mixed Chinese-English reads as zh
        ("约瑟夫・高登", "zh"),  # the katakana middle dot alone is no kana
        ("他在银<行|HANG2>里", "zh"),
        ("مرحبا بكم في نظام تحويل النص", "ar"),
        ("مرحبا بكم Hello", "ar"),  # more Arabic letters than Latin ones
        ("Hello there, nice to meet you!", "en"),
        ("¿Qué tal?", "es"),  # Spanish-only punctuation
        ("Mañana", "es"),  # Spanish-only letter
        ("La casa es grande", "es"),  # Spanish function words
        ("Está aquí", "es"),  # accented vowels
        ("The café is open", "en"),  # one accented word, more English words
        ("Say <hola|O1 L A0> now", "en"),  # readings are left out; the word alone decides
        ("12345 !!", "zh"),  # no letters: the official default
    ],
)
def test_the_language_is_detected_by_the_stated_rule(text: str, language: str) -> None:
    assert detect_language(text).language == language


def test_a_tie_between_spanish_and_english_evidence_is_english() -> None:
    guess = detect_language("el the")
    assert guess.language == "en"
    assert "1 English vs 1 Spanish" in guess.reason


def test_prepare_detects_logs_and_returns_the_language(
    golden_frontend: MultilingualFrontend, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="indextts2.text.multilingual"):
        prepared = golden_frontend.prepare("こんにちは、今日はいい天気ですね。")
    assert prepared.language == "ja"
    assert prepared.lang_id == 7
    assert prepared.detected is not None
    assert prepared.detected.language == "ja"
    assert "chose ja (kana)" in caplog.text
    ja_token = golden_frontend.vocabulary.special_id("<|ja|>")
    assert all(segment.ids[0] == ja_token for segment in prepared.segments)
    named = golden_frontend.prepare("こんにちは、今日はいい天気ですね。", language="JA")
    assert named.detected is None
    assert named.segments == prepared.segments


# --- languages ----------------------------------------------------------------------------------


def test_an_unknown_language_is_refused_naming_the_supported_ones() -> None:
    with pytest.raises(InvalidInput, match="speaks zh, en, ja, es, ar") as info:
        language_rules("klingon")
    assert "zhen" in str(info.value)
    with pytest.raises(InvalidInput, match="must be a string"):
        language_rules(7)  # type: ignore[arg-type]


def test_language_ids_follow_the_official_table() -> None:
    assert len(LANGUAGE_CODES) == 106
    assert [language_id(code) for code in ("en", "zh", "es", "ja", "ar", "yue", "common")] == [
        0,
        1,
        3,
        7,
        13,
        99,
        105,
    ]
    assert language_id("EN") == 0
    assert language_id("zhen") == 105  # not in the table: 'common'


@pytest.mark.parametrize(
    ("code", "normalization", "case", "special"),
    [
        ("zh", "TextNormalizer", "lower", True),
        ("en", "TextNormalizer", "lower", True),
        ("ja", "passthrough", "lower", True),
        ("es", "passthrough", "upper", True),
        ("ar", None, None, True),
        ("zhen", "TextNormalizer", "lower", False),
        ("fr", None, None, True),
        ("yue", None, None, False),
    ],
)
def test_each_language_has_the_official_steps(code, normalization, case, special) -> None:
    rules = language_rules(code.upper())
    assert (rules.code, rules.normalization, rules.case) == (code, normalization, case)
    assert rules.prefix == f"<|{code}|> "
    assert rules.prefix_is_special_token is special
    assert rules.japanese_segmentation is (code == "ja")


def test_a_language_the_model_was_not_trained_on_is_warned_about_once(
    byte_frontend: MultilingualFrontend, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="indextts2.text.multilingual"):
        for _ in range(3):
            prepared = byte_frontend.prepare("Bonjour à tous", language="fr")
    assert prepared.lang_id == 6
    assert prepared.texts == ("Bonjour à tous",)  # no normalisation, no case change
    assert caplog.text.count("'fr' is handled as the official code does") == 1


# --- annotations, case, markers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("银<行|xing2>", "银<|SPECIAL_TOKEN_2|>XING2<|SPECIAL_TOKEN_2|>"),
        ("a <minute|m ih1 n ah0 t>.", "a <|SPECIAL_TOKEN_1|>M IH1 N AH0 T<|SPECIAL_TOKEN_1|>."),
        ("料理が<上手|じょうず>だ", "料理が じょうず だ"),
        ("<上手|ジョウズ>", " ジョウズ "),
        (
            "<拉面|らーメン>",
            "<|SPECIAL_TOKEN_2|>らーメン<|SPECIAL_TOKEN_2|>",
        ),  # hiragana + katakana: not kana
        ("<a|b", "<a|b"),  # unclosed: left alone
        ("no annotation", "no annotation"),
    ],
)
def test_annotations_become_what_the_model_reads(text: str, expected: str) -> None:
    assert apply_annotations(text) == expected


def test_lower_cased_markers_are_upper_cased_again() -> None:
    assert upper_case_markers("<|special_token_1|>x<|zh|>") == "<|SPECIAL_TOKEN_1|>x<|ZH|>"


def test_annotation_readings_are_upper_cased_after_the_text_is_lower_cased(
    golden_frontend: MultilingualFrontend,
) -> None:
    analysis = golden_frontend.analyze("He had a <Minute|m ih1 n ah0 t>.", language="en")
    assert analysis.after_case == "he had a <minute|m ih1 n ah0 t>."
    assert analysis.final_text == "he had a <|SPECIAL_TOKEN_1|>M IH1 N AH0 T<|SPECIAL_TOKEN_1|>."
    special = golden_frontend.vocabulary.special_id("<|SPECIAL_TOKEN_1|>")
    assert (
        golden_frontend.prepare("He had a <Minute|m ih1 n ah0 t>.", language="en")
        .segments[0]
        .ids.count(special)
        == 2
    )


def test_normalisation_can_be_turned_off(golden_frontend: MultilingualFrontend) -> None:
    on = golden_frontend.analyze("See you at 8:00 AM.", language="en")
    off = golden_frontend.analyze("See you at 8:00 AM.", language="en", text_normalization=False)
    assert on.final_text == "see you at eight,zero am."
    assert off.final_text == "see you at 8,00 am."
    assert off.normalization is None
    assert off.after_normalization is None


# --- Japanese: MeCab on unidic-lite -------------------------------------------------------------


def test_japanese_runs_are_replaced_by_their_words_and_spaces_kept() -> None:
    segmenter = JapaneseSegmenter()
    assert segmenter.segment("今日はいい天気ですね.") == "今日 は いい 天気 です ね ."
    assert segmenter.segment("ちょうど  探しに") == "ちょうど  探し に"


def test_mecab_uses_unidic_lite_even_when_the_full_unidic_is_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import fugashi
    import unidic_lite

    # A full 'unidic' package whose dictionary is not there: fugashi's default tagger picks it up.
    fake = types.ModuleType("unidic")
    fake.DICDIR = str(tmp_path / "unidic-dicdir")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "unidic", fake)
    with pytest.raises(RuntimeError):
        fugashi.Tagger()
    segmenter = JapaneseSegmenter()
    assert segmenter.dictionary == unidic_lite.DICDIR
    assert segmenter.segment("今日はいい天気ですね.") == "今日 は いい 天気 です ね ."


def test_a_tagger_on_another_dictionary_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import fugashi

    class OtherDictionary:
        dictionary_info = ({"filename": "/usr/share/unidic/sys.dic"},)

        def __init__(self, arguments: str) -> None:
            self.arguments = arguments

    monkeypatch.setattr(fugashi, "Tagger", OtherDictionary)
    with pytest.raises(ConfigError, match="not unidic-lite"):
        JapaneseSegmenter()


def test_another_unidic_lite_version_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9")
    with caplog.at_level(logging.WARNING, logger=japanese_module.__name__):
        JapaneseSegmenter()
    assert "unidic-lite 9.9.9 is installed" in caplog.text


# --- the segmenter ------------------------------------------------------------------------------

# Characters that exercise every rule: split points, spaces, multi-byte characters, a marker span.
_SPAN = "<|SPECIAL_TOKEN_1|>M IH1<|SPECIAL_TOKEN_1|>"
_ALPHABET = [*"ab c,.!?;:\n，。、", "你", "好", "こ", "ん", "م", "ر", "😀", _SPAN]
texts = st.lists(st.sampled_from(_ALPHABET), max_size=80).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=texts, budget=st.integers(min_value=1, max_value=30), quick=st.integers(0, 40))
def test_segments_rebuild_the_text_and_respect_the_budget(
    golden_frontend: MultilingualFrontend, text: str, budget: int, quick: int
) -> None:
    token_len = golden_frontend.vocabulary.token_len
    prefix = "<|en|> "
    segments = split_text_by_tokens(
        text, budget + 2, prefix, token_len, max_text_tokens=600, quick_streaming_tokens=quick
    )
    assert "".join(segments) == text
    assert all(segments) or segments == [""]
    for segment in segments:
        # Over the budget only when it is one character or one annotation span (documented).
        if token_len(segment) > budget:
            assert len(segment) == 1 or (segment.startswith("<|SPECIAL_TOKEN_") and segment.count("<|") == 2)


def test_a_text_that_fits_is_one_segment_and_the_empty_text_too(
    golden_frontend: MultilingualFrontend,
) -> None:
    counter = TokenCounter(golden_frontend.vocabulary.token_len)
    assert split_text_by_tokens("hello, world.", 120, "<|en|> ", counter, max_text_tokens=600) == [
        "hello, world."
    ]
    assert counter.calls == 2  # the prefix and the whole text, as the official walk
    assert split_text_by_tokens("", 5, "<|en|> ", counter, max_text_tokens=600) == [""]
    analysis = golden_frontend.analyze("", language="en", allow_empty=True)
    assert analysis.split(16).segments[0].ids == (golden_frontend.vocabulary.special_id("<|en|>"), 220)


def test_a_long_annotation_span_stays_whole_and_long_words_are_cut(
    byte_frontend: MultilingualFrontend,
) -> None:
    token_len = byte_frontend.vocabulary.token_len  # one token per byte
    text = "abcdefghij" + _SPAN
    segments = split_text_by_tokens(text, 4 + token_len("<|en|> "), "<|en|> ", token_len, max_text_tokens=600)
    assert segments == ["abcd", "efgh", "ij", _SPAN]


def test_the_budget_never_exceeds_the_model_limit(byte_frontend: MultilingualFrontend) -> None:
    token_len = byte_frontend.vocabulary.token_len
    text = "x" * 30
    # max_text_tokens 10 and a 2-token prefix (<|en|>, space) leave 8, whatever the caller asks.
    assert split_text_by_tokens(text, 500, "<|en|> ", token_len, max_text_tokens=10) == ["x" * 8] * 3 + [
        "x" * 6
    ]
    # A prefix longer than the limit (<|zhen|> is 9 plain bytes here) still leaves a budget of one.
    assert split_text_by_tokens("xyz", 3, "<|zhen|> ", token_len, max_text_tokens=600) == ["x", "y", "z"]


def test_quick_streaming_makes_the_first_segment_short(golden_frontend: MultilingualFrontend) -> None:
    token_len = golden_frontend.vocabulary.token_len
    text = "It was a bright cold day in April, and the clocks were striking thirteen. " * 3
    official = split_text_by_tokens(text, 40, "<|en|> ", token_len, max_text_tokens=600)
    quick = split_text_by_tokens(
        text, 40, "<|en|> ", token_len, max_text_tokens=600, quick_streaming_tokens=10
    )
    assert "".join(quick) == text
    assert token_len(quick[0]) <= (40 - token_len("<|en|> ")) // 2 < token_len(official[0])


@pytest.mark.parametrize(("max_tokens", "quick"), [(0, 0), (True, 0), (1.5, 0), (10, -1), (10, False)])
def test_bad_segment_settings_are_refused(byte_frontend: MultilingualFrontend, max_tokens, quick) -> None:
    with pytest.raises(InvalidInput, match="must be a whole number"):
        byte_frontend.prepare(
            "hello", language="en", max_tokens_per_segment=max_tokens, quick_streaming_tokens=quick
        )


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\x00\x01"])
def test_empty_text_is_refused(byte_frontend: MultilingualFrontend, text: str) -> None:
    with pytest.raises(EmptyText):
        byte_frontend.prepare(text, language="en")


def test_long_text_bad_types_and_bad_languages_are_refused(byte_frontend: MultilingualFrontend) -> None:
    with pytest.raises(TextTooLong):
        byte_frontend.prepare("a" * 201, language="en")
    with pytest.raises(InvalidInput, match="must be a string"):
        byte_frontend.prepare(b"hello", language="en")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="unknown language 'xx'"):
        byte_frontend.prepare("hello", language="xx")
    with pytest.raises(InvalidInput, match="text_normalization must be True or False"):
        byte_frontend.prepare("hello", language="en", text_normalization="no")  # type: ignore[arg-type]


# --- the vocabulary file ------------------------------------------------------------------------


def test_special_tokens_follow_the_ranks_in_the_official_order(tmp_path: Path) -> None:
    vocabulary = Vocabulary(_write_byte_vocabulary(tmp_path))
    assert len(SPECIAL_TOKENS) == 1673
    assert vocabulary.n_vocab == 256 + 1673
    assert vocabulary.special_id("<|endoftext|>") == 256
    assert vocabulary.special_id("<|ja|>") == 256 + 2 + 7
    assert vocabulary.special_id("<|SPECIAL_TOKEN_1|>") == 256 + 2 + 99 + 11 + 4 + 6
    assert vocabulary.special_id("<|30.00|>") == vocabulary.n_vocab - 1
    assert vocabulary.encode("<|ja|> a") == [256 + 2 + 7, 32, 97]
    assert vocabulary.token_strings(vocabulary.encode("é")) == ["\\xc3", "\\xa9"]


def test_a_broken_ranks_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("IQ== 0\nnot-base64!! 1\n", encoding="ascii")
    with pytest.raises(CheckpointError, match="line 2"):
        Vocabulary(bad)
    gap = tmp_path / "gap.tiktoken"
    gap.write_text("IQ== 0\nIg== 2\n", encoding="ascii")
    with pytest.raises(CheckpointError, match="ranks are not"):
        Vocabulary(gap)


def test_from_model_finds_the_vocabulary_or_says_what_is_missing(tmp_path: Path, goldens: Path) -> None:
    with pytest.raises(ModelNotFound):
        MultilingualFrontend.from_model(tmp_path / "nowhere")
    with pytest.raises(ModelFilesMissing, match=r"no IndexTTS-2\.5 model"):
        MultilingualFrontend.from_model(goldens / "checkpoint")  # IndexTTS-2: bpe.model
    assert find_vocabulary(goldens / "checkpoint") is None

    model = tmp_path / "model"
    _write_byte_vocabulary(model, "renamed.tiktoken")
    (model / "config.yaml").write_text(
        "dataset:\n  bpe_model: renamed.tiktoken\ngpt:\n  max_text_tokens: 50\n", encoding="utf-8"
    )
    assert find_vocabulary(model) == model / "renamed.tiktoken"
    frontend = MultilingualFrontend.from_model(model)
    assert frontend.max_text_tokens == 50


def test_a_model_glossary_applies_to_zh_and_en(tmp_path: Path, goldens25: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(
        goldens25 / "checkpoint", model, ignore=shutil.ignore_patterns("*.pth", "hf_cache", "*.pt")
    )
    (model / "glossary.yaml").write_text('"TTS":\n  en: "T T S"\n  zh: "T T S"\n', encoding="utf-8")
    frontend = MultilingualFrontend.from_model(model)
    assert frontend.analyze("TTS is here.", language="en").final_text == "t t s is here."
    assert frontend.analyze("TTS is here.", language="ar").final_text == "TTS is here."  # not normalised


# Text around, inside and instead of special tokens: real ones, unknown <|...|> spans, broken ones.
_PIECES = [
    "<|ja|>",
    "<|SPECIAL_TOKEN_1|>",
    "<|30.00|>",
    "<|zhen|>",
    "<|",
    "|>",
    "<",
    "|",
    ">",
    "a",
    " ",
    "你",
]


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.sampled_from(_PIECES), max_size=30))
def test_encode_equals_tiktokens_own_encode_with_every_special_token_allowed(
    golden_frontend: MultilingualFrontend, pieces: list[str]
) -> None:
    import tiktoken

    vocabulary = golden_frontend.vocabulary
    ranks = {}
    for line in vocabulary.path.read_bytes().splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    reference = tiktoken.Encoding(
        name="reference",
        pat_str=PAT_STR,
        mergeable_ranks=ranks,
        special_tokens={token: len(ranks) + i for i, token in enumerate(SPECIAL_TOKENS)},
    )
    text = "".join(pieces)
    assert vocabulary.encode(text) == reference.encode(text, allowed_special="all")
