// The open-orders panel (resting maker entries, resting targets, manual limits and the stops
// on the Algo Order API, each with a cancel button behind a confirmation) and the fills list.
// A resting order holds margin while the positions say "no position": this panel is where the
// trader sees it. Cancelling the stop-loss of an open position takes a second, explicit
// confirmation (the server refuses it otherwise: it never leaves a position unprotected silently).

import { api } from "./api.js";
import { t, has, addStrings, onLangChange } from "./i18n.js";
import { formatDateTime } from "./charts.js";
import { el } from "./dom.js";

addStrings({
  zh: {
    oo_title: "当前挂单", oo_kind: "类型", oo_qty: "数量/已成交", oo_by: "来源", oo_none: "无挂单",
    oo_cancel: "撤单", oo_by_agent: "Agent", oo_by_manual: "手动", oo_by_unknown: "其他",
    oo_reduce: "只减仓", oo_protective: "保护止损", oo_stop: "触发",
    ot_LIMIT: "限价", ot_MARKET: "市价", ot_STOP_MARKET: "止损", ot_TAKE_PROFIT_MARKET: "止盈",
    oo_confirm_title: "撤销挂单？", oo_confirm_text: "撤销 {symbol} {side} {type} {qty} @ {price}（订单 {id}）",
    oo_confirm_protective: "这是当前持仓的止损单。撤销后持仓将没有止损保护，价格不利时可能亏损远超计划。",
    oo_confirm_agent_stop: "这是 Agent 管理的持仓：Agent 会在下次检查时重新挂出止损；要彻底去掉请平仓。",
    oo_confirm_yes: "确认撤单", oo_confirm_yes_unprotected: "仍然撤销（持仓无保护）", oo_confirm_no: "返回",
    oo_cancelled: "已撤单：{id}", oo_not_cancelled: "未撤销：订单状态 {status}",
    fills_title: "成交记录", fill_fee: "手续费", fill_pnl: "已实现", fills_none: "暂无成交",
    side_BUY: "买入", side_SELL: "卖出", fill_type: "类型/用途", fill_trade: "交易", fills_all: "全部交易对",
    fills_more: "加载更多", fill_maker: "挂单成交（maker）", fill_taker: "吃单成交（taker）",
    pu_entry: "开仓", pu_stop: "止损", pu_exit: "平仓", pu_take_profit: "止盈", pu_partial_exit: "分批止盈",
    pu_manual: "手动单", pu_manual_stop: "手动止损", pu_manual_take_profit: "手动止盈",
  },
  en: {
    oo_title: "Open orders", oo_kind: "Type", oo_qty: "Qty / filled", oo_by: "By", oo_none: "No open orders",
    oo_cancel: "Cancel", oo_by_agent: "agent", oo_by_manual: "manual", oo_by_unknown: "other",
    oo_reduce: "reduce-only", oo_protective: "protective stop", oo_stop: "trigger",
    ot_LIMIT: "limit", ot_MARKET: "market", ot_STOP_MARKET: "stop", ot_TAKE_PROFIT_MARKET: "take profit",
    oo_confirm_title: "Cancel this order?", oo_confirm_text: "Cancel {symbol} {side} {type} {qty} @ {price} (order {id})",
    oo_confirm_protective: "This is the stop-loss of the open position. Without it the position is unprotected and can lose far more than planned.",
    oo_confirm_agent_stop: "The agent manages this position and places its stop again at its next check; close the position to remove it for good.",
    oo_confirm_yes: "Cancel order", oo_confirm_yes_unprotected: "Cancel anyway (position unprotected)", oo_confirm_no: "Back",
    oo_cancelled: "Cancelled: {id}", oo_not_cancelled: "Not cancelled: the order is {status}",
    fills_title: "Fills", fill_fee: "Fee", fill_pnl: "Realized", fills_none: "No fills yet",
    side_BUY: "buy", side_SELL: "sell", fill_type: "Type / purpose", fill_trade: "Trade", fills_all: "All symbols",
    fills_more: "Load more", fill_maker: "maker fill", fill_taker: "taker fill",
    pu_entry: "entry", pu_stop: "stop-loss", pu_exit: "exit", pu_take_profit: "take-profit", pu_partial_exit: "partial take-profit",
    pu_manual: "manual order", pu_manual_stop: "manual stop-loss", pu_manual_take_profit: "manual take-profit",
  },
});

