"""A backtest's level scans prepared a chunk of closes ahead (rl.backtest.scans) change nothing
but speed.

Every prepared scan must equal, bit for bit, the scan the agent's own analyzer computes for
the same state; a scan prepared for another state (one candle differs, a data gap) is never
offered, and the run stays byte-identical to one whose agent computes every scan itself. The
window caches cut from whole-series arrays and a chunk prepared together are checked
against the per-window, one-scan-at-a-time originals.
"""
from __future__ import annotations

import io
import math
from dataclasses import replace

import numpy as np
import pytest

from config import Settings
from rl.analysis.analyzer import IncrementalAnalyzer
from rl.analysis.levels import candidates as lv
from rl.analysis.levels import touches as ts
from rl.analysis.levels.finder import BestLevelFinder
from rl.analysis.levels.window_cache import WindowCache
from rl.backtest.data import load_backtest_data
from rl.backtest.engine import TIMING_FIELDS, backtest_settings, dumps_json, prime_frames, run_backtest
from rl.backtest.scans import PreparedScans, _Series15m, level_scans
from rl.market.candles import bucket_start, index_to_ms
from rl.strategy.params import StrategyParams
from tests.support.candles import make_candles
from tests.support.paths import shared_data_root, shared_kline_files

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
    series = _Series15m(held, stream)
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
    series = _Series15m(lv.Bars(*(x[:500] for x in (m15.t, m15.o, m15.h, m15.l, m15.c, m15.v))), stream)
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


# ----------------------------------------------------------------------------- the scan key

