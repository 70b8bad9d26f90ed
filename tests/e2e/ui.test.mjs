// Real-browser end-to-end tests of Sori's web UI: Debian's chromium driven by
// playwright-core, against a real `sori serve` with the real tiny.en model, in
// Korean and in English. Screenshots go to test-output/ at the repository root.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, copyFileSync, writeFileSync, existsSync, rmSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { ROOT, MODEL, MODEL_DIR, CHROMIUM_ARGS, startServer, stopServer } from "./server.mjs";

const OUT = join(ROOT, "test-output");
const AUDIO = join(ROOT, "tests/fixtures/audio");
const XSS_NAME = "<img src=x onerror=alert(1)>.wav";

let server, browser, page, base, work;
const dialogs = [];

/** A new page whose canvases remember the text drawn on them (the charts' axis labels). */
async function newPage(locale) {
  const context = await browser.newContext({ locale, viewport: { width: 1280, height: 900 } });
  await context.addInitScript(() => {
    const fillText = CanvasRenderingContext2D.prototype.fillText;
    CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
      (this.canvas.drawnTexts ??= new Set()).add(String(text));
      return fillText.call(this, text, ...rest);
    };
  });
  const opened = await context.newPage();
  opened.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  return opened;
}

/** The texts drawn on the canvases of the chart `selector`. */
function drawnOn(on, selector) {
  return on.locator(selector).evaluate((box) => [...box.querySelectorAll("canvas")].flatMap((c) => [...(c.drawnTexts ?? [])]));
}

/** Moves the pointer over the middle of chart `selector`; returns its legend's read-out. */
async function hoverChart(on, selector) {
  await on.locator(`${selector} .u-over`).hover();
  return on.locator(`${selector} .u-legend .u-value`).allTextContents();
}

/** Transcribes `path` through the API (not the page), as `name`; resolves with the answer. */
async function transcribeByApi(url, path, name) {
  const form = new FormData();
  form.append("file", new Blob([readFileSync(path)]), name);
  const response = await fetch(`${url}/transcribe`, { method: "POST", body: form });
  assert.equal(response.status, 200);
  return response.json();
}

before(async () => {
  assert.ok(existsSync(MODEL), `model missing at ${MODEL} (make models)`);
  mkdirSync(OUT, { recursive: true });
  work = mkdtempSync(join(tmpdir(), "sori-e2e-"));
  // Test files: real speech, a copy with a hostile name, and text posing as audio.
  copyFileSync(join(AUDIO, "jfk.wav"), join(work, "jfk.wav"));
  copyFileSync(join(AUDIO, "jfk.wav"), join(work, XSS_NAME));
  copyFileSync(join(AUDIO, "jfk.mp3"), join(work, "jfk.mp3"));
  writeFileSync(join(work, "notes.wav"), "this is a text file, not audio\n".repeat(10));
  execFileSync("espeak-ng", ["-w", join(work, "weather.wav"), "The weather in the mountains is cold and windy today."]);
  server = await startServer(join(work, "data"));
  base = server.url;
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
  page = await newPage("ko-KR");
  await page.goto(base);
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
  if (work) rmSync(work, { recursive: true, force: true });
});

