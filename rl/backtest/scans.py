"""A backtest's level scans, prepared a chunk of 15m closes at a time as the agent reaches them.

Why this is sound: a level scan's expensive part (candidates, merge, touch statistics,
features: `BestLevelFinder.prepare`) depends only on the closed 15m/8h/1w candles and their
ATRs, never on trades or on the learned weights (those are applied by `rank`, at the moment
of the decision). The candles a backtest will close are known from the archive, so a second
analyzer can run the candle pipeline over them and prepare the scans of the next CHUNK
closes together (`BestLevelFinder.prepare_many`), whose shared work is then done once per
chunk instead of once per close (docs/backtest.md "Speed"). The agent's analyzer takes a
prepared scan only when its own `scan_key()` (candles held, the last one of each timeframe,
a fingerprint of every candle pushed) is equal, and otherwise computes the scan itself, so
the trades are identical with or without prepared scans (tests/backtest/test_backtest_scans.py checks
every scan of real days).

Causality: the candles are formed from the archive exactly as the agent forms them (first
open, max high, min low, last close, fsum of volumes), and a scan at a 15m close sees only
candles closed by then; the backtest's no-lookahead tests run with prepared scans.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from typing import TypeGuard

import numpy as np
import pandas as pd

from rl.analysis.analyzer import IncrementalAnalyzer
from rl.analysis.levels import candidates as lv
from rl.analysis.levels import touches as ts
from rl.analysis.levels.finder import BestLevelFinder, LevelScan
from rl.analysis.levels.window_cache import WindowCache
from rl.market.candles import DETAIL_SUM_COLUMNS, INTERVAL_MS, MINUTE_MS, aggregate_arrays, bucket_end, index_to_ms
from rl.strategy.params import StrategyParams

CHUNK = 48          # closes prepared together: most of the batching's gain, little memory
ScanItem = tuple[tuple, LevelScan]   # (scan_key, prepared scan)


class PreparedScans:
    """The `scan_source` of a backtest agent's analyzer (`TradingAgent.prime(scan_source=...)`).

    Called with the analyzer's scan key at a rescan; returns the prepared scan of that very
    state, or None (the analyzer then computes it: a data gap can close a candle at another
    bar than its bucket's end, which makes the agent's state differ). The next chunk is
    prepared only when the agent asks past the ones held; scans of passed closes are
    dropped, so memory stays flat."""

    def __init__(self, frame: pd.DataFrame, symbol: str, first: int, n: int,
                 primed: dict[str, pd.DataFrame], params: StrategyParams, chunk: int = CHUNK) -> None:
        """frame bars [first, first + n) are the backtest's; `primed`: the frames the agent
        is primed with (`rl.backtest.engine.prime_frames`); `params`: the agent's (a scan's
        features and score parts depend on them)."""
        self._start(level_scans(frame, symbol, first, n, primed, params, chunk))

    @classmethod
    def replay(cls, items: list[ScanItem]) -> PreparedScans:
        """A source over scans prepared earlier (`prepared_scans`, e.g. once per month for
        every trial of an optimizer): the list is read, never changed, so many runs can
        share it."""
        self = cls.__new__(cls)
        self._start(iter((items,)))
        return self

    def _start(self, chunks: Iterator[list[ScanItem]]) -> None:
        self._chunks = chunks
        self._held: deque[ScanItem] = deque()
        self.hits = 0
        self.misses = 0

    def __call__(self, key: tuple) -> LevelScan | None:
        t = key[0][0] if key and key[0] is not None else None
        held = self._held
        if t is not None:
            while True:
                while held and held[0][0][0][0] < t:     # scans of closes already passed
                    held.popleft()
                if held:
                    break
                more = next(self._chunks, None)
                if more is None:
                    break
                held.extend(more)
            if held and held[0][0] == key:
                self.hits += 1
                return held.popleft()[1]
        self.misses += 1
        return None


def level_scans(frame: pd.DataFrame, symbol: str, first: int, n: int, primed: dict[str, pd.DataFrame],
                params: StrategyParams, chunk: int = CHUNK) -> Iterator[list[ScanItem]]:
    """Lists of (scan_key, prepared scan), one per 15m close of the backtest over frame bars
    [first, first + n), `chunk` closes a list, in time order, starting from the analyzer
    state the agent is primed with (`primed`). The candles are pushed in close-time order;
    at each 15m close the 8h/1w candles closing with it are pushed first, as the agent does,
    then the scan's inputs are taken; each list is prepared together."""
    an = IncrementalAnalyzer(symbol, score_params=params.score, level_params=params.levels)
    an.push_frames({tf: df for tf, df in primed.items() if tf != "1m"})   # as agent.prime, minus its scan
    held_last = {tf: an.rings[tf].last_time() if tf in an.rings else None for tf in ("15m", "8h", "1w")}
    archive = _Archive(frame, first + n)
    # only the 1m rows after the prime's last candle of each timeframe form newer candles
    new = {tf: archive.candles(tf, archive.after(last, tf)) for tf, last in held_last.items()}
    higher = {tf: deque(new[tf]) for tf in ("8h", "1w")}
    r15 = an.rings.get("15m")
    held = r15.bars() if r15 is not None else None
    base = len(held) if held is not None else 0
    series = _Series15m(held, new["15m"])
    todo: list = []                                   # (scan key, inputs, 15m window or None)
    for k, c15 in enumerate(new["15m"], 1):
        an.push_candle("15m", *c15)
        end15 = c15[0] + INTERVAL_MS["15m"]
        for tf, q in higher.items():
            while q and q[0][0] + INTERVAL_MS[tf] <= end15:
                an.push_candle(tf, *q.popleft())
        inp = an.scan_inputs()
        win = None if isinstance(inp, LevelScan) else (inp[0].get("15m"), inp[1].get("15m", float("nan")), base + k)
        todo.append((an.scan_key(), inp, win))
        if len(todo) == chunk:
            yield _prepared(an.finder, series, todo)
            todo = []
    if todo:
        yield _prepared(an.finder, series, todo)


