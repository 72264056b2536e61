// The recommendations view (R12): what to change, why, what it will do; applied changes with
// their validation, and how well earlier predictions held. Every number is the API's.
import { get, send } from "./api.js";
import { fmt, timeText } from "./format.js";
import { empty, section, table } from "./tables.js";

const pct = (v) => (v == null ? "–" : `${(v * 100).toFixed(0)}%`);
const value = (v) => (v != null && typeof v === "object" ? Object.entries(v).map(([k, x]) => `${k} ${x}`).join(", ") : `${v}`);

export async function recommendationsView(state) {
  const recs = await get("/v1/recommendations");
  const list = section("Recommendations", "Found over the last day at each pool's peak; click one for its config snippet, evidence and actions.");
  list.id = "recommendations";
  if (!recs.length) {
    list.append(empty("No recommendations: every pool meets its targets (see [recommend] in the settings)."));
  } else {
    list.append(table([
      { key: "priority", label: "Priority", text: true },
      { key: "pool", label: "Pool", text: true, format: (v) => v || "all" },
      { key: "kind", label: "Finding", text: true },
      { key: "change", label: "Change", text: true },
      { key: "summary", label: "Summary", text: true },
      { key: "confidence", label: "Confidence", format: pct },
      { key: "state", label: "State", text: true },
    ], recs.map((r) => ({ ...r, change: `${r.setting}: ${value(r.current)} → ${value(r.proposed)}` })),
    { sortBy: "priority", onRow: (row) => state.go({ rec: row.id }) }));
  }
  const out = [list];
  const selected = recs.find((r) => r.id === state.rec);
  if (selected) out.push(detail(selected, state));
  out.push(await accuracy());
  return out;
}

function detail(rec, state) {
  const el = section(`${rec.kind} on ${rec.pool || "the deployment"}`, rec.summary);
  el.id = "recommendation";
  const snippet = document.createElement("pre");
  snippet.className = "snippet";
  snippet.textContent = rec.snippet;
  el.append(snippet);
  const facts = document.createElement("pre");
  facts.className = "evidence";
  facts.textContent = JSON.stringify({ impact: rec.impact, evidence: rec.evidence, validation: rec.validation }, null, 2);
  el.append(facts);
  if (rec.state === "open") {
    for (const [label, action] of [["Mark applied", "applied"], ["Dismiss", "dismiss"]]) {
      const b = document.createElement("button");
      b.textContent = label;
      b.dataset.action = action;
      b.onclick = async () => {
        try {
          await send("POST", `/v1/recommendations/${rec.id}/${action}`, {});
          state.go({ rec: "" }); // back to the list, which shows its new state
        } catch (e) { b.after(empty(e.message)); }
      };
      el.append(b);
    }
  }
  return el;
}

async function accuracy() {
  const rows = await get("/v1/recommendations/accuracy");
  const el = section("Prediction accuracy", "Each validated change: the P95 queue wait predicted against the one measured after it.");
  el.id = "recommendation-accuracy";
  if (!rows.length) {
    el.append(empty("No validated changes yet."));
    return el;
  }
  el.append(table([
    { key: "time", label: "Applied", text: true, format: (v) => timeText(v) },
    { key: "pool", label: "Pool", text: true },
    { key: "kind", label: "Finding", text: true },
    { key: "predicted_s", label: "Predicted", format: (v) => fmt(v, "seconds") },
    { key: "observed_s", label: "Observed", format: (v) => fmt(v, "seconds") },
    { key: "relative_error", label: "Error", format: pct },
    { key: "status", label: "Outcome", text: true },
  ], rows, { sortBy: "time" }));
  return el;
}
