"""TradingAgent with the REAL analysis (IncrementalAnalyzer) on generated and archive candles:
both drivers (run_cycle over ReplayMarketData, step over bars) trade, record complete thought
chains, keep the paper wallet equal to the recorded PnL, and step() is cheap when nothing closed."""
from __future__ import annotations

import json
import time

import pytest

from config import Settings
from rl.agent.agent import TradingAgent
from rl.analysis.levels.finder import DEFAULT_WEIGHTS, FEATURES
from rl.clock import ManualClock
from rl.knowledge.store import KnowledgeStore
from rl.market.candles import index_to_ms
from rl.market.ports import ReplayMarketData
from rl.paper.exchange import PaperExchange
from tests.support.candles import closed_by, make_candles
from tests.support.paths import shared_kline_files

SYMBOL = "BTCUSDT"


def assert_books_agree(store: KnowledgeStore, exchange: PaperExchange, balance: float = 10_000.0) -> None:
    trades = store.trades(limit=10_000)
    closed = [t for t in trades if t["status"] == "closed"]
    for t in closed:
        full = store.trade(t["id"])
        assert sum(e["quantity"] for e in full["exits"]) == pytest.approx(t["quantity"])
        chain = full["thought_chain"]
        assert chain["perception"] and chain["action"] and chain["reward"] and chain["summary_en"]
        assert set(full["features"]) == set(FEATURES)
    open_net = 0.0
    for t in trades:
        if t["status"] == "open":
            x = store.exit_totals(t["id"])
            open_net += x["pnl"] - x["fee"] - t["entry_fee"]
    assert exchange.account().wallet_balance == pytest.approx(
        balance + sum(t["net_pnl"] for t in closed) + open_net, abs=1e-6)


@pytest.mark.slow
def test_run_cycle_with_real_analysis_trades_and_keeps_books(tmp_path):
    candles = make_candles(n=4600, seed=3, vol=0.002)
    t0 = int(index_to_ms(candles.index)[0])
    clock = ManualClock(t0 + 3000 * 60_000)
    market = ReplayMarketData({SYMBOL: candles}, clock)
    ex = PaperExchange(None, balance=10_000.0, clock=clock.now_ms, funding_rate=0.0)
    store = KnowledgeStore(":memory:", default_weights=DEFAULT_WEIGHTS)
    # no least reward: this checks that real analysis trades and keeps its books, so it must trade
    agent = TradingAgent(Settings(db_path=tmp_path / "a.db", min_reward_r=0.01), market, ex, store, clock, feed=ex)
    agent.startup()
    for _ in range(1500):
        clock.advance(agent.run_cycle())
    assert store.get_trade_count() >= 5
    assert_books_agree(store, ex)
    json.dumps(agent.status())
    first = store.trade(1)["thought_chain"]["perception"]
    assert set(first["indicators"]) >= {"15m", "8h"} and first["level"]["features"]
    store.close()


def _frames_before(candles, i: int) -> dict:
    """Every timeframe's candles closed when bar i opens (a complete last bucket is kept)."""
    return closed_by(candles, int(index_to_ms(candles.index[i:i + 1])[0]))


def run_steps(candles, warm: int, store: KnowledgeStore, settings: Settings, symbol: str = SYMBOL):
    t_ms = index_to_ms(candles.index)
    clock = ManualClock(int(t_ms[warm]))
    ex = PaperExchange(None, balance=10_000.0, clock=clock.now_ms, funding_rate=0.0, persist=False)
    agent = TradingAgent(settings, None, ex, store, clock, symbols=[symbol])
    close0 = float(candles["close"].iloc[warm - 1])
    agent.prime(symbol, _frames_before(candles, warm), close0, int(t_ms[warm]))
    ex.on_price(symbol, close0, int(t_ms[warm]))
    o, h, l, c, v = (candles[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    idle = 0
    started = time.perf_counter()
    with store.batch():
        for i in range(warm, len(candles)):
            t, now = int(t_ms[i]), int(t_ms[i]) + 60_000
            clock.set(now)
            ex.on_bar(symbol, o[i], h[i], l[i], c[i], now - 1)
            before = (store.decisions.count(), store.get_trade_count(), len(store.open_trades()))
            worked = agent.step(now, {symbol: (t, o[i], h[i], l[i], c[i], v[i])})
            if not worked and agent.managed_position(symbol) is None:
                idle += 1
                assert (store.decisions.count(), store.get_trade_count(), len(store.open_trades())) == before
    return agent, ex, idle, time.perf_counter() - started


def test_step_driver_with_real_analysis(tmp_path):
    candles = make_candles(n=9000, seed=3, vol=0.002)
    store = KnowledgeStore(":memory:", default_weights=DEFAULT_WEIGHTS)
    agent, ex, idle, _ = run_steps(candles, 3000, store, Settings(db_path=tmp_path / "a.db"))
    assert store.get_trade_count() >= 5
    assert idle > 3000                          # most flat minutes did nothing at all
    assert_books_agree(store, ex)
    store.close()


@pytest.mark.shared_data
def test_step_driver_on_real_archive_days(shared_data_dir, tmp_path):
    files = shared_kline_files("FILUSDT")
    if not files:
        pytest.skip("FILUSDT archive files not found")
    from rl.market.archive import load_archive
    frame = load_archive(files[0].parent, "FILUSDT", start="2023-08", end="2023-08").frame
    candles = frame.iloc[: 12 * 1440]           # 12 days: 5 to warm up, 7 stepped
    store = KnowledgeStore(":memory:", default_weights=DEFAULT_WEIGHTS)
    agent, ex, idle, seconds = run_steps(candles, 5 * 1440, store,
                                         Settings(db_path=tmp_path / "a.db", symbols=("FILUSDT",)),
                                         symbol="FILUSDT")
    assert agent.status()["last_scores"]["FILUSDT"]["time_ms"] > 0
    assert_books_agree(store, ex)
    store.close()
