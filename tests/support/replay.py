"""The dashboard's replay run to the end of its data, for the parity tests.

As web/world.py builds it: ReplayMarketData over every symbol's archive frame, a BarClock over
their joint schedule at a huge speed, a PaperExchange on SQLite fed by the agent, the
AgentRunner thread cycling run_cycle. What it made is read back from the store, for comparing
with the backtest's trades over the same bars.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from config import Settings


def replay_to_end(datas: Sequence[Any], tmp_path: Path, settings: Settings,
               timeout_s: float = 300.0) -> tuple[list[dict], dict]:
    """Replay `datas` (rl.backtest.data.BacktestData, one per symbol) to their end: (the
    store's trades, oldest first; the final weights)."""
    from rl.agent.runner import AgentRunner
    from rl.analysis.levels.finder import DEFAULT_WEIGHTS
    from rl.backtest.data import BarClock, BarSchedule
    from rl.knowledge.store import KnowledgeStore
    from rl.market.ports import ReplayMarketData
    from rl.paper.exchange import PaperExchange

    frames = {d.symbol: d.frame for d in datas}
    clock = BarClock(BarSchedule(frames, start_ms=min(d.start_ms for d in datas)), speed=1e9)
    market = ReplayMarketData(frames, clock)
    exchange = PaperExchange(tmp_path / "paper.db", balance=settings.paper_balance,
                             maker_fee=settings.maker_fee, taker_fee=settings.taker_fee,
                             default_leverage=settings.leverage, clock=market.now_ms,
                             price_source=market.last_price)
    store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    runner = AgentRunner(settings, market, exchange, store, clock, feed=exchange)
    runner.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            st = runner.status()
            if st.get("state") == "finished" or (clock.finished and st.get("last_cycle_ms") == clock.end_ms):
                break
            time.sleep(0.05)
    finally:
        runner.stop()
    try:
        assert clock.finished, "the replay did not reach the end of the data in time"
        assert runner.status()["last_error"] is None
        return list(reversed(store.trades(limit=10_000))), store.current_weights()
    finally:
        store.close()
        exchange.close()
