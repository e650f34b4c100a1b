"""The normaliser: protections, language choice, glossary, punctuation, and chunked FST = whole FST."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indextts2.errors import ConfigError, InvalidInput
from indextts2.text import Glossary, TextNormalizer, detect_language, load_fsts
from indextts2.text import fst as fst_module
from indextts2.text.fst import MAX_CHUNK_CHARS, apply_fst


@pytest.fixture(scope="module")
def normalizer() -> TextNormalizer:
    return TextNormalizer()


def _whole_text(text: str, language: str) -> str | None:
    """What one wetext call on the whole text gives (None where wetext itself fails)."""
    from wetext import Normalizer

    options = {"remove_erhua": False} if language == "zh" else {}
    try:
        return str(Normalizer(lang=language, operator="tn", **options).normalize(text))
    except AssertionError:
        return None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("晕XUAN4是一种GAN3觉", "晕XVAN4是一种GAN3觉"),  # j/q/x + u is spelled with v
        ("受不liao3你了", "受不liao3你了"),  # other pinyin stays as written
        ("这个<行|HANG2>业", "这个<行|HANG2>业"),  # annotations are untouched
        ("GPT-5-Nano 是 GPT-5 模型", "GPT-五-Nano 是 GPT-五 模型"),  # hyphens are not minus signs
        ("电话：135-4567-8900", "电话,一三五四五六七八九零零"),  # a phone number is no term
        ("约瑟夫·高登-莱维特", "约瑟夫-高登-莱维特"),  # names are not read as arithmetic
        ("今天是个好日子 it's a good day", "今天是个好日子 it is a good day"),
        ("Let's go!", "Let's go!"),  # only the listed contractions of "is"
        ("这酒...里", "这酒…里"),
        ("A$B有3个", "A.B有三个"),  # Chinese text reads a '$' the FST leaves as '.' (official map)
    ],
)
def test_official_rules(normalizer: TextNormalizer, text: str, expected: str) -> None:
    assert normalizer.normalize(text) == expected


def test_many_annotations_get_distinct_placeholders(normalizer: TextNormalizer) -> None:
    text = "".join(f"<字|ZI{i % 5 + 1}>" for i in range(30))
    assert normalizer.normalize(text) == text


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("你好", "zh"),
        ("hello", "en"),
        ("123", "zh"),  # no Latin letter
        ("test@example.com", "zh"),  # a bare e-mail address
        ("wo3 ai4 ni3", "zh"),  # tone-numbered pinyin
        ("beta1 version", "en"),
        ("", "zh"),
    ],
)
def test_language_is_chosen_per_text(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_glossary_reads_terms_per_language_case_insensitively() -> None:
    glossary = Glossary({"M.2": {"en": "M dot two", "zh": "M 二"}, "nvme": "N-V-M-E", "Inc.": {"en": "Ink"}})
    normalizer = TextNormalizer(glossary)
    assert normalizer.normalize("My M.2 NVMe drive") == "My M dot two N-V-M-E drive"
    assert normalizer.normalize("我的M.2硬盘") == "我的M 二硬盘"
    # no reading for the language: the term is written as the glossary spells it
    assert normalizer.normalize("这是inc.公司") == "这是Inc.公司"


def test_glossary_longest_term_first_and_literal_readings() -> None:
    glossary = Glossary({"PCIe": "P C I E", "PCIe 5.0": "gen five", "C#": r"C sharp \1"})
    assert glossary.apply("PCIe 5.0 and PCIe and c#", "en") == r"gen five and P C I E and C sharp \1"


def test_glossary_files_model_then_user(tmp_path) -> None:
    model = tmp_path / "model.yaml"
    model.write_text("TTS: T T S\nAI:\n  en: A I\n  zh: 人工智能\n", encoding="utf-8")
    user = tmp_path / "user.yaml"
    user.write_text("TTS: text to speech\n", encoding="utf-8")
    merged = Glossary.from_yaml(model).merged(Glossary.from_yaml(user))
    assert merged.apply("AI TTS", "en") == "A I text to speech"
    assert len(Glossary.from_yaml(tmp_path / "user.yaml")) == 1
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert not Glossary.from_yaml(empty)


@pytest.mark.parametrize(
    "content",
    ["- just\n- a list\n", "3.0: three\n", "TTS:\n  fr: T T S\n", "TTS: [1, 2]\n", "a: [unclosed\n"],
)
def test_bad_glossary_files_are_config_errors_naming_the_file(tmp_path, content: str) -> None:
    file = tmp_path / "glossary.yaml"
    file.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"glossary"):
        Glossary.from_yaml(file)


def test_a_missing_glossary_file_is_invalid_input(tmp_path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        Glossary.from_yaml(tmp_path / "nope.yaml")


def test_the_fsts_load_once_per_process() -> None:
    import threading

    loaded = []
    threads = [threading.Thread(target=lambda: loaded.append(load_fsts())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(module) for module in loaded}) == 1
    assert load_fsts() is loaded[0]


# Chunked FST = whole-text FST ------------------------------------------------------------------

PARAGRAPHS = [
    "上周五，我们团队在Shanghai举办了分享会。下一次活动定在2025年6月1日，欢迎报名参加！",
    "中国 3-1 巴西，比赛结束。女儿今年3岁了，儿子5岁。80后和90后，B2B与O2O，第1名。",
    'A+B=C，而1+2=3。他说"你好"，我有2个。M.V.P是他，得分30分。价格是1，000元；时间是3：30。',
    "温度降到了-5℃，请注意保暖。\n第二行：12.5%的增长；ＡＢＣ和１２３。",
    "It was Jan. 5, 2024. Then we met Dr. Smith at 8:30 a.m. Today is fine. Was it? Yes! e. g. this one.",
    "I paid $5 million. The end. It weighs 5 ft. Really. World War II. was long. Call 555-0123 now.",
]


@pytest.mark.parametrize("text", PARAGRAPHS)
def test_chunked_normalisation_equals_one_whole_text_call(text: str) -> None:
    language = detect_language(text)
    whole = _whole_text(text, language)
    assert whole is not None
    assert apply_fst(text, language) == whole


ZH_CLAUSES = st.sampled_from(
    [
        "今天天气很好",
        "原价299元",
        "下午3点30分",
        "第2名",
        "Alice说",
        "12.5%",
        "2024/12/31",
        "中国 3-1 巴西",
        "1，000元",
        "3：30开会",
        "A+B",
        "儿子",
        "-5℃",
        "GPT",
        " ",
        "M.V.P",
        "x<=y",
        "a×b",
        '他说"好"',
        "Dr. Smith.",
        "A.I. is here",
        "C:\\path",
    ]
)
ZH_JOINERS = st.sampled_from(["，", "。", "！", "？", "；", "、", "：", "\n", "", " "])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(ZH_CLAUSES, ZH_JOINERS), min_size=1, max_size=12))
def test_chunked_chinese_equals_whole_text_for_random_paragraphs(parts) -> None:
    text = "".join(clause + joiner for clause, joiner in parts)
    whole = _whole_text(text, "zh")
    if whole is not None:
        assert apply_fst(text, "zh") == whole


EN_SENTENCES = st.sampled_from(
    [
        "It was a bright cold day.",
        "She paid $12.50 on Jan. 5, 2024.",
        "Dr. Smith lives at 221B Baker Street.",
        "Call me at 8:30 AM!",
        "Is it 15% off?",
        "The A. D. era began.",
        "see you at 5 p.m.",
    ]
)


@settings(max_examples=40, deadline=None)
@given(st.lists(EN_SENTENCES, min_size=1, max_size=8))
def test_chunked_english_equals_whole_text_for_random_paragraphs(sentences) -> None:
    text = " ".join(sentences)
    whole = _whole_text(text, "en")
    if whole is not None:
        assert apply_fst(text, "en") == whole


def test_run_on_text_is_cut_into_bounded_fst_calls(monkeypatch) -> None:
    seen: list[int] = []
    original = fst_module._fst

    def spy(core: str, language):
        seen.append(len(core))
        return original(core, language)

    monkeypatch.setattr(fst_module, "_fst", spy)
    assert apply_fst("1" * 2000, "zh")
    assert apply_fst("word " * 600, "en") == ("word " * 600).strip()
    assert seen
    assert max(seen) <= MAX_CHUNK_CHARS


def test_a_chunk_wetext_fails_on_is_kept_as_written() -> None:
    # wetext's English FST finds no path for two spaces between words; the official front end
    # would then skip normalisation of the whole text.
    assert apply_fst("I have 5 apples. And  two pears", "en") == "I have five apples. And  two pears"


# The linear-time finders find what the official patterns find -------------------------------

from indextts2.text import protect  # noqa: E402


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>|\n行HANG2a ")), max_size=40))
def test_annotation_finder_equals_the_pattern(text: str) -> None:
    expected = [m.span() for m in protect.ANNOTATION_PATTERN.finditer(text)]
    assert protect.find_annotations(text) == expected


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("约瑟夫高登·-—a ")), max_size=40))
def test_name_finder_equals_the_pattern(text: str) -> None:
    assert protect.find_names(text) == protect.NAME_PATTERN.findall(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ05-- .你")), max_size=40))
def test_tech_term_finder_equals_the_pattern(text: str) -> None:
    assert protect.find_tech_terms(text) == protect.TECH_TERM_PATTERN.findall(text)
