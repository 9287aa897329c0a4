"""A scripted world for the agent: TradingAgent on PaperExchange + ReplayMarketData + ManualClock.

The analysis verdict (scores, levels, ATR) is scripted (Script, ScriptedAnalyzer) so a test knows
exactly when the agent must enter; the price path is real candles the paper exchange fills
against, so entries and exits go through the real router, exit manager, paper exchange and
knowledge store. World builds the lot on a tmp_path; seed_closed_trades fills a store with
closed trades whose features predict R; ENTRY_PARTIAL_TARGET_STOP_PATH is a price path with one
trade of each kind of exit.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from config import Settings
from rl.agent.agent import TradingAgent
from rl.analysis.analyzer import Analysis
from rl.analysis.levels.book import ScoredLevel
from rl.analysis.levels.finder import DEFAULT_WEIGHTS, FEATURES
from rl.clock import ManualClock
from rl.knowledge.store import KnowledgeStore
from rl.market.ports import ReplayMarketData
from rl.paper.exchange import PaperExchange

SYMBOL = "BTCUSDT"
T0 = int(pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000)
MIN = 60_000


class Script:
    """What the scripted analysis says; tests change it between cycles."""

    def __init__(self) -> None:
        self.long = 0.0
        self.short = 0.0
        self.support = 99.0
        self.resistance = 103.0
        self.atr = 1.0
        self.features = {f: 0.5 for f in FEATURES}
        self.weights_seen: list[dict] = []


def _level(price: float, kind: str, feats: dict) -> ScoredLevel:
    return ScoredLevel(price=price, kind=kind, score=60.0, features=dict(feats), touches={"15m": 3},
                       timeframe="15m", first_seen_ms=T0, last_touch_ms=T0)


class ScriptedAnalyzer:
    """Stands in for IncrementalAnalyzer (rl.agent.analyzer_port.SymbolAnalyzer)."""

    max_bars = 500
    scan_source = None

    def __init__(self, script: Script, symbol: str, weights: dict) -> None:
        self.script, self.symbol = script, symbol
        script.weights_seen.append(dict(weights))

    def follow_1m(self, source, end: int) -> None:
        pass

    def one_minute_appender(self) -> None:
        return None                                  # every 1m candle goes to push_candle

    def set_weights(self, weights: dict) -> None:
        self.script.weights_seen.append(dict(weights))

    def push_candle(self, *args) -> None:
        pass

    def update(self, frames, price: float, time_ms: int) -> Analysis:
        return self.score(price, time_ms)

    def score(self, price: float, time_ms: int) -> Analysis:
        s = self.script
        bd = {"trend": {"points": s.long, "max": 100.0, "reason": "scripted"}}
        sd = {"trend": {"points": s.short, "max": 100.0, "reason": "scripted"}}
        sup, res = _level(s.support, "support", s.features), _level(s.resistance, "resistance", s.features)
        return Analysis(self.symbol, float(price), int(time_ms), s.long, s.short, bd, sd, [sup, res], sup, res,
                        {"15m": {"rsi": 50.0, "atr": s.atr}}, s.atr, [])


def candles(prices: list[float | tuple[float, float, float, float]]) -> pd.DataFrame:
    """1m candles from a list of closes (flat bars) or (open, high, low, close) tuples."""
    rows = [p if isinstance(p, tuple) else (p, p, p, p) for p in prices]
    idx = pd.date_range(pd.Timestamp(T0, unit="ms", tz="UTC"), periods=len(rows), freq="1min", name="open_time")
    o, h, l, c = (np.array(x, dtype=float) for x in zip(*rows))
    return pd.DataFrame({"open": o, "high": h, "low": l, "close": c, "volume": np.full(len(rows), 10.0)}, index=idx)


class World:
    """Agent + paper exchange + store on a ManualClock over the given candles."""

    def __init__(self, tmp_path, prices, *, min_trades: int = 30, start_bar: int = 60, persist: bool = False,
                 script: Script | None = None, paper: dict | None = None, **settings) -> None:
        self.script = script or Script()
        self.clock = ManualClock(T0 + start_bar * MIN)
        self.market = ReplayMarketData({SYMBOL: candles(prices)}, self.clock)
        # cooldown 0: these scripts test entry/exit mechanics back to back (cooldown has its own
        # test); `settings`: more Settings fields (the risk protections' tests set their limits).
        # Taker entries and exits unless a test asks for maker ones: the scripts expect a fill
        # at the bar they enter on (the maker paths have their own tests).
        settings = {"entry_order": "ioc", "take_profit_order": "market", **settings}
        self.settings = Settings(db_path=tmp_path / "agent.db", min_trades_for_adjust=min_trades,
                                 reentry_cooldown_minutes=0, **settings)
        # `paper`: more PaperExchange options (funding_rate, funding_interval_ms, ...)
        self.exchange = PaperExchange(tmp_path / "paper.db" if persist else None, balance=10_000.0,
                                      clock=self.clock.now_ms, **(paper or {}))
        self.store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
        self.agent = TradingAgent(self.settings, self.market, self.exchange, self.store, self.clock,
                                  feed=self.exchange, analyzer_factory=lambda sym, w: ScriptedAnalyzer(self.script, sym, w))
        self.agent.startup()

    def cycle(self, n: int = 1) -> None:
        for _ in range(n):
            self.agent.run_cycle()
            self.clock.advance(60)

    def to_15m_close(self) -> None:
        """Cycle (60 s each) until the next cycle is the one whose newest bar closes a 15m
        candle: the agent decides only then (docs/strategy.md "Decision cadence")."""
        while (self.clock.now_ms() - T0) % (15 * MIN):
            self.cycle()

    @property
    def state(self):
        return self.agent.managed_position(SYMBOL)

    def close(self) -> None:
        self.store.close()
        self.exchange.close()


def seed_closed_trades(store: KnowledgeStore, n: int, seed: int = 5, prefix: str = "seed") -> None:
    """n closed trades whose touch_bounce_count predicts R and duration_days predicts the opposite."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        good, bad = rng.uniform(0, 1), rng.uniform(0, 1)
        r = 2 * good - 2 * bad + rng.normal(0, 0.1)
        feats = {f: float(rng.uniform(0, 1)) for f in FEATURES}
        feats.update(touch_bounce_count=good, duration_days=bad)
        tid = store.open_trade(symbol="ETHUSDT", side="LONG", entry_client_order_id=f"{prefix}-{i}", opened_ms=T0 - 10 * MIN,
                               entry_price=100.0, quantity=1.0, stop_price=99.0, target_price=102.0, leverage=10,
                               features=feats, perception={"seed": i}, action={"side": "LONG"})
        store.record_exit(tid, client_order_id=f"{prefix}-x-{i}", time_ms=T0 - 5 * MIN, kind="stop",
                          price=100.0 + r, quantity=1.0, pnl=r, fee=0.0)
        store.close_trade(tid, closed_ms=T0 - 5 * MIN, exit_reason="stop", reward={}, summary_zh="种子",
                          summary_en="seed")


# ------------------------------------------------------------------------------------------------
# flat, then: entry at 100, 1R (partial + break-even) by bar 3, target 103 at bar 6, flat at 103.2,
# then a dip to 101.4 that stops out a second long entered near 103
ENTRY_PARTIAL_TARGET_STOP_PATH = [100.0] * 60 \
    + [100.5, 101.0, (101.0, 101.6, 101.0, 101.5), 102.0, 102.5, (102.5, 103.3, 102.5, 103.2)] \
    + [103.2] * 9 + [102.8, (102.8, 102.8, 101.4, 101.5), 101.5, 101.5] + [101.5] * 20
