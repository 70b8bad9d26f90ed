// Sori's web UI: single uploads with their performance panel, batches with a
// live table, a per-file modal and a batch summary, and the History view
// (history.js) that opens past ones in the same views.
import { t, LANGUAGES, switchLanguage, currentLanguage } from "./i18n.js";
import {
  $, el, fmt, eightFigures, rtfOf, scopeOf, fillMetrics, showError, showNotice, errorMessage, cellWith, openDialog,
} from "./view.js";
import { authHeaders, askKey, request, post, downloadButtons } from "./api.js";
import { samplesChart, perFileChart } from "./charts.js";
import { initHistory, labelHistory, loadHistory } from "./history.js";
import { initLive, labelLive } from "./live.js";

/**
 * What the page shows: the single result, the batch and its event stream
 * (`lost` while the server is away), the summary and its files' order.
 */
const state = { single: null, batch: null, events: null, lost: false, summary: null, sort: { key: null, descending: false } };

function applyLanguage() {
  document.documentElement.lang = currentLanguage();
  document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
  document.querySelectorAll("[data-i18n-label]").forEach((node) => { node.setAttribute("aria-label", t(node.dataset.i18nLabel)); });
  $("lang-switch").textContent = t("switch_to");
  document.querySelectorAll(".language-select").forEach((select) => {
    const chosen = select.value || "auto";
    select.replaceChildren(...LANGUAGES.map((code) => el("option", { value: code }, code === "auto" ? t("lang_auto") : code)));
    select.value = chosen;
  });
  labelHistory();
  labelLive();
  if (state.single) renderSingle(state.single);
  if (state.batch) renderBatch(state.batch);
}

function setProgress(prefix, fraction) {
  $(`${prefix}-progress`).hidden = false;
  const fill = $(`${prefix}-progress-fill`);
  if (fraction >= 1) {
    fill.classList.add("indeterminate");
    $(`${prefix}-progress-text`).textContent = t("transcribing");
  } else {
    fill.classList.remove("indeterminate");
    fill.style.width = `${Math.round(fraction * 100)}%`;
    $(`${prefix}-progress-text`).textContent = t("uploading", { pct: Math.round(fraction * 100) });
  }
}

// ---- single file ----

async function transcribeSingle(file) {
  showError("");
  $("single-result").hidden = true;
  const form = new FormData();
  form.append("file", file, file.name);
  const language = $("single-language").value;
  if (language && language !== "auto") form.append("language", language);
  if (!$("single-model-label").hidden) form.append("model", $("single-model").value);
  try {
    const { status, body } = await post("/transcribe", form, (f) => setProgress("single", f));
    if (status !== 200) throw new Error(errorMessage(body));
    state.single = body;
    renderSingle(body);
  } catch (e) {
    showError(e.message);
  } finally {
    $("single-progress").hidden = true;
  }
}

/** Opens a kept transcription (from History) in the single-file view. */
async function openTranscription(fileId) {
  const { status, body } = await request(`/files/${encodeURIComponent(fileId)}/json`);
  if (status !== 200) return showError(errorMessage(body));
  showError("");
  state.single = body;
  selectTab("single");
  renderSingle(body);
  $("single-filename").focus();
}

function renderSingle(r) {
  $("single-result").hidden = false;
  $("single-filename").textContent = r.filename;
  const utterances = r.live ? ` · ${t("live_utterances")} ${r.live.utterances}` : "";
  $("single-meta").textContent = `${r.language} · ${fmt.sec(r.audio_duration_sec)} · ${r.word_count} · ${r.model}${utterances}`;
  $("single-live-note").hidden = !r.live;
  $("single-text").textContent = r.text;
  $("single-segments").replaceChildren(...r.segments.map((s) => {
    const li = el("li");
    li.append(el("time", {}, `${fmt.clock(s.start)} – ${fmt.clock(s.end)}`), el("span", {}, s.text));
    return li;
  }));
  $("single-downloads").replaceChildren(...downloadButtons(r));
  const p = r.performance;
  fillMetrics($("single-metrics"), [...eightFigures(p), rtfOf(p), ["audio", fmt.sec(r.audio_duration_sec)], scopeOf(p)]);
  samplesChart($("single-chart"), p.samples || []);
}

