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
TF_CODE = {tf: i for i, tf in enumerate(LEVEL_TIMEFRAMES)}   # a timeframe's bit in a level's mask
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
    def from_frame(df: pd.DataFrame, name: str = "frame") -> Bars:
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
    s = strength
    if n < 2 * s + 1:
        return np.zeros(0, int), np.zeros(0, int)
    # neighbour maxima/minima from s shifted slices: max/min are exact, so this equals a
    # sliding-window reduction at a fraction of its cost (s <= 3 in practice)
    m = n - 2 * s
    hc, lc = high[s:s + m], low[s:s + m]
    hl, hr = high[s - 1:s - 1 + m], high[s + 1:s + 1 + m]
    ll, lr = low[s - 1:s - 1 + m], low[s + 1:s + 1 + m]
    for k in range(2, s + 1):
        hl, hr = np.maximum(hl, high[s - k:s - k + m]), np.maximum(hr, high[s + k:s + k + m])
        ll, lr = np.minimum(ll, low[s - k:s - k + m]), np.minimum(lr, low[s + k:s + k + m])
    is_h = (hc > hl) & (hc >= hr)
    is_l = (lc < ll) & (lc <= lr)
    return is_h.nonzero()[0] + strength, is_l.nonzero()[0] + strength


def volume_profile(high: np.ndarray, low: np.ndarray, volume: np.ndarray,
                   atr_value: float) -> tuple[np.ndarray, np.ndarray]:
    """(bin centers, volume per bin): each candle's volume spread evenly over the bins its
    high-low range covers. Bins span [min low, max high] in an integer count (10..200) of
    width ~= 0.25 ATR, so the edges are the same seen from the top or the bottom."""
    lo, width, prof = _profile(high, low, volume, atr_value)
    if not len(prof):
        return np.zeros(0), prof
    return _centers(lo, width, np.arange(len(prof))), prof


