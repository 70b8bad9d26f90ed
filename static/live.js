// The Live view: the microphone through an AudioWorklet, 16 kHz PCM16 over
// OpenAI's Realtime protocol (/v1/realtime), and the text utterance by
// utterance with what each cost, and the session's totals; on stop, the
// session can be saved in the history (Sori's sori.session.save event).
import { t } from "./i18n.js";
import { $, el, fmt, fillMetrics, showError, errorMessage } from "./view.js";
import { request } from "./api.js";

/** The rate the page sends (Whisper's own; the server then resamples nothing). */
const RATE = 16000;
/** How long a stopped session waits for the text of its last utterances, ms. */
const DRAIN_MS = 15000;

/** The session under way: its socket and audio, its utterances by item id, and its totals. */
const live = {
  socket: null, audio: null, stream: null, items: new Map(), totals: null, waiting: 0, stopping: null, saving: false,
  saved: null, open: null,
};

/** Wires the view's buttons; `open(fileId)` shows a kept transcription. */
export function initLive(open) {
  live.open = open;
  $("live-start").addEventListener("click", start);
  $("live-stop").addEventListener("click", stop);
  $("live-open").addEventListener("click", () => live.open(live.saved));
}

/** Draws the view again (after the page's language changed). */
export function labelLive() {
  setStatus(live.socket ? (live.stopping ? "live_stopping" : "live_listening") : "live_idle");
  for (const item of live.items.values()) renderItem(item);
  renderTotals();
}

function setStatus(key) {
  $("live-status").dataset.state = key;
  $("live-status").textContent = t(key);
}

