"""The backtest driver half of TradingAgent: `prime` seeds a symbol with history, `step` takes
one closed 1m bar per symbol and hands it to the agent's one per-bar routine `_on_bar`.

The agent forms its 15m/8h/1w candles itself from those bars, exactly as the market port does
(rl.market.candles: first open, max high, min low, last close, volume = math.fsum of the 1m volumes,
so both agree to the bit): per bar only the forming 15m candle is updated; 8h and 1w take a
whole 15m candle when it closes. TradingAgent inherits `BarDriverMixin` (it uses the agent's
`_rt` runtimes and `_on_bar`), as it inherits RecoveryMixin.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rl.analysis.analyzer import IncrementalAnalyzer
from rl.analysis.levels.candidates import Bars
from rl.market.candles import INTERVAL_MS, MINUTE_MS, bucket_start, index_to_ms

HIGHER_TFS = ("15m", "8h", "1w")
_M15 = INTERVAL_MS["15m"]
_FOLD_TFS = ("8h", "1w")


def _direct_1m_ring(analyzer: Any) -> Any:
    """The 1m ring of a plain IncrementalAnalyzer, which step() appends to directly: for 1m
    candles push_candle only checks the time order (step checks it against last_1m_ms) and
    appends to this ring (1m indicators are computed lazily from it at score time), so the
    direct append leaves the analyzer in the same state at a quarter of the cost. None for
    anything else (a subclass or a scripted test analyzer): step then calls push_candle."""
    if type(analyzer) is not IncrementalAnalyzer:
        return None
    return analyzer.rings.get("1m")


class BarDriverMixin:
    """`prime` and `step` of TradingAgent (see the module doc)."""

    def prime(self, symbol: str, frames_closed: Mapping[str, Any], price: float, time_ms: int,
              scan_source: Callable[[tuple], Any] | None = None,
              m1_source: tuple[Bars, int] | None = None) -> None:
        """Seed a symbol's analyzer with history before stepping (backtest warm-up).

        `frames_closed` holds the candles closed by `time_ms`. The higher-timeframe candle
        forming at `time_ms` is started from the 1m bars of frames_closed["1m"] inside its
        bucket, so the first 15m/8h/1w candle `step()` completes is the whole candle: give 1m
        history back to the start of the current week for an exact first weekly candle.
        `scan_source`: the analyzer's source of level scans prepared ahead (rl.backtest.scan_ahead).
        `m1_source`: (every 1m bar of the archive, the index of the first bar `step` will get):
        the 1m ring then reads the archive's arrays instead of keeping copies of the bars.
        """
        rt = self._rt[symbol]
        frames = dict(frames_closed)
        m1 = frames.get("1m")
        cap = getattr(rt.analyzer, "max_bars", None) if type(rt.analyzer) is IncrementalAnalyzer else None
        if m1 is not None and cap is not None and len(m1) > cap:
            # its 1m ring keeps the newest `cap` candles: a week of 1m history (for the
            # forming candles below) would be pushed only to drop all but those again
            frames["1m"] = m1.iloc[-cap:]
        rt.analysis = rt.analyzer.update(frames, price, time_ms)
        if scan_source is not None:
            rt.analyzer.scan_source = scan_source
        for tf in HIGHER_TFS:
            df = frames_closed.get(tf)
            if df is not None and len(df):
                rt.pushed[tf] = int(index_to_ms(df.index[-1:])[0])
        rt.f15, rt.fhi = None, {tf: None for tf in HIGHER_TFS[1:]}
        m1 = frames_closed.get("1m")
        if m1 is not None and len(m1):
            m1_ms = index_to_ms(m1.index)
            rows = m1[["open", "high", "low", "close", "volume"]].to_numpy()
            n = len(m1_ms)

            def forming(tf: str, b: int, i: int, j: int) -> list | None:
                """The `tf` candle of bucket b from rows[i:j] (None if empty or already pushed)."""
                if i >= j or not (rt.pushed.get(tf) is None or rt.pushed[tf] < b):
                    return None
                r = rows[i:j]
                return [b, float(r[0, 0]), float(r[:, 1].max()), float(r[:, 2].min()), float(r[-1, 3]),
                        [float(x) for x in r[:, 4]], b + INTERVAL_MS[tf]]

            b15 = bucket_start(int(time_ms), "15m")
            i15 = int(np.searchsorted(m1_ms, b15, side="left"))
            rt.f15 = forming("15m", b15, i15, n)
            # the higher candles hold the 15m buckets already closed; the one forming is
            # folded in when it closes (if it could not be formed, they take its rows directly)
            upto = i15 if rt.f15 is not None else n
            for tf in HIGHER_TFS[1:]:
                b = bucket_start(int(time_ms), tf)
                rt.fhi[tf] = forming(tf, b, int(np.searchsorted(m1_ms, b, side="left")), upto)
            rt.last_1m_ms = int(m1_ms[-1])
        if m1_source is not None and type(rt.analyzer) is IncrementalAnalyzer:
            rt.analyzer.follow_1m(*m1_source)
        rt.ring_1m = _direct_1m_ring(rt.analyzer)

    def step(self, now_ms: int, bars: Mapping[str, Sequence[float]]) -> bool:
        """Backtest: `bars[symbol] = (open_time_ms, open, high, low, close, volume)` of the 1m
        candle that just closed (the exchange has already seen it). Returns True if anything
        beyond bookkeeping happened. No sleeping, no market-port I/O.

        The agent forms 15m/8h/1w candles itself, exactly as the market port does (rl.market.candles:
        first open, max high, min low, last close, volume = math.fsum of the 1m volumes, so
        both sides agree to the bit). Per bar only the forming 15m candle is updated; 8h/1w take
        a whole 15m candle when it closes (every 15m bucket lies inside one 8h and one 1w
        bucket), which keeps a flat minute to a handful of operations."""
        worked = False
        for sym, bar in bars.items():
            rt = self._rt[sym]
            t, o, h, l, c, v = int(bar[0]), float(bar[1]), float(bar[2]), float(bar[3]), float(bar[4]), float(bar[5])
            prev = rt.last_1m_ms
            ring = rt.ring_1m
            if ring is not None and prev is not None and t > prev:
                ring.push(t, o, h, l, c, v)         # = push_candle("1m", ...) minus its checks
            else:
                rt.analyzer.push_candle("1m", t, o, h, l, c, v)
                rt.ring_1m = _direct_1m_ring(rt.analyzer)
            rt.last_1m_ms = t
            closed_15m = False
            if prev is None or t != prev + MINUTE_MS:
                closed_15m = self._close_stale(rt, t)    # a gap in the data skipped a close
            f = rt.f15
            if f is None:
                b = t // _M15 * _M15
                f = rt.f15 = [b, o, h, l, c, [v], b + _M15]
            else:
                if h > f[2]:
                    f[2] = h
                if l < f[3]:
                    f[3] = l
                f[4] = c
                f[5].append(v)
            if t + MINUTE_MS >= f[6]:                   # this bar was the bucket's last minute
                self._close_15m(rt, f)
                closed_15m = True
            if self._on_bar(sym, rt, c, h, l, now_ms, closed_15m):
                worked = True
        return worked

    def _close_stale(self, rt: _SymbolRuntime, t: int) -> bool:
        """After a gap: push every forming candle whose bucket ended before bar t."""
        closed = False
        f = rt.f15
        if f is not None and t >= f[6]:
            self._close_15m(rt, f)
            closed = True
        for tf, g in rt.fhi.items():
            if g is not None and t >= g[6]:
                rt.analyzer.push_candle(tf, g[0], g[1], g[2], g[3], g[4], math.fsum(g[5]))
                rt.fhi[tf] = None
        return closed

    def _close_15m(self, rt: _SymbolRuntime, f: list) -> None:
        """Push the closed 15m candle f and fold it into the forming 8h and 1w candles."""
        rt.f15 = None
        push = rt.analyzer.push_candle
        push("15m", f[0], f[1], f[2], f[3], f[4], math.fsum(f[5]))
        fhi = rt.fhi
        for tf in _FOLD_TFS:
            g = fhi[tf]
            if g is not None and f[0] >= g[6]:          # (only after a gap: see _close_stale)
                push(tf, g[0], g[1], g[2], g[3], g[4], math.fsum(g[5]))
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
                push(tf, g[0], g[1], g[2], g[3], g[4], math.fsum(g[5]))
                fhi[tf] = None
