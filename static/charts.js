// The page's charts, drawn by uPlot (vendored, see static/vendor/README.md):
// CPU % and RAM MiB over a request on two labelled y axes against seconds, and
// processing time and CPU per file of a batch; each with a legend that reads
// out the values under the pointer.
import { t } from "./i18n.js";
import { el, fmt } from "./view.js";

const HEIGHT = 240;

/** A colour of the page's stylesheet (canvas cannot read CSS variables). */
function color(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** Replaces the chart in `box` (if any) with one made by uPlot from `opts` and `data`. */
function draw(box, opts, data) {
  box.chart?.destroy();
  box.resizer?.disconnect();
  box.replaceChildren();
  const chart = new uPlot({ width: Math.max(box.clientWidth, 320), height: HEIGHT, ...opts }, data, box);
  box.chart = chart;
  box.resizer = new ResizeObserver(() => {
    if (box.clientWidth > 0 && Math.abs(box.clientWidth - chart.width) > 1) chart.setSize({ width: box.clientWidth, height: HEIGHT });
  });
  box.resizer.observe(box);
}

/** An axis on the page's colours, labelled with its quantity and unit. */
function axis(label, more = {}) {
  return { label, stroke: color("--muted"), grid: { stroke: color("--line"), width: 1 }, ticks: { stroke: color("--line") }, ...more };
}

const shown = (format) => (u, v) => (v == null ? "–" : format(v));

/** The CPU % and RAM MiB samples of one request against seconds from its start. */
export function samplesChart(box, samples) {
  if (!samples.length) {
    box.chart?.destroy();
    box.chart = null;
    box.replaceChildren(el("p", { class: "empty" }, t("no_samples")));
    return;
  }
  const data = [samples.map((s) => s.t_sec), samples.map((s) => s.cpu_percent), samples.map((s) => s.ram_mb)];
  const cpuTop = Math.ceil(Math.max(100, ...data[1]) / 50) * 50;
  draw(box, {
    scales: {
      x: { time: false },
      cpu: { range: [0, cpuTop] },
      ram: { range: (u, min, max) => [0, Math.max(max * 1.15, 1)] },
    },
    axes: [
      axis(t("axis_time")),
      axis("CPU (%)", { scale: "cpu", size: 55 }),
      axis("RAM (MiB)", { scale: "ram", side: 1, size: 70, grid: { show: false } }),
    ],
    series: [
      { label: t("chart_legend_time"), value: shown((v) => `${v.toFixed(2)} s`) },
      { label: "CPU", scale: "cpu", stroke: color("--cpu"), width: 2, value: shown(fmt.pct) },
      { label: "RAM", scale: "ram", stroke: color("--ram"), width: 2, value: shown(fmt.mib) },
    ],
  }, data);
}

/** At most `n` characters of a file name for an axis (the legend shows it whole). */
function short(name, n = 14) {
  return name.length > n ? `${name.slice(0, n - 1)}…` : name;
}

/** Processing time (bars) and CPU avg (points) of each file, in the order given. */
export function perFileChart(box, files) {
  const names = files.map((f) => f.filename);
  const data = [files.map((_, i) => i), files.map((f) => f.processing_time_sec), files.map((f) => f.cpu_percent_avg)];
  const cpuTop = Math.ceil(Math.max(100, ...data[2]) / 50) * 50;
  draw(box, {
    scales: {
      x: { time: false, range: [-0.5, Math.max(files.length - 0.5, 0.5)] },
      sec: { range: (u, min, max) => [0, Math.max(max * 1.15, 0.1)] },
      cpu: { range: [0, cpuTop] },
    },
    axes: [
      axis(t("col_name"), {
        incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
        values: (u, splits) => splits.map((i) => (Number.isInteger(i) && names[i] !== undefined ? short(names[i]) : "")),
      }),
      axis(`${t("processing")} (s)`, { scale: "sec", size: 55 }),
      axis("CPU (%)", { scale: "cpu", side: 1, size: 55, grid: { show: false } }),
    ],
    series: [
      { label: t("col_name"), value: shown((i) => names[i] ?? "–") },
      {
        label: t("processing"), scale: "sec", stroke: color("--cpu"), fill: `${color("--cpu")}99`, width: 1,
        paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false }, value: shown(fmt.sec),
      },
      {
        label: "CPU", scale: "cpu", stroke: color("--ram"), width: 0, paths: () => null,
        points: { show: true, size: 9, fill: color("--ram") }, value: shown(fmt.pct),
      },
    ],
  }, data);
}
