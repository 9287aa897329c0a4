"""Touch statistics: how price behaved at each level of a window of candles (touch episodes,
bounces and their size, failed breakouts, first/last touch, the volume traded at the level),
measured in ATR units like everything in rl.analysis.levels.candidates. One window (`touch_stats`), many windows
stacked (`touch_stats_many`), or windows of one long series read in place
(`touch_stats_windows`, a backtest's prepared scans); all give the same numbers to the bit.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

import numpy as np

from rl.analysis.indicators import forward_extreme
from rl.analysis.levels.candidates import BOUNCE_ATR, LOOKAHEAD, TF_MS, TOUCH_ATR, Bars

_ZERO = np.zeros(1, dtype=np.int64)          # built once: np.zeros costs per call


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


@dataclass(frozen=True)
class TouchPrep:
    """Per-(bars, ATR) arrays that `touch_stats` needs whatever the level prices: computed
    once and reused while a timeframe's window is unchanged (8h and 1w change rarely)."""
    bars: Bars
    atr: float
    tol: float
    lo: np.ndarray        # low - tol
    hi: np.ndarray        # high + tol
    rng: np.ndarray       # high - low
    c_before: np.ndarray  # c_before[i] = close[i - 1], NaN for i = 0 (no candle before)
    c_after: np.ndarray   # c_after[i] = close[i], NaN for i = n (no candle after)
    fwd_max: np.ndarray   # best high of candles [i, i + LOOKAHEAD); NaN at i = n
    fwd_min: np.ndarray   # lowest low of the same
    zero_rng: bool        # some candle has high == low (its volume sits at one price)
    span: float
    total: float


def touch_prep(bars: Bars, atr_value: float) -> TouchPrep:
    tol = TOUCH_ATR * atr_value
    h, l, c = bars.h, bars.l, bars.c
    rng = h - l
    nan = np.array([np.nan])
    return TouchPrep(bars, atr_value, tol, l - tol, h + tol, rng,
                     np.concatenate([nan, c]), np.concatenate([c, nan]),
                     np.concatenate([forward_extreme(h, LOOKAHEAD, np.maximum, -np.inf), nan]),
                     np.concatenate([forward_extreme(l, LOOKAHEAD, np.minimum, np.inf), nan]),
                     bool(np.any(rng <= 0)), float(h.max() - l.min()), float(bars.v.sum()))


def touch_stats(bars: Bars, prices: np.ndarray, atr_value: float, timeframe: str,
                prep: TouchPrep | None = None, *, events: bool = True) -> TouchStats:
    """Touch episodes, bounces, failed breakouts and volume density for every level at once.

    Episode: a maximal run of candles with low - tol <= P <= high + tol (tol = 0.25 ATR).
    The candle before and the one after an episode do not touch, so each lies wholly on one
    side of P: that gives the side price came from and the side it left to. Same side and
    pierced (an extreme beyond P by more than tol) -> failed breakout; same side and a move
    of >= 1 ATR away within 12 candles -> bounce. Episodes at the window edges count as
    touches only (their outcome is unknown).

    `prep` (from `touch_prep(bars, atr_value)`) may be passed to reuse the price-independent
    arrays. `events=False` computes only touches and first/last touch times (all a level
    found on a finer timeframe needs from this one) and leaves bounces, bounce_atr_sum,
    failed and volume_ratio NaN. The work is `touch_stats_many` with one window.
    """
    prices = np.asarray(prices, dtype=float)
    L, n = len(prices), len(bars)
    if L == 0 or n == 0 or not (atr_value == atr_value and atr_value > 0):
        z = np.zeros(L)
        neg = np.full(L, -1, dtype=np.int64)
        return TouchStats(z, z, z, z, neg, neg, z)
    if prep is None or prep.bars is not bars or prep.atr != atr_value:
        prep = touch_prep(bars, atr_value)
    return touch_stats_many([(prep, prices)], timeframe, events=events)


