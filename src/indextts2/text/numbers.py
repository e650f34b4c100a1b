"""Numbers read as a careful reader says them, where the official front end misreads them.

The official front end (wetext 0.1.x) reads ``¥1,234.56`` as 一元,两百三十四点五六 ("one yuan, two
hundred thirty-four point five six"), ``$1,234`` in English as "thousand two hundred and thirty four
dollars", ``1990s`` as "one thousand nine hundred and ninety seconds", ``+1 555 123 4567`` not at all.
The corrections here run in :class:`~indextts2.text.TextNormalizer`'s ``corrected`` mode (the
default): a pre-pass rewrites what the FST would misread into a form it reads right (Chinese: mostly
digits it handles, such as ``1234.56`` for ``1,234.56``) or into words (English, where the FST's
cardinals drop "one"), and a post-fix mends what cannot be rewritten before (第两 -> 第二). The
``official`` mode skips both and stays bit-identical to the official front end (what the parity checks
and the goldens use). docs/parity.md lists every correction; tests/test_text_numbers.py has each one
with its expected reading.

Both functions run on the text after the official protections (placeholders for names, pinyin and
technical terms are left alone: they hold no digits).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["cardinal", "correct_en", "correct_zh", "fix_zh"]

# ---------------------------------------------------------------------------------------------- English

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_TENS_PLURAL = (
    "", "tens", "twenties", "thirties", "forties", "fifties", "sixties", "seventies", "eighties", "nineties",
)  # fmt: skip
_SCALES = ("", "thousand", "million", "billion", "trillion")
_DIGIT_WORDS = ("oh", *_ONES[1:10])  # digit by digit, as in phone numbers and after a decimal point


def _two_digits(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")


def _group(n: int, *, last: bool, higher: bool) -> str:
    """Words of 1..999; the last group says "and" before its tens (wetext's style: "... hundred and five",
    "one thousand and five")."""
    hundreds, rest = divmod(n, 100)
    words = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest:
        if last and (hundreds or higher):
            words.append("and")
        words.append(_two_digits(rest))
    return " ".join(words)


def cardinal(n: int) -> str:
    """``1234`` -> "one thousand two hundred and thirty four" (up to the trillions)."""
    if n == 0:
        return "zero"
    groups: list[int] = []
    rest = n
    while rest:
        rest, group = divmod(rest, 1000)
        groups.append(group)
    if len(groups) > len(_SCALES):  # past the trillions: digit by digit
        return _digits(str(n))
    words = []
    for scale in range(len(groups) - 1, -1, -1):
        if groups[scale]:
            higher = any(groups[scale + 1 :])
            words.append(_group(groups[scale], last=scale == 0, higher=higher))
            if _SCALES[scale]:
                words.append(_SCALES[scale])
    return " ".join(words)


def _digits(text: str) -> str:
    return " ".join(_DIGIT_WORDS[int(d)] for d in text if d.isdigit())


def _number(whole: str, fraction: str | None = None) -> str:
    """``"1,234"``, ``"56"`` -> "one thousand two hundred and thirty four point five six"."""
    words = cardinal(int(whole.replace(",", "")))
    return f"{words} point {_digits(fraction)}" if fraction else words


def _year(text: str) -> str:
    """A year as read aloud: 1905 -> "nineteen oh five", 1990 -> "nineteen ninety", 2010 -> "twenty ten"."""
    century, rest = divmod(int(text), 100)
    if rest == 0:
        return f"{cardinal(century)} hundred"
    return f"{cardinal(century)} {_two_digits(rest) if rest >= 10 else 'oh ' + _ONES[rest]}"


def _decade(century: int, tens: int) -> str:
    """1980s -> "nineteen eighties", 1900s -> "nineteen hundreds", 2000s -> "two thousands"."""
    if tens:
        return f"{cardinal(century)} {_TENS_PLURAL[tens]}"
    return "two thousands" if century == 20 else f"{cardinal(century)} hundreds"


# sign: (one, many, one hundredth, many hundredths); the yen has no hundredths
_CURRENCIES: dict[str, tuple[str, str, str | None, str | None]] = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", None, None),
    "￥": ("yen", "yen", None, None),
}
_AMOUNT = r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?"
# an amount that ends here: no more digits, and no magnitude word the FST reads itself ($2.5 million)
_AMOUNT_END = r"(?![\d,.]?\d|\s?(?:[kKmMbB]n?|thousand|million|billion|trillion)\b)"
_SIGN = r"([$€£¥￥])"


def _money(sign: str, whole: str, cents: str | None) -> str:
    one, many, one_sub, many_sub = _CURRENCIES[sign]
    amount = int(whole.replace(",", ""))
    if cents and one_sub is None:
        return f"{_number(whole, cents)} {many}"
    hundredths = int(cents.ljust(2, "0")) if cents else 0
    parts = []
    if amount or not hundredths:
        parts.append(f"{cardinal(amount)} {one if amount == 1 else many}")
    if hundredths:
        parts.append(f"{cardinal(hundredths)} {one_sub if hundredths == 1 else many_sub}")
    return " and ".join(parts)


_Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]

_EN_RULES: tuple[_Rule, ...] = (
    # $5-$10, $5-10: "five dollars to ten dollars" (the FST: "dollar five-dollar ten")
    (
        re.compile(rf"(?<![\w.]){_SIGN}{_AMOUNT}\s?[-–]\s?\1?{_AMOUNT}{_AMOUNT_END}"),
        lambda m: f"{_money(m[1], m[2], m[3])} to {_money(m[1], m[4], m[5])}",
    ),
    # $1,234.56, $5.50, $0.99, £3.50: dollars and cents (the FST: "thousand two hundred ... point
    # five six dollars", "five point five dollars")
    (
        re.compile(rf"(?<![\w.]){_SIGN}\s?{_AMOUNT}{_AMOUNT_END}"),
        lambda m: _money(m[1], m[2], m[3]),
    ),
    # +1 555 123 4567: digit by digit in groups (the FST fails and leaves it as written)
    (
        re.compile(r"(?<![\w+])\+(\d{1,3})((?:[ .-]\(?\d{1,4}\)?){2,5})(?![\w-])"),
        lambda m: ", ".join(
            ["plus " + _digits(m[1]), *(_digits(g) for g in re.split(r"[ .-]+", m[2].strip(" .-")))]
        ),
    ),
    # 555-0123, or 555-1234 after "call", "phone"...: a local number, digit by digit (the FST:
    # "five hundred and fifty five-oh one hundred and twenty three", or a range)
    (
        re.compile(r"(?<![\w.,-])(\d{3})-(0\d{3})(?![\w-])"),
        lambda m: f"{_digits(m[1])}, {_digits(m[2])}",
    ),
    (
        re.compile(
            r"\b((?:call|phone|tel|dial|fax|text|number|reach)\b[\w .:]{0,12}?[ :])(\d{3})-(\d{4})(?![\w-])",
            re.IGNORECASE,
        ),
        lambda m: f"{m[1]}{_digits(m[2])}, {_digits(m[3])}",
    ),
    # 1,234 and 1,234.56 (and 1,234%): the FST drops the "one" of 1,xxx
    (
        re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+)(?:\.(\d+))?(?!\d|[.,]\d)(\s?%)?"),
        lambda m: _number(m[1], m[2]) + (" percent" if m[3] else ""),
    ),
    # 1990s, 2010s, 1900s: decades (the FST: "one thousand nine hundred and ninety seconds")
    (re.compile(r"(?<![\w'.,])(1\d|20)(\d)0s\b"), lambda m: _decade(int(m[1]), int(m[2]))),
    # 1990-2000, 2010-2020, 1990-95: years to years (the FST reads the ends as cardinals)
    (
        re.compile(r"(?<![\w.,:/-])(1[5-9]\d\d|20\d\d)\s?[-–]\s?(1[5-9]\d\d|20\d\d|\d\d)(?![\w.,:/-]*\d)"),
        lambda m: f"{m[1]} to {m[2]}",
    ),
    # 1.5-2 hours, 10-20%, 10%-20%: a range with a decimal or a percent (the FST: "one point five-two")
    (
        re.compile(r"(?<![\w.,:/-])(\d+(?:\.\d+)?)(%?)\s?[-–~]\s?(\d+(?:\.\d+)?)(%?)(?![\w.,:/-]*\d)"),
        lambda m: (
            f"{m[1]} to {m[3]}{'%' if m[2] or m[4] else ''}" if "." in m[1] + m[3] or m[2] or m[4] else m[0]
        ),
    ),
    # 1905: "nineteen oh five" (the FST reads a lone four-digit number as a year: "nineteen zero five")
    (
        re.compile(r"(?<![\w.,$€£¥-])(1[1-9]0[1-9])(?![\w,]|\.\d)"),
        lambda m: _year(m[1]),
    ),
    # -3%, -5°C, -3 degrees: "minus" (the FST says "negative" here, "minus" for -3.5%)
    (
        re.compile(r"(?<![\w.)-])-(?=\d+(?:\.\d+)?\s?(?:%|°|degrees?\b))"),
        lambda m: "minus ",
    ),
    # "9 a.m. Then": the FST reads a.m. as "AM" and drops the full stop that also ends the sentence
    (
        re.compile(r"\b([ap])\.m\.(?=\s+[A-Z]|\s*$)"),
        lambda m: f"{m[1]}m.",
    ),
)


def correct_en(text: str) -> str:
    """The English pre-pass: what the FST would misread, in words or in a form it reads right."""
    for pattern, replace in _EN_RULES:
        text = pattern.sub(replace, text)
    return text


# ---------------------------------------------------------------------------------------------- Chinese

_ZH_PHONE_DIGITS = "零幺二三四五六七八九"  # phone numbers read 1 as 幺


def _zh_phone(groups: list[str]) -> str:
    return "，".join("".join(_ZH_PHONE_DIGITS[int(d)] for d in group) for group in groups if group)


def _strip_zero_cents(m: re.Match[str]) -> str:
    whole, fraction = m["whole"], m["fraction"].rstrip("0")
    return f"{m['sign'] or ''}{whole}{'.' + fraction if fraction else ''}"


_ZH_RULES: tuple[_Rule, ...] = (
    # +86 138 1234 5678: 加八六，幺三八，幺二三四，五六七八 (the FST: 正八十六 一百三十八 ...)
    (
        re.compile(r"(?<![\d+])\+(\d{1,3})((?:[ .-]\(?\d{1,4}\)?){2,5})(?![\d-])"),
        lambda m: "加" + _zh_phone([m[1], *re.split(r"[ .()-]+", m[2])]),
    ),
    # (010)12345678: an area code in brackets, read digit by digit like 010-12345678 (the FST: '零十')
    (
        re.compile(r"[(（](0\d{2,3})[)）]\s?(\d{7,8})(?!\d)"),
        lambda m: f"{m[1]}-{m[2]}",
    ),
    # 400 123 4567: digit groups apart are a phone number (the FST: 四百 一百二十三 四千五百六十七)
    (
        re.compile(r"(?<![\d.,])(\d{3,4}) (\d{3,4}) (\d{4})(?![\d.,]\d|\d)"),
        lambda m: f"{m[1]}-{m[2]}-{m[3]}",
    ),
    # 1,234 and ¥1,234.56: the digits without their grouping commas (the FST: ¥1,234.56 -> 一元,两百...)
    (
        re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+)(?!\d|,\d)"),
        lambda m: m[1].replace(",", ""),
    ),
    # ¥12.50, 12.50元: 十二点五元, not 十二点五零元
    (
        re.compile(r"(?P<sign>[$¥￥€£])(?P<whole>\d+)\.(?P<fraction>\d*0)(?!\d)"),
        _strip_zero_cents,
    ),
    (
        re.compile(r"(?P<sign>)(?<![\d.])(?P<whole>\d+)\.(?P<fraction>\d*0)(?=[元块])"),
        _strip_zero_cents,
    ),
    # 2-3%, 2%-3%, 10%~20%: 百分之二到百分之三 (the FST: 二减百分之三, 百分之二百分之负三)
    (
        re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)%?\s?[-~～–—]\s?(\d+(?:\.\d+)?)%"),
        lambda m: f"{m[1]}%到{m[2]}%",
    ),
    # -3%: 负百分之三 (the FST: 百分之负三)
    (
        re.compile(r"(?<![\d.%])-(\d+(?:\.\d+)?%)"),
        lambda m: f"负{m[1]}",
    ),
)


def correct_zh(text: str) -> str:
    """The Chinese pre-pass: what the FST would misread, rewritten into a form it reads right."""
    for pattern, replace in _ZH_RULES:
        text = pattern.sub(replace, text)
    return text


def fix_zh(text: str) -> str:
    """The Chinese post-fix, on the FST's output: 第两 is never said (第2名 -> 第二名, not 第两名)."""
    return text.replace("第两", "第二")
