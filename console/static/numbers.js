// numbers.js: numbers at a glance, sampled from GET /metrics (Prometheus
// text format, parsed here) every few seconds and drawn as small SVG charts.
// Counters are shown as rates per second between samples.
import { el, errorText } from "./api.js";

const EVERY = 2000; // ms between samples
const KEEP = 60; // samples per chart

// [title, metric, kind, label filter, unit]
const CHARTS = [
  ["HTTP requests /s", "switchboard_http_requests_total", "rate", null, ""],
  ["HTTP 5xx /s", "switchboard_http_requests_total", "rate", (l) => /^5/.test(l.status || ""), ""],
  ["Messages ingested /s", "switchboard_router_ingested_total", "rate", null, ""],
  ["Delivery attempts /s", "switchboard_outbox_attempts_total", "rate", null, ""],
  ["Dead deliveries /s", "switchboard_outbox_attempts_total", "rate", (l) => l.result === "dead", ""],
  ["Store commits /s", "switchboard_store_commits_total", "rate", null, ""],
  ["Sessions in hand", "switchboard_router_sessions_in_hand", "gauge", null, ""],
  ["Goroutines", "go_goroutines", "gauge", null, ""],
  ["Resident memory", "process_resident_memory_bytes", "gauge", null, "B"],
];

/**
 * parse reads Prometheus text exposition into [{name, labels, value}],
 * skipping comments; it needs no more than the format's sample lines.
 */
export function parse(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

// sum adds the samples of name that pass filter: 0 when there are none (a
// labelled counter has no samples until its first event).
function sum(samples, name, filter) {
  let s = 0;
  for (const x of samples) if (x.name === name && (!filter || filter(x.labels))) s += x.value;
  return s;
}

function human(v, unit) {
  if (v === null || v === undefined || isNaN(v)) return "–";
  const abs = Math.abs(v);
  if (unit === "B") {
    const u = ["B", "KiB", "MiB", "GiB"];
    let i = 0, x = v;
    while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
    return x.toFixed(1) + " " + u[i];
  }
  if (abs >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (abs >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return abs >= 10 || v === Math.round(v) ? String(Math.round(v)) : v.toFixed(2);
}

const SVG = "http://www.w3.org/2000/svg";

function draw(svg, points) {
  const w = 240, h = 80;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const vals = points.filter((p) => p !== null);
  const hi = Math.max(1e-9, ...vals);
  const line = document.createElementNS(SVG, "polyline");
  // The line spans the width from the first known value, and grows denser.
  const step = w / Math.max(1, vals.length - 1);
  line.setAttribute("points", vals.map((p, i) => `${i * step},${h - 4 - (p / hi) * (h - 8)}`).join(" "));
  svg.replaceChildren(line);
}

export async function show(main) {
  const grid = el("div", { class: "charts", id: "charts" });
  const note = el("p", { class: "muted", id: "numbers-status" }, `Sampled from /metrics every ${EVERY / 1000}s.`);
  main.append(el("h2", {}, "Numbers"), note, grid);
  const series = CHARTS.map(([title, , , , unit]) => {
    const value = el("div", { class: "value" }, "–");
    const svg = document.createElementNS(SVG, "svg");
    grid.append(el("div", { class: "chart panel", "data-title": title }, el("h3", {}, title), value, svg));
    return { value, svg, unit, points: [], prev: null };
  });
  let prevAt = 0;
  const sample = async () => {
    let text;
    try {
      const r = await fetch("/metrics", { credentials: "same-origin" });
      if (!r.ok) throw new Error(`/metrics answered ${r.status}`);
      text = await r.text();
    } catch (e) { note.textContent = errorText(e); return; }
    const at = performance.now();
    const samples = parse(text);
    CHARTS.forEach(([, name, kind, filter], i) => {
      const s = series[i];
      const v = sum(samples, name, filter);
      let shown = v;
      if (kind === "rate") {
        shown = s.prev === null || v === null || !prevAt ? null : Math.max(0, (v - s.prev) / ((at - prevAt) / 1000));
        s.prev = v;
      }
      s.points.push(shown);
      if (s.points.length > KEEP) s.points.shift();
      s.value.textContent = human(shown, s.unit);
      draw(s.svg, s.points);
    });
    prevAt = at;
  };
  await sample();
  const t = setInterval(sample, EVERY);
  return () => clearInterval(t);
}
