// The dashboard: the view named in the URL, drawn from the API, live or over a time range.
import { ApiError, get, liveSocket, send, setApiKey } from "./api.js";
import { durationSeconds, fmt, stepFor } from "./format.js";
import { download, drawChart, loadPanel, panelElement, showEmpty } from "./panel.js";
import { benchmarksView } from "./benchmarks.js";
import { recommendationsView } from "./recommendations.js";
import { correlationTable, poolsTable, requestsTable, workersTable } from "./tables.js";
import { VIEWS } from "./views.js";

const $ = (id) => document.getElementById(id);
const app = { user: null, mode: "embedded", metrics: [], dashboards: [], layout: null, layoutKey: null, editing: false,
  socket: null, timer: null, generation: 0 };

// ---- URL state: the link carries the view, range, filters, dashboard and live mode ----------

function state() {
  const q = new URLSearchParams(location.hash.slice(1));
  return { view: q.get("view") || (q.get("dash") ? "" : "overview"), dash: q.get("dash") || "",
    range: q.get("range") || "", from: Number(q.get("from")) || null, to: Number(q.get("to")) || null,
    where: q.getAll("where"), live: q.get("live") === "1",
    scenario: q.get("scenario") || "", run: q.get("run") || "", rec: q.get("rec") || "" };
}

function go(changes) {
  const s = { ...state(), ...changes };
  const q = new URLSearchParams();
  if (s.dash) q.set("dash", s.dash); else q.set("view", s.view || "overview");
  if (s.from && s.to) { q.set("from", s.from); q.set("to", s.to); } else if (s.range) q.set("range", s.range);
  for (const w of s.where) q.append("where", w);
  if (s.live) q.set("live", "1");
  if (s.view === "benchmarks" && s.scenario) q.set("scenario", s.scenario);
  if (s.view === "benchmarks" && s.run) q.set("run", s.run);
  if (s.view === "recommendations" && s.rec) q.set("rec", s.rec);
  location.hash = q.toString();
}

