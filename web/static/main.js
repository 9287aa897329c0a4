// Bootstraps the page and keeps it live by polling the API (no websockets: one process,
// loopback, a few requests a second at most). Slow data is polled less often.

import { api } from "./api.js";
import { t, initLang, setLang, lang, onLangChange } from "./i18n.js";
import { KlineChart, formatDateTime, setTimeZone, timeZone, timeZoneLabel, onTimeZoneChange } from "./charts.js";
import { bindChartTabs } from "./layout.js";
import * as panels from "./panels.js";
import { renderExposure } from "./exposure.js";
import { replayConnectivity, replayFinished, renderReplayEnd } from "./run_state.js";
import { initialSymbol, rememberSymbol, labelCharts, renderSymbolPnl } from "./symbols.js";

const $ = (id) => document.getElementById(id);
const INTERVALS = ["1m", "15m", "8h", "1w"];
const boot = JSON.parse($("boot-data").textContent);

const state = {
  symbol: initialSymbol(boot.symbols),
  meta: boot,
  status: null,
  trades: [],
  charts: {},
  tick: 0,
  klinesFailing: false,
};

function setBadge(id, text, cls) {
  const b = $(id);
  b.textContent = text;
  b.className = `badge ${cls}`;
}

function renderMeta() {
  const m = state.meta;
  setBadge("badge-mode", t(`mode_${m.mode}`), `mode-${m.mode}`);
  // The service's own view (last market call) and the agent's ({market, exchange}: ok|down|unknown):
  // either one seeing Binance down turns the badge red.
  const agentConn = (m.connectivity && m.connectivity.agent) || {};
  let conn = (m.connectivity && m.connectivity.state) || "unknown";
  if (Object.values(agentConn).includes("down")) conn = "unreachable";
  else if (conn === "unknown" && agentConn.market === "ok") conn = "ok";
  // replay plays archive files: say which, never "Binance reachable"
  const replayConn = replayConnectivity(m);
  setBadge("badge-conn", replayConn ? replayConn.text : t(`conn_${conn}`), replayConn ? replayConn.cls : `conn-${conn}`);
  $("badge-conn").title = replayConn ? replayConn.title : "";
  $("world-time").textContent = m.world_time_ms ? formatDateTime(m.world_time_ms) : "—";
  const banner = $("banner");
  const parts = [];
  if (conn === "unreachable" && m.mode !== "replay") {
    parts.push(`${t("unreachable_banner", { error: (m.connectivity.error || m.market_note || "").slice(0, 200) })} `);
  }
  if (!m.agent_available) parts.push(t("agent_unavailable", { note: m.agent_note || "" }));
  $("banner-text").textContent = parts.join(" ");
  $("banner-hint").hidden = !(conn === "unreachable" && m.mode !== "replay");
  $("banner-hint").textContent = m.replay_hint;
  banner.hidden = parts.length === 0;
}

function renderAgentState() {
  const running = !!(state.status && state.status.running);
  // every recent cycle failing is not "running": say how many in a row, the error on hover
  const failed = running ? Number(state.status.failed_cycles || 0) : 0;
  setBadge("badge-agent", failed > 0 ? t("running_failing", { n: failed }) : running ? t("running") : t("stopped"),
           failed > 0 ? "conn-unreachable" : running ? "on" : "off");
  const lastErr = failed > 0 && state.status.last_error;
  $("badge-agent").title = lastErr ? (lastErr[`message_${lang()}`] || lastErr.message || "") : "";
  if (replayFinished(state.status)) {          // the data is played: not "running", not "stopped"
    setBadge("badge-agent", t("replay_finished"), "finished");
    $("badge-agent").title = t("replay_finished_hint");
  }
  $("btn-start").title = replayFinished(state.status) ? t("replay_done_start") : "";
  renderReplayEnd(state.status, state.meta);
  $("btn-start").disabled = running || !state.meta.agent_available;
  $("btn-stop").disabled = !running;
  $("btn-reset").hidden = state.meta.mode !== "paper";
  // also without an agent: a fresh store is how a broken paper store is recovered
  $("btn-reset").disabled = running;
}

// The paper account starts over (server: POST /api/agent/reset, paper mode, agent stopped)
async function resetPaper() {
  const btn = $("btn-reset");
  if (!window.confirm(t("confirm_reset_paper", { balance: btn.dataset.balance }))) return;
  btn.disabled = true;
  try {
    await api.resetPaper();
  } catch (e) {
    panels.toast(e.message, "error");
    renderAgentState();
    return;
  }
  // a new store restarts log ids, trades and charts: the page starts over with it
  window.location.reload();
}

