"""CandleFormer: one symbol's 15m/8h/1w candles formed from its closed 1m bars, bar by bar.

A backtest has no market port to ask for higher-timeframe candles, so the agent forms them
itself from the 1m bars it steps through. They must equal what the market port serves
(rl.market.candles.aggregate_arrays, which ReplayMarketData uses) to the bit, or a backtest
would analyze other numbers than a replay: first open, max high, min low, last close, and the
volume as math.fsum of the 1m volumes (correctly rounded, so the order of the additions does
not matter). Buckets are those of rl.market.candles.bucket_start.

Why not call aggregate_arrays: it is a vectorized pass over whole arrays, and this runs once
per bar with a handful of float comparisons. Per bar only the forming 15m candle is updated;
8h and 1w take a whole 15m candle when it closes (every 15m bucket lies inside one 8h and one
1w bucket), so a minute that closes nothing costs a few operations.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from rl.market.candles import INTERVAL_MS, MINUTE_MS, bucket_start, index_to_ms

FORMED_TIMEFRAMES = ("15m", "8h", "1w")
_M15 = INTERVAL_MS["15m"]
_FOLD_TFS = ("8h", "1w")

# (timeframe, open_time_ms, open, high, low, close, volume) of a candle that just closed
CandleSink = Callable[[str, int, float, float, float, float, float], None]


class CandleFormer:
    """Forms the 15m/8h/1w candles of one symbol from its closed 1m bars and hands each to
    `sink` when it closes (the analyzer's push_candle). `start` seeds the candles forming at
    a time from 1m history; `add` takes the next closed 1m bar."""

    def __init__(self, sink: CandleSink) -> None:
        self._sink = sink
        # a forming candle: [open_ms, open, high, low, close, [1m volumes], end_ms]; the 8h/1w
        # ones hold the closed 15m buckets of their bucket (the forming 15m one is folded in
        # when it closes)
        self._f15: list | None = None
        self._fhi: dict[str, list | None] = {tf: None for tf in _FOLD_TFS}
        self._last: int | None = None             # open time of the newest 1m bar taken

    def start(self, m1_closed: pd.DataFrame | None, time_ms: int, pushed: Mapping[str, int]) -> None:
        """Start the candles forming at `time_ms` from the 1m bars of `m1_closed` (closed by
        `time_ms`) inside their buckets, so the first candle `add` completes is whole: give 1m
        history back to the start of the current week for an exact first weekly candle.
        `pushed`: per timeframe, the open time of the newest candle the sink already has (a
        bucket it holds is not formed again)."""
        self._f15, self._fhi = None, {tf: None for tf in _FOLD_TFS}
        if m1_closed is None or not len(m1_closed):
            return
        m1_ms = index_to_ms(m1_closed.index)
        rows = m1_closed[["open", "high", "low", "close", "volume"]].to_numpy()
        n = len(m1_ms)

        def forming(tf: str, b: int, i: int, j: int) -> list | None:
            """The `tf` candle of bucket b from rows[i:j] (None if empty or already pushed)."""
            if i >= j or not (pushed.get(tf) is None or pushed[tf] < b):
                return None
            r = rows[i:j]
            return [b, float(r[0, 0]), float(r[:, 1].max()), float(r[:, 2].min()), float(r[-1, 3]),
                    [float(x) for x in r[:, 4]], b + INTERVAL_MS[tf]]

        b15 = int(bucket_start(int(time_ms), "15m"))
        i15 = int(np.searchsorted(m1_ms, b15, side="left"))
        self._f15 = forming("15m", b15, i15, n)
        # the higher candles hold the 15m buckets already closed; the one forming is folded in
        # when it closes (if it could not be formed, they take its rows directly)
        upto = i15 if self._f15 is not None else n
        for tf in _FOLD_TFS:
            b = int(bucket_start(int(time_ms), tf))
            self._fhi[tf] = forming(tf, b, int(np.searchsorted(m1_ms, b, side="left")), upto)
        self._last = int(m1_ms[-1])

    def add(self, t: int, o: float, h: float, l: float, c: float, v: float) -> bool:
        """Take the closed 1m bar opening at `t` (after the last one taken); hand the sink every
        candle it closes. Returns True if a 15m candle closed with it (a decision point)."""
        prev = self._last
        self._last = t
        closed_15m = False
        if prev is None or t != prev + MINUTE_MS:
            closed_15m = self._close_stale(t)          # a gap in the data skipped a close
        f = self._f15
        if f is None:
            b = t // _M15 * _M15
            f = self._f15 = [b, o, h, l, c, [v], b + _M15]
        else:
            if h > f[2]:
                f[2] = h
            if l < f[3]:
                f[3] = l
            f[4] = c
            f[5].append(v)
        if t + MINUTE_MS >= f[6]:                      # this bar was the bucket's last minute
            self._close_15m(f)
            closed_15m = True
        return closed_15m

    def _close_stale(self, t: int) -> bool:
        """After a gap: hand over every forming candle whose bucket ended before bar t."""
        closed = False
        f = self._f15
        if f is not None and t >= f[6]:
            self._close_15m(f)
            closed = True
        for tf, g in self._fhi.items():
            if g is not None and t >= g[6]:
                self._sink(tf, g[0], g[1], g[2], g[3], g[4], math.fsum(g[5]))
                self._fhi[tf] = None
        return closed

    def _close_15m(self, f: list) -> None:
        """Hand over the closed 15m candle f and fold it into the forming 8h and 1w candles."""
        self._f15 = None
        sink = self._sink
        sink("15m", f[0], f[1], f[2], f[3], f[4], math.fsum(f[5]))
        fhi = self._fhi
        for tf in _FOLD_TFS:
            g = fhi[tf]
            if g is not None and f[0] >= g[6]:          # (only after a gap: see _close_stale)
                sink(tf, g[0], g[1], g[2], g[3], g[4], math.fsum(g[5]))
                g = None
            if g is None:
                b = bucket_start(f[0], tf)
                g = fhi[tf] = [b, f[1], f[2], f[3], f[4], list(f[5]), b + INTERVAL_MS[tf]]
            else:
                if f[2] > g[2]:
                    g[2] = f[2]
                if f[3] < g[3]:
                    g[3] = f[3]
                g[4] = f[4]
                g[5].extend(f[5])
            if f[6] >= g[6]:
                sink(tf, g[0], g[1], g[2], g[3], g[4], math.fsum(g[5]))
                fhi[tf] = None