function toast(text, error = false) {
  const t = $("toast");
  t.textContent = text;
  t.className = `toast${error ? " error" : ""}`;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

// ---- start-up: who am I, what can I query, what have I saved --------------------------------

async function signIn() {
  try {
    app.user = await get("/v1/whoami");
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    const dialog = $("login");
    dialog.showModal();
    await new Promise((resolve) => {
      $("login-submit").onclick = async (ev) => {
        ev.preventDefault();
        setApiKey($("key").value.trim());
        try { app.user = await get("/v1/whoami"); dialog.close(); resolve(); }
        catch (err) { $("login-error").textContent = err.message; }
      };
    });
  }
  const u = $("user");
  u.textContent = `${app.user.name} (${app.user.role})`;
  if (app.user.name !== "local") {
    const out = document.createElement("a");
    out.textContent = "sign out";
    out.onclick = () => { setApiKey(""); location.reload(); };
    u.append(out);
  }
}

async function loadDashboards() {
  app.dashboards = await get("/v1/dashboards");
  const sel = $("layouts");
  sel.replaceChildren(new Option("Saved dashboards…", ""),
    ...app.dashboards.map((d) => new Option(`${d.title}${d.owner !== app.user.name ? ` (${d.owner})` : ""}`, d.id)));
  sel.value = state().dash;
}

function renderNav() {
  const s = state();
  $("views").replaceChildren(...Object.entries(VIEWS).map(([key, v]) => {
    const a = document.createElement("a");
    a.textContent = v.name;
    a.href = "#";
    a.dataset.view = key;
    if (key === s.view && !s.dash) a.className = "active";
    a.onclick = (ev) => { ev.preventDefault(); app.editing = false; go({ view: key, dash: "" }); };
    return a;
  }));
}

function renderFilters(s) {
  const box = $("filters");
  const chips = s.where.map((w) => {
    const c = document.createElement("span");
    c.className = "chip";
    c.textContent = w;
    const x = document.createElement("button");
    x.textContent = "×";
    x.title = `remove filter ${w}`;
    x.onclick = () => go({ where: s.where.filter((v) => v !== w) });
    c.append(x);
    return c;
  });
  const pool = document.createElement("select");
  pool.setAttribute("aria-label", "filter by pool");
  pool.append(new Option("+ pool filter", ""));
  get("/v1/dimensions/pool").then((pools) => {
    for (const p of pools) pool.append(new Option(p, p));
  }).catch(() => {});
  pool.onchange = () => pool.value && go({ where: [...s.where.filter((w) => !w.startsWith("pool:")), `pool:${pool.value}`] });
  box.replaceChildren(document.createTextNode(chips.length ? "Filters:" : "No filters"), ...chips, pool);
}

// ---- the view -------------------------------------------------------------------------------

function currentLayout(s) {
  const key = s.dash ? `dash:${s.dash}` : `view:${s.view}`;
  if (app.layoutKey !== key) {
    app.layoutKey = key;
    const d = s.dash && app.dashboards.find((x) => x.id === s.dash);
    const base = d || (VIEWS[s.view] && VIEWS[s.view].layout) || null;
    app.layout = base ? structuredClone({ title: base.title, range: base.range, where: base.where || [],
      panels: base.panels, shared_role: base.shared_role || "" }) : null;
  }
  return app.layout;
}

function timeRange(s, layout) {
  if (s.from && s.to) return { from: s.from, to: s.to, relative: false };
  const span = durationSeconds(s.live ? "5m" : s.range || (layout && layout.range) || "15m") || 900;
  return { ...recent(span), relative: true };
}

async function render() {
  const gen = ++app.generation;
  stopLive();
  clearTimeout(app.timer);
  const s = state();
  const view = s.dash ? { name: "Dashboard" } : VIEWS[s.view] || VIEWS.overview;
  const layout = currentLayout(s);
  renderNav();
  renderFilters(s);
  $("layouts").value = s.dash;
  const t = timeRange(s, layout);
  $("range").value = s.from ? "custom" : s.live ? "5m" : s.range || (layout && layout.range) || "15m";
  $("custom-range").hidden = !s.from;
  $("live").classList.toggle("on", s.live);
  for (const id of ["edit", "save", "export"]) $(id).disabled = !layout;
  $("edit").textContent = app.editing ? "Done editing" : "Edit layout";
  const ctx = {
    from: t.from, to: t.to, step: stepFor(t.to - t.from), where: s.where,
    annotations: await get("/v1/annotations", { from: t.from, to: t.to }).catch(() => []),
    onDrill: (from, to, labels) => {
      const where = s.where.filter((w) => /^(pool|worker_id)[:!]/.test(w));
      for (const [k, v] of Object.entries(labels)) if (["pool", "worker_id"].includes(k)) where.push(`${k}:${v}`);
      go({ view: "requests", dash: "", from, to, where, live: false });
    },
    onZoom: (from, to) => go({ from, to, live: false }),
  };
  const main = $("main");
  main.replaceChildren();
  Object.assign(document.body.dataset, { view: s.dash ? "dashboard" : s.view, from: ctx.from, to: ctx.to, step: ctx.step });
  if (s.dash && !layout) {
    main.innerHTML = '<section class="panel"><div class="empty">This dashboard does not exist, or its owner has not shared it with your role. Pick one under “Saved dashboards”.</div></section>';
    document.body.dataset.ready = String(gen);
    return;
  }
  const heading = document.createElement("h1");
  heading.hidden = true;
  heading.textContent = layout ? layout.title : view.name;
  main.append(heading);
  if (view.tiles) main.append(await tiles(ctx, s.live));
  if (gen !== app.generation) return;
  const grid = document.createElement("div");
  grid.className = "grid";
  main.append(grid);
  const makeTable = {
    requests: () => requestsTable(ctx),
    correlations: () => correlationTable(ctx),
    pools: () => poolsTable(ctx, (pool) => go({ view: "workers", where: [`pool:${pool}`] })),
    workers: () => workersTable(ctx, (w) => go({ view: "requests", where: [`pool:${w.pool}`, `worker_id:${w.worker_id}`] })),
  }[view.special || view.table];
  if (makeTable) {
    const table = await makeTable();
    table.remake = makeTable;
    grid.append(table);
  }
  if (view.special === "benchmarks") grid.append(...await benchmarksView({ ...s, go }));
  if (view.special === "recommendations") grid.append(...await recommendationsView({ ...s, go }));
  if (gen !== app.generation) return;
  if (view.alerts) {
    const panel = await alertsPanel();
    panel.remake = alertsPanel;
    grid.append(panel);
  }
  const loading = layout ? renderPanels(grid, layout, ctx, s.live && view.live) : [];
  if (app.editing && layout) grid.append(editor(layout));
  if (t.relative && !s.live) scheduleRefresh(gen, main, ctx, Date.now());
  await Promise.all(loading);
  if (gen === app.generation) document.body.dataset.ready = String(gen); // for tests: all drawn
}

// Draws the layout's panels; returns their loads. Live, four live panels replace the first four.
function renderPanels(grid, layout, ctx, live) {
  if (live) startLive(grid);
  return layout.panels.map((spec, i) => {
    if (live && i < 4) return null;
    const el = panelElement(spec, { editing: app.editing, onEdit: (op, arg) => edit(i, op, arg) });
    grid.append(el);
    return loadPanel(el, ctx);
  });
}

// The last ``span`` seconds up to the newest 10 s window the engine has closed (it waits 5 s
// for late events), so the last point is never a half-counted window.
function recent(span) {
  const to = Math.floor((Date.now() / 1000 - 15) / 10) * 10;
  return { from: to - span, to };
}

// A relative range moves on: tiles, tables and charts follow it every 5 s, or every second
// for a while after opening a view that is still empty (e.g. right after the service started).
function scheduleRefresh(gen, main, ctx, opened) {
  const waiting = main.querySelector(".panel .empty") && Date.now() - opened < 20000;
  app.timer = setTimeout(async () => {
    if (gen !== app.generation) return;
    await refresh(main, ctx);
    if (gen === app.generation) scheduleRefresh(gen, main, ctx, opened);
  }, waiting ? 1000 : 5000);
}

async function refresh(main, ctx) {
  Object.assign(ctx, recent(ctx.to - ctx.from));
  Object.assign(document.body.dataset, { from: ctx.from, to: ctx.to });
  const old = main.querySelector(".tiles");
  if (old) old.replaceWith(await tiles(ctx, false));
  const loads = [];
  for (const el of main.querySelectorAll(".panel")) {
    if (el.remake) {
      const fresh = await el.remake();
      fresh.remake = el.remake;
      el.replaceWith(fresh);
    }
    else if (el.spec && !el.live) loads.push(loadPanel(el, ctx));
  }
  await Promise.all(loads);
}

function edit(i, op, arg) {
  const panels = app.layout.panels;
  if (op === "remove") panels.splice(i, 1);
  if (op === "move") {
    const j = i + arg;
    if (j >= 0 && j < panels.length) [panels[i], panels[j]] = [panels[j], panels[i]];
  }
  if (op === "width") panels[i].width = Math.min(12, Math.max(3, (panels[i].width || 6) + arg));
  render();
}

function editor(layout) {
  const el = document.createElement("section");
  el.className = "panel";
  el.style.gridColumn = "span 12";
  el.innerHTML = `<h3>Add a panel</h3><div class="editor">
    <input name="title" placeholder="Title" aria-label="panel title">
    <select name="metric" aria-label="metric"></select>
    <select name="stat" aria-label="statistic"></select>
    <select name="group_by" aria-label="group by"><option value="">no grouping</option></select>
    <input name="where" placeholder="filter, e.g. pool:default" aria-label="panel filter">
    <select name="width" aria-label="width"><option value="4">narrow</option><option value="6" selected>half</option><option value="12">full width</option></select>
    <button name="add">Add panel</button></div>`;
  const f = (n) => el.querySelector(`[name=${n}]`);
  for (const m of app.metrics) f("metric").append(new Option(`${m.name} (${m.unit})`, m.name));
  const fill = () => {
    const m = app.metrics.find((x) => x.name === f("metric").value);
    f("stat").replaceChildren(...m.stats.map((x) => new Option(x, x)));
    f("group_by").replaceChildren(new Option("no grouping", ""), ...m.dimensions.map((d) => new Option(`by ${d}`, d)));
  };
  f("metric").onchange = fill;
  fill();
  f("add").onclick = () => {
    const metric = f("metric").value;
    layout.panels.push({ title: f("title").value || `${metric} ${f("stat").value}`, metric,
      stats: [f("stat").value], group_by: f("group_by").value, where: f("where").value ? [f("where").value] : [],
      width: Number(f("width").value), height: 1 });
    render();
  };
  return el;
}

async function tiles(ctx, live) {
  const box = document.createElement("div");
  box.className = "tiles";
  const tile = (id, label, value, cls = "") => {
    const t = document.createElement("div");
    t.className = `tile ${cls}`;
    t.dataset.tile = id;
    t.innerHTML = `<div class="label"></div><div class="value"></div>`;
    t.children[0].textContent = label;
    t.children[1].textContent = value;
    box.append(t);
  };
  const one = (metric, stat) => get("/v1/query", { metric, stat, from: ctx.from, to: ctx.to, where: ctx.where })
    .then((r) => (r.series[0] && r.series[0].points[0] ? r.series[0].points[0][1] : null)).catch(() => null);
  const [n, errors, p50, p95, p99, p999, active, queue, alerts] = await Promise.all([
    one("requests_total", "count"), one("request_errors_total", "count"),
    one("request_duration_seconds", "p50"), one("request_duration_seconds", "p95"),
    one("request_duration_seconds", "p99"), one("request_duration_seconds", "p99.9"),
    one("concurrent_requests", "value"), one("queue_depth", "last"),
    get("/v1/alerts").catch(() => null)]);
  tile("throughput", "Throughput", n == null ? "–" : fmt(n / (ctx.to - ctx.from), "/s"));
  tile("p50", "P50", fmt(p50, "seconds"));
  tile("p95", "P95", fmt(p95, "seconds"));
  tile("p99", "P99", fmt(p99, "seconds"));
  tile("p999", "P99.9", fmt(p999, "seconds"));
  tile("errors", "Error rate", n ? fmt((errors || 0) / n, "ratio") : "–");
  tile("active", "Active requests", fmt(active, ""));
  tile("queue", "Queue depth", fmt(queue, ""));
  tile("alerts", "Open alerts", alerts == null ? "n/a" : String(alerts.length), alerts && alerts.length ? "alerting" : "");
  if (live) tile("live", "Live requests (5 min)", "0");
  return box;
}

function signalUnit(signal) {
  if (signal.endsWith("_ratio")) return "ratio";
  if (signal.endsWith("_s")) return "seconds";
  if (signal.includes("bytes")) return "bytes";
  return "";
}

async function alertsPanel() {
  const el = document.createElement("section");
  el.className = "panel";
  el.style.gridColumn = "span 12";
  el.innerHTML = "<h3>Open alerts</h3>";
  let alerts;
  try { alerts = await get("/v1/alerts"); } catch (e) {
    el.insertAdjacentHTML("beforeend", '<div class="empty"></div>');
    el.lastChild.textContent = `Alerts are evaluated where the engine runs: ${e.message}`;
    return el;
  }
  if (!alerts.length) {
    el.insertAdjacentHTML("beforeend", '<div class="empty">No alert is firing. Alerts appear here when a rule or the learned baseline says a pool misbehaves.</div>');
    return el;
  }
  const ul = document.createElement("ul");
  ul.className = "alerts";
  // Alerts are acted on where they are evaluated; the distributed API only lists them.
  const canAct = ["operator", "admin"].includes(app.user.role) && app.mode === "embedded";
  for (const a of alerts) {
    const li = document.createElement("li");
    li.innerHTML = '<span class="sev"></span><span class="what"></span><span class="alert-actions"></span>';
    li.children[0].textContent = a.severity || "alert";
    const state = [a.acknowledged ? `acknowledged by ${a.acknowledged.by}` : "", a.silenced ? "silenced" : ""]
      .filter(Boolean).join(", ");
    li.children[1].textContent = `${a.summary} — since ${new Date(a.starts_at * 1000).toLocaleTimeString()}` +
      ` · observed ${fmt(a.context.observed, signalUnit(a.labels.signal))}, expected ${fmt(a.context.expected, signalUnit(a.labels.signal))}${state ? ` · ${state}` : ""}`;
    li.title = a.remediation;
    const act = (label, fn) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.onclick = async () => { try { await fn(); toast(`${label}: done`); render(); } catch (e) { toast(e.message, true); } };
      li.children[2].append(b);
    };
    if (canAct && !a.acknowledged) act("Acknowledge", () => send("POST", `/v1/alerts/${a.fingerprint}/ack`, {}));
    if (canAct && !a.silenced) {
      act("Silence 1h", () => send("POST", "/v1/silences", { matchers: { pool: a.labels.pool, signal: a.labels.signal },
        duration: "1h", comment: "from the dashboard" }));
    }
    ul.append(li);
  }
  el.append(ul);
  return el;
}