const $ = (id) => document.getElementById(id);
const boot = JSON.parse(document.getElementById("boot-data")?.textContent || "{}");
// no agent in this process (offline without replay): nothing to list, so nothing is asked
const FILLS_PAGE = 100;   // fills asked per page; "load more" asks for one page more
const state = { orders: [], fills: [], available: boot.agent_available !== false, polls: 0,
  fillsLimit: FILLS_PAGE, fillsSymbol: "", symbols: new Set() };
const FILLS_EVERY = 5;     // polls: fills cost Binance userTrades calls (weight 5 per 7-day window)


const fmt = (v, max = 6) => (v == null || !Number.isFinite(Number(v)) ? "—"
  : Number(v).toLocaleString("en-US", { maximumFractionDigits: max }));
const typeText = (type) => (has(`ot_${type}`) ? t(`ot_${type}`) : String(type));
const sideText = (side) => t(`side_${side}`);
const byText = (by) => t(`oo_by_${by || "unknown"}`);
const priceOf = (o) => (o.kind === "stop" ? o.stop_price : o.price);
const shortTime = (ms) => (ms ? formatDateTime(ms).slice(5, 16) : "—");

const purposeText = (p) => (p ? (t(`pu_${p}`) === `pu_${p}` ? p : t(`pu_${p}`)) : "");

// One table body: a row per item, or the one "nothing here" row spanning every column.
function renderRows(bodyId, items, columns, emptyKey, row) {
  const body = $(bodyId);
  if (!body) return;
  if (!items.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: columns, class: "empty" }, t(emptyKey))));
    return;
  }
  body.replaceChildren(...items.map(row));
}

function renderOrders() {
  renderRows("open-orders-body", state.orders, 6, "oo_none", (o) => el("tr",
    { class: o.protective ? "protective" : "", dataset: { orderId: o.order_id, kind: o.kind } },
    el("td", {}, o.symbol),
    el("td", {}, el("span", { class: o.side === "BUY" ? "up" : "down" }, sideText(o.side)), " ", typeText(o.type),
      o.protective ? el("span", { class: "oo-tag" }, t("oo_protective"))
        : o.reduce_only ? el("span", { class: "oo-tag" }, t("oo_reduce")) : null),
    el("td", { title: o.kind === "stop" ? t("oo_stop") : "" }, (o.kind === "stop" ? "⚑ " : "") + fmt(priceOf(o))),
    el("td", {}, o.close_position ? "—" : `${fmt(o.qty)} / ${fmt(o.filled_qty)}`),
    el("td", { title: shortTime(o.time_ms) }, byText(o.placed_by)),
    el("td", {}, el("button", { class: "btn", type: "button", "data-cancel": o.order_id,
      onclick: () => askCancel(o) }, t("oo_cancel")))));
}

// The order/fill history: time, symbol, side, order type and what it was for, price, qty, fee
// (maker or taker), realized PnL, the agent's trade it belongs to, and who placed it.
function renderFills() {
  renderRows("fills-body", state.fills, 10, "fills_none", (f) => el("tr",
    { dataset: { fillId: f.trade_id, tradeId: f.agent_trade_id ?? "" } },
    el("td", {}, shortTime(f.time_ms)),
    el("td", {}, f.symbol),
    el("td", {}, el("span", { class: f.side === "BUY" ? "up" : "down" }, sideText(f.side))),
    el("td", {}, [f.order_type ? typeText(f.order_type) : "", purposeText(f.purpose)].filter(Boolean).join(" · ") || "—"),
    el("td", {}, fmt(f.price)),
    el("td", {}, fmt(f.qty)),
    el("td", { title: f.maker ? t("fill_maker") : t("fill_taker") }, `${fmt(f.commission, 4)} ${f.maker ? "M" : "T"}`),
    el("td", { class: f.realized_pnl > 0 ? "up" : f.realized_pnl < 0 ? "down" : "" }, fmt(f.realized_pnl, 4)),
    el("td", {}, f.agent_trade_id != null ? `#${f.agent_trade_id}` : "—"),
    el("td", {}, byText(f.placed_by))));
  const more = $("fills-more");
  if (more) more.hidden = state.fills.length < state.fillsLimit;   // a short page: nothing more
  const pick = $("fills-symbol");
  if (pick) {
    state.fills.forEach((f) => state.symbols.add(f.symbol));
    const want = [""].concat([...state.symbols].sort());
    if ([...pick.options].map((o) => o.value).join() !== want.join()) {
      pick.replaceChildren(...want.map((s) => el("option", { value: s }, s || t("fills_all"))));
      pick.value = state.fillsSymbol;
    } else if (pick.options[0]) pick.options[0].textContent = t("fills_all");
  }
}

