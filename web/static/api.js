// Same-origin JSON calls. POSTs carry the per-process token from <meta name="dashboard-token">;
// without it the server answers 403, which is what stops other sites from trading through us.

const TOKEN = document.querySelector('meta[name="dashboard-token"]')?.content || "";

export class ApiError extends Error {
  constructor(status, message, field = null, code = null) {
    super(message);
    this.status = status;
    this.field = field;   // the refused field, when the server names one (400 bad input)
    this.code = code;     // Binance's error code when the exchange refused (-2019 ...)
  }
}

async function call(method, path, body) {
  const opts = { method, headers: { Accept: "application/json" }, cache: "no-store" };
  if (method !== "GET") {
    opts.headers["X-Dashboard-Token"] = TOKEN;
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body ?? {});
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, `dashboard server unreachable: ${e.message}`);
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  // 401: the login (web/auth.py) expired or the password changed; the server says why
  if (resp.status === 401) window.location.assign("/login");
  if (!resp.ok) {
    throw new ApiError(resp.status, (data && data.error) || `HTTP ${resp.status}`, data && data.field,
      data && data.code != null ? data.code : null);
  }
  return data;
}

export const api = {
  meta: () => call("GET", "/api/meta"),
  status: () => call("GET", "/api/agent/status"),
  start: () => call("POST", "/api/agent/start"),
  stop: () => call("POST", "/api/agent/stop"),
  resetPaper: () => call("POST", "/api/agent/reset"),
  logs: (afterId) => call("GET", `/api/agent/logs?limit=200${afterId != null ? `&after_id=${afterId}` : ""}`),
  levels: (symbol) => call("GET", `/api/agent/levels?symbol=${encodeURIComponent(symbol)}`),
  account: () => call("GET", "/api/account"),
  positions: () => call("GET", "/api/positions"),
  symbolPnl: () => call("GET", "/api/pnl/symbols"),
  order: (order) => call("POST", "/api/order", order),
  close: (symbol) => call("POST", "/api/close", { symbol }),
  klinesAll: (symbol, limit = 300) => call("GET", `/api/klines_all/${encodeURIComponent(symbol)}?limit=${limit}`),
  trades: (limit = 100) => call("GET", `/api/trades?limit=${limit}`),
  trade: (id) => call("GET", `/api/trades/${encodeURIComponent(id)}`),
  equity: () => call("GET", "/api/equity"),
  weightHistory: () => call("GET", "/api/weights/history"),
  openOrders: () => call("GET", "/api/agent/orders"),
  cancelOrder: (symbol, orderId, confirmUnprotected = false) => call("POST", "/api/agent/orders/cancel",
    { symbol, order_id: orderId, confirm_unprotected: confirmUnprotected }),
  evidence: () => call("GET", "/api/agent/evidence"),
  fills: (limit = 100, symbol = "") => call("GET", `/api/agent/fills?limit=${limit}`
    + (symbol ? `&symbol=${encodeURIComponent(symbol)}` : "")),
};
