"""The report's candles: 1m bars merged into aligned buckets, checked by hand."""
from __future__ import annotations

from rl.backtest.candles import bucket_minutes, resample_ohlc


def test_bucket_is_the_finest_that_fits() -> None:
    assert bucket_minutes(1000) == 1
    assert bucket_minutes(30 * 1440) == 15         # a month: 2,880 candles
    assert bucket_minutes(365 * 1440) == 240       # a year: 2,190 candles
    assert bucket_minutes(10**9) == 1440


def test_resample_by_hand() -> None:
    # 1m bars at minutes 3..7 into 5m buckets: [3, 4] -> bucket 0, [5, 6, 7] -> bucket 5
    t = [m * 60_000 for m in (3, 4, 5, 6, 7)]
    out = resample_ohlc(t, [1, 2, 3, 4, 5], [10, 20, 30, 50, 40], [0.5, 0.4, 3, 2, 4], [1.5, 2.5, 3.5, 4.5, 5.5], 5)
    assert out == {"time_s": [0, 300], "open": [1, 3], "high": [20, 50], "low": [0.4, 2],
                   "close": [2.5, 5.5]}
    assert resample_ohlc([], [], [], [], [], 5)["time_s"] == []
