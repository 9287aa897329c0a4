"""Two symbols on one account: the scripted world (tests/support/scripted_world.py) with a
script and a price path per symbol, one paper exchange, one store, one agent.

`closes`: per symbol, the closed 15m candles (open times, closes) its stand-in analysis holds,
which is what the exposure caps read their correlations from (IncrementalAnalyzer.closed_candles);
a symbol without them has none (the correlation is then unknown, never a refusal).
"""
from __future__ import annotations

import numpy as np

from config import Settings
from rl.agent.agent import TradingAgent
from rl.analysis.levels.candidates import Bars
from rl.analysis.levels.finder import DEFAULT_WEIGHTS
from rl.clock import ManualClock
from rl.knowledge.store import KnowledgeStore
from rl.market.ports import ReplayMarketData
from rl.paper.exchange import PaperExchange
from tests.support.scripted_world import MIN, T0, Script, ScriptedAnalyzer, candles

A, B = "BTCUSDT", "ETHUSDT"          # the agent's loop order: A's bar first at every close
Q = 15 * MIN


class CandleScriptedAnalyzer(ScriptedAnalyzer):
    """The scripted verdict, plus closed 15m candles for the correlation cap."""

    def __init__(self, script: Script, symbol: str, weights: dict,
                 closes: tuple[np.ndarray, np.ndarray] | None) -> None:
        super().__init__(script, symbol, weights)
        self.closes = closes

    def closed_candles(self, tf: str) -> Bars | None:
        if self.closes is None or tf != "15m":
            return None
        t, c = self.closes
        return Bars(np.asarray(t, dtype=np.int64), c, c, c, c, np.ones(len(c)))


def closes_from_returns(returns: np.ndarray, p0: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """15m candles ending before T0 whose log returns are `returns`."""
    c = p0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    t = T0 - Q * np.arange(len(c), 0, -1)
    return t.astype(np.int64), c


class TwoSymbolWorld:
    """Agent + paper exchange + store on a ManualClock over two symbols' candles."""

    def __init__(self, tmp_path, prices_a, prices_b, *, closes=None, start_bar: int = 60, **settings) -> None:
        self.scripts = {A: Script(), B: Script()}
        self.clock = ManualClock(T0 + start_bar * MIN)
        self.market = ReplayMarketData({A: candles(prices_a), B: candles(prices_b)}, self.clock)
        # taker entries and exits: these tests are about which entries open, not how they fill
        self.settings = Settings(db_path=tmp_path / "agent.db", symbols=(A, B), reentry_cooldown_minutes=0,
                                 entry_order="ioc", take_profit_order="market", **settings)
        self.exchange = PaperExchange(None, balance=10_000.0, clock=self.clock.now_ms)
        self.store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
        closes = closes or {}
        self.agent = TradingAgent(
            self.settings, self.market, self.exchange, self.store, self.clock, feed=self.exchange,
            analyzer_factory=lambda sym, w: CandleScriptedAnalyzer(self.scripts[sym], sym, w, closes.get(sym)))
        self.records: list[dict] = []
        self.agent.decision_listeners.append(self.records.append)
        self.agent.startup()

    def cycle(self, n: int = 1) -> None:
        """n agent cycles a minute apart: both symbols see each bar before the next (a
        catch-up cycle over many bars would run one symbol's bars before the other's)."""
        for _ in range(n):
            self.agent.run_cycle()
            self.clock.advance(60)

    def run_to(self, ms: int) -> None:
        while self.clock.now_ms() < ms:
            self.cycle()

    def position(self, sym: str):
        return self.agent.managed_position(sym)

    def lines(self, start: str) -> list[dict]:
        return [ln for ln in reversed(self.store.decisions.recent(5000)) if ln["message_zh"].startswith(start)]

    def trades(self) -> list[dict]:
        return list(reversed(self.store.trades(limit=100)))

    def close(self) -> None:
        self.store.close()
        self.exchange.close()
