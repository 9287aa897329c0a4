"""Generated candles, and the closed candles of every timeframe as of a moment."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rl.market.candles import INTERVAL_MS, WEEK_MS, index_to_ms, resample


def make_candles(n: int = 600, start: str = "2024-01-01", freq: str = "1min",
                 seed: int = 7, price: float = 30000.0, vol: float = 0.0015) -> pd.DataFrame:
    """Realistic-looking OHLCV candles from a seeded random walk (UTC open_time index)."""
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0, vol, n)
    close = price * np.exp(np.cumsum(rets))
    open_ = np.concatenate([[price], close[:-1]])
    spread = np.abs(rng.normal(0.0, vol, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.gamma(2.0, 50.0, n)
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="open_time")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": volume}, index=idx)


TF = {"1m": "1min", "15m": "15min", "8h": "8h", "1w": "7D"}
MONDAY = pd.Timestamp("1970-01-05", tz="UTC")


def aggregate(m1: pd.DataFrame, cut: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Closed candles of every timeframe as of `cut`, built from 1m candles (weeks on Mondays)."""
    out = {}
    m1 = m1[m1.index < cut]
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    for tf, rule in TF.items():
        if tf == "1w":  # Binance weeks open on Monday 00:00 UTC
            key = (m1.index - MONDAY) // pd.Timedelta("7D")
            df = m1.groupby(key).agg(agg)
            df.index = pd.DatetimeIndex(MONDAY + df.index * pd.Timedelta("7D"), name="open_time")
        else:
            df = m1.resample(rule, label="left", closed="left").agg(agg).dropna()
        df = df[df.index + pd.Timedelta(rule) <= cut]
        out[tf] = df.iloc[-500:]
    return out


def closed_by(candles: pd.DataFrame, t: int) -> dict[str, pd.DataFrame]:
    """Every timeframe's candles closed by world time t (what the live agent can know)."""
    hist = candles[index_to_ms(candles.index) < t]
    frames = {"1m": hist}
    for tf in ("15m", "8h", "1w"):
        df = resample(hist, tf)
        span = WEEK_MS if tf == "1w" else INTERVAL_MS[tf]
        frames[tf] = df[index_to_ms(df.index) + span <= t]
    return frames
