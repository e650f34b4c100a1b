// The indextts2 web page: plain JavaScript, no build step.
// Streamed playback: the server sends a WAV stream (header, then 16-bit PCM as it is made); each block is
// decoded here and scheduled on the Web Audio clock, routed into the <audio> element through a
// MediaStream. When the stream ends, the element gets the whole file (replay, seek, download).
"use strict";

const $ = (id) => document.getElementById(id);
const WAV_HEADER_BYTES = 44;
const state = {
  info: null, reference: null, referenceName: "reference.wav", controller: null, blobUrl: null,
  checkedError: false,  // the status shows a check of the form that failed: re-checked on every edit
  voices: [],
};

// ---- talking to the server

function authHeaders() {
  const key = $("api-key").value.trim();
  const info = state.info || {};
  if (info.auth_required && !info.basic_auth && key) return { Authorization: `Bearer ${key}` };
  return {};
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch (_) { /* not JSON: keep the status line */ }
  const retry = response.headers.get("Retry-After");
  if (response.status === 429 && retry) message += ` (try again in ${retry} s)`;
  return new Error(message);
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!response.ok) throw await errorFrom(response);
  return response;
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
  state.checkedError = false;
}

// A failed check of the form stays only as long as its cause: every edit checks again, and the
// message goes (or changes) as soon as the form is fixed.
function recheck() {
  if (!state.checkedError) return;
  const format = $("format").value;
  try {
    buildForm(format, format === "wav");
    setStatus("");
  } catch (error) {
    setStatus(error.message, true);
    state.checkedError = true;
  }
}

// ---- setup

async function init() {
  try {
    state.info = await (await fetch("/v1/info")).json();
  } catch (error) {
    $("server-status").textContent = "server unreachable";
    return;
  }
  const info = state.info;
  const models = info.models && info.models.length ? info.models : [{ id: info.model, family: info.family }];
  const names = models.map((m) => `${m.id}${m.family ? ` (${m.family.name})` : ""}`).join(", ");
  $("server-status").textContent = `${names} · ${info.ready ? "ready" : "loading…"} · v${info.version}`;
  $("key-section").hidden = !(info.auth_required && !info.basic_auth);
  $("api-key").value = localStorage.getItem("indextts2.key") || "";
  let keyTimer = null;
  const keyChanged = () => {
    // a typed key is tried at once: the voice list (and its error) follows it
    localStorage.setItem("indextts2.key", $("api-key").value.trim());
    clearTimeout(keyTimer);
    keyTimer = setTimeout(() => loadVoices($("voice-select").value), 300);
  };
  $("api-key").addEventListener("input", keyChanged);
  $("api-key").addEventListener("change", keyChanged);
  buildSliders(info.emotions || []);
  buildModels(info.models || []);
  $("text").maxLength = info.max_text_chars;
  const count = () => { $("text-count").textContent = `${$("text").value.length} / ${info.max_text_chars}`; };
  $("text").addEventListener("input", count);
  count();
  await loadVoices();
}

function buildSliders(emotions) {
  const pane = $("emotion-vector");
  pane.innerHTML = "";
  for (const name of emotions) {
    const label = document.createElement("label");
    label.textContent = name;
    label.htmlFor = `emotion-${name}`;
    const slider = Object.assign(document.createElement("input"), {
      type: "range", min: 0, max: 1, step: 0.05, value: 0, id: `emotion-${name}`,
    });
    slider.dataset.emotion = name;
    const value = document.createElement("output");
    value.textContent = "0.00";
    slider.addEventListener("input", () => { value.textContent = Number(slider.value).toFixed(2); });
    pane.append(label, slider, value);
  }
}

// ---- which model (a server may hold several), and what it takes: a language choice and a duration
// factor, only where its family has them

const LANGUAGE_NAMES = { zh: "Chinese", en: "English", ja: "Japanese", es: "Spanish", ar: "Arabic" };

function buildModels(models) {
  const select = $("model");
  select.innerHTML = "";
  for (const model of models) {
    const family = model.family ? ` (${model.family.name})` : "";
    select.append(new Option(`${model.id}${family}`, model.id, false, model.default));
  }
  $("model-row").hidden = models.length < 2;
  applyFamily(currentFamily());
}

function chosenModel() {
  return $("model-row").hidden ? null : $("model").value;
}

function currentFamily() {
  const model = (state.info.models || []).find((m) => m.id === $("model").value);
  return model ? model.family : state.info.family;
}

