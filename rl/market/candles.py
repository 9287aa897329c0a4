"""Kline frames and resampling, pure (no I/O).

One frame shape is used everywhere (live klines, archive files, replay, backtest), so the
analysis code never has to care where candles came from:

    index   UTC DatetimeIndex (ns resolution) named ``open_time``
    float   open high low close volume quote_volume taker_buy_volume taker_buy_quote_volume
    int64   close_time (ms since epoch, = open + interval - 1, as Binance sends it), trades

Higher timeframes are formed from 1m candles exactly as Binance forms them: buckets are aligned
to the Unix epoch in UTC (so 8h candles open at 00:00, 08:00, 16:00 UTC and 1d at 00:00 UTC),
except weeks, which open on Monday 00:00 UTC, and months, which open on the 1st 00:00 UTC.
Open/high/low/close are first/max/min/last; volumes and trade counts are summed (volumes with
math.fsum: correctly rounded, so any other code forming the same candle gets the same bits).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import overload

import numpy as np
import pandas as pd

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
# 1970-01-01 was a Thursday; the first Monday 00:00 UTC after the epoch is 4 days later.
_WEEK_ANCHOR_MS = 4 * DAY_MS

# Fixed-length Binance kline intervals. "1M" (calendar month) is supported too but has no
# fixed length, so it is not in this table; use `interval_ms()` / `bucket_start()`.
INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE_MS, "3m": 3 * MINUTE_MS, "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS, "1h": HOUR_MS, "2h": 2 * HOUR_MS, "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS, "8h": 8 * HOUR_MS, "12h": 12 * HOUR_MS, "1d": DAY_MS,
    "3d": 3 * DAY_MS, "1w": WEEK_MS,
}
INTERVALS: tuple[str, ...] = tuple(INTERVAL_MS) + ("1M",)

FLOAT_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume",
                 "taker_buy_volume", "taker_buy_quote_volume")
INT_COLUMNS = ("close_time", "trades")
# Binance's row order (minus open_time, which is the index, and the trailing "ignore").
COLUMNS = ("open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
           "taker_buy_volume", "taker_buy_quote_volume")
# summed when candles are aggregated: the volume, and the detail columns beside it (which the
# analysis never reads: a backtest aggregates them as integer zeros, for free)
DETAIL_SUM_COLUMNS = ("quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume")
_SUM_COLUMNS = ("volume", *DETAIL_SUM_COLUMNS)
_INDEX_DTYPE = pd.DatetimeTZDtype("ns", "UTC")


def validate_interval(interval: str, field: str = "interval") -> str:
    """Return `interval` if Binance knows it, else raise ValueError naming the field and rule."""
    if interval not in INTERVALS:
        raise ValueError(f"{field}={interval!r} is invalid: it must be one of "
                         f"{', '.join(INTERVALS)} (case matters: 1m is a minute, 1M a month)")
    return interval


def interval_ms(interval: str) -> int:
    """Length of a fixed interval in ms. "1M" has no fixed length and raises ValueError."""
    validate_interval(interval)
    if interval == "1M":
        raise ValueError("interval='1M' has no fixed length in ms (months differ)")
    return INTERVAL_MS[interval]


@overload
def bucket_start(open_ms: int | np.integer, interval: str) -> int: ...
@overload
def bucket_start(open_ms: np.ndarray, interval: str) -> np.ndarray: ...
@overload
def bucket_start(open_ms: np.ndarray | int, interval: str) -> np.ndarray | int: ...
def bucket_start(open_ms: np.ndarray | int | np.integer, interval: str) -> np.ndarray | int:
    """Open time (ms) of the `interval` candle that contains each time in `open_ms`."""
    validate_interval(interval)
    scalar = np.ndim(open_ms) == 0
    t = np.asarray(open_ms, dtype=np.int64)
    if interval == "1M":
        out = t.astype("datetime64[ms]").astype("datetime64[M]").astype("datetime64[ms]").astype(np.int64)
    elif interval == "1w":
        out = (t - _WEEK_ANCHOR_MS) // WEEK_MS * WEEK_MS + _WEEK_ANCHOR_MS
    else:
        step = INTERVAL_MS[interval]
        out = t // step * step
    return int(out) if scalar else out


@overload
def bucket_end(start_ms: int, interval: str) -> int: ...
@overload
def bucket_end(start_ms: np.ndarray, interval: str) -> np.ndarray: ...
@overload
def bucket_end(start_ms: np.ndarray | int, interval: str) -> np.ndarray | int: ...
def bucket_end(start_ms: np.ndarray | int, interval: str) -> np.ndarray | int:
    """Close time (ms) of candles opening at `start_ms`: next open - 1, as Binance reports it."""
    if interval == "1M":
        scalar = np.ndim(start_ms) == 0
        t = np.asarray(start_ms, dtype=np.int64).astype("datetime64[ms]").astype("datetime64[M]")
        out = (t + 1).astype("datetime64[ms]").astype(np.int64) - 1
        return int(out) if scalar else out
    return start_ms + interval_ms(interval) - 1


def ms_to_index(open_ms: np.ndarray) -> pd.DatetimeIndex:
    """UTC DatetimeIndex named open_time from int64 ms (no copy of the data beyond one multiply)."""
    ns = np.asarray(open_ms, dtype=np.int64) * 1_000_000
    # _simple_new: pandas' own no-copy, no-validation constructor (the stubs leave it out)
    array = pd.arrays.DatetimeArray._simple_new(ns.view("M8[ns]"), dtype=_INDEX_DTYPE)  # type: ignore[attr-defined]
    return pd.DatetimeIndex(array, name="open_time")


def index_to_ms(index: pd.Index) -> np.ndarray:
    """int64 ms since epoch for a DatetimeIndex of any resolution (naive = UTC)."""
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"index is invalid: it must be a DatetimeIndex of candle open times, "
                         f"got {type(index).__name__}")
    return index.as_unit("ms").asi8.astype(np.int64, copy=False)


def frame_from_arrays(open_ms: np.ndarray, columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Build the standard kline frame from arrays (all of COLUMNS must be present)."""
    data = {}
    for name in COLUMNS:
        arr = columns[name]
        data[name] = np.asarray(arr, dtype=np.int64 if name in INT_COLUMNS else np.float64)
    return pd.DataFrame(data, index=ms_to_index(open_ms), copy=False)


