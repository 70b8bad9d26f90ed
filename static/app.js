// Sori's web UI: single uploads with their performance panel, and batches with
// a live table, a per-file modal and a batch summary. Everything shown is set
// with textContent: file names and transcripts are user input.
"use strict";

const TEXT = {
  ko: {
    tagline: "음성을 텍스트로 — 전사마다 드는 비용까지",
    tab_single: "단일 파일", tab_batch: "일괄 처리", language: "언어",
    lang_auto: "자동 감지", switch_to: "English",
    drop_single: "오디오 파일을 끌어다 놓거나 클릭해서 선택하세요",
    drop_batch: "여러 오디오 파일을 끌어다 놓거나 클릭해서 선택하세요",
    drop_hint: "WAV, MP3, FLAC, Ogg, M4A",
    uploading: "업로드 중… {pct}%", transcribing: "전사 중…",
    transcript: "전사 결과", segments: "구간", copy: "복사", copied: "복사됨",
    download: "다운로드", performance: "성능",
    cpu_avg: "CPU 평균", cpu_max: "CPU 최대", ram_avg: "RAM 평균", ram_peak: "RAM 최대",
    gpu_vram: "GPU VRAM", gpu_vram_peak: "GPU VRAM 최대", gpu_util: "GPU 활용도", processing: "처리 시간",
    rtf: "실시간 배율", audio: "오디오 길이", no_gpu: "GPU 없음",
    scope: "측정 범위", scope_request: "이 요청만", scope_request_beside: "이 요청만 (다른 작업자에서 동시 작업 {n}개)", scope_process: "프로세스 전체 (동시 작업 {n}개 포함)",
    scope_unrecorded: "프로세스 전체 (기록 없음)",
    measured_own: "자체 수치로 측정된 파일", measured_process_wide: "프로세스 전체로 측정된 파일",
    concurrent_max: "한 파일과 동시에 실행된 최대 작업 수", gpu_whole_device: "GPU 전체",
    batch_title: "일괄 처리", col_name: "파일명", col_status: "상태", col_duration: "시간", col_words: "단어수",
    col_processing: "처리시간", col_language: "언어", col_error: "오류", col_performance: "성능",
    status_queued: "대기", status_processing: "처리 중", status_done: "완료", status_failed: "실패",
    progress: "{done}/{total} 완료 · 실패 {failed}",
    summary_button: "성능 통계", summary_title: "성능 통계",
    rtf_faster: "실시간보다 {n}배 빠름", rtf_slower: "실시간보다 {n}배 느림",
    metric: "지표", mean: "평균", min: "최소", max: "최대",
    files_done: "완료 파일", files_failed: "실패 파일", total_audio: "총 오디오", total_processing: "총 처리 시간",
    throughput: "처리량 (오디오 초/처리 초)", files_total: "전체 파일",
    chart_samples: "요청 동안의 CPU · RAM", chart_per_file: "파일별 처리 시간 · CPU",
    no_samples: "샘플 없음", error_generic: "요청이 실패했습니다",
    col_downloads: "내려받기", key_title: "API 키", key_save: "저장",
  },
  en: {
    tagline: "Speech to text — and what every transcription costs",
    tab_single: "Single file", tab_batch: "Batch", language: "Language",
    lang_auto: "Detect", switch_to: "한국어",
    drop_single: "Drop an audio file here, or click to choose one",
    drop_batch: "Drop audio files here, or click to choose several",
    drop_hint: "WAV, MP3, FLAC, Ogg, M4A",
    uploading: "Uploading… {pct}%", transcribing: "Transcribing…",
    transcript: "Transcript", segments: "Segments", copy: "Copy", copied: "Copied",
    download: "Download", performance: "Performance",
    cpu_avg: "CPU avg", cpu_max: "CPU max", ram_avg: "RAM avg", ram_peak: "RAM peak",
    gpu_vram: "GPU VRAM", gpu_vram_peak: "GPU VRAM peak", gpu_util: "GPU utilization", processing: "Processing time",
    rtf: "Real-time factor", audio: "Audio length", no_gpu: "no GPU",
    scope: "Measured", scope_request: "this request's own", scope_request_beside: "this request's own ({n} other jobs ran beside it in other workers)", scope_process: "whole process ({n} other jobs overlapped)",
    scope_unrecorded: "whole process (not recorded)",
    measured_own: "Files measured on their own", measured_process_wide: "Files measured process-wide",
    concurrent_max: "Most jobs beside one file", gpu_whole_device: "whole GPU",
    batch_title: "Batch", col_name: "File name", col_status: "Status", col_duration: "Duration", col_words: "Words",
    col_processing: "Processing", col_language: "Language", col_error: "Error", col_performance: "Performance",
    status_queued: "queued", status_processing: "processing", status_done: "done", status_failed: "failed",
    progress: "{done}/{total} done · {failed} failed",
    summary_button: "Performance stats", summary_title: "Performance stats",
    rtf_faster: "{n}× faster than real time", rtf_slower: "{n}× slower than real time",
    metric: "Metric", mean: "Mean", min: "Min", max: "Max",
    files_done: "Files done", files_failed: "Files failed", total_audio: "Total audio", total_processing: "Total processing",
    throughput: "Throughput (audio s / processing s)", files_total: "Files",
    chart_samples: "CPU · RAM during the request", chart_per_file: "Processing time · CPU per file",
    no_samples: "no samples", error_generic: "The request failed",
    col_downloads: "Downloads", key_title: "API key", key_save: "Save",
  },
};