test("the page is served by Sori alone, in Korean for a Korean browser", async () => {
  const external = [];
  page.on("request", (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  await page.reload();
  assert.equal(await page.locator("#tab-single").textContent(), "단일 파일");
  assert.equal(await page.locator("html").getAttribute("lang"), "ko");
  assert.deepEqual(external, [], "no request leaves the server");
});

test("a single upload shows the transcript, segments and the eight figures", async () => {
  await page.locator("#tab-single").click();
  await page.locator("#single-file").setInputFiles(join(work, "jfk.wav"));
  await page.locator("#single-result").waitFor({ state: "visible", timeout: 60_000 });
  const text = (await page.locator("#single-text").textContent()).toLowerCase();
  assert.match(text, /ask not what your country can do for you/);
  assert.ok(await page.locator("#single-segments li").count() >= 1);
  assert.equal(await page.locator("#single-progress").isVisible(), false, "the progress bar goes away");
  const labels = await page.locator("#single-metrics dt").allTextContents();
  for (const label of ["CPU 평균", "CPU 최대", "RAM 평균", "RAM 최대", "GPU VRAM", "GPU 활용도", "처리 시간"]) {
    assert.ok(labels.includes(label), `${label} in ${labels}`);
  }
  const processing = await page.locator('#single-metrics [data-metric="processing"] dd').textContent();
  assert.match(processing, /^\d+(\.\d+)? s$/);
  // The real-time factor, and in words how many times faster than real time.
  const rtf = await page.locator('#single-metrics [data-metric="rtf"] dd').textContent();
  const [, factor, times] = rtf.match(/^(\d\.\d{3}) · 실시간보다 ([\d.,]+)배 빠름$/) ?? [];
  assert.ok(factor, `the real-time factor in words: ${rtf}`);
  // The factor is shown to 3 decimals and the multiple rounded: 1/rtf within both roundings.
  const [low, high] = [1 / (Number(factor) + 0.0005) - 0.5, 1 / Math.max(Number(factor) - 0.0005, 1e-6) + 0.5];
  const shown = Number(times.replace(/,/g, ""));
  assert.ok(shown >= low && shown <= high, `${times} is 1/${factor}`);
  // A request that ran alone says that its figures are its own.
  assert.equal(await page.locator('#single-metrics [data-metric="scope"] dd').textContent(), "이 요청만");
  // The chart: seconds on the x axis, CPU % and RAM MiB on two labelled y axes, a legend.
  await assertSamplesChart(page, "#single-chart", "시간 (초)");
  await page.screenshot({ path: join(OUT, "single-result.png"), fullPage: true });
});

/**
 * Chart `selector` of request samples: its axes are drawn with their labels
 * and units and numbered ticks, and hovering reads out seconds, % and MiB.
 */
async function assertSamplesChart(on, selector, timeLabel) {
  await on.locator(`${selector} canvas`).waitFor();
  const drawn = await drawnOn(on, selector);
  for (const label of [timeLabel, "CPU (%)", "RAM (MiB)"]) assert.ok(drawn.includes(label), `${label} drawn in ${drawn}`);
  assert.ok(drawn.filter((text) => /^\d[\d.,]*$/.test(text)).length >= 4, `numbered ticks in ${drawn}`);
  const legend = await on.locator(`${selector} .u-legend .u-label`).allTextContents();
  assert.deepEqual(legend.slice(1), ["CPU", "RAM"]);
  const [time, cpu, ram] = await hoverChart(on, selector);
  assert.match(time, /^\d+\.\d\d s$/, "the time under the pointer");
  assert.match(cpu, /^\d+%$/, "CPU under the pointer");
  assert.match(ram, /^[\d,]+ MiB$/, "RAM under the pointer");
  assert.ok(Number(ram.replace(/\D/g, "")) > 10, `a real resident size: ${ram}`);
}

/** Clicks `selector` and returns the name and text of the file the page downloads. */
async function downloaded(selector, on = page) {
  const [download] = await Promise.all([on.waitForEvent("download"), on.locator(selector).click()]);
  return { name: download.suggestedFilename(), text: readFileSync(await download.path(), "utf8") };
}

test("the transcript downloads as text, SRT, VTT and JSON", async () => {
  const txt = await downloaded('#single-downloads [data-format="txt"]');
  assert.equal(txt.name, "jfk.txt");
  assert.match(txt.text.toLowerCase(), /ask not what your country/);
  const srt = await downloaded('#single-downloads [data-format="srt"]');
  assert.equal(srt.name, "jfk.srt");
  assert.match(srt.text, /^1\n00:00:0\d,\d{3} --> 00:00:\d\d,\d{3}\n\S/);
  const vtt = await downloaded('#single-downloads [data-format="vtt"]');
  assert.equal(vtt.name, "jfk.vtt");
  assert.match(vtt.text, /^WEBVTT\n\n1\n00:00:0\d\.\d{3} --> /);
  assert.match(vtt.text.toLowerCase(), /your country/);
  const json = await downloaded('#single-downloads [data-format="json"]');
  assert.equal(json.name, "jfk.json");
  const whole = JSON.parse(json.text);
  assert.match(whole.text.toLowerCase(), /your country/);
  assert.ok(whole.segments.length >= 1 && whole.performance.processing_time_sec > 0);
});

test("the language switch relabels the page in English", async () => {
  await page.locator("#lang-switch").click();
  assert.equal(await page.locator("#tab-single").textContent(), "Single file");
  const labels = await page.locator("#single-metrics dt").allTextContents();
  assert.ok(labels.includes("CPU avg") && labels.includes("Processing time"), String(labels));
  await page.locator("#lang-switch").click();
  assert.equal(await page.locator("#tab-single").textContent(), "단일 파일");
});

test("bad input shows the server's message", async () => {
  await page.locator("#single-file").setInputFiles(join(work, "notes.wav"));
  await page.locator("#alert").waitFor({ state: "visible" });
  assert.match(await page.locator("#alert").textContent(), /not audio/);
});

test("a batch fills the table live, opens the per-file and summary modals, and escapes names", async () => {
  await page.locator("#tab-batch").click();
  await page.locator("#batch-files").setInputFiles([join(work, "jfk.wav"), join(work, XSS_NAME), join(work, "jfk.mp3"), join(work, "notes.wav")]);
  await page.locator("#batch-rows tr").first().waitFor({ timeout: 30_000 });
  assert.equal(await page.locator("#batch-rows tr").count(), 4);
  const headers = await page.locator("#batch-table th").allTextContents();
  assert.deepEqual(headers, ["파일명", "상태", "시간", "단어수", "처리시간", "언어", "오류", "성능", "내려받기"]);
  await page.locator("#batch-summary-button").waitFor({ state: "visible", timeout: 120_000 });

  assert.equal(await page.locator('#batch-rows tr[data-status="done"]').count(), 3);
  assert.equal(await page.locator("#batch-progress").isVisible(), false, "the upload bar goes away");
  assert.equal(await page.locator('#batch-rows tr[data-status="failed"]').count(), 1);
  assert.match(await page.locator('#batch-rows tr[data-status="failed"] td.error').textContent(), /not audio/);
  // The hostile file name is text, not markup.
  assert.ok((await page.locator("#batch-rows td.name").allTextContents()).includes(XSS_NAME));
  assert.equal(await page.locator("#batch-rows img").count(), 0);
  assert.deepEqual(dialogs, [], "no script ran from a file name");
  const perf = await page.locator("#batch-rows button.perf").first().textContent();
  assert.match(perf, /^CPU: \d+% \| RAM: \d+ MiB$/);
  await page.screenshot({ path: join(OUT, "batch-table.png"), fullPage: true });
  const subtitles = await downloaded('#batch-rows tr[data-status="done"] button[data-format="srt"] >> nth=0');
  assert.match(subtitles.name, /\.srt$/);
  assert.match(subtitles.text, /^1\n00:00:\d\d,\d{3} --> /);
  assert.equal(await page.locator('#batch-rows tr[data-status="failed"] button[data-format]').count(), 0);

  await page.locator("#batch-rows button.perf").first().click();
  const fileModal = page.locator("#file-modal");
  await fileModal.waitFor({ state: "visible" });
  assert.equal(await fileModal.locator("dt").count(), 10, "the eight figures, the real-time factor and the scope");
  assert.equal(await fileModal.locator('[data-metric="scope"] dd').textContent(), "이 요청만", "one worker: each file ran alone");
  await assertSamplesChart(page, "#file-modal-chart", "시간 (초)");
  assert.equal(await fileModal.getAttribute("aria-labelledby"), "file-modal-title", "the dialog is named by its title");
  await page.screenshot({ path: join(OUT, "file-modal.png") });
  await page.keyboard.press("Escape");
  await fileModal.waitFor({ state: "hidden" });
  assert.equal(await page.evaluate(() => document.activeElement.classList.contains("perf")), true,
    "focus goes back to the button that opened the dialog");

  // An icon that needs no emoji font, and a name without one.
  const button = page.locator("#batch-summary-button");
  assert.equal(await button.locator("svg").count(), 1);
  assert.doesNotMatch(await button.textContent(), /\p{Extended_Pictographic}/u);
  await page.locator("#batch-summary-button").click();
  const summary = page.locator("#summary-modal");
  await summary.waitFor({ state: "visible" });
  assert.equal(await summary.locator("#summary-stats tr").count(), 8);
  const done = await summary.locator('[data-metric="files_done"] dd').textContent();
  assert.equal(done, "3");
  assert.equal(await summary.locator('[data-metric="measured_own"] dd').textContent(), "3");
  assert.equal(await summary.locator('[data-metric="measured_process_wide"] dd').textContent(), "0");
  assert.equal(await summary.locator('[data-metric="concurrent_max"] dd').textContent(), "0", "one worker: no file overlapped another");
  // Per file: names, processing time and CPU, drawn with labelled axes and listed, sortable.
  assert.equal(await summary.locator("#per-file-rows tr").count(), 3, "one row per done file");
  await summary.locator("#summary-chart canvas").waitFor();
  const drawn = await drawnOn(page, "#summary-chart");
  for (const label of ["처리 시간 (s)", "CPU (%)", "jfk.wav", "jfk.mp3"]) assert.ok(drawn.includes(label), `${label} drawn in ${drawn}`);
  const [name, processing, cpu] = await hoverChart(page, "#summary-chart");
  assert.ok([XSS_NAME, "jfk.wav", "jfk.mp3"].includes(name), `a file's whole name under the pointer: ${name}`);
  assert.match(processing, /^\d+\.\d+ s$/);
  assert.match(cpu, /^\d+%$/);
  const seconds = async () => (await summary.locator("#per-file-rows tr td:nth-child(2)").allTextContents()).map(parseFloat);
  await summary.locator('th[data-sort="processing_time_sec"] button').click();
  assert.equal(await summary.locator('th[data-sort="processing_time_sec"]').getAttribute("aria-sort"), "descending");
  const slowestFirst = await seconds();
  assert.deepEqual(slowestFirst, [...slowestFirst].sort((a, b) => b - a), "slowest first");
  await summary.locator('th[data-sort="processing_time_sec"] button').click();
  const fastestFirst = await seconds();
  assert.deepEqual(fastestFirst, [...slowestFirst].reverse(), "fastest first");
  await page.screenshot({ path: join(OUT, "summary-modal.png") });
  await page.keyboard.press("Escape");
  await summary.waitFor({ state: "hidden" });
});

test("with an API key set, the page asks for it once and keeps it", async () => {
  const other = await startServer(join(work, "data-keyed"), ["--api-key", "e2e-secret"]);
  const keyed = other.url;
  try {
    const keyedPage = await browser.newPage();
    await keyedPage.goto(keyed);
    await keyedPage.locator("#single-file").setInputFiles(join(work, "jfk.wav"));
    await keyedPage.locator("#key-dialog").waitFor({ state: "visible" });
    assert.match(await keyedPage.locator("#key-message").textContent(), /API key/);
    await keyedPage.locator("#key-input").fill("e2e-secret");
    await keyedPage.locator("#key-form button[type=submit]").click();
    await keyedPage.locator("#single-result").waitFor({ state: "visible", timeout: 60_000 });
    assert.match((await keyedPage.locator("#single-text").textContent()).toLowerCase(), /your country/);
    assert.equal(await keyedPage.evaluate(() => localStorage.getItem("sori.key")), "e2e-secret");
    await keyedPage.screenshot({ path: join(OUT, "api-key.png"), fullPage: true });
    await keyedPage.close();
  } finally {
    await stopServer(other);
  }
});

/** The ids of the files the data folder `dir` keeps for transcription `id`. */
function keptFiles(dir, id) {
  return readdirSync(dir).filter((name) => name.startsWith(id));
}

test("History lists past transcriptions with their figures, searches, opens, deletes and opens batches", async () => {
  // A second single upload, with words of its own.
  await page.locator("#tab-single").click();
  await page.locator("#single-file").setInputFiles(join(work, "weather.wav"));
  await page.locator("#single-filename", { hasText: "weather.wav" }).waitFor({ timeout: 60_000 });
  const weatherId = await page.evaluate(() => document.querySelector("#single-downloads button").getAttribute("aria-label"));
  assert.match(weatherId, /weather\.wav/);

  await page.locator("#tab-history").click();
  const rows = page.locator("#history-rows tr");
  await rows.first().waitFor();
  const names = await page.locator("#history-rows td.name").allTextContents();
  assert.equal(names[0], "weather.wav", `newest first: ${names}`);
  assert.ok(names.includes("jfk.wav"), String(names));
  assert.equal(await page.locator("#history-rows .badge").count(), 3, "the batch's three done files say they came in a batch");
  for (const name of ["weather.wav", "jfk.wav"]) {
    const cells = await page.locator("#history-rows tr", { has: page.locator("td.name", { hasText: new RegExp(`^${name.replace(".", "\\.")}$`) }) })
      .first().locator("td").allTextContents();
    const [, date, length, language, processing, cpu, ram, speed] = cells;
    assert.match(date, /2\d{3}/, `a date: ${date}`);
    assert.match(length, /^\d+\.\d+ s$/);
    assert.equal(language, "en");
    assert.match(processing, /^\d+\.\d+ s$/);
    assert.match(cpu, /^\d+%$/);
    assert.match(ram, /^[\d,]+ MiB$/);
    assert.match(speed, /^실시간보다 [\d.,]+배 빠름$/);
  }
  await page.screenshot({ path: join(OUT, "history.png"), fullPage: true });

  // Search by a word of the transcript.
  await page.locator("#history-q").fill("mountains");
  await page.locator('#history-search button[type="submit"]').click();
  await page.locator("#history-rows tr").nth(1).waitFor({ state: "detached" });
  assert.deepEqual(await page.locator("#history-rows td.name").allTextContents(), ["weather.wav"]);
  await page.locator("#history-q").fill("country");
  await page.locator('#history-search button[type="submit"]').click();
  await page.locator("#history-rows td.name", { hasText: "jfk.wav" }).first().waitFor();
  assert.ok(!(await page.locator("#history-rows td.name").allTextContents()).includes("weather.wav"));
  await page.locator("#history-q").fill("no-such-word-anywhere");
  await page.locator('#history-search button[type="submit"]').click();
  await page.locator("#history-empty").waitFor({ state: "visible" });
  assert.equal(await page.locator("#history-empty").textContent(), "조건에 맞는 기록이 없습니다");
  await page.locator('#history-search button[type="reset"]').click();
  await page.locator("#history-rows tr").nth(4).waitFor();

  // Opening a past transcription shows the same result view as a fresh upload.
  const weatherRow = page.locator('#history-rows tr', { has: page.locator("td.name", { hasText: /^weather\.wav$/ }) });
  const fileId = await weatherRow.getAttribute("data-file-id");
  await page.locator("#tab-batch").click();
  await page.locator("#tab-history").click();
  await weatherRow.getByRole("button", { name: "열기: weather.wav" }).click();
  await page.locator("#panel-single").waitFor({ state: "visible" });
  assert.equal(await page.locator("#single-filename").textContent(), "weather.wav");
  assert.match((await page.locator("#single-text").textContent()).toLowerCase(), /mountain/);
  assert.equal(await page.locator("#single-metrics dt").count(), 11);
  await assertSamplesChart(page, "#single-chart", "시간 (초)");
  const json = await downloaded('#single-downloads [data-format="json"]');
  assert.equal(JSON.parse(json.text).file_id, fileId);

  // Deleting asks first; cancelling keeps it, confirming removes it and its files.
  const data = join(work, "data");
  assert.equal(keptFiles(data, fileId).length, 3, `its transcript, record and segments: ${readdirSync(data)}`);
  await page.locator("#tab-history").click();
  await weatherRow.getByRole("button", { name: "삭제: weather.wav" }).click();
  const confirm = page.locator("#confirm-dialog");
  await confirm.waitFor({ state: "visible" });
  assert.match(await page.locator("#confirm-message").textContent(), /weather\.wav/);
  assert.equal(await confirm.getAttribute("role"), "alertdialog");
  await page.screenshot({ path: join(OUT, "history-delete.png") });
  await page.keyboard.press("Escape");
  await confirm.waitFor({ state: "hidden" });
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute("aria-label")), "삭제: weather.wav",
    "focus goes back to the delete button");
  assert.equal(keptFiles(data, fileId).length, 3, "cancelled: nothing removed");
  await weatherRow.getByRole("button", { name: "삭제: weather.wav" }).click();
  await page.locator("#confirm-delete").click();
  await weatherRow.waitFor({ state: "detached" });
  assert.match(await page.locator("#notice").textContent(), /weather\.wav/);
  assert.deepEqual(keptFiles(data, fileId), [], "its files are gone from the data folder");
  assert.equal(await page.locator("#single-result").isVisible(), false, "the deleted result is no longer shown");

  // A batch opens from History with its table and summary.
  assert.equal(await page.locator("#batches-rows tr").count(), 1);
  await page.locator("#batches-rows tr").first().getByRole("button", { name: /^열기/ }).click();
  await page.locator("#panel-batch").waitFor({ state: "visible" });
  assert.equal(await page.locator("#batch-rows tr").count(), 4);
  await page.locator("#batch-summary-button").click();
  await page.locator("#summary-modal").waitFor({ state: "visible" });
  assert.equal(await page.locator('#summary-totals [data-metric="files_done"] dd').textContent(), "3");
  await page.keyboard.press("Escape");
});