def _centers(lo: float | np.ndarray, width: float | np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Centers of bins `idx` (the very expression volume_profile uses for all bins)."""
    return lo + (idx + 0.5) * width


MAX_BINS = 200


def _bins(lo: float, hi: float, atr_value: float) -> int:
    """Number of profile bins over [lo, hi]: 10..MAX_BINS of width ~= 0.25 ATR (0: no profile)."""
    if not (hi > lo) or not (atr_value > 0):
        return 0
    return min(max(round((hi - lo) / (PROFILE_BIN_ATR * atr_value)), 10), MAX_BINS)


def _profile(high: np.ndarray, low: np.ndarray, volume: np.ndarray,
             atr_value: float) -> tuple[float, float, np.ndarray]:
    """(lowest low, bin width, volume per bin) of `volume_profile`, without the centers
    (volume_nodes needs the centers of its few nodes only)."""
    lo, hi = float(low.min()), float(high.max())
    nb = _bins(lo, hi, atr_value)
    if not nb:
        return lo, 0.0, np.zeros(0)
    width = (hi - lo) / nb
    # low - lo >= 0 and high - lo >= 0 (lo is the lowest low), so only the top needs a clip
    a = np.minimum(((low - lo) / width).astype(int), nb - 1)
    b = np.minimum(((high - lo) / width).astype(int), nb - 1)
    share = volume / (b - a + 1)
    # one sequential accumulation over [starts, ends+1]: the same order of additions as
    # adding all starts then all ends one by one, so the profile is bit-for-bit the same
    diff = np.bincount(np.concatenate([a, b + 1]), weights=np.concatenate([share, -share]),
                       minlength=nb + 1)
    return lo, width, np.cumsum(diff[:-1])


_SMOOTH = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0   # built once: np.array costs per call
_NEG_INF = np.array([-np.inf])
_ZERO = np.zeros(1, dtype=np.int64)


def volume_nodes(high: np.ndarray, low: np.ndarray, volume: np.ndarray, atr_value: float) -> np.ndarray:
    """High-volume nodes: bins of the [1,2,3,2,1]/9-smoothed profile strictly above both
    neighbours and >= 1.5x the mean bin volume; the 5 largest, as prices (bin centers)."""
    lo, width, prof = _profile(high, low, volume, atr_value)
    total = prof.sum()
    if len(prof) < 3 or total <= 0:
        return np.zeros(0)
    # symmetric triangular smoothing, so a node spread over a few bins peaks at its middle
    sm = np.convolve(prof, _SMOOTH, mode="same")
    p = np.concatenate([_NEG_INF, sm, _NEG_INF])
    # (total / len(prof): prof.mean() exactly)
    peak = (p[1:-1] > p[:-2]) & (p[1:-1] > p[2:]) & (sm >= NODE_MIN_RATIO * (total / len(prof)))
    idx = peak.nonzero()[0]
    idx = idx[np.argsort(-sm[idx], kind="stable")][:MAX_NODES]
    return _centers(lo, width, np.sort(idx))


def volume_nodes_many(windows: list[tuple[np.ndarray, np.ndarray, np.ndarray, float, tuple[float, float] | None]]
                      ) -> list[np.ndarray]:
    """`volume_nodes(high, low, volume, atr_value)` of each window (high, low, volume,
    atr_value, extremes), extremes = (low.min(), high.max()) if the caller has them, else
    None. The same bins and the same additions in the same order, so the same nodes bit for
    bit (tests/analysis/levels/test_levels.py), with the vector operations run once for all windows instead
    of once per window: a backtest finds the nodes of a chunk of 15m closes together
    (rl.backtest.scans). (One window costs more this way than with `volume_nodes`.)"""
    out = [np.zeros(0) for _ in windows]
    live = []                                   # (window, lowest low, bin width, bins)
    for k, (high, low, _, atr_value, ext) in enumerate(windows):
        lo, hi = (float(low.min()), float(high.max())) if ext is None else ext
        nb = _bins(lo, hi, atr_value)
        if nb:
            live.append((k, lo, (hi - lo) / nb, nb))
    if not live:
        return out
    # every candle's bins, against its own window's lowest low, width and top bin
    ns = [len(windows[k][0]) for k, *_ in live]
    lo_c, width_c, top_c = (np.repeat(np.array(col), ns) for col in list(zip(*live))[1:])
    low, high, volume = (np.concatenate([windows[k][j] for k, *_ in live]) for j in (1, 0, 2))
    # low - lo >= 0 and high - lo >= 0 (lo is the lowest low), so only the top needs a clip
    a = np.minimum(((low - lo_c) / width_c).astype(int), top_c - 1)
    b = np.minimum(((high - lo_c) / width_c).astype(int), top_c - 1)
    share = volume / (b - a + 1)
    # profiles: a candle's share enters at its bottom bin and leaves after its top bin. One
    # sequential accumulation over [starts, ends+1], each window in its own row of the
    # table: a bin gets its window's starts then its ends in candle order, as adding them
    # one by one; a row's cumulative sum is sequential too. So each profile is exact.
    base = np.repeat(np.arange(len(live)) * (MAX_BINS + 1), ns)
    diff = np.bincount(np.concatenate([a + base, b + 1 + base]), weights=np.concatenate([share, -share]),
                       minlength=len(live) * (MAX_BINS + 1)).reshape(len(live), MAX_BINS + 1)
    prof = np.cumsum(diff[:, :MAX_BINS], axis=1)
    # symmetric triangular smoothing (so a node spread over a few bins peaks at its middle)
    # of the profiles with volume, laid end to end between -inf guards
    parts, kept, thr = [_NEG_INF], [], []
    for r, (k, lo, width, nb) in enumerate(live):
        pr = prof[r, :nb]
        total = pr.sum()
        if total > 0:
            parts += [np.convolve(pr, _SMOOTH, mode="same"), _NEG_INF]
            kept.append((k, lo, width, nb))
            thr.append(NODE_MIN_RATIO * (total / nb))        # = 1.5 x prof.mean() exactly
    if not kept:
        return out
    p = np.concatenate(parts)
    sm = p[1:-1]                                # guards between profiles never peak (-inf)
    nbs = [x[3] for x in kept]
    peak = (sm > p[:-2]) & (sm > p[2:]) & (sm >= np.repeat(thr, [n + 1 for n in nbs])[:-1])
    idx = peak.nonzero()[0]
    starts = np.cumsum([0] + [n + 1 for n in nbs[:-1]])
    w = np.searchsorted(starts, idx, side="right") - 1          # profile of each peak
    # the MAX_NODES largest per profile (ties: the lower bin), then in bin order
    order = np.lexsort((-sm[idx], w))
    ws = w[order]
    best = order[np.arange(len(order)) - np.searchsorted(ws, ws) < MAX_NODES]
    best.sort()                                  # = profile by profile, bins ascending
    wb = w[best]
    lo_p, width_p = (np.array(col)[wb] for col in list(zip(*kept))[1:3])
    centers = _centers(lo_p, width_p, idx[best] - starts[wb])
    bounds = np.searchsorted(wb, np.arange(len(kept) + 1))
    for j, (k, *_) in enumerate(kept):
        out[k] = centers[bounds[j]:bounds[j + 1]]
    return out


SOURCES = ("pivot_high", "pivot_low", "volume_node")   # source codes used by candidate_arrays


def candidate_arrays(bars: Bars, atr_value: float, timeframe: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`candidates` as arrays (price, source code into SOURCES, time_ms), in the same order:
    pivot highs, pivot lows (each by time), then volume nodes (by price)."""
    if len(bars) == 0:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)
    strength = PIVOT_STRENGTH.get(timeframe, 2)
    hi_idx, lo_idx = pivots(bars.h, bars.l, strength)
    nodes = (volume_nodes(bars.h, bars.l, bars.v, atr_value)
             if atr_value == atr_value and atr_value > 0 else np.zeros(0))
    price = np.concatenate([bars.h[hi_idx], bars.l[lo_idx], np.asarray(nodes, dtype=float)])
    src = np.repeat(np.arange(3, dtype=np.int64), [len(hi_idx), len(lo_idx), len(nodes)])
    t = np.concatenate([bars.t[hi_idx], bars.t[lo_idx], np.full(len(nodes), bars.t[0])]).astype(np.int64)
    return price, src, t


