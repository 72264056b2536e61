// Table views: pools side by side, sortable workers, drill-down requests, correlations.
import { get, query } from "./api.js";
import { fmt, timeText } from "./format.js";
import { CORRELATED } from "./views.js";

// One value per group over the whole range: {groupKey: value}
async function totals(metric, stat, ctx, group_by) {
  const r = await query({ metric, stat, from: ctx.from, to: ctx.to, group_by, where: ctx.where });
  const out = new Map();
  for (const s of r.series) {
    const key = group_by.split(",").map((d) => s.labels[d]).join("\u0000");
    out.set(key, s.points.length ? s.points[0][1] : null);
  }
  return out;
}

export function table(columns, rows, { sortBy, onRow, highlight } = {}) {
  const el = document.createElement("table");
  el.className = "data";
  let sort = { key: sortBy || columns[0].key, asc: !sortBy };
  const render = () => {
    const sorted = [...rows].sort((a, b) => {
      const x = a[sort.key], y = b[sort.key];
      if (x == null || y == null) return (x == null) - (y == null); // missing last, either way
      const c = typeof x === "string" ? x.localeCompare(y) : x - y;
      return sort.asc ? c : -c;
    });
    const head = document.createElement("tr");
    for (const col of columns) {
      const th = document.createElement("th");
      th.textContent = col.label;
      th.dataset.key = col.key;
      if (col.text) th.className = "text";
      if (col.key === sort.key) th.classList.add("sorted", ...(sort.asc ? ["asc"] : []));
      th.addEventListener("click", () => {
        sort = { key: col.key, asc: sort.key === col.key ? !sort.asc : !!col.text };
        render();
      });
      head.append(th);
    }
    const body = sorted.map((row) => {
      const tr = document.createElement("tr");
      if (onRow) { tr.className = "link"; tr.addEventListener("click", () => onRow(row)); }
      for (const col of columns) {
        const td = document.createElement("td");
        td.textContent = col.format ? col.format(row[col.key], row) : row[col.key] ?? "–";
        if (col.text) td.className = "text";
        const mark = highlight && highlight(col, row);
        if (mark) td.classList.add(mark);
        if (col.cls) { const c = col.cls(row[col.key], row); if (c) td.classList.add(c); }
        tr.append(td);
      }
      return tr;
    });
    el.replaceChildren(head, ...body);
  };
  render();
  return el;
}

export function section(title, hint) {
  const el = document.createElement("section");
  el.className = "panel";
  el.style.gridColumn = "span 12";
  const h = document.createElement("h3");
  h.textContent = title;
  el.append(h);
  if (hint) { const p = document.createElement("p"); p.className = "hint"; p.textContent = hint; el.append(p); }
  return el;
}

export function empty(text) {
  const p = document.createElement("div");
  p.className = "empty";
  p.textContent = text;
  return p;
}

const seconds = (v) => fmt(v, "seconds");
const ratio = (v) => fmt(v, "ratio");
const count = (v) => fmt(v, "");

export async function poolsTable(ctx, onPool) {
  const el = section("Pools side by side",
    "Red: worse than 1.25× the median of the pools; green: the best. Click a pool for its workers.");
  const span = ctx.to - ctx.from;
  const [reqs, errs, p50, p99, util, queue] = await Promise.all([
    totals("requests_total", "count", ctx, "pool"),
    totals("request_errors_total", "count", ctx, "pool"),
    totals("request_duration_seconds", "p50", ctx, "pool"),
    totals("request_duration_seconds", "p99", ctx, "pool"),
    totals("pool_utilization_ratio", "value", ctx, "pool"),
    totals("queue_depth", "max", ctx, "pool"),
  ]);
  const rows = [...reqs.keys()].map((pool) => ({
    pool, requests: reqs.get(pool), rate: reqs.get(pool) / span,
    error_ratio: reqs.get(pool) ? (errs.get(pool) || 0) / reqs.get(pool) : null,
    p50: p50.get(pool), p99: p99.get(pool), utilisation: util.get(pool) ?? null,
    queue: queue.get(pool) ?? null,
  }));
  if (!rows.length) { el.append(empty("No requests in this range yet. Send events to /v1/events or Kafka, or start with `snakepit-perf run --simulate`.")); return el; }
  const worseIsHigher = new Set(["error_ratio", "p50", "p99", "utilisation", "queue"]);
  const medians = {};
  for (const key of worseIsHigher) {
    const vs = rows.map((r) => r[key]).filter((v) => v != null).sort((a, b) => a - b);
    medians[key] = vs.length ? { median: vs[Math.floor((vs.length - 1) / 2)], best: vs[0] } : null;
  }
  el.append(table([
    { key: "pool", label: "Pool", text: true },
    { key: "requests", label: "Requests", format: count },
    { key: "rate", label: "Req/s", format: (v) => fmt(v, "") },
    { key: "p50", label: "P50", format: seconds },
    { key: "p99", label: "P99", format: seconds },
    { key: "error_ratio", label: "Errors", format: ratio },
    { key: "utilisation", label: "Utilisation", format: ratio },
    { key: "queue", label: "Max queue", format: count },
  ], rows, {
    sortBy: "requests",
    onRow: (row) => onPool(row.pool),
    highlight: (col, row) => {
      const m = medians[col.key];
      const v = row[col.key];
      if (!m || v == null || rows.length < 2) return null;
      if (v > m.median * 1.25 && v > m.best) return "worse";
      if (v === m.best && v < m.median) return "better";
      return null;
    },
  }));
  return el;
}