def touch_stats_many(jobs: list[tuple[TouchPrep, np.ndarray]], timeframe: str, *,
                     events: bool = True) -> TouchStats:
    """`touch_stats` of several windows of one timeframe at once: job k is (touch_prep of
    window k, its level prices); the result holds every job's levels in job order, each
    number the one `touch_stats` gives (a level's statistics depend only on its own window).

    Why: the work is one levels x candles boolean matrix, then a few dozen vector operations
    on the touching (level, candle) cells and the episodes only. At a few dozen levels per
    window those operations cost mostly their fixed per-call overhead, so a backtest
    (rl.backtest.scans) runs them once for many 15m windows instead of once per window.
    Every window needs >= 1 candle and a positive ATR (`touch_stats` answers the others).
    """
    preps = [prep for prep, _ in jobs]
    ns = [len(prep.bars) for prep in preps]
    prices, row, col, flat = _touch_cells([(prep.lo, prep.hi, p) for prep, p in jobs], ns)
    tol: float | np.ndarray           # one window's scalars, or per level row
    atr: float | np.ndarray
    expect: float | np.ndarray
    if len(jobs) == 1:                         # a lone window: its own arrays and numbers
        prep = preps[0]
        cell = col
        arrays = _N_LONG(prep)
        cb, ca, fmax, fmin = _N1_LONG(prep)
        tol, atr, expect = prep.tol, prep.atr, _expect(prep)
    else:
        # all windows' arrays end to end, n + 1 entries each (the n-long ones get an unused
        # entry), so a cell's index there is its column plus where its window starts; per
        # level row, its window's tolerance, ATR and volume expectation
        job = np.repeat(np.arange(len(jobs)), [len(p) for _, p in jobs])
        cell = np.cumsum([0] + [n + 1 for n in ns[:-1]])[job][row] + col
        arrays = tuple(np.concatenate([y for x in xs for y in (x, x[:1])]) for xs in zip(*map(_N_LONG, preps)))
        cb, ca, fmax, fmin = (np.concatenate(xs) for xs in zip(*map(_N1_LONG, preps)))
        tol, atr, expect = (np.array(xs)[job] for xs in zip(*[(q.tol, q.atr, _expect(q)) for q in preps]))

    def edges(si: np.ndarray, e1: np.ndarray, sl: np.ndarray) -> tuple[np.ndarray, ...]:
        return cb[si], ca[e1], fmax[e1], fmin[e1]

    return _cell_stats(prices, row, cell, flat, arrays, edges, tol, atr, expect,
                       any(prep.zero_rng for prep in preps), timeframe, events)


@dataclass(frozen=True)
class SeriesPrep:
    """`TouchPrep`'s arrays for a whole series, for windows that are slices of it (a
    backtest's 15m windows, rl.backtest.scans): computed once, read through every window."""
    t: np.ndarray
    h: np.ndarray
    l: np.ndarray
    v: np.ndarray
    rng: np.ndarray          # high - low
    c_ext: np.ndarray        # close, then NaN (no candle after the series)
    fwd_max_ext: np.ndarray  # best high of candles [i, i + LOOKAHEAD) of the series, then NaN
    fwd_min_ext: np.ndarray  # lowest low of the same, then NaN
    zero_before: list[int]   # candles with high == low before index i (i = 0..N)


def series_prep(t: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray, v: np.ndarray) -> SeriesPrep:
    """The `SeriesPrep` of the candles (times, highs, lows, closes, volumes)."""
    nan = np.array([np.nan])
    rng = h - l
    return SeriesPrep(t, h, l, v, rng, np.concatenate([c, nan]),
                      np.concatenate([forward_extreme(h, LOOKAHEAD, np.maximum, -np.inf), nan]),
                      np.concatenate([forward_extreme(l, LOOKAHEAD, np.minimum, np.inf), nan]),
                      np.concatenate([[0], np.cumsum(rng <= 0)]).tolist())


