"""The text front end against the official outputs recorded in the goldens (text.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from indextts2.parity.stages import text as text_stage
from indextts2.text import TextFrontend

pytestmark = pytest.mark.goldens


def _golden_items() -> list[dict]:
    configured = os.environ.get("INDEXTTS2_GOLDENS")
    root = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "goldens"
    file = root / "text.json"
    return json.loads(file.read_text(encoding="utf-8"))["items"] if file.is_file() else []


ITEMS = _golden_items()


@pytest.fixture(scope="module")
def frontend(goldens: Path) -> TextFrontend:
    return TextFrontend.from_model(goldens / "checkpoint", normalization="official")


def test_every_input_string_has_a_golden(goldens: Path) -> None:
    recorded = json.loads((goldens / "text.json").read_text(encoding="utf-8"))["items"]
    inputs = json.loads((goldens / "inputs" / "texts.json").read_text(encoding="utf-8"))
    assert [(i["id"], i["text"]) for i in inputs] == [(i["id"], i["text"]) for i in recorded]
    assert len(recorded) >= 60


@pytest.mark.parametrize("item", ITEMS, ids=[item["id"] for item in ITEMS])
def test_front_end_matches_the_official_outputs(frontend: TextFrontend, item: dict) -> None:
    analysis = frontend.analyze(item["text"], allow_empty=True)
    assert analysis.normalized == item["normalized"]
    assert analysis.sp_input == item["sp_input"]
    assert list(analysis.tokens) == item["tokens"]
    assert list(analysis.ids) == item["ids"]
    assert sum(1 for i in analysis.ids if i == analysis.unk_id) == item["unk_count"]
    for limit in (120, 24):
        segments = analysis.segments(limit)
        assert [list(s.tokens) for s in segments] == item[f"segments_{limit}"]
        assert [list(s.ids) for s in segments] == item[f"segments_{limit}_ids"]


def test_the_tokenize_method_is_the_official_one(frontend: TextFrontend) -> None:
    for item in ITEMS:
        assert frontend.tokenize(item["text"]) == item["tokens"]


def test_the_parity_stage_passes_every_check(golden_set) -> None:
    checks = text_stage.run(golden_set)
    assert len(checks) == 8 * len(ITEMS)
    assert [c.item for c in checks if not c.passed] == []
