// Several symbols on one account (issue 18 #3): which symbol the four charts show, kept across a
// reload (the URL's ?symbol= first, so a link opens that symbol, then localStorage), and the
// per-symbol PnL table (figures computed by the server, rl/knowledge/symbol_pnl.py). Its rows
// switch the charts too. Positions and open orders list every symbol in their own panels.

import { t, addStrings } from "./i18n.js";
import { el } from "./dom.js";

addStrings({
  zh: {
    pnl_title: "分币种盈亏", pnl_realized: "已实现净额", pnl_unrealized: "未实现", pnl_trades: "笔数",
    pnl_win: "胜率", pnl_total: "合计", pnl_none: "暂无数据", pnl_hint: "已实现净额 = 已平仓交易扣除手续费并计入资金费后的盈亏；点击一行切换图表",
    scope_account: "全账户", scope_account_hint: "回撤、当日亏损和止损保护对整个账户生效，而不是单个交易对",
    chart_symbol_hint: "图表显示的交易对",
  },
  en: {
    pnl_title: "PnL by symbol", pnl_realized: "Realized net", pnl_unrealized: "Unrealized", pnl_trades: "Trades",
    pnl_win: "Win rate", pnl_total: "Total", pnl_none: "No data yet", pnl_hint: "Realized net = closed trades' PnL after fees, with funding; click a row to show its charts",
    scope_account: "account-wide", scope_account_hint: "Drawdown, daily-loss and stop-loss protections apply to the whole account, not one symbol",
    chart_symbol_hint: "the symbol the charts show",
  },
});

const KEY = "dashboard.symbol";
const $ = (id) => document.getElementById(id);

// The symbol to show first: ?symbol= when configured, else the one chosen last, else the first.
export function initialSymbol(symbols) {
  const fromUrl = (new URLSearchParams(window.location.search).get("symbol") || "").toUpperCase();
  if (symbols.includes(fromUrl)) return fromUrl;
  let saved = null;
  try { saved = localStorage.getItem(KEY); } catch (e) { /* storage off: not remembered */ }
  return symbols.includes(saved) ? saved : symbols[0];
}

// Remember the choice in both places; the URL changes in place (no reload, no history entry).
export function rememberSymbol(symbol) {
  try { localStorage.setItem(KEY, symbol); } catch (e) { /* not remembered */ }
  const url = new URL(window.location.href);
  url.searchParams.set("symbol", symbol);
  window.history.replaceState(null, "", url);
}

// Chart titles carry the shown symbol, so a screenshot or a glance says which one it is.
export function labelCharts(symbol) {
  document.querySelectorAll(".chart-sym").forEach((n) => { n.textContent = symbol; });
}


const money = (v) => {
  if (v == null || !Number.isFinite(Number(v))) return el("span", {}, "—");
  const x = Number(v);
  const text = x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return el("span", { class: x > 0 ? "up" : x < 0 ? "down" : "" }, (x > 0 ? "+" : "") + text);
};
const rate = (v) => (v == null ? "—" : `${Math.round(Number(v) * 100)}%`);

let last = null;

// data: GET /api/pnl/symbols ({symbols: [{symbol, realized_net, unrealized, trades, win_rate, ...}],
// total}); current: the shown symbol (its row is marked); onPick(symbol): a row was clicked.
export function renderSymbolPnl(data, current, onPick) {
  if (data !== undefined) last = data;
  const body = $("pnl-body");
  if (!body) return;
  const rows = (last && last.symbols) || [];
  if (!rows.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "empty" }, t("pnl_none"))));
    return;
  }
  const line = (r, total) => {
    const tr = el("tr", { class: total ? "total" : r.symbol === current ? "current clickable" : "clickable",
      dataset: total ? { total: "1" } : { symbol: r.symbol } },
      el("td", {}, total ? t("pnl_total") : r.symbol),
      el("td", {}, money(r.realized_net)),
      el("td", {}, money(r.unrealized)),
      el("td", {}, String(r.trades ?? 0)),
      el("td", {}, rate(r.win_rate)));
    if (!total) tr.addEventListener("click", () => onPick(r.symbol));
    return tr;
  };
  body.replaceChildren(...rows.map((r) => line(r, false)), ...(rows.length > 1 && last.total ? [line(last.total, true)] : []));
}
