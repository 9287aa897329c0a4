"""Level scans prepared ahead in a worker process (rl.backtest.scan_ahead) change nothing but speed.

Every scan the worker prepares must equal, bit for bit, the scan the agent's own analyzer
computes for the same state; a backtest with the worker must produce byte-identical JSON and
trace; a worker that dies must leave the backtest running (and still identical) on inline
scans. The window caches cut from whole-series arrays are checked against the per-window
originals.
"""
from __future__ import annotations

import io

import numpy as np
import pytest

from config import Settings
from rl.analysis.levels import candidates as lv
from rl.backtest import scan_ahead as sa
from rl.analysis.levels import touches as ts
from rl.analysis.analyzer import IncrementalAnalyzer, _static
from rl.backtest.engine import TIMING_FIELDS, backtest_settings, dumps_json, run_backtest
from rl.backtest.data import load_backtest_data
from rl.analysis.levels.finder import BestLevelFinder
from rl.market.candles import bucket_start, index_to_ms
from rl.analysis.levels.window_cache import WindowCache
from tests.conftest import make_candles, shared_data_root, shared_kline_files

SYMBOL = "FILUSDT"


def _bars(n: int, seed: int) -> lv.Bars:
    return lv.Bars.from_frame(make_candles(n, seed=seed))


def test_window_caches_cut_from_the_whole_series_equal_the_windows_own() -> None:
    """Candidates (pivots and volume nodes) of windows prepared together from whole-series
    arrays equal those of each 500-candle window, and their touch statistics read through
    the series (`WindowCache.fresh`) equal each window's own, zero-range candles and the
    window's edges included, mixed with a window that has its own arrays; windows that do
    not fit get None, in place."""
    full = _bars(900, 11)
    flat = np.arange(0, 900, 97)                      # a few zero-range candles
    h = full.h.copy()
    h[flat] = full.l[flat]
    full = lv.Bars(full.t, full.o, h, full.l, full.c, full.v)
    held = lv.Bars(*(x[:500] for x in (full.t, full.o, full.h, full.l, full.c, full.v)))
    stream = [(int(t), o, h, l, c, v) for t, o, h, l, c, v in
              zip(full.t[500:].tolist(), full.o[500:].tolist(), full.h[500:].tolist(), full.l[500:].tolist(),
                  full.c[500:].tolist(), full.v[500:].tolist())]
    series = sa._Series15m(held, stream)
    wins = []
    for end in range(500, 901, 37):
        w = lv.Bars(*(x[end - 500:end] for x in (full.t, full.o, full.h, full.l, full.c, full.v)))
        wins.append((w, float(np.mean(w.h - w.l)), end))
    shifted = lv.Bars(*(x[10:510] for x in (full.t, full.o, full.h, full.l, full.c, full.v)))
    wins[3:3] = [(shifted, 1.0, 600), (wins[0][0], float("nan"), wins[0][2])]   # not that slice; no ATR
    caches = series.caches(wins)
    assert caches[3] is None and caches[4] is None
    jobs, checked, zero_rng = [], 0, 0
    for k, ((w, atr, _), fast) in enumerate(zip(wins, caches)):
        if fast is None:
            continue
        got = [np.concatenate([p[i] for p in fast.pieces]) for i in range(4)]
        price, src, t = lv.candidate_arrays(w, atr, "15m")
        for x, y in zip(got, (price, np.zeros(len(price), np.int64), src, t)):
            assert x.dtype == y.dtype and np.array_equal(x, y)
        prices = np.sort(np.concatenate([price, w.h[:1], w.l[-1:], w.h[-5:]]))      # window edges too
        if k == 6:   # a window with its own arrays among the series' ones
            fast = WindowCache(w, atr, "15m")
        jobs.append((fast, prices, [k % 3 != 1] * len(prices)))
        checked += 1
        zero_rng += bool(np.any(w.h == w.l))
    mats = WindowCache.fresh(jobs)
    a = 0
    for fast, prices, full_rows in jobs:
        want = ts.touch_stats(fast.bars, prices, fast.atr, "15m", events=full_rows[0])
        got = mats[:, a:a + len(prices)]
        a += len(prices)
        for row, f in enumerate(("touches", "first_ms", "last_ms")):
            assert np.array_equal(got[(0, 4, 5)[row]], getattr(want, f))
        if full_rows[0]:
            for row, f in ((1, "bounces"), (2, "bounce_atr_sum"), (3, "failed"), (6, "volume_ratio")):
                assert np.array_equal(got[row], getattr(want, f))
    assert a == mats.shape[1] and checked >= 10 and zero_rng >= 1