test("every control of History is reached with Tab, and tabs move with the arrow keys", async () => {
  await page.locator("#tab-history").click();
  await page.locator("#history-rows tr").first().waitFor();
  await page.locator("#tab-history").focus();
  const reached = new Set();
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press("Tab");
    reached.add(await page.evaluate(() => {
      const a = document.activeElement;
      return a.id || a.getAttribute("aria-label") || a.textContent.trim();
    }));
  }
  for (const control of ["history-q", "history-name", "history-language", "history-from", "history-to", "검색"]) {
    assert.ok(reached.has(control), `${control} reached: ${[...reached]}`);
  }
  assert.ok([...reached].some((label) => /^열기: /.test(label)), "an Open button reached");
  assert.ok([...reached].some((label) => /^TXT: /.test(label)), "a download reached");
  await page.locator("#tab-history").focus();
  await page.keyboard.press("ArrowLeft");
  assert.equal(await page.evaluate(() => document.activeElement.id), "tab-live");
  assert.equal(await page.locator("#panel-live").isVisible(), true);
});

test("in English: retention removes an old transcription from History, and the rest stay", async () => {
  const dir = join(work, "data-retention");
  let other = await startServer(dir);
  const old = await transcribeByApi(other.url, join(work, "weather.wav"), "old-call.wav");
  const recent = await transcribeByApi(other.url, join(work, "jfk.wav"), "recent-call.wav");
  await stopServer(other);
  // Back-date one record by 30 days.
  const recordPath = join(dir, `${old.file_id}.performance.json`);
  const record = JSON.parse(readFileSync(recordPath, "utf8"));
  record.created_at = new Date(Date.now() - 30 * 86_400_000).toISOString();
  writeFileSync(recordPath, JSON.stringify(record));
  other = await startServer(dir, ["--retention-days", "7"]);
  try {
    const english = await newPage("en-US");
    await english.goto(other.url);
    await english.locator("#tab-history").click();
    assert.equal(await english.locator("#tab-history").textContent(), "History");
    await english.locator("#history-rows tr").first().waitFor();
    assert.deepEqual(await english.locator("#history-rows td.name").allTextContents(), ["recent-call.wav"]);
    assert.deepEqual(keptFiles(dir, old.file_id), [], "the old one's files are gone");
    assert.equal(keptFiles(dir, recent.file_id).length, 3);
    const speed = await english.locator("#history-rows td.speed").textContent();
    assert.match(speed, /^[\d.,]+× faster than real time$/);
    const metrics = await (await fetch(`${other.url}/metrics`)).text();
    assert.match(metrics, /sori_retention_removed_total\{kind="transcription"\} 1/);
    await english.screenshot({ path: join(OUT, "history-en.png"), fullPage: true });
    await english.close();
  } finally {
    await stopServer(other);
  }
});

