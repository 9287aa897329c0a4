"""Issue 7 parity: replay (AgentRunner driving run_cycle over ReplayMarketData on a clock) and
backtest (step() per closed 1m bar, the exchange fed by the caller) make the SAME trades.

Both drivers hand every closed 1m bar to the agent's one per-bar routine, so entry
and exit times, prices, quantities and PnL must agree exactly, also when replay cycles fall
behind and each one catches up several bars at once."""
from __future__ import annotations

import time

import pandas as pd
import pytest

from config import Settings
from rl.agent.agent import TradingAgent
from rl.agent.runner import AgentRunner
from rl.analysis.levels.finder import DEFAULT_WEIGHTS
from rl.clock import ManualClock
from rl.knowledge.store import KnowledgeStore
from rl.market.candles import index_to_ms, resample
from rl.market.ports import ReplayMarketData
from rl.paper.exchange import PaperExchange
from tests.support.candles import closed_by, make_candles
from tests.support.replay import replay_to_end

pytestmark = pytest.mark.slow          # whole agent runs over thousands of bars, twice

SYMBOL = "BTCUSDT"
MIN = 60_000
WARM = 3000          # bars of history before the first decision


def _paper() -> PaperExchange:
    # no clock: the paper exchange's time is the newest bar/price it was shown, so fill times do
    # not depend on when a driver happened to look (funding off: it is time-driven too)
    return PaperExchange(None, balance=10_000.0, funding_rate=0.0, persist=False)


def _trades(store: KnowledgeStore) -> list[dict]:
    out = []
    for row in reversed(store.trades(limit=10_000)):
        t = store.trade(row["id"])
        out.append({k: t[k] for k in ("side", "opened_ms", "entry_price", "quantity", "stop_price", "status",
                                      "closed_ms", "exit_reason", "net_pnl", "entry_fee")}
                   | {"exits": [(e["time_ms"], e["kind"], e["price"], e["quantity"], e["pnl"], e["fee"])
                                for e in t["exits"]]})
    return out


def run_replay(candles: pd.DataFrame, tmp_path, sleep_seconds: float | None = None,
               **settings) -> tuple[list[dict], list[dict]]:
    """The dashboard's runner thread over archive candles on a manual clock: it advances 60 s
    flat / 30 s in a position (the agent's own interval), or `sleep_seconds` per cycle.
    Returns (trades, every pause of the risk protections); `settings`: Settings fields."""

    class Clock(ManualClock):
        def sleep(self, seconds, stop=None):
            return super().sleep(seconds if sleep_seconds is None else sleep_seconds, stop)

    t_ms = index_to_ms(candles.index)
    clock = Clock(int(t_ms[WARM]) + MIN)                  # bar WARM has just closed
    market = ReplayMarketData({SYMBOL: candles}, clock)
    ex = _paper()
    store = KnowledgeStore(":memory:", default_weights=DEFAULT_WEIGHTS)
    config = Settings(db_path=tmp_path / "replay.db", **settings)
    runner = AgentRunner(config, market, ex, store, clock,
                         agent=TradingAgent(config, market, ex, store, clock, feed=ex))
    runner.start()
    deadline = time.monotonic() + 60
    while clock.now_ms() <= market.end_ms + 10 * MIN and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    assert not runner.running and clock.now_ms() > market.end_ms
    status = runner.status()
    assert status["last_error"] is None
    trades = _trades(store)
    store.close()
    return trades, status["protections"]["history"]