async function refreshMeta() {
  try {
    state.meta = await api.meta();
    renderMeta();
  } catch (e) { /* server gone: the next tick retries */ }
}

async function refreshStatus() {
  if (!state.meta.agent_available) return;
  try {
    const wasFinished = replayFinished(state.status);
    state.status = await api.status();
    renderAgentState();
    // the replay just ended: show its last bars, trades and equity now, not a tick later
    if (!wasFinished && replayFinished(state.status)) {
      Promise.all([refreshKlines(), refreshAccount(), refreshHistory()]);
    }
    panels.renderTraining(state.status);
    panels.renderProtections(state.status.protections, state.status.account_mode);
    renderExposure(state.status.exposure);
  } catch (e) { /* shown via last_error / banner */ }
}

async function refreshLogs() {
  if (!state.meta.agent_available) return;
  try {
    const res = await api.logs(panels.lastLogId());
    if (panels.mergeLogs(res.logs)) panels.renderLogs();
  } catch (e) { /* keep old lines */ }
}

async function refreshAccount() {
  if (!state.meta.agent_available) return;
  try { panels.renderAccount(await api.account()); } catch (e) { /* e.g. 503 while offline */ }
  try {
    const list = (await api.positions()).positions;
    panels.renderPositions(list, refreshAccount);
    state.positions = list;
    drawPosition();
  } catch (e) { /* idem */ }
}

// The open position in the shown symbol: its entry, stop and target as lines on every chart.
function drawPosition() {
  const pos = (state.positions || []).find((p) => p.symbol === state.symbol && Number(p.amount ?? 0) !== 0);
  INTERVALS.forEach((itv) => state.charts[itv].setPosition(pos || null));
}

function chartLabels() {
  return { o: t("ohlc_o"), h: t("ohlc_h"), l: t("ohlc_l"), c: t("ohlc_c"), trades_in_bar: t("trades_in_bar"),
    entry: t("line_entry"), stop: t("line_stop"), target: t("line_target"),
    exit: t("tip_exit"), long: t("tip_long"), short: t("tip_short") };
}

function renderTimeZone() {
  const btn = $("btn-tz");
  btn.textContent = timeZone() === "utc" ? t("tz_utc") : t("tz_local", { zone: timeZoneLabel() });
  btn.title = t("tz_switch");
  btn.dataset.tz = timeZone();
}

async function refreshKlines() {
  const symbol = state.symbol;
  try {
    const res = await api.klinesAll(symbol, 300);
    if (symbol !== state.symbol) return;     // switched meanwhile: the new symbol's call draws
    INTERVALS.forEach((itv) => {
      const chart = state.charts[itv];
      chart.setCandles(res.klines[itv]);
      chart.setTrades(state.trades.filter((tr) => tr.symbol === state.symbol));
      $(`last-${itv}`).textContent = res.klines[itv].length
        ? String(res.klines[itv][res.klines[itv].length - 1].close) : "";
    });
    const rows15 = res.klines["15m"] || [];
    state.lastClose = rows15.length ? rows15[rows15.length - 1].close : null;
    $("order-form").refreshEstimate?.();
    state.klinesFailing = false;
    $("charts-error").hidden = true;
  } catch (e) {
    state.klinesFailing = true;
    $("charts-error").hidden = false;
    $("charts-error").textContent = e.message;
  }
}

async function refreshLevels() {
  if (!state.meta.agent_available) return;
  try {
    const symbol = state.symbol;
    const res = await api.levels(symbol);
    if (symbol !== state.symbol) return;
    INTERVALS.forEach((itv) => state.charts[itv].setLevels(res.levels));
  } catch (e) { /* levels appear once the agent has analysed */ }
}

async function refreshHistory() {
  if (!state.meta.agent_available) return;
  try {
    state.trades = (await api.trades(100)).trades;
    panels.renderTrades(state.trades);
    const mine = state.trades.filter((tr) => tr.symbol === state.symbol);
    INTERVALS.forEach((itv) => state.charts[itv].setTrades(mine));
  } catch (e) { /* idem */ }
  try { renderSymbolPnl(await api.symbolPnl(), state.symbol, switchSymbol); } catch (e) { /* idem */ }
  try { panels.renderEquity((await api.equity()).equity); } catch (e) { /* idem */ }
  try { panels.renderWeightHistory((await api.weightHistory()).history); } catch (e) { /* idem */ }
}

