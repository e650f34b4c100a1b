"""The web page in headless Chromium (Debian's chromium, driven by Playwright) against a real server.

A person's path: tick the consent box, upload a reference, type, Generate; the audio element receives
a live stream, then the whole file. The screenshot is kept in ``artifacts/webpage.png``. On a phone
(390 px wide, as an iPhone 12 to 15 is) the page fits in every state, with and without keys, and a
first visit speaks at once in the sample voice (``artifacts/webpage-phone-*.png``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_helpers import ARTIFACTS, MODEL_ARGS, ServerProcess, tone

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


PHONE_WIDTH = 390


def _browser(tmp_path: Path, **screen: Any) -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile every time
            executable_path=_chromium(),
            headless=True,
            args=CHROMIUM_ARGS,
            **screen,
        )
        context.grant_permissions(["microphone"])
        # Every wait below ends as soon as the page gets there; this bound only ends a hang, and
        # leaves a busy machine (synthesis many times slower than idle) the time it needs.
        context.set_default_timeout(180_000)
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    yield from _browser(tmp_path, viewport={"width": 1000, "height": 1200})


@pytest.fixture
def phone_page(tmp_path: Path) -> Iterator[Any]:
    """A phone's screen: 390 CSS px wide, the page laid out for it (the viewport meta tag honoured)."""
    yield from _browser(
        tmp_path,
        viewport={"width": PHONE_WIDTH, "height": 844},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
    )


def assert_fits_the_phone(page: Any, state: str) -> None:
    """No horizontal scroll: nothing is wider than the screen (else a phone zooms the page out)."""
    widths = page.evaluate(
        """() => ({ document: document.documentElement.scrollWidth, body: document.body.scrollWidth,
                    viewport: window.innerWidth })"""
    )
    assert widths["viewport"] == PHONE_WIDTH, (state, widths)
    assert widths["document"] <= PHONE_WIDTH, (state, widths)
    assert widths["body"] <= PHONE_WIDTH, (state, widths)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"webpage-phone-{state}.png"), full_page=True)


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

    # the upload stays locked until consent is given
    page.check("input[name=voice-mode][value=upload]")
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
    # IndexTTS-2 takes no language and has no duration factor: the page offers neither
    assert page.is_hidden("#speech-section")
    assert page.is_hidden("#language-row")
    assert page.is_hidden("#duration-row")
    page.check("input[name=voice-mode][value=upload]")
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
    assert [(v["name"], v["builtin"]) for v in voices] == [("sample", True), ("my-recording", False)]
    assert voices[1]["filename"] == "recording.wav"
    assert voices[1]["duration"] > 1.0


# ---------------------------------------------------------------------------------------------- a phone


def test_a_first_visit_on_a_phone_speaks_in_the_sample_voice(
    start_server: Callable[..., ServerProcess], phone_page: Any
) -> None:
    server = start_server()
    page = phone_page
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('server-status').textContent.includes('ready')")
    page.wait_for_function("document.getElementById('voice-select').value !== ''")
    assert page.is_checked("input[name=voice-mode][value=saved]")
    assert page.inner_text("#voice-select").startswith("sample · 5.8 s · built in")
    assert page.is_disabled("#voice-delete")  # a built-in voice cannot be deleted
    assert page.is_hidden("#key-section")
    assert_fits_the_phone(page, "first-visit")

    # a check that failed goes away as soon as its cause is fixed, without another click
    page.click("#generate")
    assert page.inner_text("#status") == "type some text to speak first"
    assert_fits_the_phone(page, "error")
    page.type("#text", "Hello from a phone.")
    page.wait_for_function("document.getElementById('status').textContent === ''")
    assert not page.eval_on_selector("#status", "s => s.classList.contains('error')")

    page.click("#generate")
    page.wait_for_function("document.getElementById('player').dataset.state === 'done'", timeout=60_000)
    # the test server caps every segment at 20 codes (server_helpers.MODEL_ARGS): 0.39 s
    assert float(page.eval_on_selector("#player", "p => p.dataset.seconds")) > 0.3
    assert "first audio after" in page.inner_text("#status")
    assert_fits_the_phone(page, "spoken")


def test_a_phone_on_a_server_with_keys_fits_before_and_after_the_key(
    start_server: Callable[..., ServerProcess], phone_page: Any
) -> None:
    server = start_server("--api-key", "page-key")
    page = phone_page
    page.goto(server.url + "/")
    page.wait_for_function("!document.getElementById('key-section').hidden")
    page.wait_for_function("!document.getElementById('voice-problem').hidden")
    # the list says what is missing in a few words; the reason wraps below it instead of widening it
    assert page.inner_text("#voice-select") == "(needs an API key)"
    assert page.inner_text("#voice-problem") == "Enter this server's API key above to see its voices."
    assert_fits_the_phone(page, "keys-before")

    page.fill("#text", "Hello.")
    page.click("#generate")
    assert page.inner_text("#status") == "Enter this server's API key above to see its voices."
    assert_fits_the_phone(page, "keys-error")

    page.type("#api-key", "wrong-key")  # the list follows what is typed, no Refresh needed
    page.wait_for_function("document.getElementById('voice-problem').textContent.includes('not valid')")
    assert_fits_the_phone(page, "keys-wrong")

    page.fill("#api-key", "")
    page.type("#api-key", "page-key")
    page.wait_for_function("document.getElementById('voice-select').textContent.includes('sample')")
    assert page.is_hidden("#voice-problem")
    page.wait_for_function("document.getElementById('status').textContent === ''")  # the error went too
    assert_fits_the_phone(page, "keys-after")

    page.click("#generate")
    page.wait_for_function("document.getElementById('player').dataset.state === 'done'", timeout=60_000)
    assert_fits_the_phone(page, "keys-spoken")


