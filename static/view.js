// What every view of the page shares: finding and making elements, number
// formats, the figures of a transcription, and the page's messages.
// Everything shown is set with textContent: file names and transcripts are user input.
import { t, currentLanguage } from "./i18n.js";

/** The element with id `id`. */
export const $ = (id) => document.getElementById(id);

/** A new `tag` element with `attrs`, holding `text` as text. */
export function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Numbers as the page shows them, with their units. */
export const fmt = {
  pct: (v) => `${Math.round(v)}%`,
  mib: (v) => `${Math.round(v).toLocaleString()} MiB`,
  sec: (v) => (v == null ? "–" : `${Number(v).toFixed(v < 10 ? 2 : 1)} s`),
  clock: (v) => {
    const m = Math.floor(v / 60), s = (v % 60).toFixed(1).padStart(4, "0");
    return `${m}:${s}`;
  },
  date: (iso) => new Date(iso).toLocaleString(currentLanguage() === "ko" ? "ko-KR" : "en-GB",
    { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }),
};

/** The eight figures, labelled, in contract order. */
export function eightFigures(p) {
  return [
    ["cpu_avg", fmt.pct(p.cpu_percent_avg)],
    ["cpu_max", fmt.pct(p.cpu_percent_max)],
    ["ram_avg", fmt.mib(p.ram_mb_avg)],
    ["ram_peak", fmt.mib(p.ram_mb_peak)],
    ["gpu_vram", p.gpu_available ? fmt.mib(p.gpu_vram_mb_current) : `0 MiB (${t("no_gpu")})`],
    ["gpu_vram_peak", fmt.mib(p.gpu_vram_mb_peak)],
    ["gpu_util", p.gpu_percent_source === "device" ? `${fmt.pct(p.gpu_percent)} (${t("gpu_whole_device")})` : fmt.pct(p.gpu_percent)],
    ["processing", fmt.sec(p.processing_time_sec)],
  ];
}

/** How much faster (or slower) than real time a real-time factor is, in words. */
export function speedInWords(rtf) {
  if (!(rtf > 0)) return "–";
  const times = rtf < 1 ? 1 / rtf : rtf;
  const n = times >= 10 ? Math.round(times).toLocaleString() : times.toFixed(1);
  return t(rtf < 1 ? "rtf_faster" : "rtf_slower", { n });
}

/** The real-time factor, and in words how much faster (or slower) than real time. */
export function rtfOf(p) {
  const rtf = p.real_time_factor;
  if (!(rtf > 0)) return ["rtf", rtf.toFixed(3)];
  return ["rtf", `${rtf.toFixed(3)} · ${speedInWords(rtf)}`];
}

/** What the CPU, RAM and GPU figures cover, in words. */
export function scopeOf(p) {
  const n = p.concurrent_jobs_max ?? 0;
  const key = p.scope === "request" && n > 0 ? "request_beside" : p.scope || "unrecorded";
  return ["scope", t(`scope_${key}`, { n })];
}

/** Fills a <dl> with labelled figures. */
export function fillMetrics(dl, pairs) {
  dl.replaceChildren(...pairs.map(([key, value]) => {
    const box = el("div", { "data-metric": key });
    box.append(el("dt", {}, t(key)), el("dd", {}, value));
    return box;
  }));
}

/** Shows an error in the page's alert, or hides it (empty message). */
export function showError(message) {
  const alert = $("alert");
  alert.textContent = message;
  alert.hidden = !message;
}

/** Shows a passing note (something done, the server back) for a few seconds. */
export function showNotice(message) {
  const notice = $("notice");
  notice.textContent = message;
  notice.hidden = false;
  clearTimeout(showNotice.timer);
  showNotice.timer = setTimeout(() => { notice.hidden = true; }, 4000);
}

/** The server's message in an error answer, or a general one. */
export function errorMessage(body) {
  return (body && body.error && body.error.message) || t("error_generic");
}

/** A table cell holding `child`. */
export function cellWith(child) {
  const td = el("td");
  td.append(child);
  return td;
}

/** Opens `dialog`; when it closes, focus goes back to what had it before. */
export function openDialog(dialog) {
  const before = document.activeElement;
  dialog.addEventListener("close", () => { if (before && before.isConnected) before.focus(); }, { once: true });
  dialog.showModal();
}