async function loadFills() {
  state.fills = (await api.fills(state.fillsLimit, state.fillsSymbol)).fills;
  renderFills();
}

function toast(message, kind) {
  const box = $("toast");
  if (!box) return;
  box.textContent = message;
  box.className = `toast show ${kind}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = "toast"; }, 5000);
}

// One dialog for every cancel; a protective stop gets the warning and the stronger button.
function dialog() {
  let d = $("cancel-dialog");
  if (d) return d;
  d = el("dialog", { id: "cancel-dialog", class: "dialog cancel-dialog" },
    el("h3", { id: "cancel-title" }), el("p", { id: "cancel-text" }),
    el("p", { id: "cancel-warn", class: "warn" }),
    el("div", { class: "actions" },
      el("button", { id: "cancel-no", class: "btn ghost", type: "button" }),
      el("button", { id: "cancel-yes", class: "btn primary", type: "button" })));
  document.body.append(d);
  $("cancel-no").addEventListener("click", () => d.close());
  return d;
}

function askCancel(o) {
  const d = dialog();
  $("cancel-title").textContent = t("oo_confirm_title");
  $("cancel-text").textContent = t("oo_confirm_text", { symbol: o.symbol, side: sideText(o.side),
    type: typeText(o.type), qty: o.close_position ? "—" : fmt(o.qty), price: fmt(priceOf(o)), id: o.order_id });
  $("cancel-warn").textContent = t("oo_confirm_protective")
    + (o.placed_by === "agent" ? ` ${t("oo_confirm_agent_stop")}` : "");
  $("cancel-warn").hidden = !o.protective;
  $("cancel-no").textContent = t("oo_confirm_no");
  const yes = $("cancel-yes");
  yes.textContent = o.protective ? t("oo_confirm_yes_unprotected") : t("oo_confirm_yes");
  yes.onclick = async () => {
    yes.disabled = true;
    try {
      const res = await api.cancelOrder(o.symbol, o.order_id, !!o.protective);
      toast(res.cancelled ? t("oo_cancelled", { id: o.order_id }) : t("oo_not_cancelled", { status: res.status }),
        res.cancelled ? "ok" : "error");
      d.close();
    } catch (e) {
      toast(e.message, "error");
    } finally {
      yes.disabled = false;
      await refresh();
    }
  };
  d.showModal();
}

export async function refresh(withFills = true) {
  if (!state.available) return;
  let changed = false;
  try {
    const orders = (await api.openOrders()).orders;
    const key = (list) => list.map((o) => `${o.order_id}:${o.filled_qty}`).join(",");
    changed = key(orders) !== key(state.orders);
    state.orders = orders;
    renderOrders();
  } catch (e) { /* Binance unreachable: the badge says so; the next poll retries */ }
  // an order that filled (or went) changed the list: its fills are asked for at once
  if (!withFills && !changed) return;
  try { await loadFills(); } catch (e) { /* idem */ }
}

function loop() {
  const withFills = state.polls % FILLS_EVERY === 0;
  state.polls += 1;
  refresh(withFills).finally(() => setTimeout(loop, 3000));
}

$("fills-more")?.addEventListener("click", () => {
  state.fillsLimit += FILLS_PAGE;
  loadFills().catch(() => {});
});
$("fills-symbol")?.addEventListener("change", (ev) => {
  state.fillsSymbol = ev.target.value;
  state.fillsLimit = FILLS_PAGE;
  loadFills().catch(() => {});
});
onLangChange(() => { renderOrders(); renderFills(); });
renderOrders();
renderFills();
loop();