function applyFamily(family) {
  const languages = (family && family.languages) || [];
  const select = $("language");
  const chosen = select.value;
  select.innerHTML = "";
  select.append(new Option("auto (from the text)", ""));
  for (const code of languages) {
    const label = LANGUAGE_NAMES[code] ? `${LANGUAGE_NAMES[code]} (${code})` : code;
    select.append(new Option(label, code, false, code === chosen));
  }
  $("language-row").hidden = !languages.length;
  const duration = family && family.duration;
  if (duration) Object.assign($("duration"), { min: duration[0], max: duration[1] });
  $("duration-row").hidden = !duration;
  $("speech-section").hidden = $("model-row").hidden && $("language-row").hidden && $("duration-row").hidden;
}

async function loadVoices(selectId) {
  const select = $("voice-select");
  const problem = $("voice-problem");
  let voices;
  try {
    voices = (await (await api("/v1/voices")).json()).data;
  } catch (error) {
    // the option stays short (a select is as wide as its longest option); the reason wraps below it
    select.innerHTML = "";
    const keyProblem = /API key/i.test(error.message);
    select.append(new Option(keyProblem ? "(needs an API key)" : "(cannot list voices)", ""));
    const askForKey = keyProblem && !$("key-section").hidden && !$("api-key").value.trim();
    problem.textContent = askForKey ? "Enter this server's API key above to see its voices." : error.message;
    problem.hidden = false;
    state.voices = [];
    updateDelete();
    return;
  }
  problem.hidden = true;
  problem.textContent = "";
  state.voices = voices;
  select.innerHTML = "";
  if (!voices.length) select.append(new Option("(no saved voices yet)", ""));
  for (const voice of voices) {
    const names = [voice.name, ...(voice.aliases || [])].filter(Boolean);
    const label = `${names.join(", ") || voice.id.slice(0, 12)} · ${voice.duration.toFixed(1)} s${voice.builtin ? " · built in" : ""}`;
    select.append(new Option(label, voice.id, false, voice.id === selectId));
  }
  if (!voices.length && currentVoiceMode() === "saved") setVoiceMode("upload");
  updateDelete();
  recheck();
}

function updateDelete() {
  const voice = state.voices.find((v) => v.id === $("voice-select").value);
  $("voice-delete").disabled = !voice || voice.builtin;
}

// ---- voice: saved, uploaded or recorded

function currentVoiceMode() {
  return document.querySelector("input[name=voice-mode]:checked").value;
}

function setVoiceMode(mode) {
  document.querySelector(`input[name=voice-mode][value=${mode}]`).checked = true;
  $("voice-saved").hidden = mode !== "saved";
  $("voice-new").hidden = mode === "saved";
  $("upload-controls").hidden = mode !== "upload";
  $("record-controls").hidden = mode !== "record";
}

function updateConsent() {
  const consent = $("consent").checked;
  $("reference-file").disabled = !consent;
  $("record").disabled = !consent;
  $("voice-save").disabled = !(consent && state.reference);
}

function useReference(blob, name) {
  state.reference = blob;
  state.referenceName = name;
  updateConsent();
}

