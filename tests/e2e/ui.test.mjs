// Real-browser end-to-end tests of Sori's web UI: Debian's chromium driven by
// playwright-core, against a real `sori serve` with the real tiny.en model.
// Screenshots go to test-output/ at the repository root.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, copyFileSync, writeFileSync, existsSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createServer } from "node:net";
import { chromium } from "playwright-core";

const ROOT = resolve(import.meta.dirname, "../..");
const OUT = join(ROOT, "test-output");
const AUDIO = join(ROOT, "tests/fixtures/audio");
const MODEL = join(process.env.SORI_MODEL_DIR || join(ROOT, "models"), "ggml-tiny.en-q8_0.bin");
const XSS_NAME = "<img src=x onerror=alert(1)>.wav";

let server, browser, page, base, work;
const dialogs = [];

function freePort() {
  return new Promise((res) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function waitReady(url) {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never became ready`);
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
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(join(ROOT, "target/release/sori"),
    ["serve", "--model", MODEL, "--port", String(port), "--data-dir", join(work, "data")],
    { stdio: "ignore" });
  await waitReady(`${base}/readyz`);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"],
  });
  const context = await browser.newContext({ locale: "ko-KR", viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  await page.goto(base);
});

after(async () => {
  await browser?.close();
  server?.kill();
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
  assert.ok(await page.locator("#single-chart polyline").count() === 2, "CPU and RAM lines");
  await page.screenshot({ path: join(OUT, "single-result.png"), fullPage: true });
});

/** Clicks `selector` and returns the name and text of the file the page downloads. */
async function downloaded(selector) {
  const [download] = await Promise.all([page.waitForEvent("download"), page.locator(selector).click()]);
  return { name: download.suggestedFilename(), text: readFileSync(await download.path(), "utf8") };
}

test("the transcript downloads as text, SRT and VTT", async () => {
  const txt = await downloaded("#download-text");
  assert.equal(txt.name, "jfk.txt");
  assert.match(txt.text.toLowerCase(), /ask not what your country/);
  const srt = await downloaded("#download-srt");
  assert.equal(srt.name, "jfk.srt");
  assert.match(srt.text, /^1\n00:00:0\d,\d{3} --> 00:00:\d\d,\d{3}\n\S/);
  const vtt = await downloaded("#download-vtt");
  assert.equal(vtt.name, "jfk.vtt");
  assert.match(vtt.text, /^WEBVTT\n\n1\n00:00:0\d\.\d{3} --> /);
  assert.match(vtt.text.toLowerCase(), /your country/);
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
  assert.match(perf, /^CPU: \d+% \| RAM: \d+MB$/);
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
  assert.ok(await fileModal.locator("polyline").count() === 2);
  await page.screenshot({ path: join(OUT, "file-modal.png") });
  await page.keyboard.press("Escape");
  await fileModal.waitFor({ state: "hidden" });

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
  assert.equal(await summary.locator("#summary-chart rect").count(), 3, "one bar per done file");
  await page.screenshot({ path: join(OUT, "summary-modal.png") });
  await page.keyboard.press("Escape");
  await summary.waitFor({ state: "hidden" });
});

test("with an API key set, the page asks for it once and keeps it", async () => {
  const port = await freePort();
  const keyed = `http://127.0.0.1:${port}`;
  const other = spawn(join(ROOT, "target/release/sori"),
    ["serve", "--model", MODEL, "--port", String(port), "--data-dir", join(work, "data-keyed"), "--api-key", "e2e-secret"],
    { stdio: "ignore" });
  try {
    await waitReady(`${keyed}/readyz`);
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
    other.kill();
  }
});