// ---- live mode: /v1/live/ws rows drawn as they arrive ---------------------------------------

function startLive(grid) {
  const rows = new Map(); // "t|pool" -> row
  const specs = [
    { title: "Throughput by pool (req/s, live)", key: "requests", byPool: true, unit: "" },
    { title: "Latency percentiles (live)", stats: ["p50_s", "p95_s", "p99_s", "p999_s"], unit: "seconds" },
    { title: "Errors by pool (per s, live)", key: "errors", byPool: true, unit: "" },
    { title: "Active requests by pool (live)", key: "concurrency", byPool: true, unit: "requests" },
  ];
  const panels = specs.map((spec) => {
    const el = panelElement({ ...spec, metric: "live", stats: spec.stats || [spec.key], width: 6 }, { editing: false });
    el.live = true;
    grid.append(el);
    showEmpty(el, "Waiting for live data: requests appear here within a second of arriving.");
    return el;
  });
  let pending = false;
  const draw = () => {
    pending = false;
    const newest = Math.max(0, ...[...rows.values()].map((r) => r.t));
    for (const [k, r] of rows) if (r.t <= newest - 300) rows.delete(k);
    const x = [...new Set([...rows.values()].map((r) => r.t))].sort((a, b) => a - b);
    const pools = [...new Set([...rows.values()].map((r) => r.pool))].filter((p) => p !== "").sort();
    const at = (t, pool, key) => { const r = rows.get(`${t}|${pool}`); return r ? r[key] : null; };
    specs.forEach((spec, i) => {
      const series = spec.byPool
        ? pools.map((pool) => ({ label: `pool=${pool}`, labels: { pool }, values: x.map((t) => at(t, pool, spec.key) ?? 0) }))
        : spec.stats.map((k) => ({ label: k.replace("_s", "").replace("p999", "p99.9"), labels: {}, values: x.map((t) => at(t, "", k)) }));
      const el = panels[i];
      if (el.chart && el.chart.series.length === series.length + 1) {
        el.data = { x, series };
        el.chart.setData([x, ...series.map((s) => s.values)]);
      } else {
        drawChart(el, { x, series }, spec.unit, { step: 1, annotations: [] });
      }
    });
    const total = [...rows.values()].filter((r) => r.pool === "").reduce((a, r) => a + r.requests, 0);
    const tile = document.querySelector('[data-tile="live"] .value');
    if (tile) tile.textContent = String(total);
    document.body.dataset.liveTotal = String(total);
  };
  app.socket = liveSocket((batch) => {
    for (const r of batch) rows.set(`${r.t}|${r.pool}`, r);
    if (!pending) { pending = true; requestAnimationFrame(draw); }
  }, (e) => { if (e.code >= 4000) toast(`Live view unavailable: ${e.reason}`, true); });
  return panels;
}

