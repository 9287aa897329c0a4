"""Where the agent gets candles: Binance live, or archive files replayed through a clock.

Both implementations satisfy `MarketDataPort` and return the same frame shape (rl.market.candles), with
the last row being the FORMING candle as /fapi/v1/klines returns it, so the agent's code is
the same in paper, testnet, live, replay and backtest (parity).

Replay and the future: at world time T, ReplayMarketData shows the 1m candles closed by T plus
the 1m candle containing T as a PARTIAL candle whose open, high, low and close are all that
bar's open, with zero volume and trades. The archive only holds finished bars; showing the
bar's real high/low/close would hand the agent prices from up to a minute in the future.
Higher timeframes are formed from exactly what is visible (closed 1m bars + that partial bar),
so they cannot leak either. last_price is the close of the last closed 1m bar (the newest
price certainly known at T); only before the first bar closes is it the forming bar's open.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np
import pandas as pd

from rl.clock import Clock, SystemClock
from rl.errors import MarketUnavailable, NetworkError, RateLimitError
from rl.market.candles import (
    COLUMNS,
    MINUTE_MS,
    aggregate_arrays,
    bucket_end,
    bucket_start,
    frame_from_arrays,
    index_to_ms,
    normalize_frame,
    rows_to_frame,
    validate_interval,
)

KLINES_MAX = 1500
# Long candles barely move within a minute; caching them keeps a multi-symbol agent far below
# Binance's 2400 weight/min (klines cost 1/2/5/10 by limit: <100/<500/<=1000/>1000).
DEFAULT_CACHE_SECONDS: dict[str, float] = {
    "1h": 60.0, "2h": 60.0, "4h": 60.0, "6h": 60.0, "8h": 60.0, "12h": 60.0,
    "1d": 60.0, "3d": 60.0, "1w": 60.0, "1M": 60.0,
}
REPLAY_HINT = "Check your connection, or replay archive data with python -m web.app --replay PATH"
T = TypeVar("T")


@runtime_checkable
class MarketDataPort(Protocol):
    def klines(self, symbol: str, interval: str, limit: int = 500) -> pd.DataFrame:
        """Binance-shaped kline frame, oldest first; the last row is the forming candle."""

    def last_price(self, symbol: str) -> float:
        """Latest traded price."""

    def now_ms(self) -> int:
        """The world's time: wall clock live, the replay clock in replay."""


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 1 <= limit <= KLINES_MAX:
        raise ValueError(f"limit={limit!r} is invalid: it must be an integer 1..{KLINES_MAX}")
    return int(limit)


def _iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


# ----------------------------------------------------------------------------- live

