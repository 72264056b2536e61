// The benchmarks view (R9): a scenario's runs, its history with change points marked, and a
// run against its baseline with intervals and the root cause. Every number is the API's.
import { get } from "./api.js";
import { fmt, timeText } from "./format.js";
import { drawChart } from "./panel.js";
import { empty, section, table } from "./tables.js";

const seconds = (v) => fmt(v, "seconds");
// A change as the API gives it: relative, except the error rate's (absolute, in points).
export function change(v, metric) {
  if (v == null) return "–";
  return metric === "error_rate" ? `${(v * 100).toFixed(2)} pp` : `${v >= 0 ? "+" : ""}${(v * 100).toFixed(1)}%`;
}
const value = (v, metric) => (metric === "throughput" ? fmt(v, "/s") : metric === "error_rate" ? fmt(v, "ratio") : seconds(v));

export async function benchmarksView(state) {
  const runs = await get("/v1/benchmarks", { limit: 1000 });
  const out = await deploys(state);
  if (!runs.length) {
    const el = section("Benchmarks");
    el.append(empty("No benchmark runs yet. Record one with `snakepit-perf bench run --scenario NAME -- <load command>` or POST /v1/benchmarks."));
    return [el];
  }
  const scenarios = [...new Set(runs.map((r) => r.scenario))].sort();
  const scenario = scenarios.includes(state.scenario) ? state.scenario : runs[0].scenario;
  const mine = runs.filter((r) => r.scenario === scenario);
  const finished = mine.filter((r) => r.status === "finished");
  const selected = mine.find((r) => r.id === state.run) || finished[0];

  const list = section("Runs", "Newest first; click a run to compare it with its baseline (the pinned run, else the last 3 runs of branch main).");
  list.id = "bench-runs";
  const pick = document.createElement("select");
  pick.setAttribute("aria-label", "scenario");
  pick.append(...scenarios.map((s) => new Option(s, s, false, s === scenario)));
  pick.onchange = () => state.go({ scenario: pick.value, run: "" });
  list.querySelector("h3").append(" ", pick);
  const o = (r) => (r.results && r.results.overall) || {};
  list.append(table([
    { key: "started", label: "Started", text: true, format: (v) => timeText(v) },
    { key: "branch", label: "Branch", text: true },
    { key: "sha", label: "Commit", text: true },
    { key: "status", label: "Status", text: true, format: (v, row) => `${v}${row.pinned ? " (pinned)" : ""}${row.id === (selected && selected.id) ? " ◀" : ""}` },
    { key: "requests", label: "Requests", format: (v) => fmt(v, "") },
    { key: "p50", label: "P50", format: seconds },
    { key: "p99", label: "P99", format: seconds },
    { key: "throughput", label: "Throughput", format: (v) => fmt(v, "/s") },
    { key: "error_rate", label: "Errors", format: (v) => fmt(v, "ratio") },
  ], mine.map((r) => ({ ...o(r), id: r.id, started: r.started, status: r.status, pinned: r.pinned,
    branch: r.labels.branch || "", sha: (r.labels.sha || r.labels.git_sha || "").slice(0, 10) })),
  { sortBy: "started", onRow: (row) => state.go({ scenario, run: row.id }) }));
  const compared = selected && selected.status === "finished" ? await comparison(selected) : null;
  // The history last: its chart is drawn on the next frame, once the view is in the page.
  out.push(list, await history(scenario, finished));
  if (compared) out.push(compared);
  return out;
}

// Each judged deploy: its after window against its before window (api/deploys.py).
async function deploys(state) {
  const judged = await get("/v1/deploys");
  if (!judged.length) return [];
  const el = section("Deploys", "Each deploy annotation: the window after it against the window before it; click one for its comparison.");
  el.id = "deploys";
  el.append(table([
    { key: "time", label: "Deployed", text: true, format: (v) => timeText(v) },
    { key: "version", label: "Version", text: true },
    { key: "pool", label: "Pool", text: true },
    { key: "status", label: "Verdict", text: true },
    { key: "summary", label: "Summary", text: true },
  ], judged.map((d) => ({ ...d, pool: d.group === "deploy" ? "all" : d.group })),
  { sortBy: "time", onRow: (row) => state.go({ scenario: "deploy", run: row.run }) }));
  return [el];
}