def empty_frame() -> pd.DataFrame:
    return frame_from_arrays(np.empty(0, np.int64), {c: np.empty(0) for c in COLUMNS})


def rows_to_frame(rows: Sequence[Sequence]) -> pd.DataFrame:
    """Raw Binance kline rows (REST or archive: numbers as strings or numbers) -> kline frame.

    Row layout: [openTime, open, high, low, close, volume, closeTime, quoteVolume, trades,
    takerBuyBase, takerBuyQuote, ignore]; the trailing "ignore" is optional.
    """
    if len(rows) == 0:
        return empty_frame()
    for i, row in enumerate(rows):
        if len(row) < 11:
            raise ValueError(f"rows[{i}] is invalid: a kline row needs at least 11 fields "
                             f"(openTime..takerBuyQuote), got {len(row)}")
    try:
        table = np.array([row[:11] for row in rows], dtype=object)
        open_ms = table[:, 0].astype(np.float64).astype(np.int64)
        floats = table[:, [1, 2, 3, 4, 5, 7, 9, 10]].astype(np.float64)
        close_ms = table[:, 6].astype(np.float64).astype(np.int64)
        trades = table[:, 8].astype(np.float64).astype(np.int64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rows are invalid: every kline field must be a number ({exc})") from None
    cols: dict[str, np.ndarray] = {name: floats[:, j] for j, name in enumerate(
        ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume",
         "taker_buy_quote_volume"))}
    cols["close_time"] = close_ms
    cols["trades"] = trades
    return frame_from_arrays(open_ms, cols)


def normalize_frame(frame: pd.DataFrame, interval: str = "1m") -> pd.DataFrame:
    """Bring any OHLC frame to the standard shape, filling what is missing.

    Generated test candles (tests/conftest.make_candles) have only OHLCV; replay and backtest
    still need every column, so missing volume-like columns become 0 and close_time becomes
    open + interval - 1. Rejects unsorted or duplicated open times with a clear error.
    """
    validate_interval(interval)
    for name in ("open", "high", "low", "close"):
        if name not in frame.columns:
            raise ValueError(f"frame is invalid: column {name!r} is required")
    open_ms = index_to_ms(frame.index)
    if len(open_ms) > 1 and not (np.diff(open_ms) > 0).all():
        raise ValueError("frame is invalid: open_time must be strictly increasing (sort it, drop duplicates)")
    n = len(frame)
    cols: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        if name in frame.columns:
            cols[name] = frame[name].to_numpy()
        elif name == "close_time":
            cols[name] = np.asarray(bucket_end(open_ms, interval), dtype=np.int64)
        else:
            cols[name] = np.zeros(n)
    return frame_from_arrays(open_ms, cols)


