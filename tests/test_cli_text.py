"""``indextts2 text``: the front end's steps on stdout, errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indextts2.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "400"}


def test_the_readme_example_reads_the_price_right() -> None:
    # No model: the normalised text alone (no weights, no bpe.model needed).
    result = runner.invoke(app, ["text", "今天是2026年11月24日，价格¥1,234.56"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert result.stdout == "今天是二零二六年十一月二十四日,价格一千二百三十四点五六元\n"
    assert "--model" in result.stderr


def test_official_shows_the_official_normalisation_misreading_included() -> None:
    result = runner.invoke(app, ["text", "今天是2026年11月24日，价格¥1,234.56", "--official"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert result.stdout == "今天是二零二六年十一月二十四日,价格一元,两百三十四点五六\n"  # "one yuan, 234.56"


@pytest.mark.goldens
def test_with_a_model_it_shows_tokens_and_segments(goldens: Path) -> None:
    checkpoint = str(goldens / "checkpoint")
    result = runner.invoke(
        app,
        ["text", "你好。今天天气不错，我们出去走走吧！Hello world.", "-m", checkpoint, "--max-tokens", "12"],
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert "你好.今天天气不错,我们出去走走吧!Hello world." in result.stdout
    assert "2 segment(s), at most 12 tokens each" in result.stdout
    assert "▁我 ▁们 ▁出 ▁去 ▁走 ▁走 ▁吧 ▁! HE LLO ▁WORLD ." in result.stdout


@pytest.mark.goldens
def test_json_output_for_scripts(goldens: Path) -> None:
    result = runner.invoke(
        app, ["text", "Hello, [world]!", "--model", str(goldens / "checkpoint" / "bpe.model"), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["normalized"] == "Hello, 'world'!"
    assert data["language"] == "en"
    assert [token for segment in data["segments"] for token in segment["tokens"]] == data["tokens"]
    assert len(data["ids"]) == len(data["tokens"])


@pytest.mark.goldens
def test_text_from_stdin(goldens: Path) -> None:
    result = runner.invoke(app, ["text", "-", "-m", str(goldens / "checkpoint"), "--json"], input="数到3\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["normalized"] == "数到三"


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_is_one_line_and_exit_2(text: str) -> None:
    result = runner.invoke(app, ["text", text])
    assert result.exit_code == 2
    assert "empty" in result.stderr
    assert "Traceback" not in result.output


def test_a_model_path_that_does_not_exist_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["text", "你好", "--model", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "no model directory" in result.stderr


def test_dummy_models_tokenize_with_their_bundled_vocabulary() -> None:
    result = runner.invoke(app, ["text", "你好。Hello!", "--model", "dummy:tiny", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["tokens"][:2] == ["▁你", "▁好"]
    assert data["segments"]


def test_a_store_model_that_is_not_downloaded_says_so_without_downloading() -> None:
    result = runner.invoke(app, ["text", "你好", "--model", "IndexTeam/IndexTTS-2"])
    assert result.exit_code == 2
    assert "missing" in result.stderr
    assert "indextts2 models download" in result.stderr


def test_rich_markup_in_the_text_is_printed_literally() -> None:
    result = runner.invoke(app, ["text", "[bold]hi[/bold] 3"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "'bold'hi'/bold' three" in result.stdout


@pytest.mark.goldens
def test_an_indextts25_model_shows_its_language_and_segments(goldens25: Path) -> None:
    checkpoint = str(goldens25 / "checkpoint")
    result = runner.invoke(app, ["text", "こんにちは", "--lang", "ja", "--model", checkpoint, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["language"], data["lang_id"], data["detected"]) == ("ja", 7, None)
    assert data["segments"][0]["ids"][:2] == [1315, 220]  # <|ja|>, space
    assert data["segments"][0]["tokens"][0] == "<|ja|>"


@pytest.mark.goldens
def test_an_indextts25_model_says_which_language_it_detected(goldens25: Path) -> None:
    result = runner.invoke(app, ["text", "¿Qué tal? 8:00", "-m", str(goldens25 / "checkpoint")], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "es (detected: Latin script with ñ, ¿ or ¡; --lang to choose)" in result.stdout
    assert "¿QUÉ TAL? 8,00" in result.stdout


@pytest.mark.goldens
def test_text_normalization_can_be_switched_off_for_indextts25(goldens25: Path) -> None:
    # The golden en_time string and its recorded official outputs.
    base = [
        "text",
        "See you at 8:00 AM, not 8:30.",
        "-l",
        "en",
        "-m",
        str(goldens25 / "checkpoint"),
        "--json",
    ]
    on = json.loads(runner.invoke(app, base).stdout)
    off = json.loads(runner.invoke(app, [*base, "--no-text-normalization"]).stdout)
    assert on["final_text"] == "see you at eight,zero am, not eight,thirty."
    assert off["final_text"] == "see you at 8,00 am, not 8,30."


@pytest.mark.goldens
def test_language_flags_on_indextts2_or_bad_codes_are_one_line_and_exit_2(
    goldens: Path, goldens25: Path
) -> None:
    result = runner.invoke(app, ["text", "hola", "--lang", "es", "-m", str(goldens / "checkpoint")])
    assert result.exit_code == 2
    assert "--lang applies to IndexTTS-2.5 models" in result.stderr
    result = runner.invoke(app, ["text", "hola", "--lang", "xx", "-m", str(goldens25 / "checkpoint")])
    assert result.exit_code == 2
    assert "unknown language 'xx': IndexTTS-2.5 speaks zh, en, ja, es, ar" in result.stderr
    assert "Traceback" not in result.output
