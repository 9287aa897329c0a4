"""One self-contained HTML report of a backtest: no network, everything inline.

The price chart is the vendored lightweight-charts (web/static/vendor/, inlined as a script, so
the file still opens offline and can be mailed or archived): candles with zoom and pan, each
trade as a line from entry to exit, and the S/R levels the trades were taken at. Equity,
drawdown and weight history stay inline SVG. Every label carries Chinese and English
(data-zh / data-en) and a button switches them; Chinese is the default, as on the dashboard.
Figures beyond the run's summary come from rl.backtest.metrics (pure, tested by hand).
"""
from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rl.backtest.metrics import (
    GroupFigures,
    TradeOutcome,
    breakdown,
    cagr,
    calmar_ratio,
    max_drawdown_period,
    month_key,
    sqn,
    trade_stats,
)
from rl.backtest.report_chain import chain_html
from rl.backtest.report_labels import EXITS, FIGURES, SETTINGS, SIDES, WEIGHTS, duration, t, word
from rl.backtest.report_portfolio import portfolio_section

WIDTH, HEIGHT, PAD = 1100, 260, 48
VENDOR_JS = (Path(__file__).resolve().parents[2] / "web" / "static" / "vendor" / "lightweight-charts"
             / "lightweight-charts.standalone.production.js")
HINT = t("滚轮缩放，拖动平移；线段连接入场与出场（绿色盈利，红色亏损）；虚线为交易依据的支撑/阻力位。",
         "Wheel to zoom, drag to pan; each line joins a trade's entry to its exit (green won, red lost); "
         "dashed lines are the support/resistance levels the trades were taken at.")
LEVEL_MERGE = 0.004     # levels closer than 0.4 % of price are drawn once (the better scored)
LABELLED_TRADES = 20    # more entry markers than this drop their "#id" text, which would overlap
MAX_LEVELS = 8          # the best-scored levels drawn; more stack into an unreadable band
PALETTE = ["#f0b90b", "#26a69a", "#ef5350", "#42a5f5", "#ab47bc", "#8d6e63"]


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.2f}"
    return html.escape(str(v))


def _fmt_figure(key: str, v: Any) -> str:
    """Summary figures: fractions and *_pct as percentages, the rest as _fmt does."""
    if isinstance(v, float) and math.isfinite(v):
        if key == "win_rate":
            return f"{v * 100:.1f} %"
        if key.endswith("_pct"):
            return f"{v:+.2f} %" if "return" in key else f"{v:.2f} %"
    return _fmt(v)


def _downsample(xs: Sequence[float], ys: Sequence[float], max_points: int = 2000) -> tuple[list, list]:
    """Keep at most max_points, choosing min and max of each bucket so spikes stay visible."""
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    bucket = math.ceil(n / (max_points / 2))
    ox, oy = [], []
    for i in range(0, n, bucket):
        seg = range(i, min(n, i + bucket))
        lo = min(seg, key=lambda k: ys[k])
        hi = max(seg, key=lambda k: ys[k])
        for k in sorted({lo, hi}):
            ox.append(xs[k])
            oy.append(ys[k])
    return ox, oy


class _Scale:
    def __init__(self, xs: Sequence[float], ys: Sequence[float], height: int = HEIGHT) -> None:
        self.x0: float
        self.x1: float
        self.y0: float
        self.y1: float
        self.x0, self.x1 = (min(xs), max(xs)) if xs else (0, 1)
        self.y0, self.y1 = (min(ys), max(ys)) if ys else (0, 1)
        if self.x1 == self.x0:
            self.x1 = self.x0 + 1
        if self.y1 == self.y0:
            self.y0, self.y1 = self.y0 - 1, self.y1 + 1
        self.h = height

    def x(self, v: float) -> float:
        return PAD + (v - self.x0) / (self.x1 - self.x0) * (WIDTH - 2 * PAD)

    def y(self, v: float) -> float:
        return self.h - PAD / 2 - (v - self.y0) / (self.y1 - self.y0) * (self.h - PAD)


