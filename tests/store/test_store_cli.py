"""The `indextts2 models` commands, end to end against the fake hub."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakehub import MODEL, FakeHub, write_checkpoints
from typer.testing import CliRunner

from indextts2.cli import app
from indextts2.cli import models as models_cli
from indextts2.store import ModelFiles

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def run(*args: str, input: str | None = None):
    return runner.invoke(app, ["models", *args], env=WIDE, input=input)


def test_help_teaches_the_air_gapped_workflow() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for text in (
        "air-gapped",
        "models export indextts2-model.tar",
        "models import indextts2-model.tar",
        "HF_ENDPOINT",
        "INDEXTTS2_OFFLINE",
    ):
        assert text in result.output, text
    for command in ("download", "list", "verify", "path", "import", "export", "rm"):
        assert command in result.output


def test_download_asks_for_the_licence_then_remembers_it(hub: FakeHub, cache: Path) -> None:
    refused = run("download", MODEL, "--cache-dir", str(cache))
    assert refused.exit_code == 2
    assert "index-tts/index-tts/blob/main/LICENSE" in refused.output
    assert "--accept-license" in refused.output
    assert "Traceback" not in refused.output

    accepted = run("download", MODEL, "--cache-dir", str(cache), "--accept-license")
    assert accepted.exit_code == 0, accepted.output
    model_dir = Path(accepted.stdout.strip().splitlines()[-1])
    assert (model_dir / "gpt.pth").is_file()
    assert "Downloading 17 file(s)" in accepted.output

    again = run("download", MODEL, "--cache-dir", str(cache))
    assert again.exit_code == 0
    assert Path(again.stdout.strip().splitlines()[-1]) == model_dir


def test_download_asks_on_a_terminal(hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models_cli, "_stdin_is_tty", lambda: True)
    declined = run("download", MODEL, "--cache-dir", str(cache), input="n\n")
    assert declined.exit_code == 2
    assert hub.requests == []
    accepted = run("download", MODEL, "--cache-dir", str(cache), input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "bilibili Model Use License Agreement" in accepted.output


def test_download_offline_names_the_missing_files(hub: FakeHub, cache: Path) -> None:
    result = run("download", MODEL, "--offline", "--cache-dir", str(cache))
    assert result.exit_code == 2
    assert "is missing 14 file(s)" in result.output
    assert "IndexTeam/IndexTTS-2/gpt.pth" in result.output
    assert "nvidia/bigvgan_v2_22khz_80band_256x/bigvgan_generator.pt" in result.output  # the 14th: all named
    assert "models import" in result.output
    assert hub.requests == []


def test_download_through_an_endpoint_flag(
    hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # wrong: the flag wins
    result = run("download", MODEL, "--cache-dir", str(cache), "--accept-license", "--endpoint", hub.url)
    assert result.exit_code == 0, result.output


def test_list_path_and_verify(downloaded: ModelFiles, cache: Path) -> None:
    listed = run("list", "--cache-dir", str(cache))
    assert listed.exit_code == 0
    assert "IndexTeam/IndexTTS-2" in listed.stdout
    assert "complete" in listed.stdout

    path = run("path", MODEL, "--cache-dir", str(cache))
    assert path.exit_code == 0
    assert path.stdout.strip() == str(downloaded.root)

    verified = run("verify", MODEL, "--cache-dir", str(cache))
    assert verified.exit_code == 0
    assert "all 17 files intact" in verified.stdout

    blob = downloaded.emotion_matrix
    data = bytearray(blob.resolve().read_bytes())
    data[5] ^= 0x80
    blob.resolve().write_bytes(bytes(data))
    damaged = run("verify", MODEL, "--cache-dir", str(cache))
    assert damaged.exit_code == 1
    assert "IndexTeam/IndexTTS-2/feat2.pt" in damaged.stdout
    assert "damaged" in damaged.stdout


def test_the_cache_dir_comes_from_indextts2_home(
    downloaded: ModelFiles, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INDEXTTS2_HOME", str(cache))
    result = run("path", MODEL)
    assert result.exit_code == 0
    assert result.stdout.strip() == str(downloaded.root)


def test_path_of_a_model_not_in_the_cache(cache: Path) -> None:
    result = run("path", MODEL, "--cache-dir", str(cache))
    assert result.exit_code == 2
    assert "missing" in result.output


def test_export_then_import_on_another_machine(downloaded: ModelFiles, cache: Path, tmp_path: Path) -> None:
    archive = tmp_path / "indextts2-model.tar"
    exported = run("export", str(archive), "--model", MODEL, "--cache-dir", str(cache))
    assert exported.exit_code == 0, exported.output
    other = tmp_path / "air-gapped"
    imported = run("import", str(archive), "--cache-dir", str(other))
    assert imported.exit_code == 0, imported.output
    assert run("verify", MODEL, "--cache-dir", str(other)).exit_code == 0
    assert run("path", MODEL, "--cache-dir", str(other)).exit_code == 0


def test_import_a_directory_and_a_refused_archive(tmp_path: Path) -> None:
    source = write_checkpoints(tmp_path / "ckpt")
    cache = tmp_path / "cache"
    assert run("import", str(source), "--cache-dir", str(cache), "--link").exit_code == 0
    bad = run("import", str(tmp_path / "missing.tar"), "--cache-dir", str(cache))
    assert bad.exit_code == 2
    assert bad.output.startswith("error:")


def test_rm_dry_run_refusal_and_yes(downloaded: ModelFiles, cache: Path) -> None:
    # every file of the model's view is one stored blob; removing the model frees all of them
    blobs = {path.resolve() for path in downloaded.root.rglob("*") if path.is_file()}
    expected = models_cli._size(sum(blob.stat().st_size for blob in blobs))
    dry = run("rm", "IndexTeam/IndexTTS-2", "--dry-run", "--cache-dir", str(cache))
    assert dry.exit_code == 0
    assert f"would free {expected}" in dry.stdout
    assert downloaded.gpt.is_file()

    refused = run("rm", "IndexTeam/IndexTTS-2", "--cache-dir", str(cache))
    assert refused.exit_code == 2
    assert "--yes" in refused.output
    assert downloaded.gpt.is_file()

    done = run("rm", "IndexTeam/IndexTTS-2", "--yes", "--cache-dir", str(cache))
    assert done.exit_code == 0
    assert f"freed {expected}" in done.stdout
    assert not downloaded.gpt.exists()
    assert "nothing of" in run("rm", "IndexTeam/IndexTTS-2", "--yes", "--cache-dir", str(cache)).output


def test_rm_confirms_on_a_terminal(
    downloaded: ModelFiles, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models_cli, "_stdin_is_tty", lambda: True)
    kept = run("rm", "--all", "--cache-dir", str(cache), input="n\n")
    assert kept.exit_code == 1
    assert downloaded.gpt.is_file()
    gone = run("rm", "--all", "--cache-dir", str(cache), input="y\n")
    assert gone.exit_code == 0
    assert not downloaded.gpt.exists()


def test_rm_needs_a_model_or_all(cache: Path) -> None:
    assert run("rm", "--cache-dir", str(cache)).exit_code == 2
    assert run("rm", "IndexTeam/IndexTTS-2", "--all", "--cache-dir", str(cache)).exit_code == 2


def test_an_unknown_model_is_one_line(cache: Path) -> None:
    result = run("verify", "someone/else", "--cache-dir", str(cache))
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: unknown model 'someone/else'")


def test_list_names_what_is_missing(downloaded: ModelFiles, cache: Path) -> None:
    downloaded.campplus.resolve().unlink()
    result = run("list", "--cache-dir", str(cache))
    assert result.exit_code == 0
    assert "1 file(s) missing" in result.stdout
    assert "funasr/campplus/campplus_cn_common.bin" in result.stdout


def test_verify_of_a_model_never_downloaded_says_how_to_get_it(cache: Path) -> None:
    result = run("verify", MODEL, "--cache-dir", str(cache))
    assert result.exit_code == 1
    assert "indextts2 models download" in result.output


def test_a_bad_endpoint_is_one_line(cache: Path) -> None:
    result = run(
        "download", MODEL, "--accept-license", "--endpoint", "hf-mirror.com", "--cache-dir", str(cache)
    )
    assert result.exit_code == 2
    assert "not an http(s) URL" in result.output
