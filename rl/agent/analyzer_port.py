"""What the agent asks of one symbol's analysis: rl.analysis.analyzer.IncrementalAnalyzer, or a
test's stand-in that scripts the market's verdict."""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import pandas as pd

from rl.analysis.levels.book import LevelScan
from rl.analysis.levels.candidates import Bars
from rl.analysis.result import Analysis

# (open_time_ms, open, high, low, close, volume) of a closed 1m candle
OneMinuteAppender = Callable[[int, float, float, float, float, float], None]


class SymbolAnalyzer(Protocol):
    """Candles in (closed ones only), an Analysis at a price out. Made per symbol by the
    agent's analyzer factory: factory(symbol, weights)."""

    max_bars: int                   # candles kept per timeframe (older 1m history is not pushed)
    # a backtest's source of level scans prepared ahead (rl.backtest.scans), else None
    scan_source: Callable[[tuple], LevelScan | None] | None

    def update(self, frames_closed: dict[str, pd.DataFrame], price: float,
               time_ms: int) -> Analysis | None:
        """Take whole frames of closed candles (priming), then score at `price`."""

    def score(self, price: float, time_ms: int) -> Analysis | None:
        """The analysis of the candles held, at `price`."""

    def push_candle(self, tf: str, open_time_ms: int, o: float, h: float, l: float, c: float,
                    v: float) -> None:
        """One newly closed candle of timeframe `tf`."""

    def set_weights(self, weights: dict[str, float]) -> None:
        """New level-feature weights (learning)."""

    def follow_1m(self, source: Bars, end: int) -> None:
        """From now on the 1m candles pushed are source's rows end, end+1, ... (a backtest)."""

    def one_minute_appender(self) -> OneMinuteAppender | None:
        """A cheaper push_candle("1m", ...) for a caller that keeps the time order itself, or
        None (then push_candle is used)."""