function stopLive() {
  if (app.socket) { app.socket.onclose = null; app.socket.close(); app.socket = null; }
}

// ---- saving, sharing, exporting --------------------------------------------------------------

function exportable() {
  const { title, range, where, panels } = app.layout;
  return { title, range, where, panels };
}

async function save() {
  const s = state();
  const mine = s.dash && app.dashboards.find((d) => d.id === s.dash && d.editable);
  const dialog = $("save-dialog");
  $("save-title").value = app.layout.title;
  $("save-role").value = (mine && mine.shared_role) || "";
  dialog.showModal();
  const choice = await new Promise((resolve) => { dialog.onclose = () => resolve(dialog.returnValue); });
  if (choice !== "save") return;
  const body = { ...exportable(), title: $("save-title").value, shared_role: $("save-role").value };
  try {
    const d = mine ? await send("PUT", `/v1/dashboards/${mine.id}`, body) : await send("POST", "/v1/dashboards", body);
    await loadDashboards();
    app.layoutKey = null;
    toast(`Saved “${d.title}”${d.shared_role ? `, shared with ${d.shared_role}s` : ""}`);
    go({ dash: d.id, view: "" });
  } catch (e) { toast(`Not saved: ${e.message}`, true); }
}

async function importFile(file) {
  try {
    const body = JSON.parse(await file.text());
    if (!Array.isArray(body.panels)) throw new Error("not a dashboard export (no panels)");
    const d = await send("POST", "/v1/dashboards", { ...body, shared_role: "" });
    await loadDashboards();
    toast(`Imported “${d.title}”`);
    go({ dash: d.id, view: "" });
  } catch (e) { toast(`Import failed: ${e.message}`, true); }
}

