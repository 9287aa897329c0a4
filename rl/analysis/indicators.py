"""Technical indicators, vectorized, following TradingView / TA-Lib conventions.

Every function takes numpy arrays or pandas Series and returns the same length: a Series
(same index) when the first price input is a Series, otherwise a float ndarray. Values are
NaN during warm-up. Why these conventions: a trader comparing the dashboard with their own
charts must see the same numbers, so the seeds and smoothing constants are the ones the
charting packages use, and each docstring states the first defined index.

Recursive filters (EMA, Wilder's RMA, KDJ smoothing) are a tight Python loop over a list:
on 500 candles that is cheaper than pandas' ewm call overhead, and it lets
`IndicatorState` (the O(1) per-candle path used by the backtest) apply literally the same
recurrence, so the incremental result equals a fresh computation.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import pandas as pd

NAN = float("nan")
DAY_MS = 86_400_000


def _arr(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name}: must be one-dimensional, got shape {a.shape}")
    return a


def _period(p: Any, name: str, minimum: int = 1) -> int:
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {p!r}")
    return int(p)


def _same_len(**arrays: np.ndarray) -> None:
    lens = {k: len(v) for k, v in arrays.items()}
    if len(set(lens.values())) > 1:
        raise ValueError(f"inputs must have the same length, got {lens}")


def _wrap(template: Any, out: np.ndarray) -> Any:
    if isinstance(template, pd.Series):
        return pd.Series(out, index=template.index)
    return out


def _first_valid(a: np.ndarray) -> int:
    ok = np.flatnonzero(~np.isnan(a))
    return int(ok[0]) if len(ok) else len(a)


def _seeded_recursion(x: np.ndarray, period: int, alpha: float) -> np.ndarray:
    """y = alpha*x + (1-alpha)*y_prev, seeded with the SMA of the first `period` valid values.

    Leading NaNs are skipped (so MACD's signal line can run on the MACD series); the first
    output sits at first_valid + period - 1, exactly where TA-Lib and TradingView put it.
    """
    n = len(x)
    out = np.full(n, NAN)
    f = 0 if n and x[0] == x[0] else _first_valid(x)    # (x[0] == x[0]: not NaN, the usual case)
    if n - f < period:
        return out
    y = seed = float(x[f:f + period].sum() / period)    # = np.mean, without its per-call overhead
    b = 1.0 - alpha
    # the same multiply-adds in the same order as a plain loop, as a comprehension (~2x faster)
    res = [y := alpha * v + b * y for v in x[f + period:].tolist()]
    out[f + period - 1] = seed
    out[f + period:] = res
    return out


def ema(close: Any, period: int) -> Any:
    """Exponential moving average, alpha = 2/(period+1).

    Convention (TA-Lib default, TradingView ta.ema): seeded with the simple average of the
    first `period` values; first defined value at index period-1; NaN before.
    """
    period = _period(period, "period")
    c = _arr(close, "close")
    return _wrap(close, _seeded_recursion(c, period, 2.0 / (period + 1)))


def rma(x: Any, period: int) -> Any:
    """Wilder's moving average (TradingView ta.rma), alpha = 1/period, SMA-seeded."""
    period = _period(period, "period")
    a = _arr(x, "x")
    return _wrap(x, _seeded_recursion(a, period, 1.0 / period))


def _rsi_from_avgs(ag: np.ndarray, al: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 100.0 - 100.0 / (1.0 + ag / al)
    r = np.where((al == 0) & (ag > 0), 100.0, r)
    r = np.where((al == 0) & (ag == 0), 50.0, r)
    return np.where(np.isnan(ag) | np.isnan(al), NAN, r)


def rsi(close: Any, period: int = 14) -> Any:
    """Wilder's RSI (TA-Lib RSI, TradingView ta.rsi).

    Changes d_t = close_t - close_{t-1}; average gain/loss are Wilder RMAs seeded with the
    plain mean of the first `period` changes, so the first value is at index `period`.
    RSI = 100 - 100/(1 + avg_gain/avg_loss); 100 when there were no losses, and 50 (neutral)
    for a perfectly flat window, where TA-Lib says 0 and TradingView 100: neither is a
    signal, and 50 keeps the mirror property RSI(upside-down) = 100 - RSI.
    """
    period = _period(period, "period")
    c = _arr(close, "close")
    d = np.diff(c, prepend=NAN)
    ag = _seeded_recursion(np.where(np.isnan(d), NAN, np.maximum(d, 0.0)), period, 1.0 / period)
    al = _seeded_recursion(np.where(np.isnan(d), NAN, np.maximum(-d, 0.0)), period, 1.0 / period)
    return _wrap(close, _rsi_from_avgs(ag, al))


def macd(close: Any, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[Any, Any, Any]:
    """MACD line = EMA(fast) - EMA(slow); signal = EMA(signal) of the MACD line; hist = macd - signal.

    Convention (TradingView ta.macd): each EMA SMA-seeded on its own, so the MACD line starts
    at index slow-1 (25) and signal/hist at slow+signal-2 (33). TA-Lib reports its MACD from
    index 33 only and seeds the fast EMA later; the two agree after a few dozen candles.
    """
    fast, slow, signal = (_period(fast, "fast"), _period(slow, "slow"), _period(signal, "signal"))
    if fast >= slow:
        raise ValueError(f"fast: must be smaller than slow ({fast} >= {slow})")
    c = _arr(close, "close")
    line = _seeded_recursion(c, fast, 2.0 / (fast + 1)) - _seeded_recursion(c, slow, 2.0 / (slow + 1))
    sig = _seeded_recursion(line, signal, 2.0 / (signal + 1))
    hist = line - sig
    return _wrap(close, line), _wrap(close, sig), _wrap(close, hist)


def _rolling_mean_std(c: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(c)
    mean = np.full(n, NAN)
    std = np.full(n, NAN)
    if n >= period:
        w = np.lib.stride_tricks.sliding_window_view(c, period)
        m = w.mean(axis=1)
        mean[period - 1:] = m
        # two-pass (x - mean)^2 rather than E[x^2]-E[x]^2: no cancellation on large prices
        std[period - 1:] = np.sqrt(((w - m[:, None]) ** 2).mean(axis=1))
    return mean, std


def bollinger(close: Any, period: int = 20, k: float = 2.0) -> tuple[Any, Any, Any]:
    """Bollinger Bands: middle = SMA(period), bands = middle +/- k * population std.

    Convention (TradingView ta.bb, TA-Lib BBANDS): standard deviation with ddof=0 over the
    same window; first value at index period-1.
    """
    period = _period(period, "period")
    if not (isinstance(k, (int, float)) and math.isfinite(k) and k > 0):
        raise ValueError(f"k: must be a positive finite number, got {k!r}")
    c = _arr(close, "close")
    mid, sd = _rolling_mean_std(c, period)
    return _wrap(close, mid + k * sd), _wrap(close, mid), _wrap(close, mid - k * sd)


def true_range(high: Any, low: Any, close: Any) -> np.ndarray:
    """max(high-low, |high-prev_close|, |low-prev_close|); NaN on the first candle (no prev close)."""
    h, l, c = _arr(high, "high"), _arr(low, "low"), _arr(close, "close")
    _same_len(high=h, low=l, close=c)
    pc = np.concatenate([[NAN], c[:-1]])
    tr = np.maximum(h - l, np.maximum(np.abs(h - pc), np.abs(l - pc)))
    if len(tr):
        tr[0] = NAN
    return tr


def atr(high: Any, low: Any, close: Any, period: int = 14) -> Any:
    """Average True Range, Wilder smoothing (TA-Lib ATR).

    The first true range needs a previous close, so the seed is the mean of TR[1..period]
    and the first value is at index `period`. (TradingView's ta.atr uses high-low for the
    very first candle and starts one candle earlier; the gap decays as (13/14)^n.)
    """
    period = _period(period, "period")
    tr = true_range(high, low, close)
    return _wrap(high, _seeded_recursion(tr, period, 1.0 / period))


def forward_extreme(x: np.ndarray, k: int, fn, fill: float) -> np.ndarray:
    """fn-extreme of x[i:i+k] for every i (past the end counts as `fill`), by doubling
    widths 1, 2, 4, ... then one shifted combine: exact (max/min only compare) and a few
    vector ops instead of a k-wide sliding window."""
    n = len(x)
    cur = np.concatenate([x, np.full(k - 1, fill)])   # cur[i] = extreme of x[i:i+width]
    width = 1
    while width * 2 <= k:
        cur = fn(cur[:-width], cur[width:])
        width *= 2
    if width < k:                                      # [i, i+width) and [i+k-width, i+k)
        cur = fn(cur[:n], cur[k - width:k - width + n])
    return cur[:n]


def _rolling_extreme(a: np.ndarray, n: int, fn: np.ufunc) -> np.ndarray:
    """Rolling max/min (fn = np.maximum/np.minimum) over windows of n, NaN before index n-1:
    the forward extreme of each window's first candle (exact, NaN-propagating like np.max)."""
    m = len(a)
    out = np.full(m, NAN)
    if m >= n:
        out[n - 1:] = forward_extreme(a, n, fn, -np.inf if fn is np.maximum else np.inf)[:m - n + 1]
    return out


def kdj(high: Any, low: Any, close: Any, n: int = 9, m1: int = 3, m2: int = 3) -> tuple[Any, Any, Any]:
    """KDJ stochastic, the convention of Chinese trading software (通达信 / 同花顺).

    RSV = (C - LLV(L,n)) / (HHV(H,n) - LLV(L,n)) * 100 (50 when the range is zero);
    K = SMA(RSV, m1, 1) = ((m1-1)*K_prev + RSV)/m1;  D = SMA(K, m2, 1);  J = 3K - 2D.
    K and D start from 50 on the candle before the first RSV, so K, D, J are defined from
    index n-1 onward.
    """
    n, m1, m2 = _period(n, "n"), _period(m1, "m1"), _period(m2, "m2")
    h, l, c = _arr(high, "high"), _arr(low, "low"), _arr(close, "close")
    _same_len(high=h, low=l, close=c)
    hh = _rolling_extreme(h, n, np.maximum)
    ll = _rolling_extreme(l, n, np.minimum)
    rng = hh - ll
    with np.errstate(divide="ignore", invalid="ignore"):
        rsv = np.where(rng > 0, (c - ll) / rng * 100.0, 50.0)
    rsv[np.isnan(hh)] = NAN
    k_out = np.full(len(c), NAN)
    d_out = np.full(len(c), NAN)
    if len(c) >= n:
        # K depends on RSV only and D on K only, so each is one comprehension with the same
        # operations in the same order as the textbook loop (identical floats, ~2x faster)
        kv, dv = 50.0, 50.0
        a1, a2 = m1 - 1, m2 - 1
        ks = [kv := (a1 * kv + r) / m1 for r in rsv[n - 1:].tolist()]
        k_out[n - 1:] = ks
        d_out[n - 1:] = [dv := (a2 * dv + k) / m2 for k in ks]
    return _wrap(high, k_out), _wrap(high, d_out), _wrap(high, 3.0 * k_out - 2.0 * d_out)


def _times_ms(open_time: Any, template: Any, n: int) -> np.ndarray:
    if open_time is None:
        idx = getattr(template, "index", None)
        if not isinstance(idx, pd.DatetimeIndex):
            raise ValueError("open_time: required unless the inputs are Series with a DatetimeIndex")
        open_time = idx
    if isinstance(open_time, (pd.DatetimeIndex, pd.Series)) and (
            isinstance(open_time, pd.DatetimeIndex) or pd.api.types.is_datetime64_any_dtype(open_time)):
        t = pd.DatetimeIndex(open_time)
        if t.tz is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        a = np.asarray(t.as_unit("ms").asi8, dtype=np.int64)
    else:
        a = np.asarray(open_time, dtype=np.int64)
    if len(a) != n:
        raise ValueError(f"open_time: length {len(a)} differs from the price inputs ({n})")
    return a


def vwap(high: Any, low: Any, close: Any, volume: Any, open_time: Any = None) -> Any:
    """Session VWAP resetting at 00:00 UTC (TradingView "VWAP", anchor = Session).

    VWAP_t = sum(hlc3 * volume) / sum(volume) over the candles of the current UTC day, where
    a candle belongs to the day of its open time and hlc3 = (high+low+close)/3. No warm-up;
    a day's first candle gives its own hlc3. On 1w candles every bar is its own session.
    NaN while the session's volume is still zero. `open_time`: ms since epoch or datetimes;
    taken from a Series' DatetimeIndex when omitted. Note the first session in a window may
    be partial when the window starts after 00:00.
    """
    h, l, c, v = _arr(high, "high"), _arr(low, "low"), _arr(close, "close"), _arr(volume, "volume")
    _same_len(high=h, low=l, close=c, volume=v)
    t = _times_ms(open_time, high, len(h))
    return _wrap(high, _vwap_arrays(h, l, c, v, t))


def _vwap_arrays(h: np.ndarray, l: np.ndarray, c: np.ndarray, v: np.ndarray, t: np.ndarray) -> np.ndarray:
    n = len(h)
    if n == 0:
        return np.full(0, NAN)
    day = t // DAY_MS
    pv = np.cumsum((h + l + c) / 3.0 * v)
    cv = np.cumsum(v)
    starts = np.flatnonzero(np.concatenate([[True], day[1:] != day[:-1]]))
    seg = np.repeat(starts, np.diff(np.concatenate([starts, [n]])))
    base_pv = np.where(seg > 0, pv[seg - 1], 0.0)
    base_v = np.where(seg > 0, cv[seg - 1], 0.0)
    sv = cv - base_v
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sv > 0, (pv - base_pv) / np.where(sv > 0, sv, 1.0), NAN)


# ----------------------------------------------------------------------------------------
# O(1) per-candle path
# ----------------------------------------------------------------------------------------
class _Seeded:
    """One SMA-seeded recursion stepped a value at a time (same maths as _seeded_recursion)."""

    __slots__ = ("period", "alpha", "buf", "value")
    buf: list[float]             # the values before the seed (the first `period` of them)

    def __init__(self, period: int, alpha: float) -> None:
        self.period, self.alpha, self.buf, self.value = period, alpha, [], NAN

    def push(self, x: float) -> float:
        if x != x:  # NaN: leading warm-up values are skipped, as in the vector version
            return self.value
        if self.value == self.value:
            self.value = self.alpha * x + (1.0 - self.alpha) * self.value
        else:
            self.buf.append(x)
            if len(self.buf) == self.period:
                self.value = float(np.mean(np.asarray(self.buf)))
                self.buf = []
        return self.value


class IndicatorState:
    """Latest values of every indicator, updated in O(1) per newly closed candle.

    Equal (to float rounding) to the last element of the vectorized functions run on the same
    candles from the first one pushed. Periods are fixed to the defaults used by analysis.
    """

    def __init__(self, ema_fast: int = 20, ema_slow: int = 50, rsi_period: int = 14,
                 macd_fast: int = 12, macd_slow: int = 26, macd_signal: int = 9,
                 bb_period: int = 20, bb_k: float = 2.0, atr_period: int = 14,
                 kdj_n: int = 9, kdj_m1: int = 3, kdj_m2: int = 3, vol_period: int = 20) -> None:
        self.ef, self.es = _Seeded(ema_fast, 2 / (ema_fast + 1)), _Seeded(ema_slow, 2 / (ema_slow + 1))
        self.mf, self.ms = _Seeded(macd_fast, 2 / (macd_fast + 1)), _Seeded(macd_slow, 2 / (macd_slow + 1))
        self.msig = _Seeded(macd_signal, 2 / (macd_signal + 1))
        self.ag, self.al = _Seeded(rsi_period, 1 / rsi_period), _Seeded(rsi_period, 1 / rsi_period)
        self.atr_s = _Seeded(atr_period, 1 / atr_period)
        self.bb_period, self.bb_k = bb_period, bb_k
        self.closes: deque = deque(maxlen=bb_period)
        self.kdj_n, self.m1, self.m2 = kdj_n, kdj_m1, kdj_m2
        self.highs: deque = deque(maxlen=kdj_n)
        self.lows: deque = deque(maxlen=kdj_n)
        self.k, self.d = NAN, NAN
        self.vols: deque = deque(maxlen=vol_period + 1)
        self.hist: deque = deque(maxlen=3)
        self.prev_close = NAN
        self.day: int | None = None  # the VWAP's UTC day (t_ms // DAY_MS), None before the first candle
        self.spv, self.sv = 0.0, 0.0
        self.last: dict[str, float] = {}
        self.count = 0

    def push(self, t_ms: int, o: float, h: float, l: float, c: float, v: float) -> dict[str, float]:
        pc = self.prev_close
        self.count += 1
        ef, es = self.ef.push(c), self.es.push(c)
        line = self.mf.push(c) - self.ms.push(c)
        sig = self.msig.push(line)
        hist = line - sig
        d = c - pc
        ag, al = self.ag.push(max(d, 0.0) if d == d else NAN), self.al.push(max(-d, 0.0) if d == d else NAN)
        if ag != ag or al != al:
            r = NAN
        elif al == 0:
            r = 100.0 if ag > 0 else 50.0
        else:
            r = 100.0 - 100.0 / (1.0 + ag / al)
        tr = NAN if pc != pc else max(h - l, abs(h - pc), abs(l - pc))
        a = self.atr_s.push(tr)
        self.closes.append(c)
        if len(self.closes) == self.bb_period:
            w = np.fromiter(self.closes, float, self.bb_period)
            # x.sum() / n is exactly what x.mean() computes, without its per-call overhead
            mid = float(w.sum() / self.bb_period)
            sd = math.sqrt(float(((w - mid) ** 2).sum() / self.bb_period))
        else:
            mid = sd = NAN
        self.highs.append(h)
        self.lows.append(l)
        if len(self.highs) == self.kdj_n:
            hh, ll = max(self.highs), min(self.lows)
            rsv = (c - ll) / (hh - ll) * 100.0 if hh > ll else 50.0
            k0 = 50.0 if self.k != self.k else self.k
            d0 = 50.0 if self.d != self.d else self.d
            self.k = ((self.m1 - 1) * k0 + rsv) / self.m1
            self.d = ((self.m2 - 1) * d0 + self.k) / self.m2
        day = t_ms // DAY_MS
        if day != self.day:
            self.day, self.spv, self.sv = day, 0.0, 0.0
        self.spv += (h + l + c) / 3.0 * v
        self.sv += v
        self.vols.append(v)
        self.hist.append(hist)
        self.prev_close = c
        self.last = {
            "rsi": r, "macd": line, "macd_signal": sig, "macd_hist": hist,
            "bb_upper": mid + self.bb_k * sd, "bb_middle": mid, "bb_lower": mid - self.bb_k * sd,
            "atr": a, "ema_fast": ef, "ema_slow": es, "k": self.k, "d": self.d,
            "j": 3 * self.k - 2 * self.d, "vwap": self.spv / self.sv if self.sv > 0 else NAN,
        }
        return self.last


# ----------------------------------------------------------------------------------------
# Last values only
# ----------------------------------------------------------------------------------------
def _seeded_last(xs: list[float], period: int, alpha: float, start: int = 0) -> float:
    """Last value of `_seeded_recursion` over xs[start:] (no NaNs): the same seed (numpy's sum
    of the first `period` values / period) and the same multiply-adds, without building the
    series."""
    if len(xs) - start < period:
        return NAN
    y = float(np.array(xs[start:start + period]).sum() / period)
    b = 1.0 - alpha
    for v in xs[start + period:]:
        y = alpha * v + b * y
    return y


def _macd_tail(cs: list[float], fast: int, slow: int, signal: int) -> tuple[float, float, list[float]]:
    """(MACD line, signal line, the last three histogram values, oldest first) at the end of
    cs as `macd` computes them: each EMA SMA-seeded on its own, the line from index slow-1,
    the signal SMA-seeded on the line's first `signal` values."""
    if len(cs) < slow:
        return NAN, NAN, []
    af, a_s, ag = 2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1)
    bf, bs, bg = 1.0 - af, 1.0 - a_s, 1.0 - ag
    ef = float(np.array(cs[:fast]).sum() / fast)
    for v in cs[fast:slow]:
        ef = af * v + bf * ef
    es = float(np.array(cs[:slow]).sum() / slow)
    line = [ef - es]
    for v in cs[slow:slow + signal - 1]:
        ef = af * v + bf * ef
        es = a_s * v + bs * es
        line.append(ef - es)
    if len(line) < signal:
        return line[-1], NAN, []
    sg = float(np.array(line).sum() / signal)
    x = line[-1]
    h0 = h1 = NAN
    h2 = x - sg
    for v in cs[slow + signal - 1:]:
        ef = af * v + bf * ef
        es = a_s * v + bs * es
        x = ef - es
        sg = ag * x + bg * sg
        h0, h1, h2 = h1, h2, x - sg
    return x, sg, [h0, h1, h2]


def latest(t: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray, v: np.ndarray,
           ema_fast: int = 20, ema_slow: int = 50) -> dict[str, float] | None:
    """The last value of every indicator the analysis reads (default periods), equal to the
    bit to the last element of the vector functions above, in about a third of their time:
    the recursions run once over plain floats and keep only what is read, instead of filling
    arrays. Also hist_prev1/hist_prev2 (MACD histogram one and two candles back). None when
    an input holds NaN or inf (the vector functions' warm-up rules then apply: use them)."""
    n = len(c)
    if n == 0 or not (np.isfinite(c).all() and np.isfinite(h).all() and np.isfinite(l).all()
                      and np.isfinite(v).all()):
        return None
    cs = c.tolist()
    line, sg, hist = _macd_tail(cs, 12, 26, 9)
    # RSI and ATR: the same change and true-range arrays as `rsi`/`atr`, then the Wilder
    # recursions on floats from the second candle on (the first has no previous close)
    if n > 14:
        d = np.diff(c)
        ag = _seeded_last(np.maximum(d, 0.0).tolist(), 14, 1.0 / 14)
        al = _seeded_last(np.maximum(-d, 0.0).tolist(), 14, 1.0 / 14)
        if al == 0:
            rsi_v = 100.0 if ag > 0 else 50.0
        else:
            rsi_v = 100.0 - 100.0 / (1.0 + ag / al)
        pc = c[:-1]
        hn, ln = h[1:], l[1:]
        tr = np.maximum(hn - ln, np.maximum(np.abs(hn - pc), np.abs(ln - pc)))
        atr_v = _seeded_last(tr.tolist(), 14, 1.0 / 14)
    else:
        rsi_v = atr_v = NAN
    # Bollinger(20, 2) of the last window, as _rolling_mean_std's last row
    if n >= 20:
        w = c[-20:]
        mid = float(w.sum() / 20)
        sd = math.sqrt(float(((w - mid) ** 2).sum() / 20))
        bb = (mid + 2.0 * sd, mid, mid - 2.0 * sd)
    else:
        bb = (NAN, NAN, NAN)
    # KDJ(9, 3, 3): the rolling extremes stay vectorized, the K/D recursions run on floats
    if n >= 9:
        hh = forward_extreme(h, 9, np.maximum, -np.inf)[:n - 8]
        ll = forward_extreme(l, 9, np.minimum, np.inf)[:n - 8]
        rng = hh - ll
        with np.errstate(divide="ignore", invalid="ignore"):
            rsv = np.where(rng > 0, (c[8:] - ll) / rng * 100.0, 50.0)
        kv = dv = 50.0
        for r in rsv.tolist():
            kv = (2 * kv + r) / 3
            dv = (2 * dv + kv) / 3
        kdj_v = (kv, dv, 3.0 * kv - 2.0 * dv)
    else:
        kdj_v = (NAN, NAN, NAN)
    return {"rsi": rsi_v, "macd": line, "macd_signal": sg, "macd_hist": hist[-1] if hist else NAN,
            "bb_upper": bb[0], "bb_middle": bb[1], "bb_lower": bb[2], "atr": atr_v,
            "ema_fast": _seeded_last(cs, ema_fast, 2.0 / (ema_fast + 1)),
            "ema_slow": _seeded_last(cs, ema_slow, 2.0 / (ema_slow + 1)),
            "k": kdj_v[0], "d": kdj_v[1], "j": kdj_v[2],
            "vwap": _vwap_last(h, l, c, v, t),
            "hist_prev1": hist[-2] if len(hist) >= 2 else NAN,
            "hist_prev2": hist[-3] if len(hist) >= 3 else NAN}


def _vwap_last(h: np.ndarray, l: np.ndarray, c: np.ndarray, v: np.ndarray, t: np.ndarray) -> float:
    """`_vwap_arrays(...)[-1]`: the same running sums from the window's start, differenced at
    the start of the last candle's UTC day."""
    pv = np.cumsum((h + l + c) / 3.0 * v)
    cv = np.cumsum(v)
    day = t // DAY_MS
    s = int(np.searchsorted(day, day[-1]))          # open times ascend
    base_pv, base_v = (float(pv[s - 1]), float(cv[s - 1])) if s > 0 else (0.0, 0.0)
    sv = float(cv[-1]) - base_v
    return (float(pv[-1]) - base_pv) / sv if sv > 0 else NAN
