// Number formatting by unit, and the time steps charts use.
export function fmt(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (unit === "seconds") {
    const a = Math.abs(value);
    if (a === 0) return "0";
    if (a < 1e-3) return `${(value * 1e6).toFixed(0)} µs`;
    if (a < 1) return `${(value * 1e3).toFixed(a < 0.01 ? 2 : 1)} ms`;
    return `${value.toFixed(2)} s`;
  }
  if (unit === "ratio") return `${(value * 100).toFixed(value * 100 < 10 ? 2 : 1)}%`;
  if (unit === "bytes") {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let v = value, i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
  }
  if (unit === "/s") return `${compact(value)}/s`;
  if (unit === "percent") return `${value.toFixed(1)}%`;
  return compact(value);
}

function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(a < 10 ? 2 : 1);
}

const STEPS = [10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400];

// The smallest step (a multiple of the store's 10 s) that keeps a chart under ~240 points.
export function stepFor(seconds) {
  return STEPS.find((s) => seconds / s <= 240) || 86400;
}

export function durationSeconds(text) {
  const m = /^(\d+)([smhd])$/.exec(text || "");
  if (!m) return null;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
}

export function timeText(epoch) {
  return new Date(epoch * 1000).toLocaleString(undefined, { hour12: false });
}
