"""Two-symbol data for the portfolio tests: generated archives, cut, gapped or shifted."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from config import Settings
from rl.backtest.data import BacktestData, load_backtest_data
from rl.backtest.engine import backtest_settings
from rl.market.candles import MINUTE_MS, index_to_ms
from tests.support.archives import write_archive

SYMBOLS = ("AAAUSDT", "BBBUSDT")
# today's defaults spelled out: the main session may change the order types' defaults
PINNED = {"entry_order": "ioc", "take_profit_order": "market", "leverage": 10, "max_risk_percent": 2.0,
          "max_notional_percent": 100.0, "min_reward_r": 1.0, "maker_fee": 0.0002, "taker_fee": 0.0005,
          "ioc_offset_bps": 5.0, "reentry_cooldown_minutes": 60, "trade_filter": "off"}


def pinned_settings(symbols: str | tuple[str, ...], **changes) -> Settings:
    """Backtest settings of the golden and portfolio tests (PINNED, then `changes`)."""
    return backtest_settings(symbols, 10_000.0, dict(PINNED) | changes, base=Settings())


def write_pair(root: Path, days: int = 40, start: str = "2024-01-01", seeds: tuple[int, int] = (5, 9),
               symbols: tuple[str, ...] = SYMBOLS) -> Path:
    """Generated 1m archives of `symbols` under root (one folder for all), `days` long."""
    for sym, seed in zip(symbols, seeds):
        write_archive(root, sym, start[:7], days * 1440, start, seed=seed)
    return root


def load_pair(root: Path, date_from: str, date_to: str, symbols: tuple[str, ...] = SYMBOLS) -> list[BacktestData]:
    return [load_backtest_data([root], s, date_from, date_to) for s in symbols]


def without_bars(data: BacktestData, from_ms: int, to_ms: int) -> BacktestData:
    """`data` with the bars opening in [from_ms, to_ms) missing (a hole in the archive)."""
    open_ms = index_to_ms(data.frame.index)
    keep = (open_ms < from_ms) | (open_ms >= to_ms)
    assert not keep[: data.first_bar].all() or from_ms >= int(open_ms[data.first_bar])
    return replace(data, frame=data.frame[keep])


def truncated(data: BacktestData, last_open_ms: int) -> BacktestData:
    """The same data as if the archive ended with the bar opening at last_open_ms."""
    open_ms = index_to_ms(data.frame.index)
    frame = data.frame.iloc[: int(np.searchsorted(open_ms, last_open_ms, side="right"))]
    return replace(data, frame=frame, end_ms=last_open_ms + MINUTE_MS - 1)


def crashed_after(data: BacktestData, t_ms: int, factor: float = 0.5) -> BacktestData:
    """Every price of a bar opening after t_ms multiplied by `factor` (a future to ignore)."""
    frame = data.frame.copy()
    after = index_to_ms(frame.index) > t_ms
    for col in ("open", "high", "low", "close"):
        frame.loc[after, col] = frame.loc[after, col] * factor
    return replace(data, frame=frame)
