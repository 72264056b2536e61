// One chart panel: queries /v1/query for each stat, draws the series with uPlot on a shared
// cursor, marks annotations, drills down on click, and exports its data as CSV or PNG.
import { query } from "./api.js";
import { fmt, timeText } from "./format.js";

const COLORS = ["#5aa9ff", "#f2994a", "#3fb950", "#d2a8ff", "#f85149", "#56d4dd", "#e3b341",
  "#ff7eb6", "#a5d6ff", "#8ddb8c"];
export const CURSOR_SYNC = "snakepit-perf";

// Series of several stats/groups joined on one time axis: {x: [...], series: [{label, values}]}
export function align(results) {
  const times = new Set();
  for (const r of results) for (const s of r.series) for (const [t] of s.points) times.add(t);
  const x = [...times].sort((a, b) => a - b);
  const index = new Map(x.map((t, i) => [t, i]));
  const series = [];
  for (const r of results) {
    for (const s of r.series) {
      const values = new Array(x.length).fill(null);
      for (const [t, v] of s.points) values[index.get(t)] = v;
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${v || "(none)"}`).join(" ");
      series.push({ label: [labels, r.stat].filter(Boolean).join(" "), values, labels: s.labels });
    }
  }
  return { x, series };
}

export function panelElement(spec, { editing, onEdit }) {
  const el = document.createElement("section");
  el.className = "panel";
  el.style.gridColumn = `span ${spec.width || 6}`;
  const h = document.createElement("h3");
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = spec.title;
  title.title = `${spec.metric} · ${spec.stats.join(", ")}${spec.group_by ? " by " + spec.group_by : ""}`;
  const tools = document.createElement("span");
  tools.className = "tools";
  const tool = (text, label, fn) => {
    const b = document.createElement("button");
    b.textContent = text; b.title = label; b.setAttribute("aria-label", label);
    b.addEventListener("click", fn);
    tools.append(b);
    return b;
  };
  tool("CSV", "download this panel's data as CSV", () => el.exportCsv());
  tool("PNG", "download this panel as a PNG image", () => el.exportPng());
  if (editing) {
    tool("←", "move left", () => onEdit("move", -1));
    tool("→", "move right", () => onEdit("move", 1));
    tool("−", "narrower", () => onEdit("width", -3));
    tool("+", "wider", () => onEdit("width", 3));
    tool("×", "remove panel", () => onEdit("remove"));
  }
  h.append(title, tools);
  const body = document.createElement("div");
  body.className = "chart";
  el.append(h, body);
  el.spec = spec;
  el.body = body;
  el.exportCsv = () => download(`${slug(spec.title)}.csv`, "text/csv", toCsv(el.data || { x: [], series: [] }));
  el.exportPng = () => {
    if (!el.chart) return;
    const src = el.chart.ctx.canvas;
    const out = document.createElement("canvas");
    out.width = src.width; out.height = src.height + 36;
    const c = out.getContext("2d");
    c.fillStyle = "#171b23"; c.fillRect(0, 0, out.width, out.height);
    c.fillStyle = "#d8dee9"; c.font = "bold 20px sans-serif"; c.fillText(spec.title, 12, 26);
    c.drawImage(src, 0, 36);
    out.toBlob((blob) => downloadBlob(`${slug(spec.title)}.png`, blob), "image/png");
  };
  return el;
}

export async function loadPanel(el, ctx) {
  const spec = el.spec;
  const where = [...(ctx.where || []), ...(spec.where || [])];
  let results;
  try {
    results = await Promise.all(spec.stats.map((stat) => query({
      metric: spec.metric, stat, from: ctx.from, to: ctx.to, step: `${ctx.step}s`,
      group_by: spec.group_by || undefined, where,
    })));
  } catch (e) {
    showEmpty(el, `Could not query ${spec.metric}: ${e.message}`);
    return;
  }
  const unit = results[0] ? results[0].unit : "";
  const data = align(results);
  drawChart(el, data, unit, ctx);
}

export function drawChart(el, data, unit, ctx) {
  el.data = data;
  el.unit = unit;
  if (!data.series.length || !data.x.length) {
    showEmpty(el, ctx.empty || "No data in this range. Events for this metric have not arrived yet, or the filters match nothing.");
    return;
  }
  const width = Math.max(el.body.clientWidth || el.clientWidth - 24, 200);
  const height = 200 * (el.spec.height || 1);
  const opts = {
    width, height,
    cursor: { sync: { key: CURSOR_SYNC }, drag: { x: true, y: false } },
    scales: { x: { time: true } },
    legend: { live: true },
    axes: [
      { stroke: "#8b94a5", grid: { stroke: "#242a35" }, ticks: { stroke: "#2a303c" } },
      { stroke: "#8b94a5", grid: { stroke: "#242a35" }, ticks: { stroke: "#2a303c" },
        size: 84, values: (u, vals) => vals.map((v) => fmt(v, unit)) },
    ],
    series: [
      { value: (u, v) => (v == null ? "–" : timeText(v)) },
      ...data.series.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], width: 1.6, spanGaps: false,
        points: { show: data.x.length < 60 }, value: (u, v) => fmt(v, unit),
      })),
    ],
    hooks: {
      draw: [(u) => markAnnotations(u, ctx.annotations || [])],
      setSelect: [(u) => {
        if (u.select.width > 5 && ctx.onZoom) {
          ctx.onZoom(Math.floor(u.posToVal(u.select.left, "x")),
            Math.ceil(u.posToVal(u.select.left + u.select.width, "x")));
        }
      }],
    },
  };
  el.body.replaceChildren();
  const chart = new uPlot(opts, [data.x, ...data.series.map((s) => s.values)], el.body);
  el.chart = chart;
  el.__chart = chart;
  chart.over.addEventListener("click", () => {
    const i = chart.cursor.idx;
    if (i == null || !ctx.onDrill) return;
    const t = data.x[i];
    const labels = nearestSeriesLabels(chart, data, i);
    ctx.onDrill(t, t + ctx.step, labels);
  });
}

function nearestSeriesLabels(chart, data, i) {
  const top = chart.cursor.top;
  let best = null, dist = Infinity;
  data.series.forEach((s, k) => {
    const v = s.values[i];
    if (v == null) return;
    const d = Math.abs(chart.valToPos(v, "y") - top);
    if (d < dist) { dist = d; best = s.labels; }
  });
  return best || {};
}

const VERDICT_COLOURS = { regressed: "#f85149", improved: "#3fb950", unchanged: "#8b949e" };

function markAnnotations(u, annotations) {
  const c = u.ctx;
  const [lo, hi] = [u.scales.x.min, u.scales.x.max];
  c.save();
  c.strokeStyle = "#d29922"; c.fillStyle = "#d29922"; c.setLineDash([4, 4]); c.lineWidth = 1;
  c.font = `${11 * devicePixelRatio}px sans-serif`;
  for (const a of annotations) {
    if (a.time < lo || a.time > hi) continue;
    const x = Math.round(u.valToPos(a.time, "x", true));
    // a judged deploy says how it went, in the colour of its verdict
    c.strokeStyle = c.fillStyle = VERDICT_COLOURS[a.verdict] || "#d29922";
    c.beginPath(); c.moveTo(x, u.bbox.top); c.lineTo(x, u.bbox.top + u.bbox.height); c.stroke();
    c.fillText(a.verdict ? `${a.title}: ${a.verdict}` : a.title, x + 4, u.bbox.top + 12 * devicePixelRatio);
  }
  c.restore();
}

export function showEmpty(el, text) {
  el.data = { x: [], series: [] };
  el.chart = null;
  const p = document.createElement("div");
  p.className = "empty";
  p.textContent = text;
  el.body.replaceChildren(p);
}

export function toCsv(data) {
  const head = ["time", ...data.series.map((s) => s.label)];
  const rows = data.x.map((t, i) => [new Date(t * 1000).toISOString(),
    ...data.series.map((s) => (s.values[i] == null ? "" : s.values[i]))]);
  return [head, ...rows].map((r) => r.map(csvCell).join(",")).join("\n") + "\n";
}

function csvCell(v) {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function slug(text) { return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "panel"; }

export function download(name, type, text) { downloadBlob(name, new Blob([text], { type })); }

export function downloadBlob(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