const LANGUAGES = ["auto", "ko", "en", "ja", "zh", "es", "fr", "de"];
const $ = (id) => document.getElementById(id);
let lang = (localStorage.getItem("sori.lang") || navigator.language || "ko").toLowerCase().startsWith("ko") ? "ko" : "en";

function t(key, vars = {}) {
  const s = (TEXT[lang] && TEXT[lang][key]) || TEXT.en[key] || key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const fmt = {
  pct: (v) => `${Math.round(v)}%`,
  mb: (v) => `${Math.round(v).toLocaleString()} MB`,
  sec: (v) => (v == null ? "–" : `${Number(v).toFixed(v < 10 ? 2 : 1)} s`),
  clock: (v) => {
    const m = Math.floor(v / 60), s = (v % 60).toFixed(1).padStart(4, "0");
    return `${m}:${s}`;
  },
};

/** The eight figures, labelled, in contract order. */
function eightFigures(p) {
  return [
    ["cpu_avg", fmt.pct(p.cpu_percent_avg)],
    ["cpu_max", fmt.pct(p.cpu_percent_max)],
    ["ram_avg", fmt.mb(p.ram_mb_avg)],
    ["ram_peak", fmt.mb(p.ram_mb_peak)],
    ["gpu_vram", p.gpu_available ? fmt.mb(p.gpu_vram_mb_current) : `0 MB (${t("no_gpu")})`],
    ["gpu_vram_peak", fmt.mb(p.gpu_vram_mb_peak)],
    ["gpu_util", p.gpu_percent_source === "device" ? `${fmt.pct(p.gpu_percent)} (${t("gpu_whole_device")})` : fmt.pct(p.gpu_percent)],
    ["processing", fmt.sec(p.processing_time_sec)],
  ];
}

/** The real-time factor, and in words how much faster (or slower) than real time. */
function rtfOf(p) {
  const rtf = p.real_time_factor;
  if (!(rtf > 0)) return ["rtf", rtf.toFixed(3)];
  const times = rtf < 1 ? 1 / rtf : rtf;
  const n = times >= 10 ? Math.round(times).toLocaleString() : times.toFixed(1);
  return ["rtf", `${rtf.toFixed(3)} · ${t(rtf < 1 ? "rtf_faster" : "rtf_slower", { n })}`];
}

/** What the CPU, RAM and GPU figures cover, in words. */
function scopeOf(p) {
  const n = p.concurrent_jobs_max ?? 0;
  const key = p.scope === "request" && n > 0 ? "request_beside" : p.scope || "unrecorded";
  return ["scope", t(`scope_${key}`, { n })];
}

function fillMetrics(dl, pairs) {
  dl.replaceChildren(...pairs.map(([key, value]) => {
    const box = el("div", { "data-metric": key });
    box.append(el("dt", {}, t(key)), el("dd", {}, value));
    return box;
  }));
}

function showError(message) {
  const alert = $("alert");
  alert.textContent = message;
  alert.hidden = !message;
}

function applyLanguage() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
  $("lang-switch").textContent = t("switch_to");
  document.querySelectorAll(".language-select").forEach((select) => {
    const chosen = select.value || "auto";
    select.replaceChildren(...LANGUAGES.map((code) => el("option", { value: code }, code === "auto" ? t("lang_auto") : code)));
    select.value = chosen;
  });
  if (state.single) renderSingle(state.single);
  if (state.batch) renderBatch(state.batch);
}

