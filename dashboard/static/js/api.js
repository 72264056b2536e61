// Talking to the snakepit-perf API with the user's key (kept in this browser's localStorage).
const KEY = "snakepit-perf.key";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function apiKey() { return localStorage.getItem(KEY) || ""; }
export function setApiKey(key) { key ? localStorage.setItem(KEY, key) : localStorage.removeItem(KEY); }

function headers(extra = {}) {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

function url(path, params = {}) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) u.searchParams.append(k, item);
  }
  return u;
}

export async function get(path, params) {
  const r = await fetch(url(path, params), { headers: headers() });
  return answer(r);
}

export async function send(method, path, body) {
  const r = await fetch(url(path), {
    method, headers: headers({ "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return answer(r);
}

async function answer(r) {
  if (r.status === 204) return null;
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

export function query(params) { return get("/v1/query", params); }

export function liveSocket(onRows, onClose) {
  const u = url("/v1/live/ws", { interval: 0.1, history: 300 });
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  // The key travels as a subprotocol, never in the URL (which access logs record).
  const key = apiKey();
  const ws = new WebSocket(u, key ? ["snakepit-perf.v1", `bearer.${key}`] : ["snakepit-perf.v1"]);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (m) => onRows(JSON.parse(typeof m.data === "string" ? m.data : new TextDecoder().decode(m.data)));
  ws.onclose = (e) => onClose && onClose(e);
  return ws;
}
