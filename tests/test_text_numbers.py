"""Numbers read right: every correction of the default (``corrected``) normalisation, with its reading.

Each case gives the text, what a careful reader says (our default), and what the official front end
says (the ``official`` mode, which stays bit-identical to it: the goldens and the parity ``text`` stage
check that). docs/parity.md lists the same corrections.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indextts2.errors import InvalidInput
from indextts2.text import TextNormalizer
from indextts2.text.numbers import cardinal

CORRECTED = TextNormalizer()
OFFICIAL = TextNormalizer(mode="official")

# (text, our reading, the official front end's reading)
ZH_CASES = [
    # digit grouping after a currency sign
    ("今天是2026年11月24日，价格¥1,234.56", "今天是二零二六年十一月二十四日,价格一千二百三十四点五六元",
     "今天是二零二六年十一月二十四日,价格一元,两百三十四点五六"),
    ("价格$1,234", "价格一千二百三十四美元", "价格一美元,两百三十四"),
    ("价格€1,234", "价格一千二百三十四欧元", "价格一欧元,两百三十四"),
    ("¥1,234,567", "一百二十三万四千五百六十七元", "一元,两百三十四,五百六十七"),
    # trailing zeros of a price
    ("价格¥12.50", "价格十二点五元", "价格十二点五零元"),
    ("价格12.50元", "价格十二点五元", "价格十二点五零元"),
    ("价格¥12.00", "价格十二元", "价格十二点零零元"),
    # negative percentages and ranges of percentages
    ("下降-3%", "下降负百分之三", "下降百分之负三"),
    ("下降-3.5%", "下降负百分之三点五", "下降百分之负三点五"),
    ("增长2-3%", "增长百分之二到百分之三", "增长二减百分之三"),
    ("增长2%-3%", "增长百分之二到百分之三", "增长百分之二百分之负三"),
    ("增长10%-20%", "增长百分之十到百分之二十", "增长百分之十百分之负二十"),
    # phone numbers
    ("电话+86 138 1234 5678", "电话加八六,幺三八,幺二三四,五六七八",
     "电话正八十六 一百三十八 一千二百三十四 五千六百七十八"),
    ("电话+86-138-1234-5678", "电话加八六,幺三八,幺二三四,五六七八",
     "电话正八十六减一百三十八减一千二百三十四减五千六百七十八"),
    ("电话(010)12345678", "电话零一零一二三四五六七八", "电话'零十'一千二百三十四万五千六百七十八"),
    ("电话400 123 4567", "电话四零零一二三四五六七", "电话四百 一百二十三 四千五百六十七"),
    # ordinals: 第两 is never said
    ("第2名5000元", "第二名五千元", "第两名五千元"),
    ("第2个", "第二个", "第两个"),
]  # fmt: skip

EN_CASES = [
    # digit grouping: the official cardinal of 1,xxx drops its "one"
    ("It costs $1,234.56", "It costs one thousand two hundred and thirty four dollars and fifty six cents",
     "It costs thousand two hundred and thirty four point five six dollars"),
    ("It costs $1,234.", "It costs one thousand two hundred and thirty four dollars.",
     "It costs thousand two hundred and thirty four dollars."),
    ("I have 1,234 apples.", "I have one thousand two hundred and thirty four apples.",
     "I have thousand two hundred and thirty four apples."),
    ("I have 1,005 apples.", "I have one thousand and five apples.", "I have thousand and five apples."),
    ("It is 1,234.56 meters.", "It is one thousand two hundred and thirty four point five six meters.",
     "It is thousand two hundred and thirty four point five six meters."),
    ("It costs ¥1,000.", "It costs one thousand yen.", "It costs thousand yen."),
    ("It costs €1,200.", "It costs one thousand two hundred euros.", "It costs thousand two hundred euros."),
    # money: dollars and cents, not "point five dollars"
    ("It costs $5.50.", "It costs five dollars and fifty cents.", "It costs five point five dollars."),
    ("It costs $0.99.", "It costs ninety nine cents.", "It costs zero point nine nine dollars."),
    ("It costs $0.01.", "It costs one cent.", "It costs zero point oh one dollars."),
    ("It costs £3.50.", "It costs three pounds and fifty pence.", "It costs three point five pounds."),
    ("It costs $5-$10.", "It costs five dollars to ten dollars.", "It costs dollar five-dollar ten."),
    ("It costs $5-10.", "It costs five dollars to ten dollars.", "It costs dollar five-ten."),
    # ranges with a decimal or a percent
    ("It takes 1.5-2 hours.", "It takes one point five to two hours.", "It takes one point five-two hours."),
    ("It grew 10-20%.", "It grew ten to twenty percent.", "It grew ten-twenty percent."),
    ("It grew 10%-20%.", "It grew ten to twenty percent.", "It grew ten-twenty percent."),
    # negative percentages and temperatures: "minus", as for -3.5%
    ("It fell -3%.", "It fell minus three percent.", "It fell negative three percent."),
    ("It is -5°C today.", "It is minus five degrees Celsius today.",
     "It is negative five degrees Celsius today."),
    ("It was -3 degrees.", "It was minus three degrees.", "It was negative three degrees."),
    # years, decades and ranges of years
    ("the 1980s", "the nineteen eighties", "the one thousand nine hundred and eighty seconds"),
    ("the 1900s", "the nineteen hundreds", "the one thousand nine hundred seconds"),
    ("in the 2010s", "in the twenty tens", "in the two thousand and ten seconds"),
    ("from 1990-2000", "from nineteen ninety to two thousand",
     "from one thousand nine hundred and ninety to two thousand"),
    ("from 2010-2020", "from twenty ten to twenty twenty",
     "from two thousand and ten to two thousand and twenty"),
    ("in 1990-95", "in nineteen ninety to ninety five",
     "in one thousand nine hundred and ninety to ninety five"),
    ("In 1905 we left.", "In nineteen oh five we left.", "In nineteen zero five we left."),
    # phone numbers
    ("Call +1 555 123 4567 now.", "Call plus one, five five five, one two three, four five six seven now.",
     "Call +1 555 123 4567 now."),
    ("Call +44 20 7946 0958.", "Call plus four four, two oh, seven nine four six, oh nine five eight.",
     "Call +44 20 7946 0958."),
    ("Call 555-0123 now.", "Call five five five, oh one two three now.",
     "Call five hundred and fifty five-oh one hundred and twenty three now."),
    ("Call me at 555-1234.", "Call me at five five five, one two three four.",
     "Call me at five hundred and fifty five to one thousand two hundred and thirty four."),
    # times: a.m. that ends a sentence keeps its full stop
    ("We met at 9 a.m. Then we left.", "We met at nine AM. Then we left.", "We met at nine AM Then we left."),
]  # fmt: skip

# What the official front end already reads right is left to it, in both modes.
UNCHANGED = [
    ("我有1,234个苹果", "我有一千二百三十四个苹果"),
    ("3-5个", "三到五个"),
    ("1990-2000年", "一九九零到二零零零年"),
    ("会议在14:30开始", "会议在十四点三十分开始"),
    ("2026-11-24", "二零二六年十一月二十四日"),
    ("增长了12.5%", "增长了百分之十二点五"),
    ("电话：135-4567-8900", "电话,一三五四五六七八九零零"),
    ("温度-5℃", "温度负五摄氏度"),
    ("A$B有3个", "A.B有三个"),
    ("The population is 1,234,567.",
     "The population is one million two hundred thirty four thousand five hundred and sixty seven."),
    ("It costs $5.", "It costs five dollars."),
    ("It costs $2.5 million.", "It costs two point five million dollars."),
    ("It costs $1.2B.", "It costs one point two billion dollars."),
    ("On 2026-11-24 we met.", "On the twenty fourth of november twenty twenty six we met."),
    ("In 2005 we left.", "In two thousand five we left."),
    ("Call 555-123-4567 now.", "Call five five five, one two three, four five six seven now."),
    ("The range is 100-1000.", "The range is one hundred to one thousand."),
    ("It is 3-5 days.", "It is three to five days."),
    ("at 9 a.m. and then", "at nine AM and then"),
    ("It fell -3.5%.", "It fell minus three point five percent."),
]  # fmt: skip


@pytest.mark.parametrize(("text", "reading", "official"), ZH_CASES + EN_CASES)
def test_numbers_are_read_as_a_careful_reader_says_them(text: str, reading: str, official: str) -> None:
    assert CORRECTED.normalize(text) == reading


@pytest.mark.parametrize(("text", "reading", "official"), ZH_CASES + EN_CASES)
def test_the_official_mode_keeps_the_official_misreading(text: str, reading: str, official: str) -> None:
    assert OFFICIAL.normalize(text) == official
    assert official != reading


@pytest.mark.parametrize(("text", "reading"), UNCHANGED)
def test_what_the_official_front_end_reads_right_is_untouched(text: str, reading: str) -> None:
    assert CORRECTED.normalize(text) == reading
    assert OFFICIAL.normalize(text) == reading


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (15, "fifteen"),
        (40, "forty"),
        (99, "ninety nine"),
        (100, "one hundred"),
        (105, "one hundred and five"),
        (1000, "one thousand"),
        (1005, "one thousand and five"),
        (1234, "one thousand two hundred and thirty four"),
        (21000, "twenty one thousand"),
        (101000, "one hundred one thousand"),
        (1234567, "one million two hundred thirty four thousand five hundred and sixty seven"),
        (1_000_000_001, "one billion and one"),
        (10**15, "one oh oh oh oh oh oh oh oh oh oh oh oh oh oh oh"),  # past the trillions: digits
    ],
)
def test_cardinals(number: int, words: str) -> None:
    assert cardinal(number) == words


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'corrected' or 'official'"):
        TextNormalizer(mode="careful")  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="0123456789,.-%$¥€£+()~ 年元个abcXY:", max_size=40))
def test_the_corrections_never_fail(text: str) -> None:
    # arbitrary mixes of digits, signs and separators: the pre-pass and the FST always answer
    assert isinstance(CORRECTED.normalize(text), str)


@pytest.mark.goldens
@pytest.mark.parametrize(
    ("text", "language", "reading", "official"),
    [
        ("价格¥1,234.56", "zh", "价格一千二百三十四点五六元", "价格一元,两百三十四点五六"),
        (
            "It costs $1,234.56",
            "en",
            "It costs one thousand two hundred and thirty four dollars and fifty six cents",
            "It costs thousand two hundred and thirty four point five six dollars",
        ),
    ],
)
def test_indextts_2_5_reads_numbers_through_the_same_modes(
    goldens25: Path, text: str, language: str, reading: str, official: str
) -> None:
    from indextts2.text.multilingual import MultilingualFrontend

    checkpoint = goldens25 / "checkpoint"
    corrected = MultilingualFrontend.from_model(checkpoint).analyze(text, language=language)
    as_official = MultilingualFrontend.from_model(checkpoint, normalization="official").analyze(
        text, language=language
    )
    assert corrected.after_normalization == reading
    assert as_official.after_normalization == official