function encodeWav(samples, rate) {
  const buffer = new ArrayBuffer(WAV_HEADER_BYTES + samples.length * 2);
  const view = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(WAV_HEADER_BYTES + i * 2, Math.round(s * 32767), true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

let recorder = null;
async function toggleRecording() {
  if (recorder) { recorder.stop(); return; }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    $("record-status").textContent = `no microphone: ${error.message}`;
    return;
  }
  const pieces = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => pieces.push(event.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    recorder = null;
    $("record").textContent = "● Record";
    // Browsers record webm/ogg; the server reads wav, so decode here and send 16-bit WAV.
    const context = new AudioContext();
    try {
      const decoded = await context.decodeAudioData(await new Blob(pieces).arrayBuffer());
      useReference(encodeWav(decoded.getChannelData(0), decoded.sampleRate), "recording.wav");
      $("record-status").textContent = `recorded ${decoded.duration.toFixed(1)} s`;
    } catch (error) {
      $("record-status").textContent = `cannot read the recording: ${error.message}`;
    } finally {
      context.close();
    }
  };
  recorder.start();
  $("record").textContent = "■ Stop recording";
  $("record-status").textContent = "recording…";
}

async function saveVoice() {
  if (!$("consent").checked || !state.reference) return;
  const form = new FormData();
  form.append("reference", state.reference, state.referenceName);
  form.append("consent", "true");
  const name = $("voice-name").value.trim();
  if (name) form.append("name", name);
  if (chosenModel()) form.append("model", chosenModel());
  setStatus("saving the voice…");
  try {
    const response = await api("/v1/voices", { method: "POST", body: form });
    const voice = await response.json();
    await loadVoices(voice.id);
    setVoiceMode("saved");
    const shown = name || voice.name || voice.id.slice(0, 12);
    // 200: this clip was saved before; a new name was added to its names
    const again = response.status === 200 ? ` (saved before as ${voice.name || voice.id.slice(0, 12)})` : "";
    setStatus(`saved voice ${shown}${again}`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function deleteVoice() {
  const id = $("voice-select").value;
  if (!id || !confirm("Delete this voice from the server?")) return;
  try {
    await api(`/v1/voices/${encodeURIComponent(id)}`, { method: "DELETE" });
    await loadVoices();
  } catch (error) {
    setStatus(error.message, true);
  }
}

// ---- the request

function buildForm(format, stream) {
  if (!$("text").value.trim()) throw new Error("type some text to speak first");
  const form = new FormData();
  form.append("text", $("text").value);
  if (currentVoiceMode() === "saved") {
    if (!$("voice-select").value) {
      throw new Error($("voice-problem").hidden ? "pick a saved voice, or upload or record one" : $("voice-problem").textContent);
    }
    form.append("voice", $("voice-select").value);
  } else {
    if (!$("consent").checked) throw new Error("tick the consent box before using an uploaded voice");
    if (!state.reference) throw new Error("choose or record a reference clip first");
    form.append("reference", state.reference, state.referenceName);
    form.append("consent", "true");
  }
  const mode = $("emotion-mode").value;
  if (mode === "audio") {
    const file = $("emotion-file").files[0];
    if (!file) throw new Error("choose an emotion clip, or set the emotion to None");
    form.append("emotion_audio", file, file.name);
  } else if (mode === "vector") {
    const weights = {};
    for (const slider of document.querySelectorAll("#emotion-vector input")) {
      weights[slider.dataset.emotion] = Number(slider.value);
    }
    form.append("emotion_weights", JSON.stringify(weights));
  } else if (mode === "text") {
    if (!$("emotion-text").value.trim()) throw new Error("describe the emotion, or set it to None");
    form.append("emotion_text", $("emotion-text").value.trim());
  }
  if (mode === "audio" || mode === "vector") form.append("emotion_alpha", $("emotion-alpha").value);
  if (chosenModel()) form.append("model", chosenModel());
  if (!$("language-row").hidden && $("language").value) form.append("language", $("language").value);
  if (!$("duration-row").hidden && Number($("duration").value) !== 1) form.append("duration", $("duration").value);
  form.append("format", format);
  form.append("stream", stream ? "true" : "false");
  return form;
}

function resetPlayer() {
  const player = $("player");
  player.pause();
  player.srcObject = null;
  player.removeAttribute("src");
  Object.assign(player.dataset, { state: "waiting", bytes: "0", seconds: "0" });
  if (state.blobUrl) URL.revokeObjectURL(state.blobUrl);
  state.blobUrl = null;
  $("download").hidden = true;
}

function offerFile(blob, format) {
  state.blobUrl = URL.createObjectURL(blob);
  const link = $("download");
  link.href = state.blobUrl;
  link.download = `speech.${format}`;
  link.hidden = false;
}

async function generate() {
  const format = $("format").value;
  const stream = format === "wav";
  let form;
  try {
    form = buildForm(format, stream);
  } catch (error) {
    setStatus(error.message, true);
    state.checkedError = true;
    return;
  }
  resetPlayer();
  // Created inside the click, so that the browser lets it play.
  const context = stream ? new AudioContext() : null;
  state.controller = new AbortController();
  $("generate").disabled = true;
  $("stop").disabled = false;
  setStatus("waiting for the server…");
  const started = performance.now();
  try {
    const response = await api("/v1/tts", { method: "POST", body: form, signal: state.controller.signal });
    if (stream) {
      await playStream(response, context, started);
    } else {
      const blob = await response.blob();
      offerFile(blob, format);
      const player = $("player");
      player.src = state.blobUrl;
      Object.assign(player.dataset, { state: "done", bytes: String(blob.size) });
      player.play().catch(() => {});
      setStatus(`${(blob.size / 1024).toFixed(0)} kB in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
  } catch (error) {
    $("player").dataset.state = "error";
    setStatus(error.name === "AbortError" ? "stopped" : error.message, error.name !== "AbortError");
    if (context) context.close();
  } finally {
    $("generate").disabled = false;
    $("stop").disabled = true;
    state.controller = null;
  }
}

async function playStream(response, context, started) {
  const player = $("player");
  const rate = Number(response.headers.get("X-Sample-Rate")) || 22050;
  const destination = context.createMediaStreamDestination();
  player.srcObject = destination.stream;
  player.play().catch(() => {});
  player.dataset.state = "streaming";
  const reader = response.body.getReader();
  const parts = [];
  let headerLeft = WAV_HEADER_BYTES;
  let carry = null;
  let bytes = 0;
  let seconds = 0;
  let playAt = context.currentTime + 0.15;
  let firstAudio = null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    bytes += value.length;
    let data = value;
    if (headerLeft > 0) {
      const skip = Math.min(headerLeft, data.length);
      headerLeft -= skip;
      data = data.subarray(skip);
    }
    if (carry) {
      const joined = new Uint8Array(carry.length + data.length);
      joined.set(carry);
      joined.set(data, carry.length);
      data = joined;
      carry = null;
    }
    if (data.length % 2) {
      carry = data.slice(data.length - 1);
      data = data.subarray(0, data.length - 1);
    }
    if (!data.length) continue;
    const pcm = new Int16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
    const buffer = context.createBuffer(1, pcm.length, rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(destination);
    playAt = Math.max(playAt, context.currentTime + 0.02);
    source.start(playAt);
    playAt += buffer.duration;
    seconds += buffer.duration;
    if (firstAudio === null) firstAudio = performance.now() - started;
    Object.assign(player.dataset, { bytes: String(bytes), seconds: seconds.toFixed(3) });
    setStatus(`playing… ${seconds.toFixed(1)} s received (first audio after ${(firstAudio / 1000).toFixed(2)} s)`);
  }
  // The whole file, with its real length in the header, for replay and download.
  const whole = new Uint8Array(bytes);
  let offset = 0;
  for (const part of parts) { whole.set(part, offset); offset += part.length; }
  if (whole.length >= WAV_HEADER_BYTES) {
    const view = new DataView(whole.buffer);
    view.setUint32(4, whole.length - 8, true);
    view.setUint32(40, whole.length - WAV_HEADER_BYTES, true);
  }
  offerFile(new Blob([whole], { type: "audio/wav" }), "wav");
  player.dataset.state = "done";
  setStatus(`${seconds.toFixed(1)} s of audio; first audio after ${((firstAudio || 0) / 1000).toFixed(2)} s`);
  const remaining = Math.max(0, playAt - context.currentTime);
  setTimeout(() => {
    if (player.srcObject !== destination.stream) return;
    player.srcObject = null;
    player.src = state.blobUrl;
    context.close();
  }, remaining * 1000 + 200);
}

// ---- wiring

document.querySelectorAll("input[name=voice-mode]").forEach((radio) =>
  radio.addEventListener("change", () => setVoiceMode(radio.value)));
$("consent").addEventListener("change", updateConsent);
$("reference-file").addEventListener("change", () => {
  const file = $("reference-file").files[0];
  if (file) useReference(file, file.name);
});
$("record").addEventListener("click", toggleRecording);
$("voice-save").addEventListener("click", saveVoice);
$("voice-refresh").addEventListener("click", () => loadVoices($("voice-select").value));
$("voice-delete").addEventListener("click", deleteVoice);
$("emotion-mode").addEventListener("change", () => {
  const mode = $("emotion-mode").value;
  $("emotion-audio").hidden = mode !== "audio";
  $("emotion-vector").hidden = mode !== "vector";
  $("emotion-text-pane").hidden = mode !== "text";
  $("emotion-alpha-row").hidden = !(mode === "audio" || mode === "vector");
});
$("emotion-alpha").addEventListener("input", () => {
  $("emotion-alpha-value").textContent = Number($("emotion-alpha").value).toFixed(2);
});
$("model").addEventListener("change", () => applyFamily(currentFamily()));
$("duration").addEventListener("input", () => {
  $("duration-value").textContent = Number($("duration").value).toFixed(2);
});
$("voice-select").addEventListener("change", updateDelete);
// every edit of the form checks a failed check again (see recheck)
document.querySelector("main").addEventListener("input", recheck);
document.querySelector("main").addEventListener("change", recheck);
$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => state.controller && state.controller.abort());
init();
