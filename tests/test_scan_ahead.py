"""Level scans prepared ahead in a worker process (rl.scan_ahead) change nothing but speed.

Every scan the worker prepares must equal, bit for bit, the scan the agent's own analyzer
computes for the same state; a backtest with the worker must produce byte-identical JSON and
trace; a worker that dies must leave the backtest running (and still identical) on inline
scans. The window caches cut from whole-series arrays are checked against the per-window
originals.
"""
from __future__ import annotations

import io
import os

import numpy as np
import pytest

from config import Settings
from rl import levels as lv
from rl import scan_ahead as sa
from rl.analysis import IncrementalAnalyzer
from rl.backtest import TIMING_FIELDS, backtest_settings, dumps_json, run_backtest
from rl.backtest_data import load_backtest_data
from rl.market import bucket_start, index_to_ms
from tests.conftest import make_candles, shared_data_root, shared_kline_files

SYMBOL = "FILUSDT"


def _bars(n: int, seed: int) -> lv.Bars:
    return lv.Bars.from_frame(make_candles(n, seed=seed))


def test_window_caches_cut_from_the_whole_series_equal_the_windows_own() -> None:
    """Pivots and forward extremes taken from whole-series arrays equal those of each
    500-candle window, at the window's edges too."""
    full = _bars(900, 11)
    stream = [(int(t), o, h, l, c, v) for t, o, h, l, c, v in
              zip(full.t[500:].tolist(), full.o[500:].tolist(), full.h[500:].tolist(), full.l[500:].tolist(),
                  full.c[500:].tolist(), full.v[500:].tolist())]
    series = sa._Series15m([full.t[:500], full.h[:500], full.l[:500]], stream)
    checked = 0
    for end in range(500, 901, 37):
        w = lv.Bars(*(x[end - 500:end] for x in (full.t, full.o, full.h, full.l, full.c, full.v)))
        atr = float(np.mean(w.h - w.l))
        fast = series.cache(w, atr, end)
        slow_c = lv.candidate_arrays(w, atr, "15m")
        slow_p = lv.touch_prep(w, atr)
        for x, y in zip(fast.cands, slow_c):
            assert x.dtype == y.dtype and np.array_equal(x, y)
        for name in ("lo", "hi", "rng", "c_before", "c_after", "fwd_max", "fwd_min"):
            assert np.array_equal(getattr(fast.prep, name), getattr(slow_p, name), equal_nan=True), name
        assert (fast.prep.tol, fast.prep.zero_rng, fast.prep.span, fast.prep.total) == (
            slow_p.tol, slow_p.zero_rng, slow_p.span, slow_p.total)
        checked += 1
    assert checked >= 10
    # a window that is not that slice gets no cache (the finder then builds its own)
    assert series.cache(lv.Bars(*(x[10:510] for x in (full.t, full.o, full.h, full.l, full.c, full.v))), 1.0, 600) is None


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
    """Run the agent inline and, at each of its rescans, compare its own prepared scan with
    the worker's for the same key: all equal, and the worker has one for nearly every close."""
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
                seen["same"] += 1
        return original(self, price, time_ms)

    monkeypatch.setattr(IncrementalAnalyzer, "score", checked)
    settings = backtest_settings(SYMBOL, 10_000.0, {}, base=Settings())
    run_backtest(data, settings, progress=False, scan_ahead=False)
    assert seen["same"] >= 3 * 96 - 1               # every 15m close of 3 days
    assert seen["missing"] <= 1                      # the prime's own scan, before the first close


def _json(result) -> str:
    doc = result.to_json()
    for k in TIMING_FIELDS:
        doc.pop(k)
    return dumps_json(doc)


@pytest.mark.shared_data
def test_backtest_with_the_worker_is_byte_identical(monkeypatch) -> None:
    data = _data(3)
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
    assert runs[True] == runs[False]
    assert result.summary["trades"] > 0
    (hits, misses), = taken
    assert hits >= 3 * 96 - 1 and misses == 0        # the worker really made the scans


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
    with caplog.at_level("WARNING", logger="rl.scan_ahead"):
        result = run_backtest(data, settings, progress=False, scan_ahead=True)
    assert _json(result) == baseline
    assert "worker exploded" in caplog.text and "computes its scans itself" in caplog.text