Label = str | tuple[str, str]          # one text, or (Chinese, English): switched with the page


def _svg_label(label: Label, x: float, y: float, cls: str) -> str:
    """An SVG <text>; a (zh, en) pair carries both, like every label of the report."""
    if isinstance(label, tuple):
        zh, en = label
        return (f'<text x="{x}" y="{y}" class="{cls}" data-zh="{html.escape(zh)}" '
                f'data-en="{html.escape(en)}">{html.escape(zh)}</text>')
    return f'<text x="{x}" y="{y}" class="{cls}">{html.escape(label)}</text>'


def _axis(scale: _Scale, label: Label) -> str:
    parts = [_svg_label(label, PAD, 14, "lbl")]
    for frac in (0.0, 0.5, 1.0):
        v = scale.y0 + frac * (scale.y1 - scale.y0)
        parts.append(f'<text x="2" y="{scale.y(v) + 4:.1f}" class="tick">{_fmt(float(v))}</text>')
        t = scale.x0 + frac * (scale.x1 - scale.x0)
        day = datetime.fromtimestamp(t / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
        anchor = "start" if frac == 0 else ("end" if frac == 1 else "middle")
        parts.append(f'<text x="{scale.x(t):.1f}" y="{scale.h - 4}" text-anchor="{anchor}" class="tick">{day}</text>')
    return "".join(parts)


def _polyline(scale: _Scale, xs: Sequence[float], ys: Sequence[float], color: str) -> str:
    pts = " ".join(f"{scale.x(x):.1f},{scale.y(y):.1f}" for x, y in zip(xs, ys))
    return f'<polyline fill="none" stroke="{color}" stroke-width="1.3" points="{pts}"/>'


def price_chart(times: Sequence[int], closes: Sequence[float], trades: Sequence[dict]) -> str:
    xs, ys = _downsample(times, closes)
    sc = _Scale(xs, ys)
    marks = []
    for tr in trades:
        for key, price_key, color, shape in (("opened_ms", "entry_price", None, "entry"),
                                             ("closed_ms", "exit_price", "#bbbbbb", "exit")):
            ts, px = tr.get(key), tr.get(price_key)
            if ts is None or px is None:
                continue
            long = tr.get("side") in ("LONG", "BUY", "long")
            c = color or ("#26a69a" if long else "#ef5350")
            cx, cy = sc.x(ts), sc.y(px)
            if shape == "entry":
                tip = -7 if long else 7
                marks.append(f'<path d="M{cx:.1f},{cy:.1f} l-5,{-tip} l10,0 z" fill="{c}">'
                             f'<title>#{tr.get("id")} {html.escape(str(tr.get("side")))} @ {_fmt(px)}</title></path>')
            else:
                why = html.escape(str(tr.get("exit_reason", "")))
                marks.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{c}">'
                             f'<title>#{tr.get("id")} exit @ {_fmt(px)} ({why})</title></circle>')
    return (f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="chart">{_axis(sc, ("价格", "Price"))}'
            f'{_polyline(sc, xs, ys, "#d1d4dc")}{"".join(marks)}</svg>')