def test_an_indextts_2_5_server_offers_its_languages_and_duration(tmp_path: Path, phone_page: Any) -> None:
    """The page learns the family from /v1/info: a language choice and the duration factor appear, and
    what is chosen goes out with the request (a phone, so that they must fit its screen too)."""
    server = ServerProcess(tmp_path, [], model_args=["--model", "dummy:tiny-2.5", *MODEL_ARGS[2:]])
    try:
        server.wait_ready()
        page = phone_page
        page.goto(server.url + "/")
        page.wait_for_function("document.getElementById('server-status').textContent.includes('ready')")
        page.wait_for_function("document.getElementById('voice-select').value !== ''")
        assert "dummy:tiny-2.5 (IndexTTS-2.5)" in page.inner_text("#server-status")
        assert page.is_visible("#language-row")
        assert page.is_visible("#duration-row")
        choices = page.eval_on_selector_all("#language option", "os => os.map(o => [o.value, o.textContent])")
        assert choices == [
            ["", "auto (from the text)"],
            ["zh", "Chinese (zh)"],
            ["en", "English (en)"],
            ["ja", "Japanese (ja)"],
            ["es", "Spanish (es)"],
            ["ar", "Arabic (ar)"],
        ]
        assert_fits_the_phone(page, "indextts-2.5")

        page.fill("#text", "こんにちは")
        page.select_option("#language", "ja")
        page.eval_on_selector("#duration", "s => { s.value = '1.5'; s.dispatchEvent(new Event('input')); }")
        assert page.inner_text("#duration-value") == "1.50"
        with page.expect_request("**/v1/tts") as sent:
            page.click("#generate")
        body = sent.value.post_data_buffer.decode("utf-8", errors="replace")
        assert 'name="language"\r\n\r\nja\r\n' in body
        assert 'name="duration"\r\n\r\n1.5\r\n' in body
        page.wait_for_function("document.getElementById('player').dataset.state === 'done'", timeout=60_000)
        assert float(page.eval_on_selector("#player", "p => p.dataset.seconds")) > 0.3

        # auto and 1.00 send nothing: the model detects the language, at its own pace
        page.select_option("#language", "")
        page.eval_on_selector("#duration", "s => { s.value = '1'; s.dispatchEvent(new Event('input')); }")
        with page.expect_request("**/v1/tts") as sent:
            page.click("#generate")
        body = sent.value.post_data_buffer.decode("utf-8", errors="replace")
        assert 'name="language"' not in body
        assert 'name="duration"' not in body
        page.wait_for_function("document.getElementById('player').dataset.state === 'done'", timeout=60_000)
    finally:
        server.kill()


def test_a_server_with_two_models_lets_the_page_choose(tmp_path: Path, browser_page: Any) -> None:
    """The model choice appears with a second model; the language and duration follow the chosen
    model's family, and the request names the model."""
    fast = MODEL_ARGS[MODEL_ARGS.index("--default-options") :]
    args = ["--model", "dummy:tiny@cpu", "--model", "dummy:tiny-2.5@cpu", *fast]
    server = ServerProcess(tmp_path, [], model_args=args)
    try:
        server.wait_ready()
        page = browser_page
        page.goto(server.url + "/")
        page.wait_for_function("document.getElementById('voice-select').value !== ''")
        assert "dummy:tiny (IndexTTS-2), dummy:tiny-2.5 (IndexTTS-2.5)" in page.inner_text("#server-status")
        choices = page.eval_on_selector_all("#model option", "os => os.map(o => [o.value, o.textContent])")
        assert choices == [
            ["dummy:tiny", "dummy:tiny (IndexTTS-2)"],
            ["dummy:tiny-2.5", "dummy:tiny-2.5 (IndexTTS-2.5)"],
        ]
        assert page.input_value("#model") == "dummy:tiny"  # the default
        assert page.is_hidden("#language-row")
        assert page.is_hidden("#duration-row")

        page.select_option("#model", "dummy:tiny-2.5")
        assert page.is_visible("#language-row")
        assert page.is_visible("#duration-row")
        page.fill("#text", "こんにちは")
        page.select_option("#language", "ja")
        with page.expect_request("**/v1/tts") as sent:
            page.click("#generate")
        body = sent.value.post_data_buffer.decode("utf-8", errors="replace")
        assert 'name="model"\r\n\r\ndummy:tiny-2.5\r\n' in body
        assert 'name="language"\r\n\r\nja\r\n' in body
        page.wait_for_function("document.getElementById('player').dataset.state === 'done'", timeout=60_000)

        page.select_option("#model", "dummy:tiny")
        assert page.is_hidden("#language-row")
        page.fill("#text", "Hello.")
        with page.expect_request("**/v1/tts") as sent:
            page.click("#generate")
        body = sent.value.post_data_buffer.decode("utf-8", errors="replace")
        assert 'name="model"\r\n\r\ndummy:tiny\r\n' in body
        assert 'name="language"' not in body
        page.wait_for_function("document.getElementById('player').dataset.state === 'done'", timeout=60_000)
        assert "error" not in page.eval_on_selector("#status", "s => s.className")
    finally:
        server.kill()
