"""rl.market.candles: kline rows -> frame, interval rules, and Binance-exact resampling."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rl.market.candles import (
    COLUMNS,
    INTERVAL_MS,
    bucket_end,
    bucket_start,
    normalize_frame,
    resample,
    rows_to_frame,
    validate_interval,
)
from tests.support.candles import make_candles

MIN = 60_000


def ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


def one_minute_frame(start: str, n: int) -> pd.DataFrame:
    """1m candles with simple, hand-checkable values: bar i has open i, high i+0.5 ..."""
    t0 = ms(start)
    rows = [[t0 + i * MIN, str(100 + i), str(100 + i + 0.5), str(100 + i - 0.5),
             str(100 + i + 0.25), "1.5", t0 + i * MIN + MIN - 1, "10", i % 3 + 1, "0.5", "4", "0"]
            for i in range(n)]
    return rows_to_frame(rows)


# --------------------------------------------------------------------------- rows_to_frame

def test_rows_to_frame_parses_binance_rows_with_standard_dtypes():
    rows = [[1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
             "148976.11427815", 1499644799999, "2434.19055334", 308, "1756.87402397",
             "28.46694368", "17928899.62484339"]]          # the example row from Binance's docs
    df = rows_to_frame(rows)
    assert list(df.columns) == list(COLUMNS)
    assert df.index.name == "open_time" and str(df.index.tz) == "UTC"
    assert df.index[0] == pd.Timestamp(1499040000000, unit="ms", tz="UTC")
    assert df["open"].dtype == np.float64 and df["trades"].dtype == np.int64
    assert df["close_time"].dtype == np.int64
    row = df.iloc[0]
    assert row["high"] == 0.8 and row["close"] == 0.015771 and row["trades"] == 308
    assert row["close_time"] == 1499644799999 and row["taker_buy_quote_volume"] == 28.46694368


def test_rows_to_frame_empty_keeps_columns():
    df = rows_to_frame([])
    assert df.empty and list(df.columns) == list(COLUMNS) and df.index.name == "open_time"


@pytest.mark.parametrize("rows, words", [
    ([[1, "1", "1"]], r"rows\[0\] is invalid"),
    ([[1, "x", "1", "1", "1", "1", 2, "1", 3, "1", "1", "0"]], "number"),
])
def test_rows_to_frame_rejects_bad_rows(rows, words):
    with pytest.raises(ValueError, match=words):
        rows_to_frame(rows)


# --------------------------------------------------------------------------- intervals

def test_validate_interval_names_field_and_choices():
    assert validate_interval("8h") == "8h" and validate_interval("1M") == "1M"
    with pytest.raises(ValueError, match=r"interval='2m' is invalid.*1m, 3m"):
        validate_interval("2m")
    with pytest.raises(ValueError, match="tf='1W'"):
        validate_interval("1W", field="tf")


def test_bucket_start_weeks_begin_monday_and_8h_at_00_08_16():
    assert pd.Timestamp("2024-01-08").day_name() == "Monday"
    assert bucket_start(ms("2024-01-07 23:59"), "1w") == ms("2024-01-01")
    assert bucket_start(ms("2024-01-08 00:00"), "1w") == ms("2024-01-08")
    assert bucket_start(ms("2024-01-10 13:37"), "1w") == ms("2024-01-08")
    assert bucket_start(ms("2024-01-10 07:59"), "8h") == ms("2024-01-10 00:00")
    assert bucket_start(ms("2024-01-10 15:00"), "8h") == ms("2024-01-10 08:00")
    assert bucket_start(ms("2024-01-10 23:00"), "8h") == ms("2024-01-10 16:00")
    assert bucket_end(ms("2024-01-08"), "1w") == ms("2024-01-15") - 1
    assert bucket_end(ms("2024-02-01"), "1M") == ms("2024-03-01") - 1   # leap February
    assert INTERVAL_MS["15m"] == 15 * MIN


# --------------------------------------------------------------------------- resample

def test_resample_8h_and_week_boundaries_match_hand_built_candles():
    # 500 bars, 2024-01-07 15:50 .. 2024-01-08 00:09, cross the 16:00 8h open
    # on Sunday and Monday 00:00, which is both an 8h and a week boundary.
    df = one_minute_frame("2024-01-07 15:50", 500)     # last bar opens 2024-01-08 00:09
    assert df.index[-1] == pd.Timestamp("2024-01-08 00:09", tz="UTC")

    h8 = resample(df, "8h")
    assert list(h8.index) == [pd.Timestamp(t, tz="UTC") for t in
                              ("2024-01-07 08:00", "2024-01-07 16:00", "2024-01-08 00:00")]
    # bars 0..9 (15:50..15:59), 10..489 (16:00..23:59), 490..499 (00:00..00:09)
    expected = [(0, 9), (10, 489), (490, 499)]
    for row, (a, b) in zip(h8.itertuples(), expected):
        assert row.open == 100 + a and row.close == 100 + b + 0.25
        assert row.high == 100 + b + 0.5 and row.low == 100 + a - 0.5
        assert row.volume == pytest.approx(1.5 * (b - a + 1))
        assert row.trades == sum(i % 3 + 1 for i in range(a, b + 1))
        assert row.quote_volume == pytest.approx(10 * (b - a + 1))
    assert list(h8["close_time"]) == [ms("2024-01-07 16:00") - 1, ms("2024-01-08 00:00") - 1,
                                      ms("2024-01-08 08:00") - 1]

    w = resample(df, "1w")
    assert list(w.index) == [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-08", tz="UTC")]
    assert w["open"].tolist() == [100.0, 590.0]
    assert w["close"].tolist() == [589.25, 599.25]
    assert w["high"].tolist() == [589.5, 599.5] and w["low"].tolist() == [99.5, 589.5]
    assert w["close_time"].tolist() == [ms("2024-01-08") - 1, ms("2024-01-15") - 1]

    m15 = resample(df, "15m")
    assert m15.index[0] == pd.Timestamp("2024-01-07 15:45", tz="UTC")   # partial first bucket
    assert m15["open"].iloc[1] == 110 and m15["close"].iloc[1] == 124.25
    assert (m15["close_time"] - m15.index.asi8 // 1_000_000 == 15 * MIN - 1).all()


def test_resample_forming_candle_uses_candles_up_to_now():
    df = one_minute_frame("2024-01-07 23:40", 40)      # 23:40 .. 00:19
    now = ms("2024-01-08 00:07:30")                    # inside the 00:07 1m bar (index 27)
    f = resample(df, "15m", now_ms=now)
    assert f.index[-1] == pd.Timestamp("2024-01-08 00:00", tz="UTC")
    last = f.iloc[-1]
    assert last["open"] == 120 and last["close"] == 127.25 and last["high"] == 127.5
    assert last["volume"] == pytest.approx(1.5 * 8)    # 00:00..00:07 inclusive
    assert last["close_time"] == ms("2024-01-08 00:15") - 1   # like Binance: bucket end
    w = resample(df, "1w", now_ms=now)
    assert w.index[-1] == pd.Timestamp("2024-01-08", tz="UTC") and w["open"].iloc[-1] == 120
    assert w["close"].iloc[-1] == 127.25


def test_resample_rejects_impossible_sources_and_fills_missing_columns():
    df = one_minute_frame("2024-01-01", 30)
    with pytest.raises(ValueError, match="whole multiple"):
        resample(resample(df, "15m"), "5m", source_interval="15m")
    with pytest.raises(ValueError, match="interval='7m'"):
        resample(df, "7m")
    candles = make_candles(120)                        # OHLCV only
    out = resample(candles, "1h")
    assert len(out) == 2 and out["trades"].sum() == 0
    assert out["volume"].iloc[0] == pytest.approx(candles["volume"].iloc[:60].sum())


def test_resample_month_buckets_follow_the_calendar():
    df = normalize_frame(make_candles(3 * 24 * 60, start="2024-02-28 00:00"))
    out = resample(df, "1M")
    assert list(out.index) == [pd.Timestamp("2024-02-01", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC")]
    assert out["close_time"].iloc[0] == ms("2024-03-01") - 1
    assert out["high"].iloc[0] == df["high"].iloc[:2 * 24 * 60].max()


def test_normalize_frame_rejects_unsorted_and_missing_columns():
    c = make_candles(5)
    with pytest.raises(ValueError, match="strictly increasing"):
        normalize_frame(c.iloc[::-1])
    with pytest.raises(ValueError, match="'close' is required"):
        normalize_frame(c.drop(columns=["close"]))
    out = normalize_frame(c)
    assert out["close_time"].iloc[0] == ms("2024-01-01") + MIN - 1