/**
 * Offers the server's models (GET /v1/models, less OpenAI's alias) when it
 * has more than one; a server that wants a key first shows none until asked.
 */
async function loadModels() {
  let names;
  try {
    const response = await fetch("/v1/models", { headers: authHeaders() });
    if (!response.ok) return;
    names = (await response.json()).data.map((m) => m.id).filter((id) => id !== "whisper-1");
  } catch {
    return;
  }
  for (const view of ["single", "batch", "live"]) {
    $(`${view}-model`).replaceChildren(...names.map((name) => el("option", { value: name }, name)));
    $(`${view}-model-label`).hidden = names.length < 2;
  }
}

// ---- batch ----

async function startBatch(files) {
  showError("");
  if (state.events) state.events.abort();
  const form = new FormData();
  for (const file of files) form.append("file", file, file.name);
  const language = $("batch-language").value;
  if (language && language !== "auto") form.append("language", language);
  if (!$("batch-model-label").hidden) form.append("model", $("batch-model").value);
  try {
    const { status, body } = await post("/batch", form, (f) => setProgress("batch", Math.min(f, 0.999)));
    if (status !== 202) throw new Error(errorMessage(body));
    state.batch = body;
    renderBatch(body);
    follow(body.batch_id);
  } catch (e) {
    showError(e.message);
  } finally {
    $("batch-progress").hidden = true;
  }
}

/** Opens a batch (from History) in the batch view, following it live while it runs. */
async function openBatch(batchId) {
  if (state.events) state.events.abort();
  const { status, body } = await request(`/batch/${encodeURIComponent(batchId)}`);
  if (status !== 200) return showError(errorMessage(body));
  showError("");
  state.batch = body;
  selectTab("batch");
  renderBatch(body);
  $("batch-heading").focus();
  if (body.status !== "complete") follow(batchId);
}

/** Drops a deleted transcription or batch from the views that show it. */
function forget(id) {
  if (state.single?.file_id === id) {
    state.single = null;
    $("single-result").hidden = true;
  }
  if (state.batch?.batch_id === id) {
    state.events?.abort();
    state.batch = null;
    $("batch-area").hidden = true;
  }
}

const RECONNECT_MS = [1000, 2000, 3000, 5000];

/**
 * Live updates over Server-Sent Events until the batch is complete. Read with
 * fetch rather than EventSource, which cannot send the API key. When the
 * server goes away (a restart), says so and connects again until it is back;
 * the stream starts with the whole batch, so the table catches up.
 */
async function follow(batchId) {
  const controller = new AbortController();
  state.events = controller;
  for (let attempt = 0; !controller.signal.aborted; attempt++) {
    const outcome = await followOnce(batchId, controller.signal);
    if (outcome === "stop" || controller.signal.aborted) return;
    state.lost = true;
    showError(t("connection_lost"));
    if (outcome === "read") attempt = 0;
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)]));
  }
}

/**
 * One connection to a batch's stream: "stop" when the batch is complete, the
 * request was refused or aborted; "refused" when the server could not be
 * reached; "read" when it went away in the middle.
 */