M15 = make_candles(700, seed=5, freq="15min", price=80.0, vol=0.004)
ROWS15 = list(zip((M15.index.asi8 // 1_000_000).tolist(),
                  *(M15[c].tolist() for c in ("open", "high", "low", "close", "volume"))))


def _stream(rows: list[tuple]) -> list[tuple]:
    """(15m candle, the 8h candle closing with it or None) per 15m candle."""
    out = []
    for k, row in enumerate(rows):
        h8 = None
        if (k + 1) % 32 == 0:
            part = rows[k - 31:k + 1]
            h8 = (part[0][0], part[0][1], max(p[2] for p in part), min(p[3] for p in part), part[-1][4],
                  math.fsum(p[5] for p in part))
        out.append((row, h8))
    return out


def _push(an: IncrementalAnalyzer, item: tuple) -> None:
    c15, h8 = item
    an.push_candle("15m", *c15)
    if h8 is not None:
        an.push_candle("8h", *h8)


@pytest.mark.slow
def test_a_scan_prepared_for_another_state_is_never_offered_for_ours() -> None:
    """One candle differs from the candles the scans were prepared from: from there on every
    key is new (a miss), the analyzer computes its own scans, and every analysis equals the
    one of an analyzer without a source."""
    prep = IncrementalAnalyzer("X")
    ahead = {}
    for item in _stream(ROWS15):
        _push(prep, item)
        ahead[prep.scan_key()] = prep.prepare_scan()
    changed = list(ROWS15)
    t, o, h, l, c, v = changed[550]
    changed[550] = (t, o, h * 1.01, l, c, v)
    ref, mine = IncrementalAnalyzer("X"), IncrementalAnalyzer("X")
    hits = []
    mine.scan_source = lambda key: hits.append(key in ahead) or ahead.get(key)
    for k, item in enumerate(_stream(changed)):
        _push(ref, item)
        _push(mine, item)
        if k % 10 == 9:
            assert mine.score(c, 0).to_dict() == ref.score(c, 0).to_dict(), k
    assert len(hits) == 70 and all(hits[:55]) and not any(hits[55:])


def test_the_key_fingerprints_history_the_ring_no_longer_holds() -> None:
    """Two analyzers whose rings hold the same last 60 candles but whose earlier candles
    differ (so their indicator states do) get different keys; the same candles, equal keys."""
    def key_after(rows, max_bars=60):
        an = IncrementalAnalyzer("X", max_bars=max_bars)
        for r in rows:
            an.push_candle("15m", *r)
        return an.scan_key()

    rows = ROWS15[:200]
    other = [(rows[0][0], rows[0][1], rows[0][2], rows[0][3], rows[0][4] * 1.001, rows[0][5])] + rows[1:]
    assert key_after(rows) == key_after(list(rows))
    assert key_after(rows) != key_after(other)
    assert key_after(rows, 500)[0][:7] == key_after(other, 500)[0][:7]   # same last candle and count


# ----------------------------------------------------------------------------- real data

def _data(days: int):
    if not shared_kline_files(SYMBOL):
        pytest.skip(f"real Binance archive for {SYMBOL} not found under {shared_data_root()}")
    return load_backtest_data([shared_data_root()], SYMBOL, "2023-09-01", f"2023-09-{days:02d}")


def _settings() -> Settings:
    return backtest_settings(SYMBOL, 10_000.0, {}, base=Settings())


def _prepared(data) -> dict:
    """scan key -> prepared scan of every 15m close of `data`, as a backtest prepares them."""
    open_ms = index_to_ms(data.frame.index)
    week0 = int(np.searchsorted(open_ms, int(bucket_start(int(open_ms[data.first_bar]), "1w")), side="left"))
    primed = prime_frames(data.frame, data.first_bar, week0)[0]
    out = {}
    params = StrategyParams.from_settings(_settings())                 # what run_backtest uses
    for chunk in level_scans(data.frame, SYMBOL, data.first_bar, data.tested_bars, primed, params):
        out.update(chunk)
    return out


@pytest.mark.shared_data
def test_every_prepared_scan_equals_the_agents_own(monkeypatch) -> None:
    """At each of the agent's rescans, its own prepared scan equals the one prepared ahead
    for the same key, and there is one for every close."""
    data = _data(3)
    ahead = _prepared(data)
    seen = {"same": 0, "missing": 0}
    original = IncrementalAnalyzer.score
    last_key = {}

    def checked(self, price, time_ms):
        key = self.scan_key()
        if last_key.get(id(self)) != key:              # a candle closed since its last score: a rescan
            last_key[id(self)] = key
            theirs = ahead.get(key)
            if theirs is None:
                seen["missing"] += 1
            else:
                assert theirs == self.prepare_scan()
                seen["same"] += 1
        return original(self, price, time_ms)

    monkeypatch.setattr(IncrementalAnalyzer, "score", checked)
    run_backtest(data, _settings(), progress=False)
    assert seen["same"] >= 3 * 96 - 1               # every 15m close of 3 days
    assert seen["missing"] <= 1                      # the prime's own scan, before the first close


def _json(result) -> str:
    doc = result.to_json()
    for k in TIMING_FIELDS:
        doc.pop(k)
    return dumps_json(doc)


def _with_and_without_prepared_scans(data, monkeypatch) -> tuple[tuple[str, str], tuple[str, str], list]:
    """(JSON, trace) of a run whose agent computes every scan itself, of a normal run, and
    what the normal run's source answered (True: a scan, False: None) at each rescan."""
    runs, answers = [], []
    real_call = PreparedScans.__call__

    def nothing(self, key):
        return None

    def counted(self, key):
        scan = real_call(self, key)
        answers.append(scan is not None)
        return scan

    for call in (nothing, counted):
        monkeypatch.setattr(PreparedScans, "__call__", call)
        buf = io.StringIO()
        result = run_backtest(data, _settings(), trace=buf, progress=False)
        runs.append((_json(result), buf.getvalue()))
    return runs[0], runs[1], answers


@pytest.mark.shared_data
@pytest.mark.slow
def test_prepared_scans_leave_the_run_byte_identical(monkeypatch) -> None:
    inline, prepared, answers = _with_and_without_prepared_scans(_data(2), monkeypatch)
    assert prepared == inline
    assert sum(answers) >= 2 * 96 - 1 and all(answers)   # the scans really came prepared


@pytest.mark.shared_data
@pytest.mark.slow
def test_gaps_in_the_archive_leave_the_run_identical(monkeypatch) -> None:
    """Bars missing across 15m, 8h and a run of closes: the agent closes those candles at the
    bar after the gap, the preparer by their bucket ends, so some states differ; those scans
    must be computed by the agent (no wrong scan is ever taken) and the run stay identical."""
    data = _data(3)
    open_ms = index_to_ms(data.frame.index)
    t0 = int(open_ms[data.first_bar])
    # 07:40-08:20: the 8h candle ending 08:00 loses its last 15m bucket, so the agent pushes it
    # only at 08:20 (with the stale 07:30 candle) and the preparer with the 07:30 candle: one
    # state the preparer never had. 09:50-10:20 spans a 15m close; 06:03-06:09 sits inside one.
    holes = [(t0 + 7 * 3_600_000 + 40 * 60_000, t0 + 8 * 3_600_000 + 20 * 60_000),
             (t0 + 9 * 3_600_000 + 50 * 60_000, t0 + 10 * 3_600_000 + 20 * 60_000),
             (t0 + 30 * 3_600_000 + 3 * 60_000, t0 + 30 * 3_600_000 + 9 * 60_000)]
    keep = np.ones(len(open_ms), dtype=bool)
    for a, b in holes:
        keep &= ~((open_ms >= a) & (open_ms < b))
    inline, prepared, answers = _with_and_without_prepared_scans(replace(data, frame=data.frame[keep]),
                                                                 monkeypatch)
    assert prepared == inline
    assert sum(answers) > 200 and answers.count(False) >= 1   # prepared nearly all; the agent the rest