def prepared_scans(frame: pd.DataFrame, symbol: str, first: int, n: int, primed: dict[str, pd.DataFrame],
                   params: StrategyParams) -> list[ScanItem]:
    """Every (scan_key, prepared scan) of the backtest, in time order (`level_scans`, all
    chunks): for a caller that runs the same bars many times with different weights."""
    return [item for chunk in level_scans(frame, symbol, first, n, primed, params) for item in chunk]


class _Archive:
    """The 1m rows a backtest will see, as arrays, aggregated into closed candles."""

    def __init__(self, frame: pd.DataFrame, rows: int) -> None:
        self.rows = rows
        self.open_ms = index_to_ms(frame.index[:rows])
        self.last_close = int(self.open_ms[-1]) + MINUTE_MS if rows else 0
        self.cols = {c: frame[c].to_numpy()[:rows] for c in ("open", "high", "low", "close", "volume")}
        for c in DETAIL_SUM_COLUMNS:
            self.cols[c] = np.zeros(rows, dtype=np.int64)   # unused here; integer zeros sum for free

    def after(self, last_open: int | None, tf: str) -> int:
        """The first row after the candle of tf opening at last_open (0 for none)."""
        return 0 if last_open is None else int(np.searchsorted(self.open_ms, bucket_end(last_open, tf), side="right"))

    def candles(self, tf: str, a: int) -> list[tuple]:
        """(open time, open, high, low, close, volume) of the tf candles of rows [a, rows),
        closed by the last row (as the agent forms them)."""
        t, agg = aggregate_arrays(self.open_ms[a:], {c: v[a:] for c, v in self.cols.items()}, tf)
        keep = np.asarray(bucket_end(t, tf)) <= self.last_close
        return [(int(x), *row) for x, row in zip(
            t[keep].tolist(), zip(*(agg[c][keep].tolist() for c in ("open", "high", "low", "close", "volume"))))]


def _prepared(finder: BestLevelFinder, series: _Series15m, todo: list) -> list[ScanItem]:
    """(scan key, prepared scan) for a chunk of closes (scan key, inputs, 15m window): the
    15m window caches, cut from the series, go with the inputs."""
    wins = [w for _, _, w in todo if w is not None]
    caches = iter(series.caches(wins))
    inputs = [inp if w is None else (*inp, next(caches)) for _, inp, w in todo]
    return list(zip([key for key, _, _ in todo], finder.prepare_many(inputs)))