def line_chart(times: Sequence[int], series: dict[str, Sequence[float]], label: Label,
               height: int = HEIGHT, fill_zero: bool = False, colors: Sequence[str] | None = None,
               names: Mapping[str, tuple[str, str]] | None = None) -> str:
    """`colors`: one per series (default: the palette in order); later series draw on top.
    `names`: a series' legend as (Chinese, English); else its key."""
    all_y = [v for ys in series.values() for v in ys]
    sc = _Scale(list(times), all_y, height)
    body = []
    palette = list(colors) if colors else PALETTE
    for i, ys in enumerate(series.values()):
        xs2, ys2 = _downsample(times, ys)
        color = palette[i % len(palette)]
        if fill_zero:
            pts = " ".join(f"{sc.x(x):.1f},{sc.y(y):.1f}" for x, y in zip(xs2, ys2))
            body.append(f'<polygon fill="{color}33" stroke="{color}" points="{sc.x(xs2[0]):.1f},{sc.y(0):.1f} '
                        f'{pts} {sc.x(xs2[-1]):.1f},{sc.y(0):.1f}"/>')
        else:
            body.append(_polyline(sc, xs2, ys2, color))
    def name(n: str) -> str:
        return t(*names[n]) if names and n in names else html.escape(n)
    legend = "".join(f'<span style="color:{palette[i % len(palette)]}">■ {name(n)}</span> '
                     for i, n in enumerate(series)) if len(series) > 1 else ""
    return (f'<div class="legend">{legend}</div><svg viewBox="0 0 {WIDTH} {height}" class="chart">'
            f'{_axis(sc, label)}{"".join(body)}</svg>')


def _vendored_chart_library() -> str:
    """The dashboard's vendored lightweight-charts, read at render time (rl never imports web/;
    this only reads a static file). '</' is escaped so the script cannot close its own tag."""
    return VENDOR_JS.read_text(encoding="utf-8").replace("</", "<\\/")


