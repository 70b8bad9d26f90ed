// The Live view in Debian's chromium, whose fake microphone plays jfk.wav
// (over and over), against a real `sori serve` with tiny.en and Silero VAD:
// the words appear utterance by utterance, each with what it cost, and the
// stopped session is saved in the history, where it opens like an upload.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { ROOT, MODEL_DIR, CHROMIUM_ARGS, startServer, stopServer } from "./server.mjs";

const OUT = join(ROOT, "test-output");
const SPEECH = join(ROOT, "tests/fixtures/audio/jfk.wav");

let server, browser, work;

before(async () => {
  mkdirSync(OUT, { recursive: true });
  work = mkdtempSync(join(tmpdir(), "sori-live-"));
  server = await startServer(join(work, "data"), ["--vad-model", join(MODEL_DIR, "silero_vad_16k.onnx")]);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [...CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${SPEECH}`],
  });
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
  if (work) rmSync(work, { recursive: true, force: true });
});

test("the Live view shows the clip's words utterance by utterance, with what each cost, and saves the session", async () => {
  const context = await browser.newContext({ locale: "en-GB", viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(server.url);
  await page.locator("#tab-live").click();
  assert.equal(await page.locator("#live-status").textContent(), "Not listening");
  await page.locator("#live-start").click();
  await page.waitForFunction(() => /country/i.test(document.querySelector("#live-items").textContent),
    null, { timeout: 60_000 });
  const done = page.locator('.live-item[data-state="done"]');
  assert.ok(await done.count() >= 1);
  const meta = await done.first().locator(".live-meta").textContent();
  assert.match(meta, /^Processing time \d+\.\d+ s · CPU avg \d+% · RAM peak [\d,]+ MiB · latency \d+\.\d+ s · Audio length \d+\.\d+ s$/);
  const totals = await page.locator("#live-totals dt").allTextContents();
  assert.deepEqual(totals, ["Utterances", "Total audio", "Total processing", "CPU time", "RAM peak"]);
  await page.screenshot({ path: join(OUT, "live-en.png"), fullPage: true });

  await page.locator("#live-stop").click();
  await page.locator("#live-start").waitFor({ state: "visible", timeout: 30_000 });
  assert.equal(await page.locator("#live-status").textContent(), "Not listening");
  assert.equal(await page.locator('.live-item[data-state="speaking"], .live-item[data-state="transcribing"]').count(), 0,
    "every utterance cut before the stop has its text");
  assert.equal(await page.locator("#live-saved").isVisible(), true, "the stopped session was saved");
  const utterances = (await page.locator('.live-item[data-state="done"] .live-text:not(.empty)').allTextContents())
    .map((text) => text.trim()).filter(Boolean);
  // The record counts every utterance cut, those with no words too; the text has a line for each with words.
  const cut = await page.locator('.live-item[data-state="done"]').count();

  await page.locator("#live-open").click();
  await page.locator("#single-result").waitFor({ state: "visible" });
  assert.match(await page.locator("#single-filename").textContent(), /^Live session \d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
  assert.deepEqual((await page.locator("#single-text").textContent()).split("\n"), utterances,
    "the saved text is the session's utterances, a line each");
  assert.match(await page.locator("#single-meta").textContent(), new RegExp(`Utterances ${cut}$`));
  assert.equal(await page.locator("#single-live-note").isVisible(), true, "the figures say they combine the utterances");
  assert.ok(await page.locator("#single-segments li").count() >= utterances.length);
  await page.locator("#tab-live").click();
  await page.locator("#lang-switch").click();
  assert.equal(await page.locator("#tab-live").textContent(), "실시간");
  assert.equal(await page.locator("#live-status").textContent(), "대기 중");
  await context.close();
});