function wire() {
  $("range").onchange = () => {
    const v = $("range").value;
    if (v === "custom") {
      const now = Date.now();
      $("from").value = localInput(now - 3600e3); $("to").value = localInput(now);
      $("custom-range").hidden = false;
      return;
    }
    go({ range: v, from: null, to: null, live: false });
  };
  $("apply-range").onclick = () => go({ from: Math.floor(new Date($("from").value) / 1000),
    to: Math.floor(new Date($("to").value) / 1000), live: false });
  $("live").onclick = () => go({ live: !state().live, from: null, to: null, view: state().dash ? "" : "overview" });
  $("layouts").onchange = () => { app.editing = false; go({ dash: $("layouts").value, view: $("layouts").value ? "" : "overview" }); };
  $("edit").onclick = () => { app.editing = !app.editing; render(); };
  $("save").onclick = save;
  $("export").onclick = () => download(`${app.layout.title.replace(/\W+/g, "-").toLowerCase()}.json`,
    "application/json", JSON.stringify(exportable(), null, 2));
  $("import").onchange = (e) => e.target.files[0] && importFile(e.target.files[0]);
  $("share").onclick = async () => {
    const link = location.href;
    try { await navigator.clipboard.writeText(link); toast("Link copied"); } catch { toast(link); }
  };
  window.addEventListener("hashchange", () => render().catch(fail));
  let resize;
  window.addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(() => render().catch(fail), 300); });
}

function localInput(ms) {
  const d = new Date(ms - new Date().getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 19);
}

function fail(e) {
  toast(e.message || String(e), true);
  document.body.dataset.error = e.message || String(e);
}

function showWarnings(warnings) {
  const box = document.getElementById("warnings");
  box.textContent = warnings.join("\n");
  box.hidden = warnings.length === 0;
}

async function main() {
  wire();
  await signIn();
  const health = await get("/health");
  app.mode = health.mode;
  showWarnings(health.warnings || []);
  app.metrics = await get("/v1/metrics");
  await loadDashboards();
  await render();
}

main().catch(fail);