def run_backtest_steps(candles: pd.DataFrame, tmp_path, **settings) -> tuple[list[dict], list[dict]]:
    t_ms = index_to_ms(candles.index)
    start = int(t_ms[WARM])
    clock = ManualClock(start + MIN)
    ex = _paper()
    store = KnowledgeStore(":memory:", default_weights=DEFAULT_WEIGHTS)
    agent = TradingAgent(Settings(db_path=tmp_path / "bt.db", **settings), None, ex, store, clock,
                         symbols=[SYMBOL])
    agent.startup()
    close0 = float(candles["close"].iloc[WARM - 1])
    agent.prime(SYMBOL, closed_by(candles, start), close0, start)
    ex.on_price(SYMBOL, close0, start + MIN)             # what the replay agent's startup shows it
    o, h, l, c, v = (candles[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    for i in range(WARM, len(candles)):
        t = int(t_ms[i])
        clock.set(t + MIN)
        ex.on_bar(SYMBOL, o[i], h[i], l[i], c[i], t + MIN - 1)
        agent.step(t + MIN, {SYMBOL: (t, o[i], h[i], l[i], c[i], v[i])})
    status = agent.status()
    assert status["last_error"] is None
    trades = _trades(store)
    store.close()
    return trades, status["protections"]["history"]


def test_replay_runner_and_backtest_step_make_identical_trades(tmp_path):
    candles = make_candles(n=4600, seed=3, vol=0.002)
    backtest, _ = run_backtest_steps(candles, tmp_path)
    replay, _ = run_replay(candles, tmp_path)
    assert len(backtest) >= 3 and sum(t["status"] == "closed" for t in backtest) >= 3
    assert any(len(t["exits"]) > 1 for t in backtest) or any(t["exit_reason"] != "stop" for t in backtest)
    assert replay == backtest                         # exact: times, prices, quantities, PnL, fees
    # entries happen only at 15m closes (bar close times on the 15m grid)
    assert all(t["opened_ms"] % (15 * MIN) in (0, 15 * MIN - 1) for t in backtest)


def test_replay_cycles_that_skip_bars_still_make_the_same_trades(tmp_path):
    candles = make_candles(n=4600, seed=3, vol=0.002)
    backtest, _ = run_backtest_steps(candles, tmp_path)
    replay, _ = run_replay(candles, tmp_path, sleep_seconds=300)   # each cycle catches up 5 bars
    assert len(backtest) >= 3
    assert replay == backtest


# limits tight enough for this data to hit all three rules (the defaults never pause on it)
TIGHT = {"max_drawdown_percent": 2.0, "daily_loss_limit_percent": 1.0, "stoploss_guard_trades": 2,
         "stoploss_guard_pause_hours": 1.0}


def test_replay_and_backtest_pause_entries_identically(tmp_path):
    """The protections observe the same equity at the same 15m closes and the same closes in
    both drivers, so both pause (and lift) at the same moments for the same reasons, and the
    trades around the pauses stay identical too (also when replay cycles skip bars)."""
    candles = make_candles(n=4600, seed=3, vol=0.002)
    backtest, bt_pauses = run_backtest_steps(candles, tmp_path, **TIGHT)
    assert {p["rule"] for p in bt_pauses} == {"drawdown", "daily_loss", "stoploss_guard"}
    assert any(not p["active"] for p in bt_pauses)              # at least one lifted again
    assert len(backtest) >= 3
    default, no_pauses = run_backtest_steps(candles, tmp_path)
    assert no_pauses == [] and len(default) > len(backtest)     # the pauses did stop entries
    for skip in (None, 300):
        replay, pauses = run_replay(candles, tmp_path, sleep_seconds=skip, **TIGHT)
        assert pauses == bt_pauses                              # rules, times, reasons, figures
        assert replay == backtest


# ----------------------------------------------------------------------------- candle parity
class _RecordingAnalyzer:
    """Stands in for IncrementalAnalyzer: keeps every candle step() forms, decides nothing
    (score() gives no analysis, so the agent never trades)."""

    max_bars = 500
    scan_source = None

    def __init__(self, symbol, weights):
        self.pushed: dict[str, list[tuple]] = {"1m": [], "15m": [], "8h": [], "1w": []}
        self.recording = False

    def follow_1m(self, source, end):
        pass

    def one_minute_appender(self):
        return None

    def update(self, frames, price, time_ms):
        return None

    def score(self, price, time_ms):
        return None

    def set_weights(self, weights):
        pass

    def push_candle(self, tf, t, o, h, l, c, v):
        if self.recording:
            self.pushed[tf].append((t, o, h, l, c, v))


def test_self_formed_candles_equal_the_market_ports_bit_for_bit_on_real_data(shared_data_dir):
    """FILUSDT 2023-09 (real archive): every 15m/8h/1w candle step() forms equals the one
    ReplayMarketData serves (rl.market.candles.aggregate_arrays) exactly, volume included: both sum
    the 1m volumes with math.fsum, so the backtest and replay analyze the same numbers."""
    from rl.backtest.data import load_backtest_data
    from rl.backtest.engine import prime_frames
    from rl.market.candles import bucket_start

    data = load_backtest_data([shared_data_dir], "FILUSDT", "2023-09-01", "2023-09-30")
    frame, first = data.frame, data.first_bar
    t_ms = index_to_ms(frame.index)
    clock = ManualClock(int(t_ms[first]) + MIN)
    ex = _paper()
    store = KnowledgeStore(":memory:", default_weights=DEFAULT_WEIGHTS)
    made: list[_RecordingAnalyzer] = []
    agent = TradingAgent(Settings(db_path=":memory:"), None, ex, store, clock, symbols=["FILUSDT"],
                         analyzer_factory=lambda s, w: made.append(_RecordingAnalyzer(s, w)) or made[-1])
    week0 = int(pd.Index(t_ms).searchsorted(int(bucket_start(int(t_ms[first]), "1w"))))
    frames, price0, cut = prime_frames(frame, first, week0)
    agent.prime("FILUSDT", frames, price0, cut)
    rec, = made
    rec.recording = True
    o, h, l, c, v = (frame[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    for i in range(first, len(frame) - 1):
        t = int(t_ms[i])
        clock.set(t + MIN)
        agent.step(t + MIN, {"FILUSDT": (t, o[i], h[i], l[i], c[i], v[i])})
    counts = {}
    for tf in ("15m", "8h", "1w"):
        served = resample(frame, tf)         # how the market port forms them (aggregate_arrays)
        want = {int(t): tuple(float(x) for x in row) for t, row in zip(
            index_to_ms(served.index).tolist(),
            served[["open", "high", "low", "close", "volume"]].itertuples(index=False))}
        got = rec.pushed[tf]
        counts[tf] = len(got)
        assert [x[0] for x in got] == sorted({x[0] for x in got})        # in order, no repeats
        for t, *ohlcv in got:
            assert tuple(ohlcv) == want[t], (tf, t)                      # bit for bit
    # the whole month: every 15m close, 8h closes, and the weekly candles (the first one partly
    # formed from prime's 1m history back to Monday 08-28)
    assert counts["15m"] >= 2870 and counts["8h"] >= 89 and counts["1w"] >= 4
    store.close()


def test_step_appends_1m_candles_to_the_analyzer_like_push_candle():
    """step() appends 1m bars straight to the analyzer's ring: same ring as push_candle, same
    analysis (1m indicators included) and higher-timeframe candles."""
    from rl.analysis.analyzer import IncrementalAnalyzer

    candles = make_candles(n=2200, seed=11, vol=0.002)
    t_ms = index_to_ms(candles.index)
    start = int(t_ms[1500])
    ex = _paper()
    made: list[IncrementalAnalyzer] = []
    agent = TradingAgent(Settings(db_path=":memory:"), None, ex,
                         KnowledgeStore(":memory:", default_weights=DEFAULT_WEIGHTS),
                         ManualClock(start + MIN), symbols=[SYMBOL],
                         analyzer_factory=lambda s, w: made.append(IncrementalAnalyzer(s, w)) or made[-1])
    agent.prime(SYMBOL, closed_by(candles, start), float(candles["close"].iloc[1499]), start)
    ref = IncrementalAnalyzer(SYMBOL, dict(DEFAULT_WEIGHTS))
    end = len(candles)
    for tf, df in closed_by(candles, int(t_ms[end - 1]) + MIN).items():
        for t, row in zip(index_to_ms(df.index).tolist(), df[["open", "high", "low", "close", "volume"]].itertuples(index=False)):
            ref.push_candle(tf, int(t), *(float(x) for x in row))
    o, h, l, c, v = (candles[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    for i in range(1500, end):
        t = int(t_ms[i])
        agent.clock.set(t + MIN)
        ex.on_bar(SYMBOL, o[i], h[i], l[i], c[i], t + MIN - 1)
        agent.step(t + MIN, {SYMBOL: (t, o[i], h[i], l[i], c[i], v[i])})
    mine, = made
    for tf in ("1m", "15m", "8h"):
        a, b = mine.rings[tf].bars(), ref.rings[tf].bars()
        assert [getattr(a, k).tolist() for k in "tohlcv"] == [getattr(b, k).tolist() for k in "tohlcv"], tf
    now = int(t_ms[end - 1]) + MIN
    assert mine.score(float(c[-1]), now).to_dict() == ref.score(float(c[-1]), now).to_dict()


# ----------------------------------------------------------------------------- two symbols
def run_portfolio_replay(datas, tmp_path, settings) -> tuple[list[dict], dict]:
    """The dashboard's replay of several symbols from one archive root (tests/support/replay.py):
    (trades as the backtest rows, final weights)."""
    trades, weights = replay_to_end(datas, tmp_path, settings)
    return [portfolio_row(t) for t in trades], weights


PORTFOLIO_KEYS = ("symbol", "side", "opened_ms", "closed_ms", "entry_price", "exit_price", "quantity",
                  "fees", "r_multiple", "exit_reason")


def portfolio_row(t: dict) -> dict:
    return {k: t[k] for k in PORTFOLIO_KEYS} | {"pnl": t.get("net_pnl", t.get("pnl"))}


@pytest.mark.parametrize("gap", [False, True], ids=["aligned", "gap-in-one-symbol"])
def test_two_symbol_replay_makes_the_two_symbol_backtests_trades(tmp_path, gap):
    """Replay (run_cycle over both symbols per BarClock step) = the portfolio backtest
    (rl.backtest.portfolio: on_bar/step/on_price symbol by symbol): same trades of both symbols
    at the same times, prices, quantities, PnL, fees and exit reasons on the one account, and
    the same learned weights; also when one symbol's archive has a 6-hour hole."""
    from rl.backtest.portfolio import run_portfolio
    from tests.support.portfolio import SYMBOLS, load_pair, pinned_settings, without_bars, write_pair

    datas = load_pair(write_pair(tmp_path / "data", days=36), "2024-02-01", "2024-02-04")
    if gap:
        t0 = datas[1].start_ms + 86_400_000
        datas[1] = without_bars(datas[1], t0, t0 + 6 * 3600_000)
    settings = pinned_settings(SYMBOLS)
    backtest = run_portfolio(datas, settings, progress=False)
    want = [portfolio_row(t) for t in backtest.trades + backtest.open_trades]
    assert {t["symbol"] for t in want} == set(SYMBOLS) and len(want) >= 10
    got, weights = run_portfolio_replay(datas, tmp_path, settings)
    assert sorted(got, key=_order) == sorted(want, key=_order)
    assert weights == backtest.final_weights


def _order(t: dict) -> tuple:
    return (t["opened_ms"], t["symbol"])


@pytest.mark.shared_data
def test_two_symbol_replay_equals_the_portfolio_backtest_on_real_data(shared_data_dir, tmp_path):
    """FILUSDT and NEARUSDT, 2023-09-01 .. 09-02 from the real archive, as one portfolio."""
    from rl.backtest.portfolio import load_portfolio_data, run_portfolio
    from tests.support.portfolio import pinned_settings

    symbols = ("FILUSDT", "NEARUSDT")
    datas = load_portfolio_data([shared_data_dir], symbols, "2023-09-01", "2023-09-02")
    settings = pinned_settings(symbols)
    backtest = run_portfolio(datas, settings, progress=False)
    want = [portfolio_row(t) for t in backtest.trades + backtest.open_trades]
    assert {t["symbol"] for t in want} == set(symbols)
    got, weights = run_portfolio_replay(datas, tmp_path, settings)
    assert sorted(got, key=_order) == sorted(want, key=_order)
    assert weights == backtest.final_weights