def aggregate_arrays(open_ms: np.ndarray, cols: Mapping[str, np.ndarray],
                     interval: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Group sorted finer candles into `interval` buckets; the core of `resample` (numpy only)."""
    n = len(open_ms)
    if n == 0:
        return np.empty(0, np.int64), {c: np.empty(0, np.int64 if c in INT_COLUMNS else np.float64)
                                       for c in COLUMNS}
    buckets = bucket_start(open_ms, interval)
    starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    lasts = np.concatenate((starts[1:] - 1, [n - 1]))
    out_ms = buckets[starts]
    out = {
        "open": cols["open"][starts],
        "high": np.maximum.reduceat(cols["high"], starts),
        "low": np.minimum.reduceat(cols["low"], starts),
        "close": cols["close"][lasts],
        "close_time": np.asarray(bucket_end(out_ms, interval), dtype=np.int64),
    }
    for name in _SUM_COLUMNS:
        col = cols[name]
        if col.dtype.kind == "f":
            out[name] = _segment_fsum(col, starts, lasts)
        else:                           # integer counts: any order gives the exact sum
            out[name] = np.add.reduceat(col, starts)
    return out_ms, out


def _segment_fsum(values: np.ndarray, starts: np.ndarray, lasts: np.ndarray) -> np.ndarray:
    """math.fsum of each segment values[starts[k]:lasts[k]+1].

    Float sums depend on the order of the additions and numpy's reduceat adds pairwise, so a
    volume formed here would differ in the last bits from one formed bar by bar (the agent's
    own 15m/8h/1w candles in a backtest, rl.agent.agent.TradingAgent.step). fsum is the correctly
    rounded sum, independent of order and grouping, so both sides agree to the bit."""
    vals = values.tolist()
    fsum = math.fsum
    return np.fromiter((fsum(vals[a:b + 1]) for a, b in zip(starts.tolist(), lasts.tolist())),
                       dtype=np.float64, count=len(starts))


def resample(frame: pd.DataFrame, interval: str, now_ms: int | None = None,
             source_interval: str = "1m") -> pd.DataFrame:
    """Form `interval` candles from finer `source_interval` candles, as Binance forms them.

    With `now_ms`, the world is cut at that instant: source candles opening after it are
    ignored, so the last bucket (the one containing now) is the FORMING candle, built from the
    candles up to now. The source candle forming at now counts with whatever values it holds:
    live that is Binance's partial 1m candle; in replay it is the open-only partial candle.
    The forming candle's close_time is still its bucket's end, exactly like /fapi/v1/klines.
    """
    validate_interval(interval)
    validate_interval(source_interval, "source_interval")
    if source_interval == "1M" or (interval != "1M" and
                                   interval_ms(interval) % interval_ms(source_interval)):
        raise ValueError(f"interval={interval!r} is invalid: it cannot be formed from "
                         f"{source_interval} candles (it must be a whole multiple of it)")
    if interval == "1M" and DAY_MS % interval_ms(source_interval):
        raise ValueError(f"interval='1M' is invalid: it cannot be formed from {source_interval} candles")
    norm = frame if set(COLUMNS) <= set(frame.columns) else normalize_frame(frame, source_interval)
    open_ms = index_to_ms(norm.index)
    if len(open_ms) > 1 and not (np.diff(open_ms) > 0).all():
        raise ValueError("frame is invalid: open_time must be strictly increasing (sort it, drop duplicates)")
    cols = {c: norm[c].to_numpy() for c in COLUMNS}
    if now_ms is not None:
        keep = int(np.searchsorted(open_ms, int(now_ms), side="right"))
        open_ms = open_ms[:keep]
        cols = {c: a[:keep] for c, a in cols.items()}
    out_ms, out = aggregate_arrays(open_ms, cols, interval)
    return frame_from_arrays(out_ms, out)

