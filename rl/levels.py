"""Candidate support/resistance levels: swing pivots + volume-profile nodes, merged by ATR.

Everything here is measured in ATR units of the timeframe concerned, never in percent, so
the rules are translation-invariant and mirror-symmetric (turn the chart upside down and a
support becomes the matching resistance); see docs/strategy.md for the definitions.
Only closed candles are ever passed in, so a pivot needs `strength` closed candles on its
right before it exists: levels never repaint.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TF_MS = {"1m": 60_000, "15m": 900_000, "8h": 28_800_000, "1w": 604_800_000}
LEVEL_TIMEFRAMES = ("15m", "8h", "1w")          # finest first; 1m is chart-only noise
PIVOT_STRENGTH = {"15m": 3, "8h": 2, "1w": 1}   # candles required on each side of a pivot
TOUCH_ATR = 0.25       # a candle touches P when its range comes within 0.25 ATR of P
MERGE_ATR = 0.5        # candidates closer than 0.5 ATR(15m) are one level (single linkage)
BOUNCE_ATR = 1.0       # a held touch counts as a bounce when price then moves >= 1 ATR away
LOOKAHEAD = 12         # candles after a touch in which the bounce is measured
PROFILE_BIN_ATR = 0.25  # volume-profile bin width target
NODE_MIN_RATIO = 1.5   # a volume node holds >= 1.5x the mean bin volume
MAX_NODES = 5
RANGE_ATR_8H = 6.0     # candidates kept within +/- 6 ATR(8h) of the last close


@dataclass(frozen=True)
class Bars:
    """Closed candles of one timeframe as plain float arrays (times in ms, open time)."""
    t: np.ndarray
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray
    c: np.ndarray
    v: np.ndarray

    def __len__(self) -> int:
        return len(self.c)

    @staticmethod
    def from_frame(df: pd.DataFrame, name: str = "frame") -> "Bars":
        missing = [c for c in ("open", "high", "low", "close", "volume") if c not in df.columns]
        if missing:
            raise ValueError(f"{name}: missing columns {missing}")
        if len(df) and not isinstance(df.index, pd.DatetimeIndex):
            raise ValueError(f"{name}: index must be a DatetimeIndex of UTC open times")
        idx = df.index
        if isinstance(idx, pd.DatetimeIndex):
            if idx.tz is not None:
                idx = idx.tz_convert("UTC").tz_localize(None)
            t = np.asarray(idx.as_unit("ms").asi8, dtype=np.int64)
        else:
            t = np.zeros(0, dtype=np.int64)
        return Bars(t, *(np.asarray(df[c].to_numpy(), dtype=float)
                         for c in ("open", "high", "low", "close", "volume")))


@dataclass(frozen=True)
class Candidate:
    price: float
    timeframe: str
    source: str          # "pivot_high" | "pivot_low" | "volume_node"
    time_ms: int


@dataclass(frozen=True)
class Cluster:
    """Merged candidates: one level. `timeframe` is the finest timeframe among the members."""
    price: float
    timeframe: str
    timeframes: tuple[str, ...]
    sources: tuple[str, ...]
    first_seen_ms: int


def pivots(high: np.ndarray, low: np.ndarray, strength: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of swing highs and swing lows.

    Swing high at i: high[i] > every high of the `strength` candles before it and >= every
    high of the `strength` candles after it (the first of equal highs wins); swing low is
    the mirror image. The last `strength` candles cannot be pivots yet (no repaint).
    """
    n = len(high)
    w = 2 * strength + 1
    if n < w:
        return np.zeros(0, int), np.zeros(0, int)
    hw = np.lib.stride_tricks.sliding_window_view(high, w)
    lw = np.lib.stride_tricks.sliding_window_view(low, w)
    hc, lc = hw[:, strength], lw[:, strength]
    is_h = (hc > hw[:, :strength].max(axis=1)) & (hc >= hw[:, strength + 1:].max(axis=1))
    is_l = (lc < lw[:, :strength].min(axis=1)) & (lc <= lw[:, strength + 1:].min(axis=1))
    return np.flatnonzero(is_h) + strength, np.flatnonzero(is_l) + strength