test("in English: the batch table says when the server went away mid-batch, and resumes when it is back", async () => {
  const dir = join(work, "data-restart");
  let other = await startServer(dir);
  const english = await newPage("en-US");
  try {
    await english.goto(other.url);
    await english.locator("#tab-batch").click();
    const files = ["a", "b", "c", "d", "e", "f"].map((n) => {
      copyFileSync(join(AUDIO, "jfk.wav"), join(work, `${n}.wav`));
      return join(work, `${n}.wav`);
    });
    await english.locator("#batch-files").setInputFiles(files);
    await english.locator('#batch-rows tr[data-status="done"]').first().waitFor({ timeout: 60_000 });
    await stopServer(other, "SIGKILL");
    await english.locator("#alert", { hasText: "Lost the connection to the server. Reconnecting…" }).waitFor({ timeout: 15_000 });
    await english.screenshot({ path: join(OUT, "batch-reconnecting.png"), fullPage: true });
    // Another view asked for meanwhile says the server cannot be reached, not nothing.
    await english.locator("#tab-history").click();
    await english.locator("#alert", { hasText: "The server cannot be reached" }).waitFor({ timeout: 10_000 });
    await english.locator("#tab-batch").click();
    other = await startServer(dir, [], other.port);
    await english.locator("#notice", { hasText: "Connected to the server again" }).waitFor({ timeout: 30_000 });
    assert.equal(await english.locator("#alert").isVisible(), false);
    await english.locator("#batch-summary-button").waitFor({ state: "visible", timeout: 120_000 });
    assert.equal(await english.locator('#batch-rows tr[data-status="done"]').count(), 6, "every file finished after the restart");
    assert.equal(await english.locator("#batch-meta").textContent(), "6/6 done · 0 failed");
  } finally {
    await english.close();
    await stopServer(other);
  }
});

