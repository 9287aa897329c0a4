"""One self-contained HTML report of a backtest: charts as inline SVG, no scripts, no network.

Inline SVG keeps the file readable anywhere (mail it, open it offline, archive it) and needs no
JavaScript library. Charts: price with entries/exits, equity, drawdown, weight history; then the
summary table and every trade with its thought chain in a collapsible row.
"""
from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

WIDTH, HEIGHT, PAD = 1100, 260, 48
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


def _axis(scale: _Scale, label: str) -> str:
    parts = [f'<text x="{PAD}" y="14" class="lbl">{html.escape(label)}</text>']
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
    for t in trades:
        for key, price_key, color, shape in (("opened_ms", "entry_price", None, "entry"),
                                             ("closed_ms", "exit_price", "#bbbbbb", "exit")):
            ts, px = t.get(key), t.get(price_key)
            if ts is None or px is None:
                continue
            long = t.get("side") in ("LONG", "BUY", "long")
            c = color or ("#26a69a" if long else "#ef5350")
            cx, cy = sc.x(ts), sc.y(px)
            if shape == "entry":
                tip = -7 if long else 7
                marks.append(f'<path d="M{cx:.1f},{cy:.1f} l-5,{-tip} l10,0 z" fill="{c}">'
                             f'<title>#{t.get("id")} {html.escape(str(t.get("side")))} @ {_fmt(px)}</title></path>')
            else:
                why = html.escape(str(t.get("exit_reason", "")))
                marks.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{c}">'
                             f'<title>#{t.get("id")} exit @ {_fmt(px)} ({why})</title></circle>')
    return (f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="chart">{_axis(sc, "Price / 价格")}'
            f'{_polyline(sc, xs, ys, "#d1d4dc")}{"".join(marks)}</svg>')


def line_chart(times: Sequence[int], series: dict[str, Sequence[float]], label: str,
               height: int = HEIGHT, fill_zero: bool = False, colors: Sequence[str] | None = None) -> str:
    """`colors`: one per series (default: the palette in order); later series draw on top."""
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
    legend = "".join(f'<span style="color:{palette[i % len(palette)]}">■ {html.escape(n)}</span> '
                     for i, n in enumerate(series)) if len(series) > 1 else ""
    return (f'<div class="legend">{legend}</div><svg viewBox="0 0 {WIDTH} {height}" class="chart">'
            f'{_axis(sc, label)}{"".join(body)}</svg>')


def render_report(result: dict) -> str:
    """HTML for a backtest result dict (see rl.backtest.engine.BacktestResult.to_dict)."""
    summary = result.get("summary", {})
    title = f'Backtest {result.get("symbol", "")} {result.get("from", "")} → {result.get("to", "")}'
    prices = result.get("prices", {"time_ms": [], "close": []})
    equity = result.get("equity", {"time_ms": [], "equity": [], "drawdown": []})
    trades = result.get("trades", [])
    weights = result.get("weight_history", [])
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt_figure(k, v)}</td></tr>" for k, v in summary.items())
    final_w = result.get("final_weights", {})
    wrows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v * 100:.1f}%</td></tr>" for k, v in final_w.items())
    charts = [price_chart(prices["time_ms"], prices["close"], trades)] if prices["time_ms"] else []
    if equity["time_ms"]:
        charts.append(line_chart(equity["time_ms"], {"equity": equity["equity"]}, "Equity / 权益"))
        charts.append(line_chart(equity["time_ms"], {"drawdown %": [d * 100 for d in equity["drawdown"]]},
                                 "Drawdown % / 回撤", height=180, fill_zero=True))
    if len(weights) >= 2:
        names = list(weights[0]["weights"].keys())
        wt = [w["time_ms"] for w in weights]
        charts.append(line_chart(wt, {n: [w["weights"][n] for w in weights] for n in names},
                                 "Feature weights / 特征权重"))
    trade_rows = []
    for t in trades:
        chain = t.get("thought_chain")
        summary = html.escape(str(t.get("summary_en") or "thought chain"))
        body = html.escape(json.dumps(chain, ensure_ascii=False, indent=1))
        detail = (f'<tr class="chain"><td colspan="9"><details><summary>{summary}'
                  f'</summary><pre>{body}</pre></details></td></tr>' if chain else "")
        trade_rows.append(
            "<tr>" + "".join(f"<td>{_fmt(t.get(k))}</td>" for k in (
                "id", "side", "entry_time", "entry_price", "exit_time", "exit_price", "pnl", "r_multiple",
                "exit_reason")) + "</tr>" + detail)
    head = "".join(f"<th>{h}</th>" for h in ("#", "side", "entry", "price", "exit", "price", "PnL", "R", "reason"))
    pauses = (result.get("protections") or {}).get("pauses") or []
    return f"""<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{background:#131722;color:#d1d4dc;font:13px system-ui,sans-serif;margin:20px}}
h1{{font-size:18px}} h2{{font-size:15px;margin-top:28px}}
table{{border-collapse:collapse}} td,th{{padding:3px 8px;border-bottom:1px solid #2a2e39;text-align:right}}
th{{color:#9598a1;text-align:left}} .chart{{width:100%;max-width:{WIDTH}px;background:#1e222d;display:block}}
.tick{{fill:#787b86;font-size:10px}} .lbl{{fill:#d1d4dc;font-size:12px}} .legend span{{margin-right:12px}}
pre{{text-align:left;white-space:pre-wrap;max-height:400px;overflow:auto;color:#b2b5be}}
.grid{{display:flex;gap:40px;flex-wrap:wrap}} td.reason{{text-align:left}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<div class="grid"><div><h2>Summary / 摘要</h2><table>{rows}</table></div>
<div><h2>Final weights / 最终权重</h2><table>{wrows}</table></div></div>
{_baselines_section(result.get("baselines"))}
<h2>Charts / 图表</h2>{''.join(charts)}
{_pauses_table(pauses)}
<h2>Trades / 交易 ({len(trades)})</h2><table><tr>{head}</tr>{''.join(trade_rows)}</table>
</body></html>"""


