"""The web page in headless Chromium (Debian's chromium, driven by Playwright) against a real server.

A person's path: tick the consent box, upload a reference, type, Generate; the audio element receives
a live stream, then the whole file. The screenshot is kept in ``artifacts/webpage.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_helpers import ARTIFACTS, ServerProcess, tone

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# Chromium may not reach the network here; these flags stop its background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",  # a microphone that plays a beep
    "--use-fake-ui-for-media-stream",
]


def _chromium() -> str:
    path = os.environ.get("INDEXTTS2_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        message = "Chromium is missing (apt-get install chromium, or set INDEXTTS2_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile every time
            executable_path=_chromium(),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1000, "height": 1200},
        )
        context.grant_permissions(["microphone"])
        # Every wait below ends as soon as the page gets there; this bound only ends a hang, and
        # leaves a busy machine (synthesis many times slower than idle) the time it needs.
        context.set_default_timeout(180_000)
        try:
            yield context.new_page()
        finally:
            context.close()


def test_upload_with_consent_generate_and_hear_the_stream(
    start_server: Callable[..., ServerProcess], browser_page: Any, tmp_path: Path
) -> None:
    # 60 codes per segment: over a second of audio from the tiny model (the page sends no options)
    server = start_server("--default-options", '{"max_codes": 60, "diffusion_steps": 3, "num_beams": 1}')
    reference = tmp_path / "my-voice.wav"
    tone(1.5, frequency=240).save(reference)
    page = browser_page
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('server-status').textContent.includes('ready')")

    # no saved voices yet: the page offers the upload, which stays locked until consent is given
    assert page.is_checked("input[name=voice-mode][value=upload]")
    assert "permission" in page.inner_text("#consent-notice")
    assert page.is_disabled("#reference-file")
    page.check("#consent")
    assert page.is_enabled("#reference-file")
    page.set_input_files("#reference-file", str(reference))

    page.fill("#text", "Hello from the browser. The audio streams while it is made.")
    page.select_option("#emotion-mode", "vector")
    page.eval_on_selector("#emotion-happy", "s => { s.value = '0.6'; s.dispatchEvent(new Event('input')); }")
    page.click("#generate")
    page.wait_for_function(
        "['streaming', 'done', 'error'].includes(document.getElementById('player').dataset.state)"
    )
    live = page.evaluate(
        """() => { const p = document.getElementById('player');
                  return p.srcObject ? p.srcObject.getAudioTracks().length : 0; }"""
    )
    page.wait_for_function("document.getElementById('player').dataset.state === 'done'")
    player = page.eval_on_selector("#player", "p => ({...p.dataset})")
    assert live == 1 or player["state"] == "done"  # the element was fed a MediaStream with audio
    assert int(player["bytes"]) > 44 + 11025  # more than the header and a quarter second
    assert float(player["seconds"]) > 1.0
    assert "first audio after" in page.inner_text("#status")
    download = page.get_attribute("#download", "href")
    assert download is not None
    assert download.startswith("blob:")
    size = page.evaluate("async (url) => (await (await fetch(url)).blob()).size", download)
    assert size == int(player["bytes"])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "webpage.png"), full_page=True)

    # save the voice, then use it from the picker
    page.fill("#voice-name", "browser-voice")
    page.click("#voice-save")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('saved voice')")
    assert page.is_checked("input[name=voice-mode][value=saved]")
    assert "browser-voice" in page.inner_text("#voice-select")
    page.select_option("#format", "mp3")
    page.click("#generate")
    page.wait_for_function("document.getElementById('player').dataset.state === 'done'")
    page.wait_for_function("document.getElementById('player').duration > 0.5")


def test_bad_input_is_shown_on_the_page(
    start_server: Callable[..., ServerProcess], browser_page: Any
) -> None:
    server = start_server()
    page = browser_page
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('server-status').textContent.includes('ready')")
    page.click("#generate")
    assert "type some text" in page.inner_text("#status")
    page.fill("#text", "Hello.")
    page.click("#generate")
    assert "tick the consent box" in page.inner_text("#status")
    page.check("#consent")
    page.click("#generate")
    assert "choose or record a reference clip" in page.inner_text("#status")
    page.set_input_files(
        "#reference-file", files=[{"name": "x.wav", "mimeType": "audio/wav", "buffer": b"not audio at all"}]
    )
    page.click("#generate")
    page.wait_for_function("document.getElementById('status').classList.contains('error')")
    page.wait_for_function("document.getElementById('status').textContent.includes('cannot read audio')")


def test_the_page_asks_for_a_key_when_the_server_needs_one(
    start_server: Callable[..., ServerProcess], browser_page: Any
) -> None:
    server = start_server("--api-key", "page-key")
    page = browser_page
    page.goto(server.url + "/")
    page.wait_for_function("!document.getElementById('key-section').hidden")
    page.wait_for_function("document.getElementById('voice-select').textContent.includes('needs an API key')")
    page.fill("#api-key", "page-key")
    page.click("#voice-refresh")
    page.wait_for_function("document.getElementById('voice-select').textContent.includes('no saved voices')")


def test_record_with_the_microphone(start_server: Callable[..., ServerProcess], browser_page: Any) -> None:
    server = start_server()
    page = browser_page
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('server-status').textContent.includes('ready')")
    page.check("input[name=voice-mode][value=record]")
    assert page.is_disabled("#record")  # consent first
    page.check("#consent")
    page.click("#record")
    page.wait_for_function("document.getElementById('record-status').textContent === 'recording…'")
    page.wait_for_timeout(1500)
    page.click("#record")
    page.wait_for_function("document.getElementById('record-status').textContent.startsWith('recorded')")
    page.fill("#voice-name", "my-recording")
    page.click("#voice-save")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('saved voice')")
    voices = page.evaluate("async () => (await (await fetch('/v1/voices')).json()).data")
    assert [v["name"] for v in voices] == ["my-recording"]
    assert voices[0]["filename"] == "recording.wav"
    assert voices[0]["duration"] > 1.0
