"""Backtest plumbing that needs no agent: --set parsing, data loading, the bar schedule and the
replay clock that walks it (the sequence backtest and replay share)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from config import Settings, SettingsError
from rl.backtest.data import BarClock, BarSchedule, load_backtest_data
from rl.backtest.engine import backtest_settings, parse_overrides
from rl.market.candles import MINUTE_MS, index_to_ms
from tests.support.archives import write_archive
from tests.support.candles import make_candles
from tests.support.paths import shared_kline_files

# ----------------------------------------------------------------------------- --set

def test_overrides_parse_by_config_rules() -> None:
    got = parse_overrides(["LEVERAGE=5", "max_risk_percent=1.5", "CHECK_INTERVAL_FLAT=300"])
    assert got == {"leverage": 5, "max_risk_percent": 1.5, "check_interval_flat": 300.0}


@pytest.mark.parametrize("pair, words", [
    ("LEVERAGE=500", "LEVERAGE"),            # out of range: config's own rule and name
    ("LEVERAGE", "KEY=VALUE"),
    ("NO_SUCH=1", "not a setting"),
    ("TRADING_MODE=live", "fixes TRADING_MODE"),
])
def test_bad_overrides_name_the_key_and_rule(pair: str, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        parse_overrides([pair])


def test_settings_are_paper_single_symbol_and_cross_validated() -> None:
    base = Settings(trading_mode="paper")
    s = backtest_settings("FILUSDT", 2500.0, {"leverage": 3}, base=base)
    assert (s.trading_mode, s.symbols, s.paper_balance, s.leverage) == ("paper", ("FILUSDT",), 2500.0, 3)
    with pytest.raises(SettingsError, match="CHECK_INTERVAL_POSITION"):
        backtest_settings("FILUSDT", None, parse_overrides(["CHECK_INTERVAL_POSITION=120"]), base=base)
    with pytest.raises(SettingsError, match="--balance"):
        backtest_settings("FILUSDT", -1.0, {}, base=base)


# ----------------------------------------------------------------------------- loading

def test_load_with_warmup_and_range(tmp_path: Path) -> None:
    d = tmp_path / "klines" / "TSTUSDT" / "1m"
    write_archive(d, "TSTUSDT", "2024-01", 4 * 1440, "2024-01-01")
    data = load_backtest_data([tmp_path / "klines" / "TSTUSDT" / "1m"], "tstusdt", "2024-01-03", "2024-01-03",
                              warmup_days=1)
    open_ms = index_to_ms(data.frame.index)
    day = 86_400_000
    jan1 = int(open_ms[0]) - day   # loaded from Jan 2 (one warm-up day)
    # of Jan 4 only its first bar: its open is the price when Jan 3's last bar closes
    assert open_ms[0] == jan1 + day and open_ms[-1] == jan1 + 3 * day
    assert open_ms[data.first_bar] == jan1 + 2 * day
    assert data.start_ms == jan1 + 2 * day + MINUTE_MS
    assert data.tested_bars == 1440
    at_end = load_backtest_data([d], "TSTUSDT", "2024-01-04", "2024-01-04", warmup_days=0)
    assert at_end.tested_bars == 1439        # the data's last bar has no successor: not stepped


def test_load_errors_are_clear(tmp_path: Path) -> None:
    d = tmp_path / "x"
    f = write_archive(d, "TSTUSDT", "2024-01", 100, "2024-01-01")
    with pytest.raises(ValueError, match="--from"):
        load_backtest_data([f], "TSTUSDT", "2024-01-05", "2024-01-01")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        load_backtest_data([f], "TSTUSDT", "01/02/2024")
    with pytest.raises(FileNotFoundError, match="--data"):
        load_backtest_data([tmp_path / "missing.zip"], "TSTUSDT")
    with pytest.raises(ValueError, match="nothing to test"):
        load_backtest_data([f], "TSTUSDT", "2024-01-02")     # 100 bars: all before --from


def test_load_real_archive_root(shared_data_dir: Path) -> None:
    files = shared_kline_files("FILUSDT")
    if not files:
        pytest.skip("FILUSDT archive not present")
    data = load_backtest_data([shared_data_dir], "FILUSDT", "2023-09-01", "2023-09-02")
    assert data.symbol == "FILUSDT" and not data.gaps
    assert data.tested_bars == 2 * 1440
    assert index_to_ms(data.frame.index)[0] < data.start_ms    # warm-up from August


# ----------------------------------------------------------------------------- schedule / clock

def _frame(n: int = 10, start: str = "2024-01-01"):
    return make_candles(n, start=start, seed=1)


def test_schedule_steps_every_close_but_the_last() -> None:
    f = _frame(10)
    sched = BarSchedule({"AAAUSDT": f})
    open_ms = index_to_ms(f.index)
    assert len(sched) == 9
    assert sched.times == (open_ms[:-1] + MINUTE_MS).tolist()   # bar 9 has no successor


def test_schedule_merges_symbols_gaps_and_start() -> None:
    a = _frame(6)
    b = _frame(8).drop(_frame(8).index[2])          # BBB has a gap and two more bars
    t = index_to_ms(_frame(8).index)
    sched = BarSchedule({"AAAUSDT": a, "BBBUSDT": b}, start_ms=int(t[1]) + MINUTE_MS)
    # closes of bars 1..6 over both symbols (bar 7 of BBB is the last: no successor)
    assert sched.times == (t[1:7] + MINUTE_MS).tolist()


def test_bar_clock_moves_to_the_first_due_close() -> None:
    f = _frame(20)
    clock = BarClock(BarSchedule({"AAAUSDT": f}), speed=1e9)
    t0 = clock.now_ms()
    assert t0 == int(index_to_ms(f.index)[0]) + MINUTE_MS
    assert clock.sleep(30) is False and clock.now_ms() == t0 + MINUTE_MS      # 30 s -> next close
    assert clock.sleep(60) is False and clock.now_ms() == t0 + 2 * MINUTE_MS
    assert clock.sleep(300) is False and clock.now_ms() == t0 + 7 * MINUTE_MS
    stop = threading.Event()
    stop.set()
    assert clock.sleep(60, stop) is True and clock.now_ms() == t0 + 7 * MINUTE_MS


def test_bar_clock_paces_by_speed_and_says_when_the_data_ends() -> None:
    f = _frame(4)
    clock = BarClock(BarSchedule({"AAAUSDT": f}), speed=60.0 * 20)    # one bar = 1/20 s
    stop = threading.Event()
    t_wall = time.monotonic()
    assert clock.sleep(60, stop) is False
    assert clock.sleep(60, stop) is False
    assert time.monotonic() - t_wall >= 0.09          # waited for the world to get there
    assert clock.finished and not clock.exhausted
    end = clock.now_ms()
    # past the end: nothing to wait for, the loop ends at once (never blocks on `stop`)
    assert clock.sleep(60, stop) is True and clock.exhausted and not stop.is_set()
    assert clock.now_ms() == end == clock.end_ms


def test_bar_clock_is_exhausted_when_no_step_is_due_before_the_data_ends() -> None:
    f = _frame(10)
    clock = BarClock(BarSchedule({"AAAUSDT": f}), speed=1e9)
    assert clock.sleep(60) is False and not clock.finished
    # 300 s asked with 7 steps left: the clock moves to the last one and says it is done
    assert clock.sleep(3000) is True and clock.finished and clock.exhausted
    assert clock.now_ms() == clock.end_ms
    with pytest.raises(ValueError, match="speed"):
        BarClock(BarSchedule({"AAAUSDT": f}), speed=0)


class _CountingAgent:
    """Stands in for TradingAgent: records the world time of every cycle."""

    def __init__(self, clock, intervals) -> None:
        self.clock, self.intervals, self.seen = clock, list(intervals), []

    def run_cycle(self, stop=None) -> float:
        self.seen.append(self.clock.now_ms())
        return self.intervals[len(self.seen) % len(self.intervals)]


def test_backtest_walk_and_runner_loop_cycle_at_the_same_times() -> None:
    """rl.backtest.engine.run_backtest's walk and AgentRunner's run_cycle/sleep loop over a BarClock
    visit the same world times, whatever intervals the agent asks for."""
    from rl.clock import ManualClock

    f = _frame(90)
    intervals = [60, 30, 300, 60, 120, 45]
    sched = BarSchedule({"AAAUSDT": f})
    clock = ManualClock(sched.times[0])
    a1 = _CountingAgent(clock, intervals)
    due = sched.times[0]
    for t in sched.times:                      # as run_backtest
        clock.set(t)
        if t >= due:
            due = t + int(a1.run_cycle() * 1000)
    bc = BarClock(BarSchedule({"AAAUSDT": f}), speed=1e9)
    a2 = _CountingAgent(bc, intervals)
    stop = threading.Event()

    def runner_loop() -> None:                 # as AgentRunner._loop
        while not stop.is_set():
            interval = a2.run_cycle(stop)
            if bc.sleep(interval, stop):
                break

    th = threading.Thread(target=runner_loop, daemon=True)
    th.start()
    deadline = time.monotonic() + 10
    while not bc.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    stop.set()
    th.join(5)
    assert a1.seen == a2.seen
    assert np.all(np.diff(a1.seen) >= MINUTE_MS) and len(a1.seen) > 20


def test_several_data_paths_are_joined(tmp_path: Path) -> None:
    write_archive(tmp_path / "a", "TSTUSDT", "2024-01", 31 * 1440, "2024-01-01", header=False)
    feb = write_archive(tmp_path / "b", "TSTUSDT", "2024-02", 1440, "2024-02-01", seed=4)
    data = load_backtest_data([feb, tmp_path / "a"], "TSTUSDT", "2024-01-31", "2024-01-31", warmup_days=0)
    open_ms = index_to_ms(data.frame.index)
    assert data.tested_bars == 1440 and not data.gaps
    assert open_ms[-1] == open_ms[0] + 1440 * MINUTE_MS       # Feb 1 00:00 from the second path