async function history(scenario, finished) {
  const el = section("History (branch main): P99 per run", "Change points found by E-Divisive means over the runs are marked.");
  el.id = "bench-history";
  el.spec = { height: 1 };
  el.body = document.createElement("div");
  el.append(el.body);
  const main = finished.filter((r) => r.labels.branch === "main" && r.results.overall.p99 != null)
    .sort((a, b) => a.started - b.started);
  const cps = await get("/v1/regressions", { scenario });
  el.changePoints = cps;
  const marks = cps.map((c) => ({ time: main[c.index].started, title: `${c.kind} ${change(c.change)}` }));
  // Drawn once attached, so the chart takes the panel's width.
  requestAnimationFrame(() => drawChart(el, { x: main.map((r) => r.started),
    series: [{ label: "P99", values: main.map((r) => r.results.overall.p99), labels: {} }] },
  "seconds", { annotations: marks, empty: "No finished runs on branch main yet." }));
  return el;
}

async function comparison(run) {
  const el = section(`Run ${run.id} vs its baseline`);
  el.id = "bench-compare";
  let report;
  try { report = await get(`/v1/benchmarks/${run.id}/compare`); } catch (e) {
    el.append(empty(e.message));
    return el;
  }
  el.report = report;
  const head = document.createElement("p");
  head.className = `verdict ${report.verdict}`;
  head.textContent = `${report.verdict.replace("_", " ")} — baseline ${report.baseline.join(", ")}; ${report.method}`;
  el.append(head);
  const rows = report.differences.filter((d) => d.slice === "overall" || ["regression", "improvement"].includes(d.verdict));
  el.append(table([
    { key: "slice", label: "Slice", text: true },
    { key: "metric", label: "Metric", text: true },
    { key: "baseline", label: "Baseline", format: (v, r) => value(v, r.metric) },
    { key: "run", label: "Run", format: (v, r) => value(v, r.metric) },
    { key: "change", label: "Change", format: (v, r) => change(v, r.metric) },
    { key: "ci", label: "95 % interval", text: true, format: (v, r) => (v[0] == null ? "–" : `${change(v[0], r.metric)} … ${change(v[1], r.metric)}`) },
    { key: "p_adjusted", label: "p (Holm)", format: (v) => (v == null ? "–" : v < 1e-4 ? "<0.0001" : v.toFixed(4)) },
    { key: "mde", label: "Detectable", format: (v, r) => change(v, r.metric) },
    { key: "verdict", label: "Verdict", text: true, cls: (v) => (v === "regression" ? "worse" : v === "improvement" ? "better" : null) },
  ], rows, { sortBy: "slice" }));
  const rc = report.root_cause;
  if (rc) {
    const box = document.createElement("div");
    box.className = "root-cause";
    const where = rc.culprit.map((c) => `${c.dimension}=${c.value}`).join(", ") || "overall";
    const t = rc.time;
    const share = (v) => (v == null ? "–" : `${Math.round(v * 100)}%`);
    box.innerHTML = "<h4>Root cause</h4>";
    const lines = [`Where: ${where} (${rc.metric} ${change(rc.change, rc.metric)})`,
      `Time that grew most: ${t.grew_most || "–"} (queue wait ${share(t.queue_wait_share)}, Python ${share(t.python_share)}, Elixir ${share(t.elixir_share)} of the mean's change)`,
      ...rc.contributions.slice(0, 5).map((c) => `${c.dimension}=${c.value}: ${share(c.share)} of the extra slow requests`),
      ...rc.signals_moved.map((s) => `${s.signal}: ${fmt(s.baseline, "")} → ${fmt(s.run, "")}`)];
    for (const line of lines) { const p = document.createElement("p"); p.textContent = line; box.append(p); }
    el.append(box);
  }
  return el;
}