class LiveMarketData:
    """Mainnet klines through client.BinanceClient; long intervals cached briefly.

    A cached frame is reused for at most `cache_seconds[interval]` seconds and never across a
    candle boundary of its interval, so a new 8h/1w candle shows up on the next call after it
    opens; within the window the forming candle may be up to that many seconds old.
    """

    def __init__(self, client, clock: Clock | None = None,
                 cache_seconds: Mapping[str, float] | None = None) -> None:
        self._client = client
        self._clock = clock or SystemClock()
        self._ttl = dict(DEFAULT_CACHE_SECONDS if cache_seconds is None else cache_seconds)
        for iv, sec in self._ttl.items():
            validate_interval(iv, "cache_seconds key")
            if sec < 0:
                raise ValueError(f"cache_seconds[{iv!r}]={sec!r} is invalid: it must be >= 0")
        self._cache: dict[tuple[str, str], tuple[int, int, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    @property
    def client(self):
        """The Binance client behind this port (live paper reads exchangeInfo through it)."""
        return self._client

    @property
    def url(self) -> str:
        return getattr(self._client, "market_url", "https://fapi.binance.com")

    def now_ms(self) -> int:
        return self._clock.now_ms()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one client call, turning 'cannot reach Binance' into MarketUnavailable."""
        try:
            return fn()
        except RateLimitError as exc:
            raise MarketUnavailable(
                f"Binance ({self.url}) rate limit reached: no requests for "
                f"{exc.retry_after:.0f} s. The agent will retry after that.") from exc
        except NetworkError as exc:
            reason = exc.msg or str(exc)
            raise MarketUnavailable(f"Binance ({self.url}) is unreachable: {reason}. "
                                    f"{REPLAY_HINT}") from exc

    def klines(self, symbol: str, interval: str, limit: int = 500) -> pd.DataFrame:
        validate_interval(interval)
        limit = _check_limit(limit)
        if not isinstance(symbol, str) or not symbol.strip():
            raise ValueError(f"symbol={symbol!r} is invalid: it must be a symbol such as BTCUSDT")
        key = (symbol, interval)
        ttl_ms = int(self._ttl.get(interval, 0.0) * 1000)
        now = self._clock.now_ms()
        if ttl_ms > 0:
            with self._lock:
                hit = self._cache.get(key)
            if hit is not None:
                fetched, cached_limit, frame = hit
                if (cached_limit >= limit and now - fetched < ttl_ms
                        and bucket_start(now, interval) == bucket_start(fetched, interval)):
                    return frame.iloc[-limit:].copy()
        rows = self._call(lambda: self._client.klines(symbol, interval, limit=limit))
        frame = rows_to_frame(rows)
        if ttl_ms > 0:
            with self._lock:
                self._cache[key] = (now, limit, frame)
        return frame.copy() if ttl_ms > 0 else frame

    def last_price(self, symbol: str) -> float:
        return float(self._call(lambda: self._client.ticker_price(symbol)))


# ----------------------------------------------------------------------------- replay

class _Series:
    """One symbol's 1m arrays plus its higher timeframes, resampled once over all the data."""

    def __init__(self, frame: pd.DataFrame) -> None:
        norm = frame if set(COLUMNS) <= set(frame.columns) else normalize_frame(frame, "1m")
        self.open_ms = index_to_ms(norm.index).copy()
        if len(self.open_ms) == 0:
            raise ValueError("frames_1m is invalid: a symbol has no candles")
        if len(self.open_ms) > 1 and not (np.diff(self.open_ms) > 0).all():
            raise ValueError("frames_1m is invalid: open_time must be strictly increasing")
        if (self.open_ms % MINUTE_MS).any():
            raise ValueError("frames_1m is invalid: open times must be whole minutes (1m candles)")
        self.cols = {c: np.ascontiguousarray(norm[c].to_numpy(),
                                             dtype=np.int64 if c in ("trades", "close_time") else np.float64)
                     for c in COLUMNS}
        self.tf: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}

    @property
    def start_ms(self) -> int:
        return int(self.open_ms[0])

    @property
    def end_ms(self) -> int:
        """Close time of the last 1m bar."""
        return int(self.open_ms[-1]) + MINUTE_MS - 1

    def higher(self, interval: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        got = self.tf.get(interval)
        if got is None:
            got = self.tf[interval] = aggregate_arrays(self.open_ms, self.cols, interval)
        return got


class ReplayMarketData:
    """Archive 1m candles played through a clock, shaped exactly like live klines.

    `frames_1m` maps symbol -> 1m frame (rl.market.archive.load_archive(...).frame, or any OHLC frame;
    missing volume columns are taken as 0). 15m/8h/1w are resampled once here; a klines() call
    only slices precomputed arrays with searchsorted and builds the one forming candle.
    Before a symbol's first bar, calls raise MarketUnavailable; after the last bar everything
    stays visible (no forming candle any more) and `finished` turns True.
    """

    PRECOMPUTED = ("15m", "8h", "1w")

    def __init__(self, frames_1m: Mapping[str, pd.DataFrame], clock: Clock) -> None:
        if not frames_1m:
            raise ValueError("frames_1m is invalid: give at least one symbol's 1m candles")
        self._clock = clock
        self._series: dict[str, _Series] = {}
        for symbol, frame in frames_1m.items():
            try:
                series = _Series(frame)
            except ValueError as exc:
                raise ValueError(f"{exc} (symbol {symbol})") from None
            for iv in self.PRECOMPUTED:
                series.higher(iv)
            self._series[symbol] = series
        self._lock = threading.Lock()

    # -- facts about the data
    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._series)

    @property
    def start_ms(self) -> int:
        """Earliest open time over all symbols (a natural replay clock start)."""
        return min(s.start_ms for s in self._series.values())

    @property
    def end_ms(self) -> int:
        """Latest close time over all symbols."""
        return max(s.end_ms for s in self._series.values())

    @property
    def finished(self) -> bool:
        """True once the clock is past the last bar of every symbol: nothing new will come."""
        return self._clock.now_ms() > self.end_ms

    def now_ms(self) -> int:
        return self._clock.now_ms()

    # -- the port
    def _get(self, symbol: str, now: int) -> _Series:
        series = self._series.get(symbol)
        if series is None:
            raise ValueError(f"symbol={symbol!r} is invalid: the replay data holds "
                             f"{', '.join(self._series)} only")
        if now < series.start_ms:
            raise MarketUnavailable(f"replay clock {_iso(now)} is before the archive data for "
                                    f"{symbol} starts ({_iso(series.start_ms)}): nothing to show yet")
        return series

    @staticmethod
    def _visible(series: _Series, now: int) -> tuple[int, int | None]:
        """(number of closed 1m bars at `now`, index of the forming bar or None)."""
        n_closed = int(np.searchsorted(series.open_ms, now - MINUTE_MS, side="right"))
        forming = n_closed if n_closed < len(series.open_ms) and series.open_ms[n_closed] <= now else None
        return n_closed, forming

    def klines(self, symbol: str, interval: str, limit: int = 500) -> pd.DataFrame:
        validate_interval(interval)
        limit = _check_limit(limit)
        now = self._clock.now_ms()
        s = self._get(symbol, now)
        n_closed, forming = self._visible(s, now)
        if interval == "1m":
            lo = max(0, n_closed - (limit - (forming is not None)))
            open_ms, cols = s.open_ms[lo:n_closed], {c: a[lo:n_closed] for c, a in s.cols.items()}
            if forming is not None:
                open_ms, cols = _append(open_ms, cols, *self._partial(s, forming, interval))
            return frame_from_arrays(open_ms, cols)
        if interval not in s.tf:
            with self._lock:
                s.higher(interval)
        h_open, h_cols = s.tf[interval]
        b = bucket_start(now, interval)
        done = int(np.searchsorted(h_open, b, side="left"))
        first = int(np.searchsorted(s.open_ms, b, side="left"))   # first 1m bar of now's bucket
        has_forming = first < n_closed or forming is not None
        lo = max(0, done - (limit - has_forming))
        open_ms, cols = h_open[lo:done], {c: a[lo:done] for c, a in h_cols.items()}
        if has_forming:
            open_ms, cols = _append(open_ms, cols, *self._forming_bucket(s, b, first, n_closed,
                                                                         forming, interval))
        return frame_from_arrays(open_ms, cols)

    @staticmethod
    def _partial(s: _Series, i: int, interval: str) -> tuple[int, dict[str, float]]:
        """The open-only partial 1m bar i (see module docstring: no future prices)."""
        o = float(s.cols["open"][i])
        t = int(s.open_ms[i])
        return t, {"open": o, "high": o, "low": o, "close": o, "volume": 0.0, "quote_volume": 0.0,
                   "trades": 0, "taker_buy_volume": 0.0, "taker_buy_quote_volume": 0.0,
                   "close_time": int(bucket_end(t, interval))}

    @staticmethod
    def _forming_bucket(s: _Series, b: int, first: int, n_closed: int, forming: int | None,
                        interval: str) -> tuple[int, dict[str, float]]:
        """Forming higher-tf candle from the bucket's closed 1m bars plus the partial bar."""
        sl = slice(first, n_closed)
        c = s.cols
        if n_closed > first:
            row = {"open": float(c["open"][first]), "high": float(c["high"][sl].max()),
                   "low": float(c["low"][sl].min()), "close": float(c["close"][n_closed - 1])}
            for name in ("volume", "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume"):
                # fsum like rl.market.candles.aggregate_arrays: the same volume whatever the order
                row[name] = int(c[name][sl].sum()) if name == "trades" else math.fsum(c[name][sl])
            if forming is not None:
                o = float(c["open"][forming])
                row["high"], row["low"], row["close"] = max(row["high"], o), min(row["low"], o), o
        else:
            assert forming is not None, "only called for a bucket with a closed or a forming bar"
            row = ReplayMarketData._partial(s, forming, interval)[1]
        row["close_time"] = int(bucket_end(b, interval))
        return b, row

    def last_price(self, symbol: str) -> float:
        now = self._clock.now_ms()
        s = self._get(symbol, now)
        n_closed, forming = self._visible(s, now)
        if n_closed > 0:
            return float(s.cols["close"][n_closed - 1])
        return float(s.cols["open"][forming])


def _append(open_ms: np.ndarray, cols: dict[str, np.ndarray], t: int,
            row: Mapping[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    out = {name: np.concatenate((a, np.asarray([row[name]], dtype=a.dtype))) for name, a in cols.items()}
    return np.concatenate((open_ms, np.asarray([t], dtype=np.int64))), out
