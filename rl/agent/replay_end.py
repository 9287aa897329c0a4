"""The end of a replay: what it made, said once in both languages, and kept in its store.

A replay's clock (rl.backtest.data.BarClock) says `exhausted` once its data has no step left.
The runner then ends its thread by itself (nothing more will happen: waiting on a frozen clock
while the badge says "running" misleads) and calls `finish`: the summary a trader looks for
at the end of a run (trades, wins, net PnL, equity from start to end, positions left open) is
written to the store's agent_state and the decision log. The store is the replay's own (one
per data set, web.world), so a dashboard restarted on it knows the replay is over and says
so, instead of starting an agent on a clock that cannot move.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rl.errors import ReplayFinished
from rl.execution.port import ExchangePort
from rl.knowledge.store import KnowledgeStore

FINISHED_KEY = "replay_finished"        # agent_state row: the summary of a replay played to its end


def clock_exhausted(clock: Any) -> bool:
    """Has the clock run out of data (a replay's BarClock)? Live and manual clocks never do."""
    return bool(getattr(clock, "exhausted", False))


def finished_summary(store: KnowledgeStore) -> dict[str, Any] | None:
    """The stored summary of this store's replay, None while it has not finished."""
    found = store.get_state(FINISHED_KEY)
    return dict(found) if isinstance(found, dict) else None


def build_summary(store: KnowledgeStore, exchange: ExchangePort, end_ms: int,
                  open_positions: Callable[[], list[dict]]) -> dict[str, Any]:
    """The replay's figures at its end: closed trades (the agent's and manual ones), wins,
    net PnL, the equity it started and ended with, and the positions still open then (left
    as they are: a backtest reports those apart too, it does not invent an exit)."""
    s = store.trade_logger.summary()
    trades = int(s["trades"]) + int(s["manual"]["trades"])
    net = float(s["net_pnl"]) + float(s["manual"]["net_pnl"])
    start = store.get_state("initial_balance")
    equity: float | None
    try:
        equity = float(exchange.account().margin_balance)
    except Exception:                           # the summary must not fail on one read
        equity = None
    try:
        left_open = sum(1 for p in open_positions() if float(p.get("amount") or 0.0) != 0.0)
    except Exception:
        left_open = 0
    ret = (equity / float(start) - 1.0) * 100.0 if equity is not None and start else None
    return {"end_ms": int(end_ms), "trades": trades, "wins": int(s["wins"]), "net_pnl": net,
            "equity_start": float(start) if start is not None else None, "equity_end": equity,
            "return_pct": ret, "open_positions": left_open}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _money(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "?"
    return f"{v:+,.2f}" if signed else f"{v:,.2f}"


def finished_lines(summary: dict[str, Any]) -> tuple[str, str]:
    """The decision-log line (zh, en) saying the replay finished, with its figures."""
    end = _iso(summary["end_ms"])
    n, wins = summary["trades"], summary["wins"]
    pnl = _money(summary["net_pnl"], signed=True)
    eq0, eq1 = _money(summary.get("equity_start")), _money(summary.get("equity_end"))
    ret = summary.get("return_pct")
    ret_txt = f"{ret:+.2f}%" if ret is not None else "?"
    left = int(summary.get("open_positions") or 0)
    zh = (f"⏹ 回放结束：数据已播完（最后一根K线 {end}）。共 {n} 笔交易（盈利 {wins} 笔），净盈亏 {pnl} USDT，"
          f"权益 {eq0} → {eq1} USDT（{ret_txt}）")
    en = (f"⏹ replay finished: the data ends at the {end} bar. {n} trade{'' if n == 1 else 's'} "
          f"({wins} won), net PnL {pnl} "
          f"USDT, equity {eq0} -> {eq1} USDT ({ret_txt})")
    if left:
        zh += f"；{left} 个持仓未平（按最后价格计入权益）"
        en += f"; {left} position(s) left open (valued at the last price)"
    return zh + "。", en + "."


def refuse_start(summary: dict[str, Any], store_path: object) -> ReplayFinished:
    """What start() says when the replay is over: what happened and the two ways on."""
    return ReplayFinished(
        f"the replay is finished: its data ended at {_iso(summary['end_ms'])} ({summary['trades']} trade(s), "
        f"net PnL {_money(summary['net_pnl'], signed=True)} USDT). To replay more, start the dashboard "
        f"with another data set (--replay PATH); to play this one again from the start, move its store "
        f"{store_path} (and its -paper file) aside")