const state = { single: null, batch: null, events: null };

// ---- API key: asked for once when the server answers 401, kept in this browser ----

function authHeaders() {
  const key = localStorage.getItem("sori.key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** Shows the key dialog with the server's message; resolves once a key is saved. */
function askKey(message) {
  return new Promise((resolve) => {
    $("key-message").textContent = message;
    $("key-input").value = "";
    $("key-form").onsubmit = () => {
      localStorage.setItem("sori.key", $("key-input").value.trim());
      resolve();
    };
    $("key-dialog").showModal();
  });
}

/** Runs `send` (resolving with {status, body}) until the server accepts the key. */
async function authorized(send) {
  let answer = await send();
  while (answer.status === 401) {
    await askKey(errorMessage(answer.body));
    answer = await send();
  }
  return answer;
}

/** GETs JSON with the key; resolves with {status, body}. */
function getJson(url) {
  return authorized(async () => {
    const response = await fetch(url, { headers: authHeaders() });
    return { status: response.status, body: await response.json() };
  });
}

/** Downloads `url` (with the key) as a file named `name`. */
async function download(url, name) {
  const { status, body } = await authorized(async () => {
    const response = await fetch(url, { headers: authHeaders() });
    return { status: response.status, body: response.ok ? await response.blob() : await response.json() };
  });
  if (status !== 200) return showError(errorMessage(body));
  const a = el("a", { href: URL.createObjectURL(body), download: name });
  a.click();
  URL.revokeObjectURL(a.href);
}

/** The file name of a transcript of `filename` with another extension. */
function renamed(filename, ext) {
  return `${filename.replace(/\.[^.]+$/, "")}.${ext}`;
}

/** POSTs a form with upload progress; resolves with {status, body}. */
function post(url, form, onProgress) {
  return authorized(() => postOnce(url, form, onProgress));
}

function postOnce(url, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.upload.onload = () => onProgress(1);
    xhr.onload = () => resolve({ status: xhr.status, body: xhr.response });
    xhr.onerror = () => reject(new Error(t("error_generic")));
    xhr.send(form);
  });
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

function errorMessage(body) {
  return (body && body.error && body.error.message) || t("error_generic");
}

// ---- single file ----

async function transcribeSingle(file) {
  showError("");
  $("single-result").hidden = true;
  const form = new FormData();
  form.append("file", file, file.name);
  const language = $("single-language").value;
  if (language && language !== "auto") form.append("language", language);
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

function renderSingle(r) {
  $("single-result").hidden = false;
  $("single-filename").textContent = r.filename;
  $("single-meta").textContent = `${r.language} · ${fmt.sec(r.audio_duration_sec)} · ${r.word_count} · ${r.model}`;
  $("single-text").textContent = r.text;
  $("single-segments").replaceChildren(...r.segments.map((s) => {
    const li = el("li");
    li.append(el("time", {}, `${fmt.clock(s.start)} – ${fmt.clock(s.end)}`), el("span", {}, s.text));
    return li;
  }));
  const p = r.performance;
  fillMetrics($("single-metrics"), [...eightFigures(p), rtfOf(p), ["audio", fmt.sec(r.audio_duration_sec)], scopeOf(p)]);
  drawSamples($("single-chart"), p.samples || []);
}

// ---- batch ----

async function startBatch(files) {
  showError("");
  if (state.events) state.events.abort();
  const form = new FormData();
  for (const file of files) form.append("file", file, file.name);
  const language = $("batch-language").value;
  if (language && language !== "auto") form.append("language", language);
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

/**
 * Live updates over Server-Sent Events; the server ends the stream when done.
 * Read with fetch rather than EventSource, which cannot send the API key.
 */
async function follow(batchId) {
  const controller = new AbortController();
  state.events = controller;
  let response;
  try {
    response = await fetch(`/batch/${encodeURIComponent(batchId)}/events`, { headers: authHeaders(), signal: controller.signal });
  } catch {
    return;
  }
  if (response.status === 401) {
    await askKey(errorMessage(await response.json()));
    return follow(batchId);
  }
  if (!response.ok) return showError(errorMessage(await response.json()));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch {
      return; // aborted: another batch replaced this one
    }
    if (chunk.done) return;
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
    if (payload.status === "complete") state.events.abort();
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
    tr.append(
      el("td", { class: "name" }, f.filename),
      cellWith(el("span", { class: `status ${f.status}` }, t(`status_${f.status}`))),
      el("td", { class: "num" }, f.audio_duration_sec == null ? "–" : fmt.sec(f.audio_duration_sec)),
      el("td", { class: "num" }, f.word_count == null ? "–" : String(f.word_count)),
      el("td", { class: "num" }, fmt.sec(f.processing_time_sec)),
      el("td", {}, f.language || "–"),
      el("td", { class: "error" }, f.error || ""),
      perfCell(f),
      downloadsCell(f),
    );
    return tr;
  }));
  $("batch-summary-button").hidden = b.status !== "complete";
}

