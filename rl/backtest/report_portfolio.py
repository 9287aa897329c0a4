"""The HTML report's portfolio part: one row per symbol (trades, win rate, net PnL, fees, its
share of the account's return, its own buy & hold) and how the run covered each symbol's data
(when it joined and left, which symbols it overlapped). Empty for a one-symbol run."""
from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rl.backtest.report_labels import t


def _pct(v: float | None, signed: bool = True) -> str:
    return "—" if v is None else (f"{v:+.2f} %" if signed else f"{v:.1f} %")


def _minute(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


def portfolio_section(per_symbol: Mapping[str, Mapping[str, Any]], spans: Sequence[Mapping[str, Any]]) -> str:
    """The per-symbol table (id by-symbol) and the spans table (id spans); "" without symbols."""
    if not per_symbol:
        return ""
    head = "".join(f"<th>{t(zh, en)}</th>" for zh, en in (
        ("品种", "Symbol"), ("交易数", "Trades"), ("胜率", "Win rate"), ("净盈亏", "Net PnL"),
        ("手续费", "Fees"), ("收益贡献", "Return contribution"), ("期末未平仓", "Open at the end"),
        ("持有收益", "Buy & hold return"), ("K线数 (1分钟)", "Bars (1m)")))
    rows = "".join(
        f"<tr><th>{html.escape(sym)}</th><td>{b['trades']}</td>"
        f"<td>{_pct(None if b['win_rate'] is None else b['win_rate'] * 100, signed=False)}</td>"
        f"<td>{b['net_pnl']:,.2f}</td><td>{b['fees']:,.2f}</td><td>{_pct(b['return_contribution_pct'])}</td>"
        f"<td>{b['open_at_end']}</td><td>{_pct(b['buy_hold_return_pct'])}</td><td>{b['bars']:,}</td></tr>"
        for sym, b in per_symbol.items())
    span_head = "".join(f"<th>{t(zh, en)}</th>" for zh, en in (
        ("品种", "Symbol"), ("加入 (UTC)", "Joins (UTC)"), ("退出 (UTC)", "Leaves (UTC)"),
        ("预热K线", "Warm-up bars"), ("重叠品种", "Overlaps")))
    none = t("无", "none")
    span_rows = "".join(
        f"<tr><th>{html.escape(s['symbol'])}</th><td>{_minute(s['joins_ms'])}</td><td>{_minute(s['leaves_ms'])}</td>"
        f"<td>{s['warmup_bars']:,}</td><td>{html.escape(', '.join(s['overlaps'])) if s['overlaps'] else none}</td></tr>"
        for s in spans)
    note = t("同一账户交易所有品种：一条权益曲线、一套指标。每个品种在其自身预热后加入，数据结束即退出；"
             "某分钟没有K线的品种不参与该分钟，其他品种照常。收益贡献 = 该品种已平仓净盈亏 / 初始资金。",
             "All symbols trade on one account: one equity curve, one set of figures. Each symbol joins "
             "after its own warm-up and leaves when its data ends; a symbol with no bar in a minute is not "
             "stepped then, the others go on. Return contribution = the symbol's closed net PnL / start balance.")
    spans_title = t("各品种时段", "Each symbol's span")
    return (f'<h2>{t("分品种", "Per symbol")}</h2><p class="hint">{note}</p>'
            f'<table id="by-symbol"><tr>{head}</tr>{rows}</table>'
            f'<h3>{spans_title}</h3>'
            f'<table id="spans"><tr>{span_head}</tr>{span_rows}</table>')