def touch_stats_windows(series: SeriesPrep, jobs: list[tuple[int, int, float, float, np.ndarray]],
                        timeframe: str, *, events: bool = True) -> TouchStats:
    """`touch_stats_many` of windows of one series: job k is (a, end, atr, span, prices) for
    the window series[a:end] (more than LOOKAHEAD candles, positive ATR, span = its highest
    high - lowest low, as `touch_prep` has it). The same numbers, without building each
    window's prep and copying every window's arrays end to end: a cell's candle is read in
    the series itself, and only what the window's edges change is looked up apart (no candle
    before its first one nor after its last one; the forward extremes its end cuts short)."""
    for a, end, w_atr, _, _ in jobs:
        if not (0 <= a and end - a > LOOKAHEAD and end <= len(series.t)) or not w_atr > 0:
            raise ValueError(f"touch_stats_windows: window [{a}, {end}) with atr {w_atr} must lie in the "
                             f"series ({len(series.t)} candles), hold > {LOOKAHEAD} candles and have atr > 0")
    K = LOOKAHEAD
    h, l = series.h, series.l
    tols = [TOUCH_ATR * atr for _, _, atr, _, _ in jobs]
    prices, row, col, flat = _touch_cells([(l[a:end] - tol, h[a:end] + tol, p)
                                           for (a, end, _, _, p), tol in zip(jobs, tols)],
                                          [end - a for a, end, _, _, _ in jobs])
    starts = np.array([a for a, _, _, _, _ in jobs])
    stops = np.array([end for _, end, _, _, _ in jobs])
    job = np.repeat(np.arange(len(jobs)), [len(p) for *_, p in jobs])   # per level row
    cell = starts[job][row] + col
    # per window, the forward extremes of its last K - 1 candles over the window only, and
    # NaN at its end: K per window, read for an episode ending that close to the window's end
    last = stops[:, None] - K + 1 + np.arange(K - 1)
    tail_max = np.hstack([np.maximum.accumulate(h[last][:, ::-1], axis=1)[:, ::-1], np.full((len(jobs), 1), np.nan)])
    tail_min = np.hstack([np.minimum.accumulate(l[last][:, ::-1], axis=1)[:, ::-1], np.full((len(jobs), 1), np.nan)])
    c_ext, nan = series.c_ext, np.nan

    def edges(si: np.ndarray, e1: np.ndarray, sl: np.ndarray) -> tuple[np.ndarray, ...]:
        w = job[sl]
        near = e1 - (stops[w] - K + 1)             # >= 0: within K - 1 candles of the end, or at it
        cut = near >= 0
        tail = w * K + np.maximum(near, 0)
        return (np.where(si == starts[w], nan, c_ext[si - 1]), np.where(e1 == stops[w], nan, c_ext[e1]),
                np.where(cut, tail_max.ravel()[tail], series.fwd_max_ext[e1]),
                np.where(cut, tail_min.ravel()[tail], series.fwd_min_ext[e1]))

    zb = series.zero_before
    tol = np.array(tols)[job]
    atr = np.array([atr for _, _, atr, _, _ in jobs])[job]
    totals = [float(series.v[a:end].sum()) for a, end, _, _, _ in jobs]
    expect = np.array([tot * (2 * t) / span if span > 0 and tot > 0 else 0.0       # as `_expect`
                       for tot, t, (_, _, _, span, _) in zip(totals, tols, jobs)])[job]
    return _cell_stats(prices, row, cell, flat, (series.t, h, l, series.v, series.rng), edges, tol, atr, expect,
                       any(zb[end] > zb[a] for a, end, _, _, _ in jobs), timeframe, events)


