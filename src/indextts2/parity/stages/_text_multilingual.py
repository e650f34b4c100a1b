"""Parity of IndexTTS-2.5's text front end: ``inputs/texts.json`` against ``text.json`` (2.5 layout).

For every string, with text normalisation on and off: one check of the pipeline (clean map,
normaliser, normalised text, case, annotations, Japanese segmentation, final text, prefix, lang_id)
and one per recorded budget (segments, encoded strings, ids, token strings, the GPT's text tensor
= ids + [1], its language tensor, and how many times the official splitter counted tokens: the
same count means the same walk). Everything is compared exactly; a recorded ``error`` must be
raised by us too. Plus one check of the vocabulary (sizes, selected special ids, pattern). The zh/en
normaliser runs in its ``official`` mode (our corrected reading of numbers differs on purpose).
"""

from __future__ import annotations

from typing import Any

from indextts2.errors import IndexTTS2Error
from indextts2.parity.core import Check, GoldenSet
from indextts2.text.multilingual import MultilingualAnalysis, MultilingualFrontend
from indextts2.text.multilingual.vocabulary import PAT_STR

STAGE = "text"
_SETTINGS = (("tn_on", True), ("tn_off", False))


def _normalizer_name(recorded: str | None) -> str | None:
    """The official step name in text.json -> ours (MultilingualAnalysis.normalization)."""
    if recorded is None:
        return None
    if recorded.startswith("TextNormalizer"):
        return "TextNormalizer"
    if recorded.startswith("nemo_text_normalize"):
        return "passthrough"  # NeMo is absent from the official lock: the text comes back
    return f"unknown ({recorded})"


def _fields_check(item: str, actual: dict[str, Any], expected: dict[str, Any]) -> Check:
    differing = [key for key in expected if actual.get(key) != expected[key]]
    note = "; ".join(
        f"{key}: got {actual.get(key)!r:.120}, expected {expected[key]!r:.120}" for key in differing
    )
    return Check(STAGE, item, f"{len(expected)} fields", not differing, mismatches=len(differing), note=note)


def _error_check(item: str, exc: Exception | None, recorded: dict[str, Any]) -> Check | None:
    """A check when either side raised; None when neither did."""
    official = recorded.get("error")
    if exc is None and official is None:
        return None
    if exc is not None and official is not None:
        return Check(STAGE, item, "error", True, mismatches=0, note=f"both raised (official: {official})")
    note = f"we raised {exc!r}" if exc is not None else f"official raised {official!r}, we did not"
    return Check(STAGE, item, "error", False, mismatches=1, note=note)


def _pipeline(analysis: MultilingualAnalysis) -> dict[str, Any]:
    return {
        "after_clean_pattern": analysis.after_clean,
        "normalizer": analysis.normalization,
        "after_normalization": analysis.after_normalization,
        "after_case": analysis.after_case,
        "after_annotations": analysis.after_annotations,
        "after_ja_g2p": analysis.after_japanese,
        "final_text": analysis.final_text,
        "lang_prefix": analysis.lang_prefix,
        "lang_id": analysis.lang_id,
    }


def _budget(analysis: MultilingualAnalysis, budget: int) -> dict[str, Any]:
    split = analysis.split(budget)
    return {
        "segments": list(split.texts),
        "encoded_strings": list(split.encoded),
        "segment_ids": [list(segment.ids) for segment in split.segments],
        "segment_tokens": [list(segment.tokens) for segment in split.segments],
        # What the GPT side receives: the ids, a trailing 1, as int32; the language as one id.
        "gpt_text_tokens": [[*segment.ids, 1] for segment in split.segments],
        "gpt_text_tokens_dtype": "int32",
        "budget_token_len_calls": split.token_len_calls,
        "gpt_langs": [analysis.lang_id],
    }


def _compare_setting(
    frontend: MultilingualFrontend, item: dict[str, Any], key: str, normalize: bool, budgets: list[int]
) -> list[Check]:
    name = f"{item['id']}.{key}"
    recorded = item[key]
    try:
        analysis = frontend.analyze(
            item["text"], language=item["lang"], text_normalization=normalize, allow_empty=True
        )
    except IndexTTS2Error as exc:
        return [_error_check(name, exc, recorded) or Check(STAGE, name, "error", False)]
    failed = _error_check(name, None, recorded)
    if failed is not None:
        return [failed]
    expected = {field: recorded[field] for field in _pipeline(analysis)}
    expected["normalizer"] = _normalizer_name(expected["normalizer"])
    checks = [_fields_check(name, _pipeline(analysis), expected)]
    for budget in budgets:
        budget_name = f"{name}.budget_{budget}"
        recorded_budget = recorded[f"budget_{budget}"]
        try:
            actual = _budget(analysis, budget)
        except IndexTTS2Error as exc:
            failed = _error_check(budget_name, exc, recorded_budget)
            checks.append(failed or Check(STAGE, budget_name, "-", False))
            continue
        failed = _error_check(budget_name, None, recorded_budget)
        if failed is not None:
            checks.append(failed)
            continue
        expected_budget = {field: recorded_budget[field] for field in actual if field in recorded_budget}
        checks.append(_fields_check(budget_name, actual, expected_budget))
    return checks


def _vocabulary_check(frontend: MultilingualFrontend, recorded: dict[str, Any]) -> Check:
    vocabulary = frontend.vocabulary
    actual = {
        "mergeable_ranks": vocabulary.num_ranks,
        "n_vocab": vocabulary.n_vocab,
        "num_special_tokens": vocabulary.n_vocab - vocabulary.num_ranks,
        "selected_special_ids": {
            token: vocabulary.special_id(token) for token in recorded["selected_special_ids"]
        },
        "pat_str": PAT_STR,
        "id_0_bytes": vocabulary.token_strings([0])[0],
        "id_1_bytes": vocabulary.token_strings([1])[0],
        "id_220_bytes": vocabulary.token_strings([220])[0],
    }
    return _fields_check("vocabulary", actual, {key: recorded[key] for key in actual})


def run(golden: GoldenSet) -> list[Check]:
    recorded = golden.json("text.json")
    frontend = MultilingualFrontend.from_model(golden.checkpoint, normalization="official")
    budgets = [int(budget) for budget in recorded["budgets"]]
    checks = [_vocabulary_check(frontend, recorded["vocabulary"])]
    for item in recorded["items"]:
        for key, normalize in _SETTINGS:
            checks.extend(_compare_setting(frontend, item, key, normalize, budgets))
    return checks
