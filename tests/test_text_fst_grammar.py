"""What the Chinese FST does to text without digits, derived from the FST itself.

The chunked normaliser (indextts2.text.fst) skips the Chinese FST for chunks without a digit, math
operator, quote or backslash, claiming the FST would pass them through unchanged. These tests
re-derive that claim from the wetext FST in use, so an FST update that breaks it fails here.
"""

from __future__ import annotations

import sys

import pytest

from indextts2.text.fst import _ZH_NEEDS_FST, load_fsts

DIGIT_FREE_TOKENS = {
    "<=",
    ">=",
    "×",
    "÷",
    "≤",
    "≥",
    "M.V.P",
    "儿",
    "佳儿佳妇",
    "儿不嫌母丑",
    "儿化",
    "儿大不由爷",
    "儿女",
    "儿媳",
    "儿子",
    "儿孙",
    "儿怜兽扰",
    "儿戏",
    "儿无常父",
    "儿歌",
    "儿科",
    "儿童",
    "儿行千里母担忧",
    "养儿防老",
    "台儿庄",
    "吊儿郎当",
    "女儿",
    "妻儿",
    "婴儿",
    "婴幼儿",
    "孤儿",
    "容祖儿",
    "小儿",
    "少儿",
    "幼儿",
    "托儿带女",
    "托儿所",
    "新生儿",
    "正儿八经",
    "生儿育女",
    "痴儿呆女",
    "胎儿",
    "苏乞儿",
    "鹿儿岛",
}
CHAR_TOKEN_LABEL = ord("c")
CHAR_TOKEN_WEIGHT = 100.0  # the 'char' rule's weight in the WeTextProcessing grammar


def _is_digit_byte(previous: list[int], label: int) -> bool:
    if 0x30 <= label <= 0x39:
        return True
    # full-width digits: EF BC 90..99
    return len(previous) >= 2 and previous[-2:] == [0xEF, 0xBC] and 0x90 <= label <= 0x99


def _digit_free_tokens() -> set[str]:
    """Input strings of every complete non-char token the tagger accepts without a digit byte."""
    import kaldifst
    from wetext.constants import FST_PATHS

    tagger = kaldifst.StdVectorFst.read(FST_PATHS["zh"]["tn"]["tagger"])
    arcs = {
        state: [
            (arc.ilabel, arc.olabel, arc.nextstate, arc.weight.value)
            for arc in kaldifst.ArcIterator(tagger, state)
        ]
        for state in kaldifst.StateIterator(tagger)
    }
    found: set[str] = set()
    budget = [5_000_000]

    def walk(state: int, consumed: list[int], produced: list[int]) -> None:
        budget[0] -= 1
        assert budget[0] > 0, "the digit-free part of the grammar is larger than expected"
        if produced and produced[-1] == ord("}"):
            found.add(bytes(consumed).decode("utf-8"))
            return
        for ilabel, olabel, nextstate, _ in arcs[state]:
            if ilabel and _is_digit_byte(consumed, ilabel):
                continue
            walk(
                nextstate,
                [*consumed, ilabel] if ilabel else consumed,
                [*produced, olabel] if olabel else produced,
            )

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for _, olabel, nextstate, weight in arcs[tagger.start]:
        if olabel == CHAR_TOKEN_LABEL and weight == CHAR_TOKEN_WEIGHT:
            continue  # single characters: see the test below
        walk(nextstate, [], [olabel])
    return found


def test_the_digit_free_tokens_of_the_chinese_grammar_are_the_known_ones() -> None:
    assert _digit_free_tokens() == DIGIT_FREE_TOKENS


def test_the_digit_free_tokens_that_change_text_are_the_ones_the_chunker_watches() -> None:
    wetext_utils = load_fsts()
    for token in sorted(DIGIT_FREE_TOKENS):
        text = f"1。{token}x"
        output = wetext_utils.verbalize(
            wetext_utils.reorder(wetext_utils.tag(text, "zh", "tn"), "zh", "tn"), "zh", "tn"
        )
        changed = output != f"一。{token}x"
        assert changed == bool(_ZH_NEEDS_FST.search(token)), token


@pytest.mark.slow
def test_every_other_character_passes_the_chinese_fst_unchanged() -> None:
    wetext_utils = load_fsts()
    characters = [
        chr(code)
        for code in range(0x20, 0x10000)
        if not 0xD800 <= code <= 0xDFFF and not chr(code).isdigit() and not _ZH_NEEDS_FST.search(chr(code))
    ]
    characters += [chr(code) for code in (0x1F600, 0x1F9D1, 0x20000, 0x2A6D6, 0xE0001)]
    block = 1500
    for start in range(0, len(characters), block):
        # a digit makes it a text the FST runs on; '。' keeps the digit's token apart
        body = " ".join(characters[start : start + block])
        output = wetext_utils.verbalize(
            wetext_utils.reorder(wetext_utils.tag("1。" + body, "zh", "tn"), "zh", "tn"), "zh", "tn"
        )
        assert output == "一。" + body
