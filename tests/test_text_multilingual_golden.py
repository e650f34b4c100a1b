"""IndexTTS-2.5's text front end against the official outputs recorded in goldens-2.5/text.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from indextts2.parity import GoldenSet
from indextts2.parity.stages import text as text_stage
from indextts2.text.multilingual import MultilingualFrontend

pytestmark = pytest.mark.goldens


def _golden_items() -> list[dict]:
    configured = os.environ.get("INDEXTTS2_GOLDENS_25")
    if configured:
        root = Path(configured)
    else:
        goldens = os.environ.get("INDEXTTS2_GOLDENS")
        base = Path(goldens).parent if goldens else Path(__file__).resolve().parents[2] / "shared"
        root = base / "goldens-2.5"
    file = root / "text.json"
    return json.loads(file.read_text(encoding="utf-8"))["items"] if file.is_file() else []


ITEMS = _golden_items()
CASES = [(item, key) for item in ITEMS for key in ("tn_on", "tn_off")]
# text.json's name of the normalisation step -> ours.
NORMALIZER = {"TextNormalizer.normalize": "TextNormalizer", None: None}


@pytest.fixture(scope="module")
def frontend(goldens25: Path) -> MultilingualFrontend:
    return MultilingualFrontend.from_model(goldens25 / "checkpoint", normalization="official")


def test_every_input_string_has_a_golden(goldens25: Path) -> None:
    recorded = json.loads((goldens25 / "text.json").read_text(encoding="utf-8"))
    inputs = json.loads((goldens25 / "inputs" / "texts.json").read_text(encoding="utf-8"))
    assert [(i["id"], i["lang"], i["text"]) for i in inputs] == [
        (i["id"], i["lang"], i["text"]) for i in recorded["items"]
    ]
    assert len(ITEMS) == len(recorded["items"]) >= 60
    assert recorded["budgets"] == [120, 16]


@pytest.mark.parametrize(("item", "key"), CASES, ids=[f"{item['id']}-{key}" for item, key in CASES])
def test_front_end_matches_the_official_outputs(frontend: MultilingualFrontend, item: dict, key: str) -> None:
    recorded = item[key]
    analysis = frontend.analyze(
        item["text"], language=item["lang"], text_normalization=key == "tn_on", allow_empty=True
    )
    assert analysis.after_clean == recorded["after_clean_pattern"]
    official = recorded["normalizer"]
    if official is not None and official.startswith("nemo_text_normalize"):
        assert analysis.normalization == "passthrough"  # NeMo is not in the official lock
    else:
        assert analysis.normalization == NORMALIZER[official]
    assert analysis.after_normalization == recorded["after_normalization"]
    assert analysis.after_case == recorded["after_case"]
    assert analysis.after_annotations == recorded["after_annotations"]
    assert analysis.after_japanese == recorded["after_ja_g2p"]
    assert analysis.final_text == recorded["final_text"]
    assert analysis.lang_prefix == recorded["lang_prefix"]
    assert analysis.lang_id == recorded["lang_id"]
    for budget in (120, 16):
        golden = recorded[f"budget_{budget}"]
        split = analysis.split(budget)
        assert list(split.texts) == golden["segments"]
        assert list(split.encoded) == golden["encoded_strings"]
        assert [list(s.ids) for s in split.segments] == golden["segment_ids"]
        assert [list(s.tokens) for s in split.segments] == golden["segment_tokens"]
        assert split.token_len_calls == golden["budget_token_len_calls"]
        assert [[*s.ids, 1] for s in split.segments] == golden["gpt_text_tokens"]


# prepare() refuses empty text (tested in test_text_multilingual.py): the first 20 that say something
PREPARED = [item for item in ITEMS if item["text"].strip()][:20]


@pytest.mark.parametrize("item", PREPARED, ids=[item["id"] for item in PREPARED])
def test_prepare_gives_the_official_segments(frontend: MultilingualFrontend, item: dict) -> None:
    prepared = frontend.prepare(item["text"], language=item["lang"], max_tokens_per_segment=16)
    golden = item["tn_on"]
    assert prepared.language == item["lang"].lower()
    assert prepared.lang_id == golden["lang_id"]
    assert prepared.detected is None
    assert list(prepared.texts) == golden["budget_16"]["segments"]
    assert [list(s.ids) for s in prepared.segments] == golden["budget_16"]["segment_ids"]


def test_the_parity_stage_passes_every_check(goldens25: Path) -> None:
    checks = text_stage.run(GoldenSet(goldens25))
    # the vocabulary, then per string and setting: the pipeline and each of the two budgets
    assert len(checks) == 1 + len(ITEMS) * 2 * 3
    assert [c.item for c in checks if not c.passed] == []


def test_the_parity_stage_fails_on_a_wrong_recording(goldens25: Path, tmp_path: Path) -> None:
    """A changed golden field is reported as a failed check naming the field."""
    copy = tmp_path / "goldens"
    (copy / "inputs").mkdir(parents=True)
    (copy / "checkpoint").symlink_to(goldens25 / "checkpoint")
    recorded = json.loads((goldens25 / "text.json").read_text(encoding="utf-8"))
    recorded["items"] = recorded["items"][:1]
    recorded["items"][0]["tn_on"]["budget_16"]["budget_token_len_calls"] += 1
    (copy / "text.json").write_text(json.dumps(recorded, ensure_ascii=False), encoding="utf-8")
    failed = [c for c in text_stage.run(GoldenSet(copy)) if not c.passed]
    assert [c.item for c in failed] == [f"{recorded['items'][0]['id']}.tn_on.budget_16"]
    assert "budget_token_len_calls" in failed[0].note