export async function workersTable(ctx, onWorker) {
  const el = section("Workers", "Click a column to sort, a worker for its slowest and sampled requests.");
  const g = "pool,worker_id";
  const [reqs, util, p50, p99, errs, recycles, crashes] = await Promise.all([
    totals("worker_requests_total", "count", ctx, g),
    totals("worker_utilization_ratio", "value", ctx, g),
    totals("worker_response_seconds", "p50", ctx, g),
    totals("worker_response_seconds", "p99", ctx, g),
    totals("worker_errors_total", "count", ctx, g),
    totals("worker_recycles_total", "count", ctx, g),
    totals("worker_crashes_total", "count", ctx, g),
  ]);
  const keys = new Set([...reqs.keys(), ...recycles.keys(), ...crashes.keys()]);
  const rows = [...keys].filter((k) => !k.endsWith("\u0000")).map((k) => {
    const [pool, worker_id] = k.split("\u0000");
    const n = reqs.get(k) || 0;
    return { pool, worker_id, requests: n, utilisation: util.get(k) ?? null, p50: p50.get(k) ?? null,
      p99: p99.get(k) ?? null, errors: errs.get(k) || 0, error_ratio: n ? (errs.get(k) || 0) / n : null,
      recycles: recycles.get(k) || 0, crashes: crashes.get(k) || 0 };
  });
  if (!rows.length) { el.append(empty("No worker activity in this range (or none for these filters).")); return el; }
  el.append(table([
    { key: "worker_id", label: "Worker", text: true },
    { key: "pool", label: "Pool", text: true },
    { key: "requests", label: "Requests", format: count },
    { key: "utilisation", label: "Utilisation", format: ratio },
    { key: "p50", label: "P50", format: seconds },
    { key: "p99", label: "P99", format: seconds },
    { key: "errors", label: "Errors", format: count, cls: (v) => (v ? "worse" : null) },
    { key: "error_ratio", label: "Error %", format: ratio },
    { key: "recycles", label: "Recycles", format: count },
    { key: "crashes", label: "Crashes", format: count, cls: (v) => (v ? "worse" : null) },
  ], rows, { sortBy: "utilisation", onRow: (row) => onWorker(row) }));
  return el;
}

export async function requestsTable(ctx) {
  const el = section("Requests",
    "The slowest requests and a uniform sample kept by the engine for every worker and window (exemplars).");
  const r = await get("/v1/requests", { from: ctx.from, to: ctx.to, where: ctx.where, limit: 200 });
  const rows = r.requests.map((x) => ({ ...x, overhead_us: x.python_us == null ? null : x.duration_us - x.python_us }));
  if (!rows.length) { el.append(empty("No requests recorded for this range and these filters. Widen the range or remove a filter.")); return el; }
  const us = (v) => (v == null ? "–" : fmt(v / 1e6, "seconds"));
  el.append(table([
    { key: "time", label: "Time", text: true, format: (v) => timeText(v) },
    { key: "pool", label: "Pool", text: true },
    { key: "worker_id", label: "Worker", text: true },
    { key: "command", label: "Command", text: true },
    { key: "status", label: "Status", text: true, cls: (v) => `status-${v}` },
    { key: "duration_us", label: "Duration", format: us },
    { key: "queue_wait_us", label: "Queue wait", format: us },
    { key: "python_us", label: "Python", format: us },
    { key: "overhead_us", label: "Elixir overhead", format: us },
    { key: "trace_id", label: "Trace", text: true },
    { key: "session_id", label: "Session", text: true },
  ], rows, { sortBy: "duration_us" }));
  return el;
}

export async function correlationTable(ctx) {
  const el = section("Which signals moved together",
    "Pearson correlation of each pair over the range, aligned per step; strongest first.");
  const step = `${Math.max(ctx.step, 60)}s`;
  const r = await get("/v1/correlations", { metrics: CORRELATED.map(([m]) => m), from: ctx.from,
    to: ctx.to, step, where: ctx.where });
  const name = Object.fromEntries(CORRELATED);
  const rows = r.filter((c) => c.pearson_r != null).map((c) => ({ a: name[c.a], b: name[c.b],
    r: c.pearson_r, p: c.p_value, points: c.points }));
  if (!rows.length) { el.append(empty("Not enough overlapping data to correlate (each pair needs 3+ points with variation). Widen the range.")); return el; }
  el.append(table([
    { key: "a", label: "Signal", text: true },
    { key: "b", label: "With", text: true },
    { key: "r", label: "Pearson r", format: (v) => v.toFixed(2) },
    { key: "abs", label: "Strength", text: true, format: (v, row) => (row.r < 0 ? "▒" : "█").repeat(Math.max(1, Math.round(v * 12))) },
    { key: "p", label: "p-value", format: (v) => (v == null ? "–" : v < 1e-4 ? "<0.0001" : v.toFixed(4)) },
    { key: "points", label: "Points", format: count },
  ], rows.map((x) => ({ ...x, abs: Math.abs(x.r) })), { sortBy: "abs" }));
  return el;
}