def volume_profile(high: np.ndarray, low: np.ndarray, volume: np.ndarray,
                   atr_value: float) -> tuple[np.ndarray, np.ndarray]:
    """(bin centers, volume per bin): each candle's volume spread evenly over the bins its
    high-low range covers. Bins span [min low, max high] in an integer count (10..200) of
    width ~= 0.25 ATR, so the edges are the same seen from the top or the bottom."""
    lo, hi = float(np.min(low)), float(np.max(high))
    if not (hi > lo) or not (atr_value > 0):
        return np.zeros(0), np.zeros(0)
    nb = int(np.clip(round((hi - lo) / (PROFILE_BIN_ATR * atr_value)), 10, 200))
    width = (hi - lo) / nb
    a = np.clip(((low - lo) / width).astype(int), 0, nb - 1)
    b = np.clip(((high - lo) / width).astype(int), 0, nb - 1)
    share = volume / (b - a + 1)
    diff = np.zeros(nb + 1)
    np.add.at(diff, a, share)
    np.add.at(diff, b + 1, -share)
    prof = np.cumsum(diff[:-1])
    centers = lo + (np.arange(nb) + 0.5) * width
    return centers, prof


def volume_nodes(high: np.ndarray, low: np.ndarray, volume: np.ndarray, atr_value: float) -> np.ndarray:
    """High-volume nodes: bins of the [1,2,3,2,1]/9-smoothed profile strictly above both
    neighbours and >= 1.5x the mean bin volume; the 5 largest, as prices (bin centers)."""
    centers, prof = volume_profile(high, low, volume, atr_value)
    if len(prof) < 3 or prof.sum() <= 0:
        return np.zeros(0)
    # symmetric triangular smoothing, so a node spread over a few bins peaks at its middle
    sm = np.convolve(prof, np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0, mode="same")
    p = np.concatenate([[-np.inf], sm, [-np.inf]])
    peak = (p[1:-1] > p[:-2]) & (p[1:-1] > p[2:]) & (sm >= NODE_MIN_RATIO * prof.mean())
    idx = np.flatnonzero(peak)
    idx = idx[np.argsort(-sm[idx], kind="stable")][:MAX_NODES]
    return centers[np.sort(idx)]


def candidates(bars: Bars, atr_value: float, timeframe: str) -> list[Candidate]:
    """Swing pivots and volume nodes of one timeframe's closed candles."""
    if len(bars) == 0:
        return []
    strength = PIVOT_STRENGTH.get(timeframe, 2)
    hi_idx, lo_idx = pivots(bars.h, bars.l, strength)
    out = [Candidate(float(bars.h[i]), timeframe, "pivot_high", int(bars.t[i])) for i in hi_idx]
    out += [Candidate(float(bars.l[i]), timeframe, "pivot_low", int(bars.t[i])) for i in lo_idx]
    if atr_value == atr_value and atr_value > 0:
        t0 = int(bars.t[0])
        out += [Candidate(float(p), timeframe, "volume_node", t0)
                for p in volume_nodes(bars.h, bars.l, bars.v, atr_value)]
    return out


def merge(cands: list[Candidate], tolerance: float) -> list[Cluster]:
    """Single-linkage merge: sorted by price, a candidate joins the previous one's cluster
    when the gap is <= tolerance. The level price is the members' mean. Single linkage is
    used because it gives the same clusters scanning up or down (mirror symmetry)."""
    if not cands:
        return []
    order = sorted(cands, key=lambda c: c.price)
    groups: list[list[Candidate]] = [[order[0]]]
    for c in order[1:]:
        if c.price - groups[-1][-1].price <= tolerance:
            groups[-1].append(c)
        else:
            groups.append([c])
    out = []
    for g in groups:
        tfs = tuple(tf for tf in LEVEL_TIMEFRAMES if any(m.timeframe == tf for m in g))
        out.append(Cluster(price=sum(m.price for m in g) / len(g), timeframe=tfs[0] if tfs else g[0].timeframe,
                           timeframes=tfs, sources=tuple(sorted({m.source for m in g})),
                           first_seen_ms=min(m.time_ms for m in g)))
    return out


@dataclass(frozen=True)
class TouchStats:
    """Per-level event counts on one timeframe (arrays aligned with the level prices)."""
    touches: np.ndarray        # touch episodes (maximal runs of touching candles)
    bounces: np.ndarray        # held episodes followed by a >= BOUNCE_ATR move away
    bounce_atr_sum: np.ndarray  # sum of those moves, in ATR units
    failed: np.ndarray         # episodes that pierced > tol through the level and came back
    first_ms: np.ndarray       # open time of the first touching candle (int64; -1 none)
    last_ms: np.ndarray        # close time of the last touching candle (int64; -1 none)
    volume_ratio: np.ndarray   # volume traded within +/- tol of P over the uniform expectation


