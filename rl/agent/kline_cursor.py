"""KlineCursor: what the live driver (TradingAgent.run_cycle) has taken of one symbol's klines.

A cycle asks the market port only for what is new: the 1m candles closed since the newest one
handled (+ margin), and a higher timeframe only when one of its candles closed that the
analyzer does not hold yet (a late candle is fetched again next cycle). The analyzer keeps the
history, so a cycle with nothing new costs one small request. Each newly closed 1m bar then
brings the higher-timeframe candles that closed with it.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rl.market.candle_former import CandleSink
from rl.market.candles import INTERVAL_MS, MINUTE_MS, bucket_start, index_to_ms
from rl.market.ports import KLINES_MAX

# what a first cycle reads (a backtest primes from the same amounts: rl.backtest.engine)
KLINE_LIMITS = {"1m": 500, "15m": 500, "8h": 500, "1w": 200}
HIGHER_TFS = tuple(tf for tf in KLINE_LIMITS if tf != "1m")
_COLUMNS = ["open", "high", "low", "close", "volume"]


def history_at_newest_bar(frames: Mapping[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], int]:
    """(the candles closed when the newest 1m bar of `frames` opened, that open time): what a
    first cycle primes with, so that bar goes through the per-bar routine like every later
    one (a backtest primes and steps the same way)."""
    m1 = frames["1m"]
    cut = int(index_to_ms(m1.index[-1:])[0])
    hist = {"1m": m1.iloc[:-1]}
    for tf, df in frames.items():
        if tf != "1m":
            ends = index_to_ms(df.index) + INTERVAL_MS[tf]
            hist[tf] = df.iloc[:int(np.searchsorted(ends, cut, side="right"))]
    return hist, cut


class KlineCursor:
    """Per higher timeframe, the newest market-port candle handed to the analyzer; and this
    cycle's higher-timeframe frames, from which each new 1m bar takes the candles it closes."""

    def __init__(self) -> None:
        self._pushed: dict[str, int] = {}
        self._opens: dict[str, np.ndarray] = {}      # this cycle: open times per timeframe
        self._rows: dict[str, np.ndarray] = {}       # ... and their OHLCV rows

    @property
    def pushed(self) -> Mapping[str, int]:
        """Timeframe -> open time of the newest candle the analyzer holds."""
        return self._pushed

    def primed(self, frames_closed: Mapping[str, pd.DataFrame]) -> None:
        """The analyzer was given `frames_closed`."""
        for tf in HIGHER_TFS:
            df = frames_closed.get(tf)
            if df is not None and len(df):
                self._pushed[tf] = int(index_to_ms(df.index[-1:])[0])

    def limits(self, last_1m_ms: int | None, now: int) -> dict[str, int]:
        """Timeframe -> how many candles to fetch this cycle (everything before the first
        cycle, `last_1m_ms` None: the open time of the newest 1m bar handled)."""
        if last_1m_ms is None:
            return dict(KLINE_LIMITS)
        out = {"1m": int(min(KLINES_MAX, max(0, now - last_1m_ms) // MINUTE_MS + 3))}
        for tf in HIGHER_TFS:
            last = self._pushed.get(tf)
            newest_closed = bucket_start(now, tf) - INTERVAL_MS[tf]
            if last is None or newest_closed > last:
                gap = KLINE_LIMITS[tf] if last is None else (newest_closed - last) // INTERVAL_MS[tf] + 3
                out[tf] = int(min(KLINES_MAX, gap))
        return out

    def take(self, frames: Mapping[str, pd.DataFrame]) -> None:
        """This cycle's closed candles (the higher timeframes fetched)."""
        self._opens = {tf: index_to_ms(df.index) for tf, df in frames.items() if tf != "1m"}
        self._rows = {tf: frames[tf][_COLUMNS].to_numpy() for tf in self._opens}

    def push_closed_with(self, t: int, sink: CandleSink) -> bool:
        """Hand `sink` every higher-timeframe candle of this cycle that closed by the end of
        the 1m bar opening at `t` and is not pushed yet; True if a 15m candle was among them."""
        closed_15m = False
        for tf, opens in self._opens.items():
            last = self._pushed.get(tf)
            lo = 0 if last is None else int(np.searchsorted(opens, last, side="right"))
            hi = int(np.searchsorted(opens + INTERVAL_MS[tf], t + MINUTE_MS, side="right"))
            rows = self._rows[tf]
            for j in range(lo, hi):
                sink(tf, int(opens[j]), *(float(x) for x in rows[j]))
                self._pushed[tf] = int(opens[j])
                closed_15m = closed_15m or tf == "15m"
        return closed_15m