function cellWith(child) {
  const td = el("td");
  td.append(child);
  return td;
}

function perfCell(file) {
  const td = el("td", { class: "perf-cell" });
  if (!file.performance) {
    td.textContent = "–";
    return td;
  }
  const p = file.performance;
  const button = el("button", { type: "button", class: "perf" }, `CPU: ${fmt.pct(p.cpu_percent_avg)} | RAM: ${Math.round(p.ram_mb_peak)}MB`);
  button.addEventListener("click", () => openFileModal(file));
  td.append(button);
  return td;
}

/** TXT, SRT and VTT of a finished file. */
function downloadsCell(file) {
  const td = el("td", { class: "downloads" });
  if (file.status !== "done") {
    td.textContent = "–";
    return td;
  }
  for (const [label, path, ext] of [["TXT", "text", "txt"], ["SRT", "srt", "srt"], ["VTT", "vtt", "vtt"]]) {
    const button = el("button", { type: "button", class: "ghost", "data-format": ext }, label);
    button.addEventListener("click", () => download(`/files/${encodeURIComponent(file.file_id)}/${path}`, renamed(file.filename, ext)));
    td.append(button);
  }
  return td;
}

function openFileModal(file) {
  $("file-modal-title").textContent = file.filename;
  fillMetrics($("file-modal-metrics"), [...eightFigures(file.performance), rtfOf(file.performance), scopeOf(file.performance)]);
  drawSamples($("file-modal-chart"), file.performance.samples || []);
  $("file-modal").showModal();
}

async function openSummary() {
  const b = state.batch;
  const { status, body: s } = await getJson(`/batch/${encodeURIComponent(b.batch_id)}/summary`);
  if (status !== 200) return showError(errorMessage(s));
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
    ["ram_avg", "ram_mb_avg", fmt.mb], ["ram_peak", "ram_mb_peak", fmt.mb],
    ["gpu_vram", "gpu_vram_mb_current", fmt.mb], ["gpu_vram_peak", "gpu_vram_mb_peak", fmt.mb],
    ["gpu_util", "gpu_percent", fmt.pct], ["processing", "processing_time_sec", fmt.sec],
  ];
  $("summary-stats").replaceChildren(...rows.map(([label, key, f]) => {
    const stat = s.metrics[key];
    const tr = el("tr", { "data-metric": key });
    tr.append(el("td", {}, t(label)), ...["mean", "min", "max", "p95"].map((k) => el("td", {}, stat ? f(stat[k]) : "–")));
    return tr;
  }));
  drawPerFile($("summary-chart"), s.files);
  $("summary-modal").showModal();
}

// ---- charts (plain SVG) ----

const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function chartFrame(svg) {
  const w = svg.clientWidth || 600, h = svg.clientHeight || 180;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  return { w, h, pad: 30 };
}