def _touch_cells(bounds: list[tuple[np.ndarray, np.ndarray, np.ndarray]], ns: list[int]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(all level prices, row, column, flat index) of the touching (level, candle) cells of
    windows given as (low - tol, high + tol, level prices) of n candles each, level by
    level in time order. The touch matrix holds one row per level over its own window's
    candles, with at least one False pad column per row: in the flat row-major view the
    touching cells of an episode are consecutive and no run crosses into the next row."""
    Ls = [len(p) for _, _, p in bounds]
    R = sum(Ls)
    W = max(ns) + 1
    buf = np.zeros(R * W, dtype=bool)
    rows = buf.reshape(R, W)
    r = 0
    for (lo, hi, p), L, n in zip(bounds, Ls, ns):
        M = rows[r:r + L, :n]
        Pc = p[:, None]
        np.less_equal(lo, Pc, out=M)
        M &= hi >= Pc
        r += L
    flat = buf.nonzero()[0]
    row, col = np.divmod(flat, W)
    return _cat([p for _, _, p in bounds]), row, col, flat


def _cell_stats(prices: np.ndarray, row: np.ndarray, cell: np.ndarray, flat: np.ndarray,
                arrays: tuple[np.ndarray, ...], edges: Callable[..., tuple[np.ndarray, ...]],
                tol: float | np.ndarray, atr: float | np.ndarray, expect: float | np.ndarray,
                zero_rng: bool, timeframe: str, events: bool) -> TouchStats:
    """The statistics from the touching cells (`_touch_cells`): `cell` indexes each cell's
    candle in `arrays` (t, h, l, v, high - low); edges(first candle, candle after, level row)
    of the episodes gives (close before the first, close of the one after, forward max and
    min from the one after), NaN where the window has no such candle; tol, atr and expect
    are per level row (or one window's scalars)."""
    R = len(prices)
    t, h, l, v, rng = arrays
    # an episode is a run of consecutive cells: a new one starts wherever the previous
    # touching cell is not the very previous candle
    edge = (flat[1:] - flat[:-1] != 1).nonzero()[0] + 1
    if len(flat):
        off = np.concatenate([_ZERO, edge])    # each episode's first cell
        last = np.append(edge, len(flat)) - 1  # and its last one
    else:
        off = last = edge
    sl = row[off]                              # each episode's level row
    si, e1 = cell[off], cell[last] + 1         # each episode's first candle, the one after it
    touches = np.bincount(sl, minlength=R).astype(float)
    first_ms = np.full(R, -1, dtype=np.int64)
    last_ms = np.full(R, -1, dtype=np.int64)
    if len(flat):
        # sl is sorted (row-major scan): one segment per touched level; min/max per segment
        # with reduceat, which is exact and cheaper than ufunc.at (no order assumption on t)
        seg = np.empty(len(sl), dtype=bool)
        seg[0] = True
        np.not_equal(sl[1:], sl[:-1], out=seg[1:])
        seg = seg.nonzero()[0]
        first_ms[sl[seg]] = np.minimum.reduceat(t[si], seg)
        last_ms[sl[seg]] = np.maximum.reduceat(t[e1 - 1] + TF_MS.get(timeframe, 0), seg)
    if not events:
        unk = np.full(R, np.nan)
        return TouchStats(touches, unk, unk, unk, first_ms, last_ms, unk)
    # sides before/after: NaN outside the window, so edge episodes are never "held"
    c_before, c_after, fmax, fmin = edges(si, e1, sl)
    Pv, tv = prices[sl], _pick(tol, sl)
    sb = np.sign(c_before - Pv)
    held = (sb == np.sign(c_after - Pv)) & (sb != 0)
    up = sb > 0
    hc, lc = h[cell], l[cell]
    ep_min = np.minimum.reduceat(lc, off) if len(flat) else np.zeros(0)
    ep_max = np.maximum.reduceat(hc, off) if len(flat) else np.zeros(0)
    failed_ep = held & np.where(up, ep_min < Pv - tv, ep_max > Pv + tv)
    # best move away within LOOKAHEAD candles after the episode, in ATR
    move = np.where(up, fmax - Pv, Pv - fmin) / _pick(atr, sl)
    bounce_ep = held & (move >= BOUNCE_ATR)
    # bool weights count exactly; adding 0.0 for the other episodes leaves each sum unchanged
    bounces = np.bincount(sl, weights=bounce_ep, minlength=R)
    bsum = np.bincount(sl, weights=np.where(bounce_ep, move, 0.0), minlength=R)
    failed = np.bincount(sl, weights=failed_ep, minlength=R)
    # volume density: each candle's volume spread evenly over its range, share inside the
    # band. A candle's range meets the band [P - tol, P + tol] exactly when it touches P,
    # so only the touching cells can contribute.
    Pr, tr = prices[row], _pick(tol, row)
    ov = np.minimum(hc, Pr + tr) - np.maximum(lc, Pr - tr)
    np.maximum(ov, 0, out=ov)
    rc = rng[cell]
    if zero_rng:
        frac = np.where(rc > 0, ov / np.where(rc > 0, rc, 1.0),
                        ((lc >= Pr - tr) & (lc <= Pr + tr)).astype(float))
    else:
        frac = ov / rc
    band_vol = np.bincount(row, weights=frac * v[cell], minlength=R)
    vr = np.where(expect > 0, band_vol / np.where(expect > 0, expect, 1.0), 0.0)
    return TouchStats(touches, bounces, bsum, failed, first_ms, last_ms, vr)


_N_LONG = attrgetter("bars.t", "bars.h", "bars.l", "bars.v", "rng")          # a TouchPrep's n-long arrays
_N1_LONG = attrgetter("c_before", "c_after", "fwd_max", "fwd_min")          # and its n + 1-long ones


def _expect(prep: TouchPrep) -> float:
    """Volume a window would trade within +/- tol of any price if spread uniformly over its
    range (0: no range or no volume): what volume_ratio divides by."""
    return prep.total * (2 * prep.tol) / prep.span if prep.span > 0 and prep.total > 0 else 0.0


def _pick(x: float | np.ndarray, idx: np.ndarray) -> float | np.ndarray:
    """x[idx] for per level row values; a lone window's scalar as it is."""
    return x if np.ndim(x) == 0 else x[idx]   # type: ignore[index]  # mypy cannot narrow by np.ndim


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays end to end (the one array itself, uncopied, when there is one)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
