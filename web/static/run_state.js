// What the page says about the run itself (issue 17 #6): a replay shows the archive data it
// plays (never "Binance reachable"), a replay played to its end says so with its figures, and
// an equity curve with no point yet says why instead of drawing an empty chart.

import { t, addStrings } from "./i18n.js";
import { formatDateTime } from "./charts.js";

addStrings({
  zh: {
    conn_replay: "回放数据 {data}",
    conn_replay_hint: "回放本地存档K线，不连接币安：{path}",
    replay_finished: "回放结束",
    replay_finished_hint: "回放数据已播完，Agent已自动停止",
    replay_done_summary: "回放结束：数据已播完（最后一根K线 {end}）。{trades} 笔交易（盈利 {wins} 笔），净盈亏 {pnl} USDT，权益 {eq0} → {eq1} USDT（{ret}）。",
    replay_done_open: "{n} 个持仓未平，按最后价格计入权益。",
    replay_done_next: "要继续回放，请用另一个数据集启动（--replay 路径）；要从头重放本数据集，请先移走回放数据库 {db}。",
    replay_done_start: "回放已结束，无法再启动：没有剩余数据。请用另一个数据集启动（--replay 路径），或移走回放数据库后从头重放。",
    equity_empty: "暂无权益数据：启动Agent后开始记录",
  },
  en: {
    conn_replay: "Replay data {data}",
    conn_replay_hint: "Replaying archive klines from disk, not connected to Binance: {path}",
    replay_finished: "Replay finished",
    replay_finished_hint: "The replay's data is played to the end; the agent stopped by itself",
    replay_done_summary: "Replay finished: the data ends at the {end} bar. {trades} trade(s) ({wins} won), net PnL {pnl} USDT, equity {eq0} → {eq1} USDT ({ret}).",
    replay_done_open: "{n} position(s) left open, valued at the last price.",
    replay_done_next: "To replay more, start the dashboard with another data set (--replay PATH); to play this one again from the start, move its store {db} aside first.",
    replay_done_start: "The replay is finished and cannot start again: no data is left. Start with another data set (--replay PATH), or move the replay store aside to play it again from the start.",
    equity_empty: "No equity yet: it is recorded once the agent runs",
  },
});

const $ = (id) => document.getElementById(id);

function month(ms) {
  return new Date(Number(ms)).toISOString().slice(0, 7);     // archive months are UTC months
}

// "FILUSDT 2023-09" or "FILUSDT 2023-08–2023-09": the symbols and months of the archive.
export function replayDataLabel(replay) {
  if (!replay) return "";
  const a = month(replay.data_start_ms);
  const b = month(replay.data_end_ms);
  return `${(replay.symbols || []).join(",")} ${a === b ? a : `${a}–${b}`}`.trim();
}

// The connectivity badge in replay ({text, cls, title}); null outside replay.
export function replayConnectivity(meta) {
  if (!meta || meta.mode !== "replay" || !meta.replay) return null;
  return { text: t("conn_replay", { data: replayDataLabel(meta.replay) }), cls: "conn-replay",
    title: t("conn_replay_hint", { path: meta.replay.path || "" }) };
}

export function replayFinished(status) {
  return !!(status && status.state === "finished" && status.replay_finished);
}

function money(v, signed = false) {
  if (v == null || !Number.isFinite(Number(v))) return "?";
  const x = Number(v);
  const s = x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return signed && x > 0 ? `+${s}` : s;
}

// The finished replay in words: the figures, then what to do next.
export function finishedText(done, dbPath) {
  const ret = done.return_pct == null ? "?" : `${done.return_pct > 0 ? "+" : ""}${Number(done.return_pct).toFixed(2)}%`;
  let s = t("replay_done_summary", { end: formatDateTime(done.end_ms), trades: done.trades, wins: done.wins,
    pnl: money(done.net_pnl, true), eq0: money(done.equity_start), eq1: money(done.equity_end), ret });
  if (Number(done.open_positions) > 0) s += ` ${t("replay_done_open", { n: done.open_positions })}`;
  return `${s} ${t("replay_done_next", { db: dbPath || "" })}`;
}

// The note under the top bar while a replay is finished (made here, not in the template).
export function renderReplayEnd(status, meta) {
  let box = $("replay-end");
  if (!replayFinished(status)) {
    if (box) box.hidden = true;
    return;
  }
  if (!box) {
    box = document.createElement("div");
    box.id = "replay-end";
    box.className = "banner info";
    box.setAttribute("role", "status");
    $("banner").after(box);
  }
  box.textContent = finishedText(status.replay_finished, meta && meta.replay && meta.replay.db_path);
  box.hidden = false;
}

// An empty-state line over a chart container: shown when `empty`, in the page's language.
export function chartEmptyState(container, empty, key) {
  let note = container.querySelector(":scope > .chart-empty");
  if (!note) {
    note = document.createElement("p");
    note.className = "chart-empty";
    note.dataset.i18n = key;          // i18n.applyStatic re-translates it on a language switch
    note.textContent = t(key);
    container.append(note);
  }
  note.hidden = !empty;
}