async function tick() {
  state.tick += 1;
  const n = state.tick;
  await Promise.all([refreshMeta(), refreshStatus(), refreshLogs()]);
  const jobs = [];
  if (n % 2 === 0) jobs.push(refreshAccount());
  // Offline, the kline call fails fast but there is no point asking every 2 s.
  if (n % (state.klinesFailing ? 15 : 3) === 0) jobs.push(refreshKlines());
  if (n % 3 === 0) jobs.push(refreshLevels(), refreshHistory());
  await Promise.all(jobs);
}

function loop() {
  tick().finally(() => setTimeout(loop, 2000));
}

async function agentAction(which) {
  const btn = $(which === "start" ? "btn-start" : "btn-stop");
  if (which === "start" && replayFinished(state.status)) {   // the server refuses too (409)
    panels.toast(t("replay_done_start"), "error");
    return;
  }
  btn.disabled = true;
  try {
    state.status = await (which === "start" ? api.start() : api.stop());
    renderAgentState();
    panels.renderTraining(state.status);
    panels.renderProtections(state.status.protections, state.status.account_mode);
    renderExposure(state.status.exposure);
    await Promise.all([refreshLogs(), refreshHistory(), refreshLevels()]);
  } catch (e) {
    panels.toast(e.message, "error");
    renderAgentState();
  }
}

// Show another symbol: its candles, levels, trade markers and position lines on all four
// charts. The old symbol's levels go at once (the new ones may not exist yet), and the choice
// is kept for the next visit (symbols.js).
function switchSymbol(symbol) {
  if (!boot.symbols.includes(symbol)) return;
  state.symbol = symbol;
  $("symbol").value = symbol;
  rememberSymbol(symbol);
  labelCharts(symbol);
  INTERVALS.forEach((itv) => {
    state.charts[itv].fitted = false;
    state.charts[itv].setLevels([]);
  });
  drawPosition();
  renderSymbolPnl(undefined, symbol, switchSymbol);
  state.lastClose = null;                  // the order estimate waits for this symbol's price
  $("order-form").refreshEstimate?.();
  refreshKlines();
  refreshLevels();
}

function init() {
  initLang(boot.language);
  const select = $("symbol");
  boot.symbols.forEach((s) => select.append(new Option(s, s)));
  select.value = state.symbol;
  labelCharts(state.symbol);
  select.addEventListener("change", () => switchSymbol(select.value));
  INTERVALS.forEach((itv) => {
    state.charts[itv] = new KlineChart($(`chart-${itv}`), itv);
    state.charts[itv].setLabels(chartLabels());
  });
  window.dashboardCharts = state.charts;    // read by the browser tests (describe())
  bindChartTabs();
  $("btn-tz").addEventListener("click", () => setTimeZone(timeZone() === "utc" ? "local" : "utc"));
  onTimeZoneChange(() => {
    renderTimeZone();
    renderMeta();
    INTERVALS.forEach((itv) => state.charts[itv].refreshTime());
    panels.refreshTime();
    panels.renderLogs();
    panels.renderTrades(state.trades);
  });
  renderTimeZone();
  $("btn-lang").addEventListener("click", () => setLang(lang() === "zh" ? "en" : "zh"));
  $("btn-start").addEventListener("click", () => agentAction("start"));
  $("btn-stop").addEventListener("click", () => agentAction("stop"));
  $("btn-reset").addEventListener("click", resetPaper);
  $("thought-close").addEventListener("click", () => $("thought-dialog").close());
  panels.bindOrderForm(() => state.symbol, refreshAccount, () => ({
    price: state.lastClose, leverage: Number(state.meta.leverage) || 1 }));
  onLangChange(() => {
    renderTimeZone();
    INTERVALS.forEach((itv) => state.charts[itv].setLabels(chartLabels()));
    drawPosition();
    renderMeta();
    renderAgentState();
    if (state.status) {
      panels.renderTraining(state.status);
      panels.renderProtections(state.status.protections, state.status.account_mode);
      renderExposure(state.status.exposure);
    }
    panels.renderLogs();
    panels.renderTrades(state.trades);
    if (state.positions) panels.renderPositions(state.positions, refreshAccount);
    renderSymbolPnl(undefined, state.symbol, switchSymbol);
  });
  renderMeta();
  renderAgentState();
  panels.renderLogs();
  panels.renderTrades([]);
  Promise.all([refreshKlines(), refreshStatus(), refreshLogs(), refreshAccount(), refreshHistory()])
    .then(refreshLevels)
    .finally(() => {
      document.body.dataset.ready = "1";
      setTimeout(loop, 2000);
    });
}

init();
