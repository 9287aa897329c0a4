"""What a level finder remembers of one timeframe's window between scans: its candidates,
the price-independent touch arrays and the touch statistics already computed per level
price. 8h and 1w windows change only when their own candle closes, so between those closes a
15m rescan reuses all of it (the statistics of a price depend only on the window, its ATR and
the price). A backtest's prepared scans also build these for 15m windows cut from the
whole series (rl.backtest.scans), and computes many windows' statistics at once (`fresh`).
"""
from __future__ import annotations

from typing import cast

import numpy as np

from rl.analysis.levels import candidates as lv
from rl.analysis.levels import touches as ts

SeriesWindow = tuple[ts.SeriesPrep, int, int, float]   # (series, a, end, span): bars = series[a:end]


class WindowCache:
    """One timeframe's window as last scanned: its candidates, the price-independent touch
    arrays and touch statistics already computed per level price. 8h and 1w windows change
    only when their own candle closes, so between those closes a 15m rescan reuses all of it
    (the statistics of a price depend only on the window, its ATR and the price)."""

    MAX_MEMO = 4096

    def __init__(self, bars: lv.Bars, atr: float, tf: str, pieces: list[tuple[np.ndarray, ...]] | None = None,
                 window: SeriesWindow | None = None) -> None:
        """`pieces`, when given, must be `lv.candidate_arrays(bars, atr, tf)` with the
        timeframe code column, in consecutive pieces (see `self.pieces`); `window` (series, a,
        end, span), when given, says that bars are series[a:end] with that highest high -
        lowest low (rl.backtest.scans slices both from whole-series arrays)."""
        self.bars, self.atr, self.tf = bars, atr, tf
        if pieces is None:
            price, src, tms = lv.candidate_arrays(bars, atr, tf)
            pieces = [(price, np.full(len(price), lv.TF_CODE[tf], dtype=np.int64), src, tms)]
        # the candidates as (price, timeframe code, source code, time) arrays, in one or more
        # pieces that `_merged` lays end to end with the other timeframes' anyway
        self.pieces = pieces
        self.window = window
        self._prep: ts.TouchPrep | None = None
        self.memo: dict[float, int] = {}           # price -> column of self.table
        self.full: list[bool] = []                 # per column: event/volume rows computed
        self.table = _NO_TABLE                     # stats per memo column (capacity doubles)
        self.used = 0

    @property
    def prep(self) -> ts.TouchPrep:
        """The window's price-independent touch arrays, made at first use: a window of a
        series is read through the series (`fresh`) and never needs its own."""
        if self._prep is None:
            self._prep = ts.touch_prep(self.bars, self.atr)
        return self._prep

    def same(self, bars: lv.Bars, atr: float) -> bool:
        if self.atr != atr:
            return False
        b = self.bars
        if bars is b:
            return True
        return (len(bars) == len(b) and np.array_equal(bars.t, b.t) and np.array_equal(bars.h, b.h)
                and np.array_equal(bars.l, b.l) and np.array_equal(bars.c, b.c) and np.array_equal(bars.v, b.v))

    def stats(self, prices: np.ndarray, plist: list[float], full: list[bool]) -> np.ndarray:
        """Touch statistics of `prices` (plist = the same as floats) as a (7, levels) matrix
        (rows in TouchStats field order), computing only prices never seen on this window.
        full[i]: level i needs the event and volume rows too (its finest timeframe is this
        one); the others need only touches and first/last times (NaN elsewhere). A memo hit
        is exact: same window, same ATR, same price."""
        memo, done = self.memo, self.full
        if len(memo) > self.MAX_MEMO:
            memo.clear()
            done.clear()
            self.used = 0
        if not memo:                                 # fresh window (every 15m scan): all new
            ev = any(full)                           # (level prices of a scan are distinct)
            m = _as_matrix(ts.touch_stats(self.bars, prices, self.atr, self.tf, self.prep, events=ev))
            self._store(plist, m, ev)
            return m
        need = {p: f for p, f in zip(plist, full) if p not in memo or (f and not done[memo[p]])}
        ev = any(need.values())
        if len(need) == len(plist):                  # first sight of this window: no gather
            m = _as_matrix(ts.touch_stats(self.bars, prices, self.atr, self.tf, self.prep, events=ev))
            self._store(plist, m, ev)
            return m
        if need:
            self._store(list(need), _as_matrix(ts.touch_stats(self.bars, np.array(list(need)), self.atr, self.tf,
                                                              self.prep, events=ev)), ev)
        return self.table[:, [memo[p] for p in plist]]

    @staticmethod
    def fresh(windows: list[tuple[WindowCache, np.ndarray, list[bool]]]) -> np.ndarray:
        """`stats(prices, plist, full)` for several windows of one timeframe, each read by one
        scan only (a backtest's 15m windows), end to end in one (7, all levels) matrix: in
        one `ts.touch_stats_many` call (or `ts.touch_stats_windows` for windows of one
        series) and without the memo (storing what nobody reads again would only cost). Same
        numbers: a level's row depends only on its window, ATR and price (event rows where no
        level of a window needs them may hold numbers instead of NaN; `_features_arrays`
        never reads them)."""
        tf = windows[0][0].tf
        groups: dict[int, list[int]] = {}          # series id (0: none) -> windows
        for k, (c, _, _) in enumerate(windows):
            groups.setdefault(id(c.window[0]) if c.window is not None else 0, []).append(k)
        mats = []
        for key, ks in groups.items():
            ev = any(any(windows[k][2]) for k in ks)
            if key:                   # windows of one series: each has its `window` (series, a, end, span)
                wins = [(cast(SeriesWindow, windows[k][0].window), windows[k][0].atr, windows[k][1]) for k in ks]
                jobs = [(a, end, atr, span, p) for (_, a, end, span), atr, p in wins]
                s = ts.touch_stats_windows(wins[0][0][0], jobs, tf, events=ev)
            else:
                s = ts.touch_stats_many([(windows[k][0].prep, windows[k][1]) for k in ks], tf, events=ev)
            mats.append(_as_matrix(s))
        if len(mats) == 1:
            return mats[0]
        offs = np.cumsum([0] + [len(p) for _, p, _ in windows])
        cols = np.concatenate([np.arange(offs[k], offs[k + 1]) for ks in groups.values() for k in ks])
        out = np.empty((7, offs[-1]))
        out[:, cols] = np.hstack(mats)
        return out

    def fill(self, requests: list[tuple[list[float], list[bool]]]) -> None:
        """Compute, in one touch_stats call, the statistics that several scans of this window
        will `gather` (a chunk of 15m closes shares one 8h/1w window): the same numbers as
        `stats` per scan, since each level's row depends only on the window, ATR and price."""
        if len(self.memo) > self.MAX_MEMO:
            self.memo.clear()
            self.full.clear()
            self.used = 0
        memo, done = self.memo, self.full
        need: dict[float, bool] = {}
        for plist, full in requests:
            for p, f in zip(plist, full):
                if p not in memo or (f and not done[memo[p]]):
                    need[p] = need.get(p, False) or f
        if need:
            ev = any(need.values())
            self._store(list(need), _as_matrix(ts.touch_stats(self.bars, np.array(list(need)), self.atr, self.tf,
                                                              self.prep, events=ev)), ev)

    def gather(self, plist: list[float]) -> np.ndarray:
        """(7, levels) statistics of prices already computed by `fill`."""
        return self.table[:, [self.memo[p] for p in plist]]

    def _store(self, plist: list[float], m: np.ndarray, full: bool) -> None:
        k, base = len(plist), self.used
        if base + k > self.table.shape[1]:
            grown = np.zeros((7, max(2 * self.table.shape[1], base + k, 64)))
            grown[:, :base] = self.table[:, :base]
            self.table = grown
        self.table[:, base:base + k] = m
        for q, p in enumerate(plist):
            self.memo[p] = base + q
        self.full.extend([full] * k)
        self.used = base + k


_NO_TABLE = np.zeros((7, 0))   # shared and never written: `_store` allocates on first use


def _as_matrix(s: ts.TouchStats) -> np.ndarray:
    """TouchStats as one float matrix (ms times < 2**53 stay exact in float64)."""
    return np.array([s.touches, s.bounces, s.bounce_atr_sum, s.failed, s.first_ms, s.last_ms, s.volume_ratio],
                    dtype=float)