/** CPU % and RAM MB over the request, each scaled to its own maximum. */
function drawSamples(svg, samples) {
  const { w, h, pad } = chartFrame(svg);
  if (samples.length === 0) {
    svg.append(svgEl("text", { x: w / 2, y: h / 2, "text-anchor": "middle" }, t("no_samples")));
    return;
  }
  const tMax = Math.max(...samples.map((s) => s.t_sec), 0.001);
  const series = [["cpu_percent", "var(--cpu)", "CPU %"], ["ram_mb", "var(--ram)", "RAM MB"]];
  series.forEach(([key, color, label], i) => {
    const vMax = Math.max(...samples.map((s) => s[key]), 1);
    const pts = [[0, samples[0][key]], ...samples.map((s) => [s.t_sec, s[key]])]
      .map(([x, y]) => `${pad + (x / tMax) * (w - 2 * pad)},${h - pad - (y / vMax) * (h - 2 * pad)}`);
    svg.append(svgEl("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
    svg.append(svgEl("text", { x: pad + i * 140, y: 14, class: "legend", fill: color }, `${label} (max ${Math.round(vMax)})`));
  });
  svg.append(svgEl("text", { x: w - pad, y: h - 8, "text-anchor": "end" }, `${tMax.toFixed(2)} s`));
}

/** Bars of processing time per file, with CPU % as dots. */
function drawPerFile(svg, files) {
  const { w, h, pad } = chartFrame(svg);
  if (files.length === 0) return;
  const tMax = Math.max(...files.map((f) => f.processing_time_sec), 0.001);
  const cMax = Math.max(...files.map((f) => f.cpu_percent_avg), 1);
  const slot = (w - 2 * pad) / files.length;
  files.forEach((f, i) => {
    const bh = (f.processing_time_sec / tMax) * (h - 2 * pad);
    const x = pad + i * slot + slot * 0.15;
    const bar = svgEl("rect", { x, y: h - pad - bh, width: slot * 0.7, height: bh, fill: "var(--cpu)", opacity: 0.75 });
    bar.append(svgEl("title", {}, `${f.filename}: ${fmt.sec(f.processing_time_sec)}, CPU ${fmt.pct(f.cpu_percent_avg)}`));
    svg.append(bar);
    svg.append(svgEl("circle", { cx: x + slot * 0.35, cy: h - pad - (f.cpu_percent_avg / cMax) * (h - 2 * pad), r: 4, fill: "var(--ram)" }));
  });
  svg.append(svgEl("text", { x: pad, y: 14, class: "legend", fill: "var(--cpu)" }, `${t("processing")} (max ${fmt.sec(tMax)})`));
  svg.append(svgEl("text", { x: pad + 200, y: 14, class: "legend", fill: "var(--ram)" }, `CPU (max ${fmt.pct(cMax)})`));
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

function selectTab(which) {
  for (const name of ["single", "batch"]) {
    $(`tab-${name}`).setAttribute("aria-selected", String(name === which));
    $(`panel-${name}`).hidden = name !== which;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  $("lang-switch").addEventListener("click", () => {
    lang = lang === "ko" ? "en" : "ko";
    localStorage.setItem("sori.lang", lang);
    applyLanguage();
  });
  $("tab-single").addEventListener("click", () => selectTab("single"));
  $("tab-batch").addEventListener("click", () => selectTab("batch"));
  wireDrop($("single-drop"), $("single-file"), (files) => transcribeSingle(files[0]));
  wireDrop($("batch-drop"), $("batch-files"), startBatch);
  $("copy-text").addEventListener("click", async () => {
    await navigator.clipboard.writeText(state.single.text);
    $("copy-text").textContent = t("copied");
    setTimeout(() => { $("copy-text").textContent = t("copy"); }, 1500);
  });
  for (const [id, path, ext] of [["download-text", "text", "txt"], ["download-srt", "srt", "srt"], ["download-vtt", "vtt", "vtt"]]) {
    $(id).addEventListener("click", () =>
      download(`/files/${encodeURIComponent(state.single.file_id)}/${path}`, renamed(state.single.filename, ext)));
  }
  $("batch-summary-button").addEventListener("click", openSummary);
  document.querySelectorAll("dialog [data-close]").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
  document.querySelectorAll("dialog").forEach((d) => d.addEventListener("click", (e) => { if (e.target === d) d.close(); }));
});