def touch_stats(bars: Bars, prices: np.ndarray, atr_value: float, timeframe: str) -> TouchStats:
    """Touch episodes, bounces, failed breakouts and volume density for every level at once.

    Episode: a maximal run of candles with low - tol <= P <= high + tol (tol = 0.25 ATR).
    The candle before and the one after an episode do not touch, so each lies wholly on one
    side of P: that gives the side price came from and the side it left to. Same side and
    pierced (an extreme beyond P by more than tol) -> failed breakout; same side and a move
    of >= 1 ATR away within 12 candles -> bounce. Episodes at the window edges count as
    touches only (their outcome is unknown).
    """
    L, n = len(prices), len(bars)
    z = np.zeros(L)
    neg = np.full(L, -1, dtype=np.int64)
    if L == 0 or n == 0 or not (atr_value == atr_value and atr_value > 0):
        return TouchStats(z, z, z, z, neg, neg, z)
    tol = TOUCH_ATR * atr_value
    P = prices[:, None]
    h, l, c = bars.h, bars.l, bars.c
    touch = (l[None, :] - tol <= P) & (h[None, :] + tol >= P)
    pad = np.zeros((L, 1), dtype=np.int8)
    d = np.diff(np.concatenate([pad, touch.astype(np.int8), pad], axis=1), axis=1)
    sl, si = np.nonzero(d == 1)      # starts (row-major: paired with ends below)
    _, ei = np.nonzero(d == -1)
    ei = ei - 1                      # last touching candle
    touches = np.bincount(sl, minlength=L).astype(float)
    first_ms = neg.copy()
    last_ms = neg.copy()
    if len(sl):
        big = np.iinfo(np.int64).max
        first_ms = np.full(L, big, dtype=np.int64)
        np.minimum.at(first_ms, sl, bars.t[si])
        first_ms[first_ms == big] = -1
        np.maximum.at(last_ms, sl, bars.t[ei] + TF_MS.get(timeframe, 0))
    Pv = prices[sl]
    known = (si > 0) & (ei < n - 1)
    sb = np.where(si > 0, np.sign(c[np.maximum(si - 1, 0)] - Pv), 0)
    sa = np.where(ei < n - 1, np.sign(c[np.minimum(ei + 1, n - 1)] - Pv), 0)
    held = known & (sb == sa) & (sb != 0)
    # extremes inside each episode via reduceat on [start, end+1) pairs
    hp = np.concatenate([h, [h[-1]]])
    lp = np.concatenate([l, [l[-1]]])
    pairs = np.empty(2 * len(si), dtype=np.int64)
    pairs[0::2], pairs[1::2] = si, ei + 1
    if len(si):
        ep_min = np.minimum.reduceat(lp, pairs)[0::2]
        ep_max = np.maximum.reduceat(hp, pairs)[0::2]
    else:
        ep_min = ep_max = np.zeros(0)
    pierced = np.where(sb > 0, ep_min < Pv - tol, ep_max > Pv + tol)
    failed_ep = held & pierced
    # best move away within LOOKAHEAD candles after the episode
    k = LOOKAHEAD
    hf = np.concatenate([h, np.full(k - 1, -np.inf)])
    lf = np.concatenate([l, np.full(k - 1, np.inf)])
    fwd_max = np.lib.stride_tricks.sliding_window_view(hf, k).max(axis=1)
    fwd_min = np.lib.stride_tricks.sliding_window_view(lf, k).min(axis=1)
    nxt = np.minimum(ei + 1, n - 1)
    move = np.where(sb > 0, fwd_max[nxt] - Pv, Pv - fwd_min[nxt]) / atr_value
    bounce_ep = held & (move >= BOUNCE_ATR)
    bounces = np.bincount(sl[bounce_ep], minlength=L).astype(float)
    bsum = np.bincount(sl[bounce_ep], weights=move[bounce_ep], minlength=L)
    failed = np.bincount(sl[failed_ep], minlength=L).astype(float)
    # volume density: each candle's volume spread evenly over its range, share inside the band
    rng = h - l
    ov = np.minimum(h[None, :], P + tol) - np.maximum(l[None, :], P - tol)
    frac = np.where(rng[None, :] > 0, np.clip(ov, 0, None) / np.where(rng > 0, rng, 1.0)[None, :],
                    ((l[None, :] >= P - tol) & (l[None, :] <= P + tol)).astype(float))
    band_vol = frac @ bars.v
    span = float(h.max() - l.min())
    total = float(bars.v.sum())
    expect = total * (2 * tol) / span if span > 0 and total > 0 else 0.0
    vr = band_vol / expect if expect > 0 else z
    return TouchStats(touches, bounces, bsum, failed, first_ms, last_ms, vr)