test("a server with two models offers both, and the chosen one transcribes", async () => {
  const base = join(MODEL_DIR, "ggml-base-q8_0.bin");
  const other = await startServer(join(work, "data-models"), ["--model", base]);
  const chooser = await newPage("ko-KR");
  try {
    await chooser.goto(other.url);
    await chooser.locator("#single-model-label").waitFor({ state: "visible" });
    assert.deepEqual(await chooser.locator("#single-model option").allTextContents(), ["tiny.en-q8_0", "base-q8_0"]);
    await chooser.locator("#single-model").selectOption("base-q8_0");
    await chooser.locator("#single-file").setInputFiles(join(AUDIO, "ko_test.wav"));
    await chooser.locator("#single-result").waitFor({ state: "visible", timeout: 60_000 });
    const meta = await chooser.locator("#single-meta").textContent();
    assert.match(meta, /^ko · .* · base-q8_0$/, meta);
    assert.match(await chooser.locator("#single-text").textContent(), /[\uac00-\ud7a3]/, "Korean, from the multilingual model");
    await chooser.screenshot({ path: join(OUT, "model-choice.png"), fullPage: true });
    // A batch runs on the model chosen for it.
    await chooser.locator("#tab-batch").click();
    await chooser.locator("#batch-model").selectOption("base-q8_0");
    await chooser.locator("#batch-files").setInputFiles([join(AUDIO, "ko_test.wav")]);
    await chooser.locator('#batch-rows tr[data-status="done"]').waitFor({ timeout: 60_000 });
    assert.equal(await chooser.locator("#batch-rows td:nth-child(6)").textContent(), "ko", "Korean detected: base ran it");
  } finally {
    await chooser.close();
    await stopServer(other);
  }
});
