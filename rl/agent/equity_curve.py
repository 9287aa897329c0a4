"""The dashboard's equity curve: the account's equity (wallet + unrealized PnL) over time.

Three sources, each the account as it was:
- the starting balance, then one point per closed trade (starting balance + the trades' net
  PnL, fees and funding included) for the time before the oldest equity mark;
- the equity marks (rl.knowledge.equity_marks): the account's margin balance (wallet +
  unrealized, so funding paid or received and every fee already in) observed at each 15m
  close while the agent ran; kept about a month, so they carry the recent part;
- the account now, read when the curve is asked for: the last point is the figure the account
  panel shows, to the cent, open positions and their funding included.

A store the agent never ran on (no starting balance) has no curve: an empty list, never a
0.00 point at 1970.
"""
from __future__ import annotations

from typing import Any

from rl.knowledge.store import KnowledgeStore


def account_curve(store: KnowledgeStore, equity_now: float | None, now_ms: int) -> list[dict[str, Any]]:
    """[{time_ms, equity}], oldest first, one point per time; `equity_now` (None: the account
    could not be read) is the last point, at `now_ms`."""
    if store.get_state("initial_balance") is None:
        return []
    realized = store.trade_logger.equity_curve()
    began = store.get_state("initial_balance_ms")
    if began is not None and realized:
        # the starting balance is there from the agent's first start, not its first trade
        realized[0] = {**realized[0], "time_ms": min(int(began), int(realized[0]["time_ms"]))}
    since = int(realized[0]["time_ms"]) if realized else 0
    marks = store.equity_marks.between(since, int(now_ms))
    first_mark = marks[0][0] if marks else None
    by_time: dict[int, float] = {}
    for p in realized:
        if first_mark is None or p["time_ms"] < first_mark:
            by_time[int(p["time_ms"])] = float(p["equity"])
    for t, e in marks:
        by_time[int(t)] = float(e)
    if equity_now is not None:
        last = max(by_time, default=None)
        # a clock behind the newest point (a replay restarted earlier) must not draw backwards
        by_time[int(now_ms) if last is None or now_ms >= last else last] = float(equity_now)
    return [{"time_ms": t, "equity": by_time[t]} for t in sorted(by_time)]