def test_prepare_many_equals_prepare_one_scan_at_a_time() -> None:
    """A chunk of consecutive scans prepared together (window caches from the series, one
    8h window shared by several scans, batched merge, touch statistics and features)
    equals `BestLevelFinder.prepare` of each scan on its own, empty scans included."""
    m15 = _bars(900, 21)
    h8 = lv.Bars.from_frame(make_candles(80, seed=22, freq="8h"))
    stream = [(int(t), o, h, l, c, v) for t, o, h, l, c, v in
              zip(*(x[500:].tolist() for x in (m15.t, m15.o, m15.h, m15.l, m15.c, m15.v)))]
    series = sa._Series15m(lv.Bars(*(x[:500] for x in (m15.t, m15.o, m15.h, m15.l, m15.c, m15.v))), stream)
    inputs, wanted = [], []
    for k, end in enumerate(range(500, 900, 9)):
        w = lv.Bars(*(x[end - 500:end] for x in (m15.t, m15.o, m15.h, m15.l, m15.c, m15.v)))
        w8 = lv.Bars(*(x[:40 + k // 10] for x in (h8.t, h8.o, h8.h, h8.l, h8.c, h8.v)))
        atr8 = float(np.mean(w8.h - w8.l)) if k % 13 != 5 else float("nan")   # sometimes no 8h ATR
        atr15 = float(np.mean(w.h - w.l)) if k % 17 != 8 else float("nan")   # sometimes no 15m ATR
        bars, atrs = {"15m": w, "8h": w8}, {"15m": atr15, "8h": atr8}
        ref = float(w.c[-1]) if k % 19 != 3 else 1e9                         # sometimes no level in reach
        inputs.append((bars, atrs, ref, series.caches([(w, atr15, end)])[0]))
        wanted.append(BestLevelFinder().prepare(bars, atrs, ref))
    got = BestLevelFinder().prepare_many(inputs)
    assert len(got) == len(wanted) and sum(len(g.M[0]) == 0 for g in got) >= 1
    for g, want in zip(got, wanted):
        assert g == want


# ----------------------------------------------------------------------------- real data

def _data(days: int):
    if not shared_kline_files(SYMBOL):
        pytest.skip(f"real Binance archive for {SYMBOL} not found under {shared_data_root()}")
    return load_backtest_data([shared_data_root()], SYMBOL, "2023-09-01", f"2023-09-{days:02d}")


def _week0(data) -> int:
    open_ms = index_to_ms(data.frame.index)
    return int(np.searchsorted(open_ms, int(bucket_start(int(open_ms[data.first_bar]), "1w")), side="left"))


@pytest.mark.shared_data
def test_every_worker_scan_equals_the_agents_own(monkeypatch) -> None:
    """Run the agent inline and, at each of its rescans, compare its own prepared scan (and
    static score parts and indicator snapshots) with the worker's for the same key: all
    equal, and the worker has one for nearly every close."""
    data = _data(3)
    ahead = {}
    for batch in sa.level_scans(data.frame, SYMBOL, data.first_bar, data.tested_bars, _week0(data)):
        ahead.update(batch)
    seen = {"same": 0, "missing": 0}
    original = IncrementalAnalyzer.score

    def checked(self, price, time_ms):
        if self._dirty_levels:
            mine = self.prepare_scan()
            theirs = ahead.get(self.scan_key())
            if theirs is None:
                seen["missing"] += 1
            else:
                assert theirs == mine
                # ...and the static score components the worker took from its indicators
                assert theirs.static == _static(self.snaps, mine, self.score_params)
                # ...and the indicator snapshots themselves, which a deferring agent adopts
                assert _same_snaps(theirs.snaps, self.snaps)
                seen["same"] += 1
        return original(self, price, time_ms)

    monkeypatch.setattr(IncrementalAnalyzer, "score", checked)
    settings = backtest_settings(SYMBOL, 10_000.0, {}, base=Settings())
    run_backtest(data, settings, progress=False, scan_ahead=False)
    assert seen["same"] >= 3 * 96 - 1               # every 15m close of 3 days
    assert seen["missing"] <= 1                      # the prime's own scan, before the first close


def _same_snaps(a: dict, b: dict) -> bool:
    """Snapshot dicts equal value for value, NaN where the other has NaN."""
    return a.keys() == b.keys() and all(
        a[tf].keys() == b[tf].keys() and all(x == y or (x != x and y != y) for x, y in
                                             ((a[tf][k], b[tf][k]) for k in a[tf])) for tf in a)


def _json(result) -> str:
    doc = result.to_json()
    for k in TIMING_FIELDS:
        doc.pop(k)
    return dumps_json(doc)


def _both_ways(data, monkeypatch) -> tuple[tuple[str, str], tuple[str, str], tuple[int, int], int]:
    """Run `data` in one process and with the worker: ((JSON, trace) of each, the worker's
    (hits, misses), the number of trades)."""
    settings = backtest_settings(SYMBOL, 10_000.0, {}, base=Settings())
    taken = []
    real_close = sa.ScanAhead.close

    def close(self):
        taken.append((self.hits, self.misses))
        real_close(self)

    monkeypatch.setattr(sa.ScanAhead, "close", close)
    runs = {}
    for flag in (False, True):
        buf = io.StringIO()
        result = run_backtest(data, settings, trace=buf, progress=False, scan_ahead=flag)
        runs[flag] = (_json(result), buf.getvalue())
    (counts,) = taken
    return runs[False], runs[True], counts, result.summary["trades"]


@pytest.mark.shared_data
def test_backtest_with_the_worker_is_byte_identical(monkeypatch) -> None:
    single, worker, (hits, misses), trades = _both_ways(_data(3), monkeypatch)
    assert worker == single
    assert trades > 0
    assert hits >= 3 * 96 - 1 and misses == 0        # the worker really made the scans


@pytest.mark.shared_data
def test_a_spawned_worker_as_on_windows_gives_the_same_run(monkeypatch) -> None:
    """Windows and macOS start the worker by spawn (a fresh interpreter: the frame and the
    prime frames are pickled to it, nothing is inherited); the run must be the same."""
    import multiprocessing as mp

    if "spawn" not in mp.get_all_start_methods():
        pytest.skip("no spawn start method here")
    monkeypatch.setattr(sa, "_context", lambda: mp.get_context("spawn"))
    single, worker, (hits, misses), trades = _both_ways(_data(2), monkeypatch)
    assert worker == single and trades > 0
    assert hits >= 2 * 96 - 1 and misses == 0


@pytest.mark.shared_data
def test_gaps_in_the_archive_leave_the_run_identical(monkeypatch) -> None:
    """Bars missing across 15m, 8h and a run of closes: the agent closes those candles at the
    bar after the gap, the worker by their bucket ends, so some states differ; those scans
    must be computed by the agent (no wrong scan is ever taken) and the run stay identical."""
    from dataclasses import replace

    data = _data(3)
    open_ms = index_to_ms(data.frame.index)
    t0 = int(open_ms[data.first_bar])
    # 07:40-08:20: the 8h candle ending 08:00 loses its last 15m bucket, so the agent pushes it
    # only at 08:20 (with the stale 07:30 candle) and the worker with the 07:30 candle: one
    # state the worker never had. 09:50-10:20 spans a 15m close; 06:03-06:09 sits inside one.
    holes = [(t0 + 7 * 3_600_000 + 40 * 60_000, t0 + 8 * 3_600_000 + 20 * 60_000),
             (t0 + 9 * 3_600_000 + 50 * 60_000, t0 + 10 * 3_600_000 + 20 * 60_000),
             (t0 + 30 * 3_600_000 + 3 * 60_000, t0 + 30 * 3_600_000 + 9 * 60_000)]
    keep = np.ones(len(open_ms), dtype=bool)
    for a, b in holes:
        keep &= ~((open_ms >= a) & (open_ms < b))
    single, worker, (hits, misses), _ = _both_ways(replace(data, frame=data.frame[keep]), monkeypatch)
    assert worker == single
    assert hits > 200 and misses >= 1                # the worker made nearly all; the agent the rest


@pytest.mark.shared_data
def test_a_failing_worker_leaves_the_backtest_identical(monkeypatch, caplog) -> None:
    if "fork" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("the failure is injected by monkeypatching, which only a forked worker inherits")
    data = _data(2)
    settings = backtest_settings(SYMBOL, 10_000.0, {}, base=Settings())
    baseline = _json(run_backtest(data, settings, progress=False, scan_ahead=False))

    def broken(*args, **kwargs):
        raise RuntimeError("worker exploded")
        yield                                        # (a generator, like the real one)

    monkeypatch.setattr(sa, "level_scans", broken)
    with caplog.at_level("WARNING", logger="rl.backtest.scan_ahead"):
        result = run_backtest(data, settings, progress=False, scan_ahead=True)
    assert _json(result) == baseline
    assert "worker exploded" in caplog.text and "computes its scans itself" in caplog.text


@pytest.mark.shared_data
def test_a_month_with_the_worker_defers_every_indicator_update(monkeypatch) -> None:
    """A real month: the worker has the scan (and snapshots) of every 15m close, so the
    agent's analyzer never pushes a candle into its indicator states after the prime (the
    IndicatorState pushes counted here are the agent's: a forked worker counts its own)."""
    from rl.analysis import indicators as ind
    data = _data(30)
    pushes, taken = [0], []
    real_push, real_close = ind.IndicatorState.push, sa.ScanAhead.close

    def push(self, *args):
        pushes[0] += 1
        return real_push(self, *args)

    def close(self):
        taken.append((self.hits, self.misses, pushes[0]))
        real_close(self)

    longest = [0]
    real_score = IncrementalAnalyzer.score

    def score(self, price, time_ms):
        longest[0] = max(longest[0], sum(len(v) for v in self._backlog.values()))
        return real_score(self, price, time_ms)

    def prime(self, *args, **kwargs):
        real_prime(self, *args, **kwargs)
        pushes[0] = 0                                 # count from the first stepped bar on

    from rl.agent.agent import TradingAgent as Agent
    real_prime = Agent.prime
    monkeypatch.setattr(ind.IndicatorState, "push", push)
    monkeypatch.setattr(sa.ScanAhead, "close", close)
    monkeypatch.setattr(Agent, "prime", prime)
    monkeypatch.setattr(IncrementalAnalyzer, "score", score)
    settings = backtest_settings(SYMBOL, 10_000.0, {}, base=Settings())
    result = run_backtest(data, settings, progress=False, scan_ahead=True)
    ((hits, misses, after_prime),) = taken
    closes = data.tested_bars // 15
    assert hits >= closes - 1 and misses == 0         # ~100 %: one close may fall past the end
    assert after_prime == 0                           # every update deferred, none ever needed
    # the worker's states, sent with each message, keep the backlog to about one message's
    # candles (48 15m closes, and the 8h/1w ones among them) instead of the whole month's
    assert 0 < longest[0] <= sa.CHUNK + 2 * 4
    assert result.summary["trades"] > 0


def test_the_worker_prepares_ahead_while_the_agent_is_busy(monkeypatch, tmp_path) -> None:
    """While the agent does not ask (busy with its trades), the worker keeps preparing past
    what the pipe holds (1 MiB, ~5 chunks), up to LOOKAHEAD chunks more, so that the agent
    finds them ready later; and everything it prepared still arrives, in order."""
    if "fork" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("the count is taken by monkeypatching, which only a forked worker inherits")
    import time

    data = _data(12)
    counter = tmp_path / "made"
    real = sa.level_scans

    def counted(*args, **kwargs):
        for k, batch in enumerate(real(*args, **kwargs)):
            yield batch
            counter.write_text(str(k + 1))            # after the hand-over: chunks prepared
    monkeypatch.setattr(sa, "level_scans", counted)
    ahead = sa.ScanAhead(data.frame, SYMBOL, data.first_bar, data.tested_bars, _week0(data))
    try:
        deadline = time.monotonic() + 20
        made = 0
        while time.monotonic() < deadline and made < 12:
            time.sleep(0.05)
            made = int(counter.read_text() or 0) if counter.exists() else 0
        assert made >= 12            # > the ~5 chunks a full pipe holds: the preparing went on
        got = 0
        while ahead._more():
            got += 1
        assert got == len(list(real(data.frame, SYMBOL, data.first_bar, data.tested_bars, _week0(data))))
    finally:
        ahead.close()