async function followOnce(batchId, signal) {
  let response;
  try {
    response = await fetch(`/batch/${encodeURIComponent(batchId)}/events`, { headers: authHeaders(), signal });
  } catch {
    return signal.aborted ? "stop" : "refused";
  }
  if (response.status === 401) {
    await askKey(errorMessage(await response.json()));
    return followOnce(batchId, signal);
  }
  if (response.status >= 500) return "refused";
  if (!response.ok) {
    showError(errorMessage(await response.json()));
    return "stop";
  }
  if (state.lost) {
    state.lost = false;
    showError("");
    showNotice(t("reconnected"));
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch {
      return signal.aborted ? "stop" : "read";
    }
    if (chunk.done) return state.batch?.status === "complete" ? "stop" : "read";
    buffer += chunk.value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      onBatchEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

/** One event of a batch's stream: `batch` replaces the table, `file` one row of it. */
function onBatchEvent(text) {
  let name = "message";
  const data = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return; // a keep-alive comment
  const payload = JSON.parse(data.join("\n"));
  if (name === "batch") {
    state.batch = payload;
    renderBatch(payload);
  } else if (name === "file") {
    const batch = state.batch;
    if (!batch || batch.batch_id !== payload.batch_id) return;
    const at = batch.files.findIndex((f) => f.file_id === payload.file.file_id);
    if (at >= 0) batch.files[at] = payload.file;
    batch.progress = payload.progress;
    batch.status = payload.status;
    renderBatch(batch);
  }
}

function renderBatch(b) {
  $("batch-area").hidden = false;
  $("batch-meta").textContent = t("progress", b.progress);
  $("batch-rows").replaceChildren(...b.files.map((f) => {
    const tr = el("tr", { "data-file-id": f.file_id, "data-status": f.status });
    const downloads = el("td", { class: "downloads" });
    if (f.status === "done") downloads.append(...downloadButtons(f));
    else downloads.textContent = "–";
    tr.append(
      el("td", { class: "name" }, f.filename),
      cellWith(el("span", { class: `status ${f.status}` }, t(`status_${f.status}`))),
      el("td", { class: "num" }, f.audio_duration_sec == null ? "–" : fmt.sec(f.audio_duration_sec)),
      el("td", { class: "num" }, f.word_count == null ? "–" : String(f.word_count)),
      el("td", { class: "num" }, fmt.sec(f.processing_time_sec)),
      el("td", {}, f.language || "–"),
      el("td", { class: "error" }, f.error || ""),
      perfCell(f),
      downloads,
    );
    return tr;
  }));
  $("batch-summary-button").hidden = b.status !== "complete";
}

function perfCell(file) {
  const td = el("td", { class: "perf-cell" });
  if (!file.performance) {
    td.textContent = "–";
    return td;
  }
  const p = file.performance;
  const button = el("button", { type: "button", class: "perf", "aria-label": `${t("performance")}: ${file.filename}` },
    `CPU: ${fmt.pct(p.cpu_percent_avg)} | RAM: ${Math.round(p.ram_mb_peak)} MiB`);
  button.addEventListener("click", () => openFileModal(file));
  td.append(button);
  return td;
}

function openFileModal(file) {
  $("file-modal-title").textContent = file.filename;
  fillMetrics($("file-modal-metrics"), [...eightFigures(file.performance), rtfOf(file.performance), scopeOf(file.performance)]);
  openDialog($("file-modal"));
  samplesChart($("file-modal-chart"), file.performance.samples || []);
}

async function openSummary() {
  const b = state.batch;
  const { status, body: s } = await request(`/batch/${encodeURIComponent(b.batch_id)}/summary`);
  if (status !== 200) return showError(errorMessage(s));
  state.summary = s;
  fillMetrics($("summary-totals"), [
    ["files_total", String(s.count_total)],
    ["files_done", String(s.count_done)],
    ["files_failed", String(s.count_failed)],
    ["measured_own", String(s.count_measured_own)],
    ["measured_process_wide", String(s.count_measured_process_wide)],
    ["concurrent_max", String(s.concurrent_jobs_max)],
    ["total_audio", fmt.sec(s.total_audio_sec)],
    ["total_processing", fmt.sec(s.total_processing_sec)],
    ["throughput", `${s.throughput_audio_sec_per_sec.toFixed(2)}×`],
  ]);
  const rows = [
    ["cpu_avg", "cpu_percent_avg", fmt.pct], ["cpu_max", "cpu_percent_max", fmt.pct],
    ["ram_avg", "ram_mb_avg", fmt.mib], ["ram_peak", "ram_mb_peak", fmt.mib],
    ["gpu_vram", "gpu_vram_mb_current", fmt.mib], ["gpu_vram_peak", "gpu_vram_mb_peak", fmt.mib],
    ["gpu_util", "gpu_percent", fmt.pct], ["processing", "processing_time_sec", fmt.sec],
  ];
  $("summary-stats").replaceChildren(...rows.map(([label, key, f]) => {
    const stat = s.metrics[key];
    const tr = el("tr", { "data-metric": key });
    tr.append(el("td", {}, t(label)), ...["mean", "min", "max", "p95"].map((k) => el("td", {}, stat ? f(stat[k]) : "–")));
    return tr;
  }));
  state.sort = { key: null, descending: false };
  openDialog($("summary-modal"));
  renderPerFile();
}

/** The summary's files in the order chosen by a column of its table, drawn as a chart and listed. */
function renderPerFile() {
  const { key, descending } = state.sort;
  const files = [...state.summary.files];
  if (key === "filename") files.sort((a, b) => a.filename.localeCompare(b.filename));
  else if (key) files.sort((a, b) => a[key] - b[key]);
  if (descending) files.reverse();
  document.querySelectorAll("#per-file-table th[data-sort]").forEach((th) => {
    th.setAttribute("aria-sort", th.dataset.sort === key ? (descending ? "descending" : "ascending") : "none");
  });
  $("per-file-rows").replaceChildren(...files.map((f) => {
    const tr = el("tr");
    tr.append(el("td", { class: "name" }, f.filename), el("td", { class: "num" }, fmt.sec(f.processing_time_sec)),
      el("td", { class: "num" }, fmt.pct(f.cpu_percent_avg)));
    return tr;
  }));
  perFileChart($("summary-chart"), files);
}

function sortPerFile(key) {
  state.sort = { key, descending: state.sort.key === key ? !state.sort.descending : key !== "filename" };
  renderPerFile();
}

// ---- wiring ----

function wireDrop(zone, input, onFiles) {
  input.addEventListener("change", () => { if (input.files.length) onFiles([...input.files]); input.value = ""; });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
  });
}

