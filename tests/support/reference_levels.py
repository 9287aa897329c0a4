"""Reference implementation of level candidates and touch statistics.

The straightforward first implementation, kept verbatim as the definition the optimized
code in rl/analysis/levels/candidates.py must reproduce (sliding-window pivots, np.add.at profile, one dense
levels x candles matrix per quantity).
"""
import numpy as np

from rl.analysis.levels import candidates as lv
from rl.analysis.levels import touches as ts


def reference_pivots(high, low, strength):
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


def reference_volume_profile(high, low, volume, atr_value):
    lo, hi = float(np.min(low)), float(np.max(high))
    if not (hi > lo) or not (atr_value > 0):
        return np.zeros(0), np.zeros(0)
    nb = int(np.clip(round((hi - lo) / (lv.PROFILE_BIN_ATR * atr_value)), 10, 200))
    width = (hi - lo) / nb
    a = np.clip(((low - lo) / width).astype(int), 0, nb - 1)
    b = np.clip(((high - lo) / width).astype(int), 0, nb - 1)
    share = volume / (b - a + 1)
    diff = np.zeros(nb + 1)
    np.add.at(diff, a, share)
    np.add.at(diff, b + 1, -share)
    return lo + (np.arange(nb) + 0.5) * width, np.cumsum(diff[:-1])


def reference_volume_nodes(high, low, volume, atr_value):
    centers, prof = reference_volume_profile(high, low, volume, atr_value)
    if len(prof) < 3 or prof.sum() <= 0:
        return np.zeros(0)
    sm = np.convolve(prof, np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0, mode="same")
    p = np.concatenate([[-np.inf], sm, [-np.inf]])
    peak = (p[1:-1] > p[:-2]) & (p[1:-1] > p[2:]) & (sm >= lv.NODE_MIN_RATIO * prof.mean())
    idx = np.flatnonzero(peak)
    idx = idx[np.argsort(-sm[idx], kind="stable")][:lv.MAX_NODES]
    return centers[np.sort(idx)]


def reference_candidates(bars, atr_value, timeframe):
    if len(bars) == 0:
        return []
    hi_idx, lo_idx = reference_pivots(bars.h, bars.l, lv.PIVOT_STRENGTH.get(timeframe, 2))
    out = [lv.Candidate(float(bars.h[i]), timeframe, "pivot_high", int(bars.t[i])) for i in hi_idx]
    out += [lv.Candidate(float(bars.l[i]), timeframe, "pivot_low", int(bars.t[i])) for i in lo_idx]
    if atr_value == atr_value and atr_value > 0:
        out += [lv.Candidate(float(p), timeframe, "volume_node", int(bars.t[0]))
                for p in reference_volume_nodes(bars.h, bars.l, bars.v, atr_value)]
    return out


def reference_touch_stats(bars, prices, atr_value, timeframe):
    L, n = len(prices), len(bars)
    z = np.zeros(L)
    neg = np.full(L, -1, dtype=np.int64)
    if L == 0 or n == 0 or not (atr_value == atr_value and atr_value > 0):
        return ts.TouchStats(z, z, z, z, neg, neg, z)
    tol = lv.TOUCH_ATR * atr_value
    P = prices[:, None]
    h, l, c = bars.h, bars.l, bars.c
    touch = (l[None, :] - tol <= P) & (h[None, :] + tol >= P)
    pad = np.zeros((L, 1), dtype=np.int8)
    d = np.diff(np.concatenate([pad, touch.astype(np.int8), pad], axis=1), axis=1)
    sl, si = np.nonzero(d == 1)
    _, ei = np.nonzero(d == -1)
    ei = ei - 1
    touches = np.bincount(sl, minlength=L).astype(float)
    first_ms = neg.copy()
    last_ms = neg.copy()
    if len(sl):
        big = np.iinfo(np.int64).max
        first_ms = np.full(L, big, dtype=np.int64)
        np.minimum.at(first_ms, sl, bars.t[si])
        first_ms[first_ms == big] = -1
        np.maximum.at(last_ms, sl, bars.t[ei] + lv.TF_MS.get(timeframe, 0))
    Pv = prices[sl]
    known = (si > 0) & (ei < n - 1)
    sb = np.where(si > 0, np.sign(c[np.maximum(si - 1, 0)] - Pv), 0)
    sa = np.where(ei < n - 1, np.sign(c[np.minimum(ei + 1, n - 1)] - Pv), 0)
    held = known & (sb == sa) & (sb != 0)
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
    k = lv.LOOKAHEAD
    hf = np.concatenate([h, np.full(k - 1, -np.inf)])
    lf = np.concatenate([l, np.full(k - 1, np.inf)])
    fwd_max = np.lib.stride_tricks.sliding_window_view(hf, k).max(axis=1)
    fwd_min = np.lib.stride_tricks.sliding_window_view(lf, k).min(axis=1)
    nxt = np.minimum(ei + 1, n - 1)
    move = np.where(sb > 0, fwd_max[nxt] - Pv, Pv - fwd_min[nxt]) / atr_value
    bounce_ep = held & (move >= lv.BOUNCE_ATR)
    bounces = np.bincount(sl[bounce_ep], minlength=L).astype(float)
    bsum = np.bincount(sl[bounce_ep], weights=move[bounce_ep], minlength=L)
    failed = np.bincount(sl[failed_ep], minlength=L).astype(float)
    rng = h - l
    ov = np.minimum(h[None, :], P + tol) - np.maximum(l[None, :], P - tol)
    frac = np.where(rng[None, :] > 0, np.clip(ov, 0, None) / np.where(rng > 0, rng, 1.0)[None, :],
                    ((l[None, :] >= P - tol) & (l[None, :] <= P + tol)).astype(float))
    band_vol = frac @ bars.v
    span = float(h.max() - l.min())
    total = float(bars.v.sum())
    expect = total * (2 * tol) / span if span > 0 and total > 0 else 0.0
    vr = band_vol / expect if expect > 0 else z
    return ts.TouchStats(touches, bounces, bsum, failed, first_ms, last_ms, vr)
