// The side and bottom panels: account, positions, order form, training progress, run log,
// trades with their thought chains, equity and weight history. Each render* function takes
// API data and redraws its panel; none of them fetch except the user actions.

import { api } from "./api.js";
import { t, has, lang, pick, exitReason, featureNames, onLangChange } from "./i18n.js";
import { formatDateTime, isLong, LineChart } from "./charts.js";
import { chartEmptyState } from "./run_state.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);

const FEATURES = ["volume_density", "touch_bounce_count", "bounce_magnitude",
  "failed_breakout_count", "duration_days", "multi_tf_confirm"];
const FEATURE_COLORS = ["#2962ff", "#26a69a", "#f0b90b", "#ef5350", "#ab47bc", "#ff9800"];


export function num(v, digits = 2) {
  if (v == null || v === "" || !Number.isFinite(Number(v))) return "—";
  return Number(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function priceText(v) {
  if (v == null || !Number.isFinite(Number(v))) return "—";
  const x = Number(v);
  return num(x, x < 1 ? 5 : x < 10 ? 4 : x < 1000 ? 3 : 2);
}

// Quantities: as many decimals as the value has (up to 4), so 9204 reads "9,204", not "9,204.0000".
function qtyText(v) {
  if (v == null || !Number.isFinite(Number(v))) return "—";
  return Number(v).toLocaleString("en-US", { maximumFractionDigits: 4 });
}

// "MM-DD HH:mm": enough for a table row; the dialog and the log carry the full time.
function shortTime(ms) {
  return ms == null ? "—" : formatDateTime(ms).slice(5, 16);
}

function signed(v, digits = 2) {
  if (v == null || !Number.isFinite(Number(v))) return el("span", {}, "—");
  const x = Number(v);
  return el("span", { class: x > 0 ? "up" : x < 0 ? "down" : "" }, (x > 0 ? "+" : "") + num(x, digits));
}

export function toast(message, kind = "info", detail = "") {
  const box = $("toast");
  box.textContent = message;
  box.title = detail;       // e.g. Binance's own English text behind a translated refusal
  box.className = `toast show ${kind}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = "toast"; }, 5000);
}

// ---- account (§5.2) --------------------------------------------------------------------
export function renderAccount(acc) {
  $("acc-total").textContent = num(acc.margin_balance ?? acc.total);
  $("acc-available").textContent = num(acc.available_balance ?? acc.available);
  $("acc-used").textContent = num(acc.initial_margin ?? acc.used);
  $("acc-upnl").replaceChildren(signed(acc.unrealized_pnl));
}

// ---- positions ----------------------------------------------------------------------------
export function renderPositions(list, onChanged) {
  const body = $("positions-body");
  if (!list || !list.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "empty" }, t("no_positions"))));
    return;
  }
  body.replaceChildren(...list.map((p) => {
    const amount = Number(p.amount ?? p.quantity ?? 0);
    const btn = el("button", { class: "btn small danger", type: "button" }, t("close"));
    btn.addEventListener("click", async () => {
      if (!window.confirm(t("confirm_close", { symbol: p.symbol }))) return;
      btn.disabled = true;
      try {
        await api.close(p.symbol);
        toast(`${p.symbol} ${t("close")} ✓`, "ok");
        onChanged && onChanged();
      } catch (e) {
        toast(e.message, "error");
      } finally {
        btn.disabled = false;
      }
    });
    return el("tr", { dataset: { symbol: p.symbol } },
      el("td", {}, p.symbol, " ", el("span", { class: amount >= 0 ? "up" : "down" }, amount >= 0 ? t("long") : t("short"))),
      el("td", {}, priceText(p.entry_price)),
      el("td", {}, qtyText(Math.abs(amount))),
      el("td", {}, signed(p.unrealized_pnl)),
      el("td", {}, priceText(p.stop ?? p.stop_price)),
      el("td", {}, priceText(p.target ?? p.target_price)),
      el("td", {}, btn));
  }));
}

// ---- manual order form ----------------------------------------------------------------------
export function validateOrder(form) {
  const type = form.type.value;
  const qtyRaw = form.quantity.value.trim();
  const priceRaw = form.price.value.trim();
  const errors = {};
  const qty = Number(qtyRaw);
  if (!qtyRaw || !Number.isFinite(qty) || qty <= 0) errors.quantity = t("err_quantity");
  let price = null;
  if (type === "LIMIT") {
    price = Number(priceRaw);
    if (!priceRaw || !Number.isFinite(price) || price <= 0) errors.price = t("err_price");
  } else if (priceRaw) {
    errors.price = t("err_price_market");
  }
  const order = { side: form.side.value, type, quantity: qty, price };
  if (form.reduceOnly && form.reduceOnly.checked) order.reduceOnly = true;   // only shrinks a position
  // The trader's own stops (optional): a BUY's stop below and target above the price, a SELL's
  // the other way round. A MARKET's side is checked by the server against the last price.
  const ref = type === "LIMIT" ? price : null;
  for (const [name, below] of [["stopLoss", order.side === "BUY"], ["takeProfit", order.side !== "BUY"]]) {
    const raw = form[name] ? form[name].value.trim() : "";
    if (!raw) continue;
    const v = Number(raw);
    if (!Number.isFinite(v) || v <= 0) { errors[name] = t("err_price"); continue; }
    if (order.reduceOnly) { errors[name] = t("err_stops_reduce_only"); continue; }
    if (ref > 0 && (below ? v >= ref : v <= ref)) { errors[name] = t(below ? "err_below_price" : "err_above_price"); continue; }
    order[name] = v;
  }
  return { errors, order };
}

// One idempotency key per order the trader means: the server places at most one order per
// clientOrderId. A retry of the same order after an unknown outcome (no answer, or a 5xx) sends
// the same id, so it cannot place a second order; a new or changed order gets a new id.
function newClientOrderId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));   // works without a secure context
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Binance's refusal in the page's language ("-2019" -> "margin is insufficient ..."); the raw
// English text stays available as the toast's tooltip. Unknown codes keep the server's text.
export function orderErrorText(e) {
  if (e && e.code != null && has(`bnc_${e.code}`)) {
    return t("order_refused", { code: e.code, reason: t(`bnc_${e.code}`) });
  }
  return e.message;
}

// Live under the form: what the quantity (in coins) is worth in USDT and the margin it ties up
// at the configured leverage. getQuote() -> {price, leverage} (price: the last close shown).
function renderEstimate(form, getSymbol, getQuote) {
  const asset = getSymbol().replace(/USDT$/, "") || getSymbol();
  $("order-qty-label").textContent = t("quantity_coins", { asset });
  const qty = Number(form.quantity.value.trim());
  const { price: last, leverage } = getQuote();
  const price = form.type.value === "LIMIT" && Number(form.price.value) > 0 ? Number(form.price.value) : last;
  const box = $("order-estimate");
  if (!(qty > 0) || !(price > 0)) { box.textContent = t("order_estimate_none"); return null; }
  const notional = qty * price;
  const lev = leverage > 0 ? leverage : 1;
  box.textContent = t("order_estimate", { notional: num(notional), margin: num(notional / lev), lev });
  return notional;
}

export function bindOrderForm(getSymbol, onPlaced, getQuote = () => ({ price: null, leverage: 1 })) {
  const form = $("order-form");
  let unsettled = null;   // {key, clientOrderId}: the last order whose outcome is unknown
  const showErrors = (errors) => {
    form.querySelectorAll(".field-error").forEach((n) => { n.textContent = errors[n.dataset.for] || ""; });
  };
  const estimate = () => renderEstimate(form, getSymbol, getQuote);
  ["input", "change"].forEach((ev) => form.addEventListener(ev, estimate));
  onLangChange(estimate);
  form.refreshEstimate = estimate;        // the page calls it when the price or symbol changes
  estimate();
  form.type.addEventListener("change", () => {
    form.price.disabled = form.type.value !== "LIMIT";
    if (form.price.disabled) form.price.value = "";
  });
  form.price.disabled = form.type.value !== "LIMIT";
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const { errors, order } = validateOrder(form);
    showErrors(errors);
    if (Object.keys(errors).length) return;
    const submit = form.querySelector("button[type=submit]");
    // A market order fills at once at whatever the price is: ask before sending it.
    if (order.type === "MARKET") {
      const notional = estimate();
      const question = t("confirm_market", { side: order.side === "BUY" ? t("buy") : t("sell"), qty: order.quantity,
        symbol: getSymbol(), notional: notional == null ? "—" : num(notional) });
      if (!window.confirm(question)) return;
    }
    submit.disabled = true;
    const body = { symbol: getSymbol(), ...order };
    const key = JSON.stringify(body);
    const clientOrderId = unsettled && unsettled.key === key ? unsettled.clientOrderId : newClientOrderId();
    unsettled = { key, clientOrderId };
    try {
      const res = await api.order({ ...body, clientOrderId });
      unsettled = null;
      toast(t("order_ok", { status: res.status || res.order?.status || "OK" }), "ok");
      form.quantity.value = "";
      if (form.stopLoss) form.stopLoss.value = "";
      if (form.takeProfit) form.takeProfit.value = "";
      onPlaced && onPlaced();
    } catch (e) {
      // A 4xx is a definite answer (nothing was placed): the next submit is a new order.
      if (e.status >= 400 && e.status < 500) unsettled = null;
      // The server names the field ("quantity=... is invalid: ...", and `field` in the body).
      const field = e.field || ["quantity", "price", "side", "type", "symbol", "reduceOnly", "stopLoss", "takeProfit"].find((f) => e.message.startsWith(f));
      const text = orderErrorText(e);
      showErrors(field ? { [field]: text } : {});
      toast(text, "error", e.code != null ? e.message : "");
    } finally {
      submit.disabled = false;
    }
  });
}

// ---- training progress (§5.3) ---------------------------------------------------------------
export function renderTraining(status) {
  const ph = status.phase || {};
  const name = lang() === "en" ? (ph.name_en || ph.key || "") : (ph.name_zh || ph.key || "");
  const count = ph.trade_count ?? 0;
  $("phase-name").textContent = name || "—";
  $("phase-count").textContent = ph.next_at != null
    ? t("phase_next", { count, next: ph.next_at }) : t("phase_final", { count });
  const progress = Math.max(0, Math.min(1, Number(ph.progress ?? 0)));
  $("phase-bar").style.width = `${(progress * 100).toFixed(1)}%`;
  $("phase-pct").textContent = `${Math.round(progress * 100)}%`;
  $("phase-rule").textContent = ph.min_score != null
    ? t("min_score", { min: ph.min_score, gap: ph.score_gap ?? "—" }) : "";
  const weights = status.weights || {};
  const total = Object.values(weights).reduce((a, b) => a + Number(b || 0), 0) || 1;
  const keys = FEATURES.filter((k) => k in weights).concat(Object.keys(weights).filter((k) => !FEATURES.includes(k)));
  $("weights").replaceChildren(...keys.map((k) => {
    const pct = (Number(weights[k]) / total) * 100;
    return el("div", { class: "wrow" },
      el("span", { class: "wname" }, t(`w_${k}`) === `w_${k}` ? k : t(`w_${k}`)),
      el("span", { class: "wbar" }, el("span", { class: "wfill", style: `width:${Math.min(100, pct * 2.5).toFixed(1)}%` })),
      el("span", { class: "wpct" }, `${pct.toFixed(1)}%`));
  }));
  renderFilter(status.trade_filter);
  // last_scores: {symbol: {long, short, ...}} from the agent's newest analysis.
  const scores = Object.entries(status.last_scores || {}).map(([sym, sc]) =>
    `${sym} ${t("long")} ${num(sc.long, 0)} / ${t("short")} ${num(sc.short, 0)}`);
  $("last-scores").textContent = scores.length ? `${t("last_scores")}: ${scores.join(" · ")}` : "";
  // last_error: {time_ms, symbol, message} or null.
  const le = status.last_error;
  $("last-error").textContent = le
    ? `${t("last_error")} ${formatDateTime(le.time_ms)} ${le.symbol || ""}: ${pick(le, "message") || le.message || ""}` : "";
}

// status.trade_filter: the learned trade filter's view (TRADE_FILTER=on) or null: trades learned
// from, its baseline expectation, each feature's weight (R per standard deviation) with its sd,
// and how often it said no. The six features that move its prediction most, as bars around 0.
function renderFilter(tf) {
  const box = $("filter-box");
  box.hidden = !tf;
  if (!tf) return;
  const skip = tf.skip_rate == null ? "—" : `${Math.round(tf.skip_rate * 100)}%`;
  $("filter-head").textContent = t("filter_head", { learned: tf.learned ?? 0, warmup: tf.warmup_trades ?? "—",
    base: (Number(tf.baseline_r) >= 0 ? "+" : "") + num(tf.baseline_r, 2), seen: tf.seen ?? 0, skip });
  const entries = Object.entries(tf.weights || {})
    .sort((a, b) => Math.abs(Number(b[1].weight)) - Math.abs(Number(a[1].weight))).slice(0, 6);
  const scale = Math.max(0.25, ...entries.map(([, v]) => Math.abs(Number(v.weight))));
  $("filter-weights").replaceChildren(el("div", { class: "muted small" }, t("filter_view")), ...entries.map(([k, v]) => {
    const w = Number(v.weight);
    const pct = Math.min(50, (Math.abs(w) / scale) * 50);
    const style = w >= 0 ? `left:50%;width:${pct.toFixed(1)}%` : `left:${(50 - pct).toFixed(1)}%;width:${pct.toFixed(1)}%`;
    const base = k.replace(/^level_/, "");
    const name = t(`w_${base}`) === `w_${base}` ? k : t(`w_${base}`);
    return el("div", { class: "wrow", dataset: { feature: k } },
      el("span", { class: "wname", title: k }, name),
      el("span", { class: "wbar fbar" }, el("span", { class: `ffill ${w >= 0 ? "up-bg" : "down-bg"}`, style })),
      el("span", { class: "wpct" }, `${w >= 0 ? "+" : ""}${num(w, 2)}`));
  }));
}

// ---- risk protections ---------------------------------------------------------------------------
// status.protections: the agent's ProtectionState.to_dict() ({active: [{rule, reason_zh,
// reason_en, started_ms, until_ms}], history, ...}) or null. Each active pause with its reason
// in the page's language and when it lifts at the earliest, the earliest first.
// status.account_mode: the account-mode check ({ok, problems: [{symbol, kind, zh, en}], ...}) or
// null; each problem (hedge mode, multi-assets mode, margin type, leverage) refuses entries.
export function renderProtections(prot, mode) {
  const list = $("protections-list");
  const active = ((prot && prot.active) || []).slice().sort((a, b) => a.until_ms - b.until_ms);
  const problems = (mode && mode.problems) || [];
  $("protections-panel").classList.toggle("paused", active.length > 0 || problems.length > 0);
  if (!active.length && !problems.length) {
    list.replaceChildren(el("li", { class: "muted" }, t("prot_none")));
    return;
  }
  list.replaceChildren(...problems.map((p) => el("li", { class: "pause", dataset: { mode: p.kind } },
    el("div", {}, el("b", {}, t("mode_mismatch")), p.symbol ? ` · ${p.symbol}` : ""),
    el("div", { class: "small" }, p[lang()] || p.en || ""))),
  ...active.map((p) => el("li", { class: "pause", dataset: { rule: p.rule } },
    el("div", {}, el("b", {}, t(`prot_rule_${p.rule}`)), " · ", el("span", { class: "down" }, t("prot_paused")),
      " · ", el("span", { class: "muted" }, t("prot_until", { time: formatDateTime(p.until_ms) }))),
    el("div", { class: "small" }, pick(p, "reason")))));
}

// ---- run log (§5.4), newest first ------------------------------------------------------------
const logState = { lines: [], lastId: null };
const LOG_KEEP = 400;

export function mergeLogs(newLines) {
  if (!newLines || !newLines.length) return false;
  const seen = new Set(logState.lines.map((l) => l.id));
  const fresh = newLines.filter((l) => !seen.has(l.id));
  if (!fresh.length) return false;
  logState.lines = fresh.concat(logState.lines).sort((a, b) => b.id - a.id).slice(0, LOG_KEEP);
  logState.lastId = logState.lines[0].id;
  return true;
}

export function lastLogId() {
  return logState.lastId;
}

export function renderLogs() {
  const box = $("log-list");
  if (!logState.lines.length) {
    box.replaceChildren(el("li", { class: "empty" }, t("no_logs")));
    return;
  }
  box.replaceChildren(...logState.lines.map((l) => el("li", { class: `log ${String(l.level || "").toLowerCase()}` },
    el("span", { class: "ltime" }, formatDateTime(l.time_ms)),
    l.symbol ? el("span", { class: "lsym" }, l.symbol) : null,
    el("span", { class: "lmsg" }, pick(l, "message")))));
}

// ---- trades and thought chains -----------------------------------------------------------------
export function renderTrades(trades) {
  const body = $("trades-body");
  if (!trades || !trades.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "empty" }, t("no_trades"))));
    return;
  }
  body.replaceChildren(...trades.map((tr) => {
    const row = el("tr", { class: "clickable", dataset: { tradeId: tr.id, status: tr.status } },
      el("td", {}, `#${tr.id}`),
      el("td", {}, shortTime(tr.opened_ms)),
      el("td", {}, tr.symbol || "",
        // a trade a dashboard order made or changed: the account's, not the agent's lesson
        tr.source === "manual" || tr.source === "mixed" ? el("span", { class: "muted" }, ` · ${t(`source_${tr.source}`)}`) : null),
      el("td", {}, el("span", { class: isLong(tr) ? "up" : "down" }, isLong(tr) ? t("long") : t("short"))),
      el("td", {}, priceText(tr.entry_price)),
      el("td", {}, priceText(tr.exit_price)),
      // unreconciled: the position is gone but its exit fills were not found yet (PnL unknown)
      tr.status === "unreconciled"
        ? el("td", { class: "down", title: t("unreconciled_hint") }, t("unreconciled"))
        : el("td", {}, tr.status === "open" ? t("open") : signed(tr.net_pnl),
          tr.status !== "open" && tr.exit_reason ? el("span", { class: "muted" }, ` · ${exitReason(tr.exit_reason)}`) : null));
    row.addEventListener("click", () => openThought(tr.id));
    return row;
  }));
}