def _json_script(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def _outcomes(trades: Sequence[dict]) -> list[TradeOutcome]:
    return [TradeOutcome(pnl=float(x.get("pnl") or 0.0), fees=float(x.get("fees") or 0.0),
                         r_multiple=x.get("r_multiple"), opened_ms=int(x["opened_ms"]), closed_ms=int(x["closed_ms"]))
            for x in trades]


def _figure_row(key: str, value: str) -> str:
    return f'<tr data-key="{html.escape(key)}"><th>{word(FIGURES, key)}</th><td>{value}</td></tr>'


def _money(v: float | None) -> str:
    return "—" if v is None else f"{v:+,.2f}"


def _ratio(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.2f}"


def _day(ms: int | None) -> str:
    return "—" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _performance(summary: dict, closed: Sequence[dict], equity: dict) -> str:
    """CAGR, Calmar, SQN, trade durations, best/worst, streaks and the max drawdown's dates."""
    outs = _outcomes(closed)
    ts = trade_stats(outs)
    times, eq = equity.get("time_ms") or [], equity.get("equity") or []
    growth = cagr(float(eq[0]), float(eq[-1]), int(times[0]), int(times[-1])) if eq else None
    ddp = max_drawdown_period(times, eq) if eq else None
    calmar = calmar_ratio(growth, ddp.depth if ddp else 0.0)
    rows = [("cagr", "—" if growth is None else f"{growth * 100:+.2f} %"), ("calmar", _ratio(calmar)),
            ("sqn", _ratio(sqn([x.r_multiple for x in outs if x.r_multiple is not None]))),
            ("avg_duration", duration(ts.avg_duration_ms)), ("max_duration", duration(ts.max_duration_ms)),
            ("best_trade", _money(ts.best_pnl)), ("worst_trade", _money(ts.worst_pnl)),
            ("losing_streak", str(ts.longest_losing_streak)), ("winning_streak", str(ts.longest_winning_streak)),
            ("dd_peak", _day(ddp.peak_ms if ddp else None)), ("dd_trough", _day(ddp.trough_ms if ddp else None)),
            ("dd_recovered", (_day(ddp.recovered_ms) if ddp.recovered_ms is not None
                              else t("未修复", "not recovered")) if ddp else "—")]
    return ('<table id="performance">' + "".join(_figure_row(k, v) for k, v in rows) + "</table>")


def _breakdown_table(table_id: str, first_col: tuple[str, str], rows: Sequence[GroupFigures],
                     labels: dict[str, tuple[str, str]] | None) -> str:
    head = "".join(f"<th>{t(zh, en)}</th>" for zh, en in (
        first_col, ("交易数", "Trades"), ("胜率", "Win rate"), ("净盈亏", "Net PnL"), ("平均 R", "Average R"),
        ("利润因子", "Profit factor")))
    body = "".join(
        f"<tr><th>{word(labels, r.key) if labels else html.escape(r.key)}</th><td>{r.trades}</td>"
        f"<td>{r.win_rate * 100:.1f} %</td><td>{_money(r.net_pnl)}</td>"
        f"<td>{'—' if r.average_r is None else f'{r.average_r:+.2f}'}</td><td>{_ratio(r.profit_factor)}</td></tr>"
        for r in rows)
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def _breakdowns(closed: Sequence[dict]) -> str:
    outs = _outcomes(closed)
    by_reason = breakdown((str(x.get("exit_reason")), o) for x, o in zip(closed, outs))
    by_side = breakdown((str(x.get("side")), o) for x, o in zip(closed, outs))
    by_month = breakdown((month_key(o.closed_ms), o) for o in outs)
    return ('<div class="grid">'
            f'<div><h3>{t("按出场原因", "By exit reason")}</h3>'
            f'{_breakdown_table("by-exit", ("出场原因", "Exit reason"), by_reason, EXITS)}</div>'
            f'<div><h3>{t("按方向", "By side")}</h3>'
            f'{_breakdown_table("by-side", ("方向", "Side"), by_side, SIDES)}</div>'
            f'<div><h3>{t("按月份 (平仓月, UTC)", "By month (month closed, UTC)")}</h3>'
            f'{_breakdown_table("by-month", ("月份", "Month"), by_month, None)}</div></div>')


def _settings_table(settings: dict) -> str:
    if not settings:
        return ""
    rows = "".join(f"<tr><th>{word(SETTINGS, k)}</th><td>{f'{v:g}' if isinstance(v, float) else _fmt(v)}</td></tr>"
                   for k, v in settings.items())
    return f'<div><h2>{t("回测设置", "Settings used")}</h2><table id="settings">{rows}</table></div>'


def _summary_value(key: str, v: Any) -> str:
    """Percentages as _fmt_figure shows them; ratios and money with 2 decimals."""
    if isinstance(v, float) and math.isfinite(v) and key != "win_rate" and not key.endswith("_pct"):
        return f"{v:,.2f}"
    return _fmt_figure(key, v)


def _chart_data(result: dict, trades: Sequence[dict]) -> dict | None:
    """What the candlestick chart draws: candles, trades snapped to candle times, the best levels."""
    c = result.get("candles") or {}
    if not c.get("time_s"):
        return None
    span_s = int(c.get("minutes", 1)) * 60

    def snap(ms: int) -> int:
        return int(ms // 1000 // span_s * span_s)
    lines: list[dict] = []
    levels: dict[float, dict[str, Any]] = {}
    for x in trades:
        chain = x.get("thought_chain") or {}
        lv = (chain.get("perception") or {}).get("level") or {}
        if isinstance(lv.get("price"), int | float):
            key = round(float(lv["price"]), 6)
            if key not in levels or (lv.get("score") or 0) > (levels[key].get("score") or 0):
                levels[key] = {"price": key, "kind": lv.get("kind"), "score": lv.get("score") or 0}
        lines.append({"id": x.get("id"), "side": x.get("side"), "entry_t": snap(int(x["opened_ms"])),
                      "entry": x.get("entry_price"),
                      "exit_t": snap(int(x["closed_ms"])) if x.get("closed_ms") is not None else None,
                      "exit": x.get("exit_price"), "pnl": x.get("pnl"), "reason": x.get("exit_reason")})
    best: list[dict] = []
    for cand in sorted(levels.values(), key=lambda lv: -float(lv["score"])):
        # a level within LEVEL_MERGE of a better one is the same zone; drawing both stacks labels
        if all(abs(cand["price"] - b["price"]) > LEVEL_MERGE * b["price"] for b in best):
            best.append(cand)
    best = best[:MAX_LEVELS]
    return {"candles": [[s, o, h, lo, cl] for s, o, h, lo, cl in
                        zip(c["time_s"], c["open"], c["high"], c["low"], c["close"])],
            "minutes": int(c.get("minutes", 1)), "trades": lines, "levels": best,
            "label_trades": len(lines) <= LABELLED_TRADES}


def render_report(result: dict) -> str:
    """HTML for a backtest result dict (see rl.backtest.engine.BacktestResult.to_report)."""
    summary = result.get("summary", {})
    title = f'{result.get("symbol", "")} {result.get("from", "")} → {result.get("to", "")}'
    prices = result.get("prices", {"time_ms": [], "close": []})
    equity = result.get("equity", {"time_ms": [], "equity": [], "drawdown": []})
    trades = result.get("trades", [])
    closed = [x for x in trades if x.get("closed_ms") is not None and x.get("status", "closed") == "closed"]
    weights = result.get("weight_history", [])
    rows = "".join(_figure_row(k, _summary_value(k, v)) for k, v in summary.items())
    if result.get("open_trades"):
        rows += _figure_row("open_trades", str(result["open_trades"]))
    final_w = result.get("final_weights", {})
    wrows = "".join(f"<tr><th>{word(WEIGHTS, k)}</th><td>{v * 100:.1f}%</td></tr>" for k, v in final_w.items())
    chart = _chart_data(result, trades)
    charts = []
    if chart is None and prices["time_ms"]:
        charts.append(price_chart(prices["time_ms"], prices["close"], trades))
    if equity["time_ms"]:
        charts.append(line_chart(equity["time_ms"], {"equity": equity["equity"]}, ("权益", "Equity")))
        charts.append(line_chart(equity["time_ms"], {"drawdown %": [d * 100 for d in equity["drawdown"]]},
                                 ("回撤 %", "Drawdown %"), height=180, fill_zero=True))
    if len(weights) >= 2:
        names = list(weights[0]["weights"].keys())
        wt = [w["time_ms"] for w in weights]
        charts.append(line_chart(wt, {n: [w["weights"][n] for w in weights] for n in names},
                                 ("特征权重", "Feature weights"), names=WEIGHTS))
    portfolio = bool(result.get("per_symbol"))
    trade_rows = []
    for x in trades:
        chain = x.get("thought_chain")
        detail = ""
        if chain:
            summ = t(str(x.get("summary_zh") or chain.get("summary_zh") or "思维链"),
                     str(x.get("summary_en") or chain.get("summary_en") or "thought chain"))
            detail = (f'<tr class="chain"><td colspan="9"><details><summary>{summ}</summary>'
                      f"{chain_html(chain)}</details></td></tr>")
        ident = _fmt(x.get("id")) + (f' {html.escape(str(x["symbol"]))}' if portfolio and x.get("symbol") else "")
        cells = [ident, word(SIDES, x.get("side")), _fmt(x.get("entry_time")), _fmt(x.get("entry_price")),
                 _fmt(x.get("exit_time")), _fmt(x.get("exit_price")), _fmt(x.get("pnl")), _fmt(x.get("r_multiple")),
                 word(EXITS, x.get("exit_reason")) if x.get("exit_reason") else t("持仓中", "open")]
        trade_rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" + detail)
    head = "".join(f"<th>{t(zh, en)}</th>" for zh, en in (
        ("#", "#"), ("方向", "Side"), ("入场 (UTC)", "Entry (UTC)"), ("入场价", "Entry price"),
        ("出场 (UTC)", "Exit (UTC)"), ("出场价", "Exit price"), ("净盈亏", "Net PnL"), ("R", "R"),
        ("出场原因", "Exit reason")))
    pauses = (result.get("protections") or {}).get("pauses") or []
    chart_html = ""
    if chart is not None:
        chart_html = (
            f'<h2>{t("K线与交易", "Candles and trades")} ({chart["minutes"]}m)</h2>'
            f'<p class="hint">{HINT}</p>'
            '<div id="price-chart" class="lw"></div>'
            f'<script type="application/json" id="chart-data">{_json_script(chart)}</script>'
            f"<script>{_vendored_chart_library()}</script><script>{CHART_JS}</script>")
    return f"""<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>Backtest {html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<button id="lang" type="button">English</button>
<h1>{t("回测报告", "Backtest report")} {html.escape(title)}</h1>
<div class="grid"><div><h2>{t("摘要", "Summary")}</h2><table id="summary">{rows}</table></div>
<div><h2>{t("交易表现", "Trade performance")}</h2>{_performance(summary, closed, equity)}</div>
{_settings_table(result.get("settings") or {})}
<div><h2>{t("最终权重", "Final weights")}</h2><table>{wrows}</table></div></div>
{portfolio_section(result.get("per_symbol") or {}, result.get("spans") or [])}
<h2>{t("分类统计", "Breakdowns")}</h2>{_breakdowns(closed)}
{chart_html}
{_baselines_section(result.get("baselines"))}
<h2>{t("图表", "Charts")}</h2>{''.join(charts)}
{_pauses_table(pauses)}
<h2>{t("交易", "Trades")} ({len(trades)})</h2><table id="trades"><tr>{head}</tr>{''.join(trade_rows)}</table>
<script>{LANG_JS}</script>
</body></html>"""


# The report pages' style (also the optimization report's, rl.optimize.report).
STYLE = ("""body{background:#131722;color:#d1d4dc;font:13px system-ui,sans-serif;margin:20px}
h1{font-size:18px} h2{font-size:15px;margin-top:28px} h3{font-size:13px;color:#9598a1} h4{margin:8px 0 4px}
table{border-collapse:collapse} td,th{padding:3px 8px;border-bottom:1px solid #2a2e39;text-align:right}
th{color:#9598a1;text-align:left} .chart{width:100%;max-width:@W@px;background:#1e222d;display:block}
.lw{width:100%;max-width:@W@px;height:440px} .hint{color:#787b86}
.tick{fill:#787b86;font-size:10px} .lbl{fill:#d1d4dc;font-size:12px} .legend span{margin-right:12px}
.grid{display:flex;gap:40px;flex-wrap:wrap} td.reason,td.l,tr.chain td{text-align:left}
.chain-body{text-align:left;padding:6px 12px;background:#1a1e29} .cs{margin-bottom:8px}
#lang{position:fixed;top:12px;right:16px;background:#2a2e39;color:#d1d4dc;border:1px solid #434651;
padding:4px 10px;cursor:pointer}
""").replace("@W@", str(WIDTH))


# Switches every data-zh/data-en label; the button names the other language.
LANG_JS = """
(function(){
  var lang = 'zh', btn = document.getElementById('lang');
  function apply(){
    document.documentElement.lang = lang;
    document.querySelectorAll('[data-zh]').forEach(function(e){ e.textContent = e.dataset[lang]; });
    btn.textContent = lang === 'zh' ? 'English' : '中文';
  }
  btn.addEventListener('click', function(){ lang = lang === 'zh' ? 'en' : 'zh'; apply(); });
})();
"""

# The candlestick chart: candles, a two-point line per trade (entry -> exit), entry/exit markers
# and the levels as dashed price lines. Times are UTC seconds snapped to the candle grid, so the
# trade lines add no extra slots to the time scale.
CHART_JS = """
(function(){
  var D = JSON.parse(document.getElementById('chart-data').textContent);
  var LC = LightweightCharts, el = document.getElementById('price-chart');
  var chart = LC.createChart(el, {autoSize: true,
    layout: {background: {color: '#1e222d'}, textColor: '#d1d4dc'},
    grid: {vertLines: {color: '#2a2e39'}, horzLines: {color: '#2a2e39'}},
    timeScale: {timeVisible: true, secondsVisible: false, minBarSpacing: 0.05}, handleScroll: true, handleScale: true});
  var candles = chart.addSeries(LC.CandlestickSeries, {upColor: '#26a69a', downColor: '#ef5350',
    borderVisible: false, wickUpColor: '#26a69a', wickDownColor: '#ef5350'});
  candles.setData(D.candles.map(function(c){ return {time: c[0], open: c[1], high: c[2], low: c[3], close: c[4]}; }));
  var markers = [];
  D.trades.forEach(function(tr){
    var long = tr.side === 'LONG' || tr.side === 'BUY';
    markers.push({time: tr.entry_t, position: long ? 'belowBar' : 'aboveBar', shape: long ? 'arrowUp' : 'arrowDown',
                  color: long ? '#26a69a' : '#ef5350', text: D.label_trades ? '#' + tr.id : ''});
    if (tr.exit_t === null || tr.exit === null) return;
    markers.push({time: tr.exit_t, position: 'inBar', shape: 'circle', color: '#bbbbbb', size: 0.6});
    if (tr.exit_t <= tr.entry_t) return;
    var line = chart.addSeries(LC.LineSeries, {color: (tr.pnl || 0) > 0 ? '#26a69a' : '#ef5350', lineWidth: 2,
      priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false});
    line.setData([{time: tr.entry_t, value: tr.entry}, {time: tr.exit_t, value: tr.exit}]);
  });
  markers.sort(function(a, b){ return a.time - b.time; });
  LC.createSeriesMarkers(candles, markers);
  D.levels.forEach(function(lv){
    candles.createPriceLine({price: lv.price, color: lv.kind === 'support' ? '#42a5f5' : '#ab47bc',
      lineWidth: 1, lineStyle: LC.LineStyle.Dashed, axisLabelVisible: true,
      title: (lv.kind === 'support' ? 'S ' : 'R ') + Math.round(lv.score)});
  });
  chart.timeScale().fitContent();
  window.reportChart = chart;
})();
"""

def _baselines_section(b: dict | None) -> str:
    """The agent against buy & hold, frozen learning and the random-entry distribution
    (rl.backtest.baselines.baseline_report); empty when the run had no baselines. Every label
    in both languages, switched with the page like the rest of the report."""
    if not b:
        return ""
    agent, frozen, rand = b["agent"], b.get("frozen_learning"), b["random_entries"]
    keys = ("return_pct", "max_drawdown_pct", "fees", "trades")
    head = "<th></th>" + "".join(f"<th>{t(zh, en)}</th>" for zh, en in (
        ("收益", "Return"), ("最大回撤", "Max drawdown"), ("手续费", "Fees"), ("交易数", "Trades")))

    def row(label: tuple[str, str], fig: dict) -> str:
        return f"<tr><th>{t(*label)}</th>" + "".join(
            f"<td>{_fmt_figure(k, fig.get(k))}</td>" for k in keys) + "</tr>"
    rows = [row(("智能体", "Agent"), agent)]
    if frozen is not None:
        rows.append(row(("冻结学习", "Frozen learning"), frozen))
    rows.append(row(("买入持有", "Buy & hold"), {"return_pct": b.get("buy_hold_return_pct")}))
    figs = rand.get("figures") or {}
    for q in ("min", "p25", "median", "p75", "max"):
        rows.append(row((f"随机 {QUANTILE_ZH[q]}", f"Random {q}"), {k: (figs.get(k) or {}).get(q) for k in keys}))
    pct = rand.get("agent_percentile") or {}
    ret_p, med = pct.get("return_pct"), (figs.get("return_pct") or {}).get("median")
    sentence = ""
    if ret_p is not None and med is not None:
        ret, med_s = _fmt_figure("return_pct", agent["return_pct"]), _fmt_figure("return_pct", med)
        dd = pct.get("max_drawdown_pct", 0)
        sentence = "<p>" + t(
            f"智能体收益 {ret}，高于 {rand['runs']} 次随机入场（中位数 {med_s}）中的 {ret_p:.0f} %；随机入场使用相同的"
            f"交易计划、仓位、出场与风控。最大回撤百分位 {dd:.0f}（越高 = 比随机更深）。",
            f"The agent's return {ret} beats {ret_p:.0f} % of {rand['runs']} random-entry runs (median "
            f"{med_s}) that used its plan, sizing, exits and protections. Max drawdown percentile "
            f"{dd:.0f} (higher = deeper than random).") + "</p>"
    chart = ""
    band = rand.get("equity_band") or {}
    if band.get("day_ms"):
        # the agent last so it draws on top (frozen learning often makes the very same trades)
        series = {"random p25": band["p25"], "random median": band["median"], "random p75": band["p75"]}
        colors = ["#787b86", "#b2b5be", "#787b86"]
        if frozen is not None and frozen["equity"]["day_ms"] == band["day_ms"]:
            series["frozen learning"] = frozen["equity"]["equity"]
            colors.append("#42a5f5")
        series["agent"] = agent["equity"]["equity"]
        colors.append(PALETTE[0])
        chart = line_chart(band["day_ms"], series, ("每日权益与基准", "End-of-day equity vs baselines"),
                           colors=colors, names=BASELINE_NAMES)
    n_drawn = rand.get("entries_drawn")
    title = t(f"基准（随机入场：从种子 {rand['seed']} 起 {rand['runs']} 次，每次抽取 {n_drawn} 个入场）",
              f"Baselines (random entries: {rand['runs']} runs from seed {rand['seed']}, {n_drawn} entries drawn each)")
    return f"<h2>{title}</h2><table id=\"baselines\"><tr>{head}</tr>{''.join(rows)}</table>{sentence}{chart}"


QUANTILE_ZH = {"min": "最小", "p25": "25 分位", "median": "中位数", "p75": "75 分位", "max": "最大"}
BASELINE_NAMES = {"random p25": ("随机 25 分位", "random p25"), "random median": ("随机中位数", "random median"),
                  "random p75": ("随机 75 分位", "random p75"), "frozen learning": ("冻结学习", "frozen learning"),
                  "agent": ("智能体", "agent")}


RULE_WORDS = {"daily_loss": ("日亏损保护", "Daily loss limit"), "drawdown": ("回撤保护", "Drawdown guard"),
              "stoploss_guard": ("连续止损保护", "Stop-loss streak guard")}


def _pauses_table(pauses: Sequence[dict]) -> str:
    """The risk protections' pauses of new entries (rl.backtest.engine.pause_records)."""
    title = f'<h2>{t("风控暂停", "Protections")} ({len(pauses)})</h2>'
    if not pauses:
        return title + f"<p>{t('无暂停', 'No pauses')}</p>"
    head = "".join(f"<th>{t(zh, en)}</th>" for zh, en in (("规则", "Rule"), ("开始 (UTC)", "Started (UTC)"),
                                                          ("至 (UTC)", "Until (UTC)"), ("原因", "Reason")))
    rows = "".join(
        "<tr>" + f"<td>{word(RULE_WORDS, p.get('rule'))}</td><td>{_fmt(p.get('started'))}</td>"
        f"<td>{_fmt(p.get('until'))}{' (' + t('进行中', 'active') + ')' if p.get('active') else ''}</td>"
        f'<td class="reason">{t(str(p.get("reason_zh") or p.get("reason_en") or ""), str(p.get("reason_en") or ""))}'
        "</td></tr>"
        for p in pauses)
    return f'{title}<table id="pauses"><tr>{head}</tr>{rows}</table>'