def _baselines_section(b: dict | None) -> str:
    """The agent against buy & hold, frozen learning and the random-entry distribution
    (rl.backtest.baselines.baseline_report); empty when the run had no baselines."""
    if not b:
        return ""
    agent, frozen, rand = b["agent"], b.get("frozen_learning"), b["random_entries"]
    keys = ("return_pct", "max_drawdown_pct", "fees", "trades")
    head = "".join(f"<th>{h}</th>" for h in ("", "return / 收益", "max DD / 最大回撤", "fees / 手续费",
                                              "trades / 交易数"))

    def row(label: str, fig: dict) -> str:
        return f"<tr><th>{html.escape(label)}</th>" + "".join(
            f"<td>{_fmt_figure(k, fig.get(k))}</td>" for k in keys) + "</tr>"
    rows = [row("agent / 智能体", agent)]
    if frozen is not None:
        rows.append(row("frozen learning / 冻结学习", frozen))
    rows.append(row("buy & hold / 持有", {"return_pct": b.get("buy_hold_return_pct")}))
    figs = rand.get("figures") or {}
    for q in ("min", "p25", "median", "p75", "max"):
        rows.append(row(f"random {q} / 随机 {q}", {k: (figs.get(k) or {}).get(q) for k in keys}))
    pct = rand.get("agent_percentile") or {}
    ret_p, med = pct.get("return_pct"), (figs.get("return_pct") or {}).get("median")
    sentence = ""
    if ret_p is not None and med is not None:
        sentence = (f"<p>The agent's return {_fmt_figure('return_pct', agent['return_pct'])} beats "
                    f"{ret_p:.0f} % of {rand['runs']} random-entry runs (median "
                    f"{_fmt_figure('return_pct', med)}) that used its plan, sizing, exits and protections. "
                    f"Max drawdown percentile {pct.get('max_drawdown_pct', 0):.0f} (higher = deeper than "
                    f"random).<br>智能体收益 {_fmt_figure('return_pct', agent['return_pct'])}，高于 "
                    f"{rand['runs']} 次随机入场（中位数 {_fmt_figure('return_pct', med)}）中的 {ret_p:.0f} %；"
                    f"随机入场使用相同的交易计划、仓位、出场与风控。</p>")
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
        chart = line_chart(band["day_ms"], series, "End-of-day equity vs baselines / 每日权益与基准", colors=colors)
    return (f"<h2>Baselines / 基准 (random entries: {rand['runs']} runs from seed {rand['seed']}, "
            f"{rand.get('entries_drawn')} entries drawn each)</h2>"
            f"<table><tr>{head}</tr>{''.join(rows)}</table>{sentence}{chart}")


def _pauses_table(pauses: Sequence[dict]) -> str:
    """The risk protections' pauses of new entries (rl.backtest.engine.pause_records)."""
    title = f"<h2>Protections / 风控暂停 ({len(pauses)})</h2>"
    if not pauses:
        return title + "<p>No pauses / 无暂停</p>"
    head = "".join(f"<th>{h}</th>" for h in ("rule / 规则", "started / 开始 (UTC)", "until / 至 (UTC)",
                                              "reason / 原因"))
    rows = "".join(
        "<tr>" + f"<td>{_fmt(p.get('rule'))}</td><td>{_fmt(p.get('started'))}</td>"
        f"<td>{_fmt(p.get('until'))}{' (active / 进行中)' if p.get('active') else ''}</td>"
        f'<td class="reason">{_fmt(p.get("reason_en"))}<br>{_fmt(p.get("reason_zh"))}</td></tr>'
        for p in pauses)
    return f"{title}<table><tr>{head}</tr>{rows}</table>"