/** Opens the microphone and a session; the key is asked for first (a socket cannot show a 401). */
async function start() {
  const { status, body } = await request("/v1/models");
  if (status !== 200) return showError(errorMessage(body));
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  } catch {
    return showError(t("live_no_microphone"));
  }
  const audio = new AudioContext({ sampleRate: RATE });
  await audio.audioWorklet.addModule("/static/live-worklet.js");
  const chunks = new AudioWorkletNode(audio, "pcm16-chunks");
  audio.createMediaStreamSource(stream).connect(chunks);
  const key = localStorage.getItem("sori.key");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/realtime?intent=transcription`,
    key ? ["realtime", `openai-insecure-api-key.${key}`] : ["realtime"]);
  Object.assign(live, { socket, audio, stream, items: new Map(), totals: null, waiting: 0, stopping: null, saving: false, saved: null });
  $("live-items").replaceChildren();
  $("live-saved").hidden = true;
  renderTotals();
  socket.onopen = () => {
    const language = $("live-language").value;
    const transcription = { model: $("live-model").value || "whisper-1", ...(language !== "auto" ? { language } : {}) };
    socket.send(JSON.stringify({ type: "session.update", session: { type: "transcription", audio: { input: {
      format: { type: "audio/pcm", rate: RATE }, transcription,
      turn_detection: { type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 } } } } }));
    chunks.port.onmessage = (e) => {
      if (socket.readyState === WebSocket.OPEN && !live.stopping) {
        socket.send(JSON.stringify({ type: "input_audio_buffer.append", audio: base64(e.data) }));
      }
    };
  };
  socket.onmessage = (e) => onEvent(JSON.parse(e.data));
  socket.onclose = (e) => {
    if (!live.stopping && e.code !== 1000) showError(e.reason || t("live_closed"));
    release();
  };
  $("live-start").hidden = true;
  $("live-stop").hidden = false;
  setStatus("live_listening");
}

/** Stops the microphone, commits the speech under way and closes once its text is in. */
function stop() {
  if (!live.socket || live.stopping) return;
  live.stream.getTracks().forEach((track) => track.stop());
  live.audio.close();
  setStatus("live_stopping");
  live.stopping = setTimeout(() => live.socket?.close(1000), DRAIN_MS);
  live.socket.send(JSON.stringify({ type: "input_audio_buffer.commit" }));
  closeWhenDone();
}

/** Once a stopping session's text is all in: saves it when asked (and there is text), then closes. */
function closeWhenDone() {
  if (!live.stopping || live.waiting !== 0 || live.saving) return;
  // Commit's answer (an utterance, or "nothing to commit") comes before this runs.
  setTimeout(() => {
    if (live.waiting !== 0 || live.saving || !live.socket) return;
    const transcribed = [...live.items.values()].some((item) => item.state === "done");
    if ($("live-save").checked && transcribed && !live.saved) {
      live.saving = true;
      live.socket.send(JSON.stringify({ type: "sori.session.save" }));
    } else {
      live.socket.close(1000);
    }
  }, 300);
}

/** The session is saved (or could not be): say so, then close. */
function saveAnswered(fileId) {
  live.saving = false;
  live.saved = fileId;
  $("live-saved").hidden = !fileId;
  live.socket?.close(1000);
}

/** Ends the view's session (the socket closed). */
function release() {
  clearTimeout(live.stopping);
  live.stream?.getTracks().forEach((track) => track.stop());
  if (live.audio && live.audio.state !== "closed") live.audio.close();
  Object.assign(live, { socket: null, audio: null, stream: null, stopping: null });
  $("live-start").hidden = false;
  $("live-stop").hidden = true;
  setStatus("live_idle");
}

/** One server event. */
function onEvent(event) {
  switch (event.type) {
    case "input_audio_buffer.speech_started":
      addItem(event.item_id);
      break;
    case "input_audio_buffer.committed":
      addItem(event.item_id).state = "transcribing";
      live.waiting += 1;
      renderItem(live.items.get(event.item_id));
      break;
    case "conversation.item.input_audio_transcription.delta": {
      const item = addItem(event.item_id);
      item.text += event.delta;
      renderItem(item);
      break;
    }
    case "conversation.item.input_audio_transcription.completed": {
      const item = addItem(event.item_id);
      Object.assign(item, { text: event.transcript, state: "done", sori: event.sori });
      live.totals = event.sori.session;
      live.waiting -= 1;
      renderItem(item);
      renderTotals();
      closeWhenDone();
      break;
    }
    case "conversation.item.input_audio_transcription.failed": {
      const item = addItem(event.item_id);
      Object.assign(item, { state: "failed", error: event.error.message });
      live.waiting -= 1;
      renderItem(item);
      closeWhenDone();
      break;
    }
    case "sori.session.saved":
      saveAnswered(event.file_id);
      break;
    case "error":
      if (live.saving) {
        showError(event.error.message);
        saveAnswered(null);
        break;
      }
      // Stopping commits whatever is under way; with nothing under way, that is not news.
      if (!(live.stopping && event.error.code === "input_audio_buffer_commit_empty")) showError(event.error.message);
      closeWhenDone();
      break;
  }
}

/** The utterance `id`, added to the list when new. */
function addItem(id) {
  if (!live.items.has(id)) {
    const item = { id, text: "", state: "speaking", node: el("li", { class: "live-item" }) };
    live.items.set(id, item);
    $("live-items").append(item.node);
    renderItem(item);
  }
  return live.items.get(id);
}

function renderItem(item) {
  // An utterance without words (a cough, a door) says so, marked apart from text.
  const text = el("p", { class: item.text ? "live-text" : "live-text empty" }, item.text || t(`live_${item.state}`));
  const meta = el("p", { class: "meta live-meta" });
  if (item.state === "done") {
    const p = item.sori.performance;
    meta.textContent = [
      `${t("processing")} ${fmt.sec(p.processing_time_sec)}`,
      `${t("cpu_avg")} ${fmt.pct(p.cpu_percent_avg)}`,
      `${t("ram_peak")} ${fmt.mib(p.ram_mb_peak)}`,
      `${t("live_latency")} ${fmt.sec(item.sori.latency_sec)}`,
      `${t("audio")} ${fmt.sec((item.sori.audio_end_ms - item.sori.audio_start_ms) / 1000)}`,
    ].join(" · ");
  } else if (item.state === "failed") {
    meta.textContent = item.error;
  }
  item.node.dataset.state = item.state;
  item.node.replaceChildren(text, meta);
}

function renderTotals() {
  const totals = live.totals;
  $("live-totals").hidden = !totals;
  if (!totals) return;
  fillMetrics($("live-totals"), [
    ["live_utterances", String(totals.utterances)],
    ["total_audio", fmt.sec(totals.audio_sec)],
    ["total_processing", fmt.sec(totals.processing_time_sec)],
    ["live_cpu_time", fmt.sec(totals.cpu_sec)],
    ["ram_peak", fmt.mib(totals.ram_mb_peak)],
  ]);
}

/** An ArrayBuffer as base64. */
function base64(buffer) {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary);
}