const TABS = ["single", "batch", "live", "history"];

function selectTab(which) {
  for (const name of TABS) {
    $(`tab-${name}`).setAttribute("aria-selected", String(name === which));
    $(`tab-${name}`).tabIndex = name === which ? 0 : -1;
    $(`panel-${name}`).hidden = name !== which;
  }
  if (which === "history") loadHistory();
}

/** Tabs as the ARIA pattern has them: arrows, Home and End move between them. */
function onTabKey(e) {
  const at = TABS.indexOf(e.target.id.replace("tab-", ""));
  const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: TABS.length - 1 }[e.key];
  if (to === undefined) return;
  e.preventDefault();
  const next = TABS[(to + TABS.length) % TABS.length];
  selectTab(next);
  $(`tab-${next}`).focus();
}

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  $("lang-switch").addEventListener("click", () => {
    switchLanguage();
    applyLanguage();
  });
  for (const name of TABS) {
    $(`tab-${name}`).addEventListener("click", () => selectTab(name));
    $(`tab-${name}`).addEventListener("keydown", onTabKey);
  }
  initHistory({ transcription: openTranscription, batch: openBatch, forget });
  initLive(openTranscription);
  loadModels();
  wireDrop($("single-drop"), $("single-file"), (files) => transcribeSingle(files[0]));
  wireDrop($("batch-drop"), $("batch-files"), startBatch);
  $("copy-text").addEventListener("click", async () => {
    await navigator.clipboard.writeText(state.single.text);
    $("copy-text").textContent = t("copied");
    setTimeout(() => { $("copy-text").textContent = t("copy"); }, 1500);
  });
  $("batch-summary-button").addEventListener("click", openSummary);
  document.querySelectorAll("#per-file-table th[data-sort] button").forEach((button) => {
    button.addEventListener("click", () => sortPerFile(button.closest("th").dataset.sort));
  });
  document.querySelectorAll("dialog [data-close]").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
  document.querySelectorAll("dialog").forEach((d) => d.addEventListener("click", (e) => { if (e.target === d) d.close(); }));
});
