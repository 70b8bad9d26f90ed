// What the browser tests share: a real `sori serve` on a free port, and
// how Debian's chromium is started (headless, and nothing reaching outside).
import { spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { createServer } from "node:net";

export const ROOT = resolve(import.meta.dirname, "../..");
export const MODEL_DIR = process.env.SORI_MODEL_DIR || join(ROOT, "models");
export const MODEL = join(MODEL_DIR, "ggml-tiny.en-q8_0.bin");
export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"];

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

/** Starts `sori serve` on `dataDir` (and `port`, or a free one) with the tests' model folder, so nothing is fetched into this one; resolves once it is ready. */
export async function startServer(dataDir, args = [], port) {
  port ??= await freePort();
  const proc = spawn(join(ROOT, "target/release/sori"),
    ["serve", "--model", MODEL, "--model-dir", MODEL_DIR, "--port", String(port), "--data-dir", dataDir, ...args], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/readyz`);
  return { proc, url, port };
}

/** Stops a server and waits for it to be gone. */
export function stopServer(server, signal = "SIGTERM") {
  return new Promise((res) => {
    if (server.proc.exitCode !== null) return res();
    server.proc.once("exit", res);
    server.proc.kill(signal);
  });
}

