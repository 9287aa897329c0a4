"""Candles for the report's chart, pure: 1m bars merged into coarser ones so the file stays small.

A month of 1m bars is 43,200 candles (~2 MB of JSON); the chart shows at most MAX_CANDLES,
using the finest of BUCKETS that fits (a month -> 15m, a year -> 4h). Buckets are aligned to
UTC multiples of their length, as Binance's own candles are.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MINUTE_MS = 60_000
BUCKETS = (1, 5, 15, 60, 240, 1440)       # minutes
MAX_CANDLES = 3000


def bucket_minutes(n_minutes: int, max_candles: int = MAX_CANDLES) -> int:
    """The finest bucket that shows `n_minutes` of 1m bars in at most `max_candles` candles."""
    for b in BUCKETS:
        if n_minutes / b <= max_candles:
            return b
    return BUCKETS[-1]


def resample_ohlc(open_ms: Sequence[int] | np.ndarray, o: Sequence[float] | np.ndarray,
                  h: Sequence[float] | np.ndarray, low: Sequence[float] | np.ndarray,
                  c: Sequence[float] | np.ndarray, minutes: int) -> dict[str, list]:
    """1m bars -> `minutes` candles: first open, max high, min low, last close per bucket.
    Returns {"time_s": bucket open (UTC seconds, what the chart library takes), "open", ...}."""
    t = np.asarray(open_ms, dtype=np.int64)
    if t.size == 0:
        return {"time_s": [], "open": [], "high": [], "low": [], "close": []}
    span = minutes * MINUTE_MS
    keys = t // span
    starts = np.concatenate(([0], np.flatnonzero(np.diff(keys)) + 1))
    ends = np.concatenate((starts[1:], [t.size]))
    hh, ll = np.asarray(h, dtype=float), np.asarray(low, dtype=float)
    return {"time_s": (keys[starts] * span // 1000).tolist(),
            "open": np.asarray(o, dtype=float)[starts].tolist(),
            "high": np.maximum.reduceat(hh, starts).tolist(),
            "low": np.minimum.reduceat(ll, starts).tolist(),
            "close": np.asarray(c, dtype=float)[ends - 1].tolist()}