def candidates(bars: Bars, atr_value: float, timeframe: str) -> list[Candidate]:
    """Swing pivots and volume nodes of one timeframe's closed candles."""
    p, s, t = candidate_arrays(bars, atr_value, timeframe)
    return [Candidate(pp, timeframe, SOURCES[ss], tt) for pp, ss, tt in zip(p.tolist(), s.tolist(), t.tolist())]


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


def merge_sets(price: np.ndarray, tf_code: np.ndarray, src: np.ndarray, time_ms: np.ndarray,
               sizes: list[int], tolerances: list[float]
               ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """`merge` on candidate arrays (tf_code indexes LEVEL_TIMEFRAMES, src indexes SOURCES) of
    several sets laid end to end (set k: the next sizes[k] entries, merged with
    tolerances[k]): per set, (level prices ascending, timeframe bitmask, source bitmask,
    first_seen_ms) per cluster. Same single linkage and stable price order as `merge`, and
    each mean summed left to right as `merge` does, so the level prices are bit-for-bit the
    same; one set or a backtest chunk's dozens, with the dozen vector operations run once."""
    if not sum(sizes):
        z = np.zeros(0, np.int64)
        return [(np.zeros(0), z, z, z) for _ in sizes]
    if len(sizes) == 1:
        order = np.argsort(price, kind="stable")
        sp = price[order]
        joined = sp[1:] - sp[:-1] <= tolerances[0]
    else:
        group = np.repeat(np.arange(len(sizes)), sizes)
        order = np.lexsort((price, group))      # set by set, each in stable price order
        sp = price[order]
        same = group[1:] == group[:-1]          # (the sets keep their places: group[order] == group)
        joined = (sp[1:] - sp[:-1] <= np.array(tolerances)[group[1:]]) & same
    # cluster starts: where the gap to the previous price is not <= tolerance (a NaN gap
    # starts a new cluster, as in merge), and at each set's first candidate
    starts = np.concatenate([_ZERO, (~joined).nonzero()[0] + 1])
    sizes_c = np.append(starts[1:], len(sp)) - starts
    means = _cluster_means(sp, starts, sizes_c)
    tfm = np.bitwise_or.reduceat(np.left_shift(1, tf_code[order]), starts)
    srm = np.bitwise_or.reduceat(np.left_shift(1, src[order]), starts)
    first = np.minimum.reduceat(time_ms[order], starts)
    if len(sizes) == 1:
        return [(means, tfm, srm, first)]
    # each set's clusters: those starting within its candidates
    bounds = [0, *np.searchsorted(starts, np.cumsum(sizes[:-1])).tolist(), len(starts)]
    return [(means[a:b], tfm[a:b], srm[a:b], first[a:b]) for a, b in zip(bounds, bounds[1:])]


def _cluster_means(sp: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Mean price of each cluster (sp[starts[k]:starts[k] + sizes[k]]), its members summed
    left to right and divided by their count, exactly as `merge`'s sum() / len(): the k-th
    addition of every cluster still that long is one vector addition (the same IEEE
    additions in the same order), so a few dozen calls instead of a Python loop per cluster."""
    means = sp[starts]                          # a one-member cluster's mean is its price
    multi = (sizes > 1).nonzero()[0]
    if not len(multi):
        return means
    m = sizes[multi]
    if len(multi) + int(m.sum()) // 30 < 3 * int(m.max()):
        # few clusters for the longest one's length (one scan rather than a chunk's): the
        # vector rounds below (one per member of the longest) would cost more than sum() per
        # cluster, which adds the very same way (docs/backtest.md has the figures)
        spl = sp.tolist()
        for k, a, n in zip(multi.tolist(), starts[multi].tolist(), m.tolist()):
            means[k] = sum(spl[a:a + n]) / n
        return means
    by_size = np.argsort(-m, kind="stable")     # longest first: the clusters still summing are a prefix
    ks, first, m = multi[by_size], starts[multi][by_size], m[by_size]
    acc = sp[first]
    longer = np.searchsorted(-m, -np.arange(1, m[0]), side="left")   # [j - 1]: clusters with > j members
    for j, c in enumerate(longer.tolist(), 1):
        acc[:c] += sp[first[:c] + j]
    means[ks] = acc / m
    return means