class _Series15m:
    """The whole 15m series a backtest will close (primed candles, then the stream), so a
    window's swing pivots, forward extremes and zero-range count are slices of arrays
    computed once instead of recomputed over 500 candles at every close, and its touch
    statistics read the series itself (`ts.touch_stats_windows`). All are local (a pivot
    needs 3 candles each side, a forward extreme the next 12), so inside a window they
    equal the window's own (only the last 12 forward extremes are cut by the window's end)."""

    def __init__(self, held: lv.Bars | None, stream: list[tuple]) -> None:
        cols = list(zip(*stream)) if stream else [()] * 6
        t, _, h, l, c, v = (np.array(x, dtype=np.int64 if k == 0 else float) for k, x in enumerate(cols))
        if held is not None:
            t, h, l, c, v = (np.concatenate([old, new]) for old, new in
                             zip((held.t, held.h, held.l, held.c, held.v), (t, h, l, c, v)))
        self.prep = ts.series_prep(t, h, l, c, v)
        s = lv.PIVOT_STRENGTH["15m"]
        ph, pl = lv.pivots(h, l, s)
        self.ph_list, self.pl_list = ph.tolist(), pl.tolist()   # bisect beats searchsorted per scalar
        # each pivot's candidate columns (price, timeframe code, source code, time), sliced per window
        self.ph_cand = (h[ph], np.zeros(len(ph), np.int64), np.zeros(len(ph), np.int64), t[ph])
        self.pl_cand = (l[pl], np.zeros(len(pl), np.int64), np.ones(len(pl), np.int64), t[pl])

    def caches(self, windows: list[tuple[lv.Bars | None, float, int]]) -> list[WindowCache | None]:
        """The 15m window cache of each (bars, atr, end), bars = series[end - len(bars):end],
        built from the series, with the windows' volume nodes found together; None for a
        window that is not that slice or has no usable ATR (the finder builds its own)."""
        fits = [(b, atr, end) if self._fits(b, atr, end) else None for b, atr, end in windows]
        fitting = [w for w in fits if w is not None]
        ext = self._extremes([(end - len(b), end) for b, _, end in fitting])
        nodes = lv.volume_nodes_many([(b.h, b.l, b.v, atr, e) for (b, atr, _), e in zip(fitting, ext)])
        made = iter([self._cache(b, atr, end, n, e) for (b, atr, end), n, e in zip(fitting, nodes, ext)])
        return [None if w is None else next(made) for w in fits]

    def _extremes(self, spans: list[tuple[int, int]]) -> list[tuple[float, float]]:
        """(lowest low, highest high) of series[a:end] for each (a, end), end - a >= 2, in a
        few calls for all: reduceat over [a, end - 1), then the last candle (exact: min/max)."""
        if not spans:
            return []
        idx = np.array(spans).ravel() - np.tile([0, 1], len(spans))      # a, end - 1, ...
        last = idx[1::2]
        lows = np.minimum(np.minimum.reduceat(self.prep.l, idx)[::2], self.prep.l[last])
        highs = np.maximum(np.maximum.reduceat(self.prep.h, idx)[::2], self.prep.h[last])
        return list(zip(lows.tolist(), highs.tolist()))

    def _fits(self, bars: lv.Bars | None, atr: float, end: int) -> TypeGuard[lv.Bars]:
        """Whether `bars` is series[end - len(bars):end] (long enough for the cut forward
        extremes) with a usable ATR."""
        if bars is None or not (atr == atr and atr > 0):
            return False
        n = len(bars)
        a = end - n
        t = self.prep.t
        return not (n <= 2 * lv.LOOKAHEAD or a < 0 or end > len(t) or int(t[a]) != int(bars.t[0])
                    or int(t[end - 1]) != int(bars.t[-1]))

    def _cache(self, bars: lv.Bars, atr: float, end: int, nodes: np.ndarray,
               extremes: tuple[float, float]) -> WindowCache:
        """The cache of a window that `_fits`, given its volume nodes and (lowest low,
        highest high)."""
        a = end - len(bars)
        s = lv.PIVOT_STRENGTH["15m"]
        i = slice(bisect_left(self.ph_list, a + s), bisect_left(self.ph_list, end - s))
        j = slice(bisect_left(self.pl_list, a + s), bisect_left(self.pl_list, end - s))
        k = len(nodes)
        pieces = [tuple(x[i] for x in self.ph_cand), tuple(x[j] for x in self.pl_cand),
                  (nodes, _NODE_CODES[0][:k], _NODE_CODES[1][:k], np.full(k, bars.t[0]))]
        return WindowCache(bars, atr, "15m", pieces, (self.prep, a, end, extremes[1] - extremes[0]))


# a 15m volume node's timeframe and source codes (a window has at most MAX_NODES nodes)
_NODE_CODES = (np.zeros(lv.MAX_NODES, np.int64), np.full(lv.MAX_NODES, 2, np.int64))