function renderValue(v) {
  if (v == null) return el("span", { class: "muted" }, "—");
  if (typeof v !== "object") return el("span", {}, typeof v === "number" ? String(+v.toFixed(6)) : String(v));
  if (Array.isArray(v)) {
    if (v.every((x) => x == null || typeof x !== "object")) return el("span", {}, v.map((x) => (typeof x === "number" ? +x.toFixed(6) : x)).join(", "));
    return el("ol", {}, ...v.map((x) => el("li", {}, renderValue(x))));
  }
  return el("dl", { class: "kv" }, ...Object.entries(v).flatMap(([k, x]) => [el("dt", {}, k), el("dd", {}, renderValue(x))]));
}

// One line per fact: [label, value-node-or-text]; rows with an empty value are dropped.
function facts(rows) {
  return el("dl", { class: "kv facts" }, ...rows.filter(([, v]) => v != null && v !== "")
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

const sideText = (side) => (String(side || "").toUpperCase() === "LONG" ? t("long") : t("short"));

// The knowledge store's thought chain: perception {price, decision{reason_*}, level, scores,
// phase, indicators, ...}, action {side, price, quantity, stop, target, reason_*, plan},
// reward {net_pnl, r_multiple, exit_reason, exit_price, fees, exits, weight_change} (null while
// open). The key facts come first; everything else is one click away under "all data".
function perceptionFacts(p) {
  const lv = p.level;
  const sc = p.scores || {};
  return facts([
    [t("price"), priceText(p.price)],
    [t("level"), lv ? `${lv.kind === "support" ? "S" : "R"} ${priceText(lv.price)} · ${t("score")} ${num(lv.score, 0)} · ${lv.timeframe || ""}` : null],
    [t("last_scores"), sc.long != null ? `${t("long")} ${num(sc.long, 1)} / ${t("short")} ${num(sc.short, 1)}` : null],
    [t("reason"), pick(p.decision, "reason") || null],
  ]);
}

// The plan's reasons in the page's language (reasons_zh/reasons_en since they were added;
// older trades only have the English `reasons`).
function planReasons(plan) {
  if (!plan) return null;
  const list = plan[`reasons_${lang()}`] ?? plan.reasons;
  return Array.isArray(list) && list.length ? list.join(lang() === "zh" ? "；" : "; ") : null;
}

function actionFacts(a) {
  return facts([
    [t("dir"), a.side ? sideText(a.side) : null],
    [t("entry"), priceText(a.price)],
    [t("size"), a.quantity != null ? qtyText(a.quantity) : null],
    [t("stop_loss"), priceText(a.stop)],
    [t("target"), priceText(a.target)],
    [t("reason"), pick(a, "reason") || null],
    ["", planReasons(a.plan)],
  ]);
}

function rewardFacts(r) {
  const wc = r.weight_change;
  return facts([
    [t("pnl"), signed(r.net_pnl)],
    [t("r_multiple"), r.r_multiple != null ? num(r.r_multiple, 2) : null],
    [t("exit"), priceText(r.exit_price)],
    [t("exit_reason"), exitReason(r.exit_reason) || null],
    [t("fees"), r.fees != null ? num(r.fees, 2) : null],
    [t("weight_change"), wc ? featureNames(pick(wc, "reason")) || null : null],
  ]);
}

function chainSection(key, value, summarize) {
  const parts = [el("h4", {}, t(key))];
  if (value == null) {
    parts.push(el("p", { class: "muted" }, key === "reward" ? t("still_open") : "—"));
  } else {
    parts.push(summarize(value));
    parts.push(el("details", {}, el("summary", {}, t("raw_data")), renderValue(value)));
  }
  return el("section", { class: `chain ${key}` }, ...parts);
}

export async function openThought(id) {
  const dlg = $("thought-dialog");
  const body = $("thought-body");
  body.replaceChildren(el("p", { class: "muted" }, "…"));
  $("thought-title").textContent = `${t("thought")} #${id}`;
  if (!dlg.open) dlg.showModal();
  try {
    const tr = await api.trade(id);
    const chain = tr.thought_chain || {};
    const head = el("p", { class: "thead" }, `${tr.symbol} ${sideText(tr.side)} · ${t("entry")} ${priceText(tr.entry_price)}`
      + (tr.exit_price != null ? ` · ${t("exit")} ${priceText(tr.exit_price)}` : "")
      + ` · ${formatDateTime(tr.opened_ms)}`);
    body.replaceChildren(head,
      chainSection("perception", chain.perception, perceptionFacts),
      chainSection("action", chain.action, actionFacts),
      chainSection("reward", chain.reward, rewardFacts),
      el("section", { class: "chain summary" }, el("h4", {}, t("summary")), el("p", {}, pick(chain, "summary") || "—")));
  } catch (e) {
    body.replaceChildren(el("p", { class: "down" }, e.message));
  }
}

// ---- equity curve and weight history -------------------------------------------------------------
let equityChart = null;
let weightChart = null;

export function renderEquity(points) {
  if (!equityChart) equityChart = new LineChart($("equity-chart"), [{ key: "equity", color: "#2962ff" }]);
  const n = equityChart.setSeries("equity", (points || []).map((p) => ({ time_ms: p.time_ms, value: p.equity })));
  if (n) equityChart.fit();
  chartEmptyState($("equity-chart"), !n, "equity_empty");   // no point yet: say why, draw none
}

export function renderWeightHistory(history) {
  if (!weightChart) {
    weightChart = new LineChart($("weights-chart"), FEATURES.map((k, i) => ({ key: k, color: FEATURE_COLORS[i] })),
      { type: "percent", precision: 1, minMove: 0.1 });
    $("weights-legend").replaceChildren(...FEATURES.map((k, i) => el("span", { class: "legend" },
      el("i", { style: `background:${FEATURE_COLORS[i]}` }), el("span", { "data-i18n": `w_${k}` }, t(`w_${k}`)))));
  }
  let n = 0;
  FEATURES.forEach((k) => {
    n = Math.max(n, weightChart.setSeries(k, (history || []).map((h) => ({
      time_ms: h.time_ms, value: h.weights && h.weights[k] != null ? Number(h.weights[k]) * 100 : null,
    }))));
  });
  if (n) weightChart.fit();
  const last = history && history.length ? history[history.length - 1] : null;
  $("weights-reason").textContent = last ? `${formatDateTime(last.time_ms)} · ${featureNames(pick(last, "reason") || last.reason || "")}` : "";
}

// The time zone changed (charts.js setTimeZone): the mini charts redraw their time axis.
export function refreshTime() {
  if (equityChart) equityChart.refreshTime();
  if (weightChart) weightChart.refreshTime();
}
