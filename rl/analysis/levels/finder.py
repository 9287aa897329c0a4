"""BestLevelFinder: score candidate levels on six features (each 0..1) with learnable weights.

level score = 100 * sum(weight_f * feature_f), weights summing to 1, so the score is 0..100
and every level carries its feature breakdown: the dashboard and each trade's thought chain
can show *why* a level won. Feature formulas are in `level_features` and docs/strategy.md;
their numbers (where a feature saturates, the multi-timeframe rule, the initial weights) are
`LevelParams`.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from rl.analysis.levels import candidates as lv
from rl.analysis.levels import touches as ts
from rl.analysis.levels.book import _MASK_TF, FEATURES, LevelBook, LevelScan, _ScanResult
from rl.analysis.levels.window_cache import WindowCache
from rl.strategy.params import LevelParams

DEFAULT_WEIGHTS: dict[str, float] = LevelParams().weights.as_dict()   # the store's initial weights
assert tuple(DEFAULT_WEIGHTS) == FEATURES
WEIGHT_SUM_TOL = 1e-6
SMALL_SCAN = 40              # up to this many levels, rank and _features run on Python floats


def validate_weights(weights: dict[str, float]) -> dict[str, float]:
    """Return a clean copy of `weights`; ValueError naming the bad key or rule."""
    if not isinstance(weights, dict):
        raise ValueError(f"weights: must be a dict of the six features, got {type(weights).__name__}")
    unknown = sorted(set(weights) - set(FEATURES))
    if unknown:
        raise ValueError(f"weights: unknown feature(s) {unknown}; expected {list(FEATURES)}")
    missing = [f for f in FEATURES if f not in weights]
    if missing:
        raise ValueError(f"weights: missing feature(s) {missing}")
    out = {}
    for f in FEATURES:
        w = weights[f]
        if isinstance(w, bool) or not isinstance(w, (int, float, np.floating)) or not math.isfinite(w):
            raise ValueError(f"weights[{f!r}]: must be a finite number, got {w!r}")
        if w < 0 or w > 1:
            raise ValueError(f"weights[{f!r}]: must be within 0..1, got {w}")
        out[f] = float(w)
    total = sum(out.values())
    if abs(total - 1.0) > WEIGHT_SUM_TOL:
        raise ValueError(f"weights: must sum to 1 (got {total:.6f})")
    return out


def level_features(stats: dict[str, ts.TouchStats], i: int, origin: str,
                   params: LevelParams = LevelParams()) -> tuple[dict[str, float], dict[str, float]]:
    """Six features (0..1) for level row i, plus the raw numbers behind them.

    Event features are read on the level's own (finest) timeframe; duration spans touches on
    every timeframe; multi_tf_confirm follows design 3.2.
    """
    s = stats[origin]
    bounces = float(s.bounces[i])
    mean_move = float(s.bounce_atr_sum[i]) / bounces if bounces else 0.0
    firsts = [int(st.first_ms[i]) for st in stats.values() if st.first_ms[i] >= 0]
    lasts = [int(st.last_ms[i]) for st in stats.values() if st.last_ms[i] >= 0]
    days = (max(lasts) - min(firsts)) / 86_400_000 if firsts else 0.0
    mtf = sum(pts for tf, need, pts in params.multi_tf.as_rule()
              if tf in stats and stats[tf].touches[i] >= need)
    feats = {
        "volume_density": min(1.0, float(s.volume_ratio[i]) / params.volume_ratio_full),
        "touch_bounce_count": min(bounces, params.bounces_full) / params.bounces_full,
        "bounce_magnitude": min(mean_move, params.bounce_atr_full) / params.bounce_atr_full,
        "failed_breakout_count": min(float(s.failed[i]), params.failed_full) / params.failed_full,
        "duration_days": min(1.0, math.log1p(max(days, 0.0)) / math.log1p(params.duration_days_full)),
        "multi_tf_confirm": round(mtf, 10),
    }
    raw = {"volume_ratio": float(s.volume_ratio[i]), "bounces": bounces, "mean_bounce_atr": mean_move,
           "failed_breakouts": float(s.failed[i]), "duration_days": days}
    return feats, raw


@lru_cache(maxsize=64)
def _mtf_table(tfs: tuple[str, ...], rule: tuple[tuple[str, int, float], ...]) -> list:
    """multi_tf_confirm for each bitmask of 'enough touches' per timeframe, computed with
    the very expression of `level_features` (so even its int 0 for no confirmation stays)."""
    out = []
    for mask in range(8):
        ok = {tf: bool(mask >> i & 1) for i, tf in enumerate(lv.LEVEL_TIMEFRAMES)}
        out.append(round(sum(pts for tf, need, pts in rule if tf in tfs and ok[tf]), 10))
    return out


class _DurationMemo(dict):
    """duration_days feature by days value, with `level_features`' very expression: days
    are differences of candle times, so the same few values recur at every scan and a dict
    lookup replaces the log. (Days are never NaN or -0.0, which a dict would conflate.)"""

    LIMIT = 1 << 16

    def __init__(self, full_days: float) -> None:
        super().__init__()
        self.log_full = math.log1p(full_days)

    def __missing__(self, d: float) -> float:
        if len(self) >= self.LIMIT:
            self.clear()
        v = self[d] = min(1.0, math.log1p(max(d, 0.0)) / self.log_full)
        return v


@lru_cache(maxsize=16)
def _duration(full_days: float) -> _DurationMemo:
    """The duration memo for `LevelParams.duration_days_full` = full_days."""
    return _DurationMemo(full_days)


class BestLevelFinder:
    """Finds, scores and ranks support/resistance levels with the given feature weights.

    A finder remembers, per timeframe, the last window it scanned (see `WindowCache`): reuse
    one finder across a backtest and a 15m close only redoes the 15m work. `Bars` passed in
    are treated as immutable (an unchanged window is recognised by identity or equality).
    """

    def __init__(self, weights: dict[str, float] | None = None, params: LevelParams = LevelParams()) -> None:
        self.params = params
        self.weights = validate_weights(params.weights.as_dict() if weights is None else weights)
        self._caches: dict[str, WindowCache] = {}   # per-timeframe window cache, see WindowCache

    def score(self, features: dict[str, float]) -> float:
        return 100.0 * sum(self.weights[f] * features[f] for f in FEATURES)

    def scan(self, bars: dict[str, lv.Bars], atrs: dict[str, float], ref_price: float) -> LevelBook:
        """Candidates on 15m/8h/1w, merged within 0.5 ATR(15m), scored and ranked:
        `rank(prepare(...))`.

        `ref_price` (the last closed 15m close) only bounds which candidates are kept
        (+/- 6 ATR(8h)) and labels the returned book; it is not the live price. Same result
        as scoring every level with `level_features` and `score` one by one (tested against
        that reference), computed with arrays and the per-timeframe caches.
        """
        return self.rank(self.prepare(bars, atrs, ref_price))

    def prepare(self, bars: dict[str, lv.Bars], atrs: dict[str, float], ref_price: float) -> LevelScan:
        """Everything of a scan that does not depend on the weights: the levels and their six
        features. A backtest prepares these a chunk of closes ahead (rl.backtest.scans); the
        weights, which learning changes as trades close, are applied by `rank`."""
        p = self._levels(bars, atrs, ref_price)
        if isinstance(p, LevelScan):
            return p
        stats = {tf: self._caches[tf].stats(p.prices, p.plist, [o == tf for o in p.finest]) for tf in p.tf_list}
        return self._features(stats, p.prices, p.plist, p.tfm, p.srm, p.first_seen, ref_price, p.atr, p.notes)

    def prepare_many(self, inputs: list) -> list[LevelScan]:
        """`prepare(bars, atrs, ref)` for consecutive scans' inputs (bars, atrs, ref[,
        15m window cache or None]) or ready empty scans, with the work they share done once
        (touch statistics of an 8h/1w window for all their new level prices in one call) and
        the rest done for all of them together: the candidates' range filter and merges
        (`_merged`), the 15m windows' touch statistics (`ts.touch_stats_windows`) and the
        features of all their levels (`_features_arrays`). Each is a few dozen vector
        operations whose fixed cost, paid once per chunk instead of once per scan, was most
        of a scan's (a backtest prepares 48 closes at a time, rl.backtest.scans); the results
        are identical to `prepare` one scan at a time (tests/backtest/test_backtest_scans.py)."""
        out: list[LevelScan | None] = [None] * len(inputs)
        cands = []
        for i, inp in enumerate(inputs):
            if isinstance(inp, LevelScan):
                out[i] = inp
                continue
            if len(inp) > 3 and inp[3] is not None:
                self._caches["15m"] = inp[3]
            c = self._candidates(*inp[:3])
            if isinstance(c, LevelScan):
                out[i] = c
            else:   # the window caches as they are now: later scans of the chunk replace them
                cands.append((i, c, {tf: self._caches[tf] for tf in c.tf_list}))
        pend = []
        for (i, c, caches), p in zip(cands, _merged([c for _, c, _ in cands])):
            if isinstance(p, LevelScan):
                out[i] = p
            else:
                pend.append((i, p, c.ref_price, caches))
        stats, offs = _window_stats([(it[1], it[3]) for it in pend])
        groups: dict[tuple, list[int]] = {}
        for k, item in enumerate(pend):
            groups.setdefault(tuple(item[1].tf_list), []).append(k)
        for tfs, ks in groups.items():
            cols = _columns(offs, ks)
            S = {tf: stats[tf][:, cols] for tf in tfs}
            cat = [np.concatenate([getattr(pend[k][1], f) for k in ks]) for f in ("prices", "tfm", "srm", "first_seen")]
            plist = [x for k in ks for x in pend[k][1].plist]
            M = self._features_arrays(S, cat[0], plist, cat[1], cat[2], cat[3], 0.0, 0.0, [],
                                      params=self.params).M
            a = 0
            for k in ks:
                i, p, ref, _ = pend[k]
                b = a + len(p.plist)
                out[i] = LevelScan(ref, p.atr, p.notes, tfs, M[:, a:b])
                a = b
        return out  # type: ignore[return-value]

    def _levels(self, bars: dict[str, lv.Bars], atrs: dict[str, float], ref_price: float) -> _Levels | LevelScan:
        """The merged levels of a scan before their touch statistics (or the empty scan)."""
        c = self._candidates(bars, atrs, ref_price)
        return c if isinstance(c, LevelScan) else _merged([c])[0]

    def _candidates(self, bars: dict[str, lv.Bars], atrs: dict[str, float], ref_price: float) -> _Cands | LevelScan:
        """A scan's candidates on every timeframe with a usable ATR, within reach of the
        reference price, before the merge (or the empty scan)."""
        notes: list[str] = []
        tfs = [tf for tf in lv.LEVEL_TIMEFRAMES if tf in bars and len(bars[tf]) > 0]
        good_atr = {tf: atrs.get(tf, float("nan")) for tf in tfs}
        good_atr = {tf: a for tf, a in good_atr.items() if a == a and a > 0}
        for tf in lv.LEVEL_TIMEFRAMES:
            if tf not in good_atr:
                n = len(bars[tf]) if tf in bars else 0
                notes.append(f"levels: {tf} has {n} closed candles, too few for ATR; its touches are not counted")
        if not good_atr:
            return LevelScan.empty(ref_price, float("nan"), notes)
        merge_atr = good_atr.get("15m", next(iter(good_atr.values())))
        caches = self._caches
        for tf, a in good_atr.items():
            entry = caches.get(tf)
            if entry is None or not entry.same(bars[tf], a):
                caches[tf] = WindowCache(bars[tf], a, tf)
        tf_list = list(good_atr)
        span = lv.RANGE_ATR_8H * good_atr["8h"] if "8h" in good_atr else lv.RANGE_ATR_8H * 5.0 * merge_atr
        return _Cands([x for tf in tf_list for x in caches[tf].pieces], span, tf_list, merge_atr, notes, ref_price)

    def rank(self, scan: LevelScan) -> LevelBook:
        """Score every level of `scan` with this finder's weights and rank them (best score
        first, ties by distance to the scan's reference price)."""
        M = scan.M
        L = M.shape[1]
        proximity_atr = self.params.proximity_atr
        if not L:
            return LevelBook(_ScanResult(scan, [], [], []), scan.atr, scan.notes, proximity_atr=proximity_atr)
        ref_price = scan.ref_price
        plist = M[0].tolist()
        w0, w1, w2, w3, w4, w5 = (self.weights[f] for f in FEATURES)
        if L <= SMALL_SCAN:
            # plain floats: for a few dozen levels numpy's per-call overhead costs more than
            # the arithmetic; the same additions in the same order as the array branch
            score = [100.0 * (((((0.0 + w0 * x0) + w1 * x1) + w2 * x2) + w3 * x3) + w4 * x4 + w5 * x5)
                     for x0, x1, x2, x3, x4, x5 in zip(*M[1:7].tolist())]
            dist = [abs(p - ref_price) for p in plist]
            order = sorted(range(L), key=lambda k: (-score[k], dist[k]))
        else:
            acc = np.zeros(L)
            for w, k in zip((w0, w1, w2, w3, w4, w5), range(1, 7)):
                acc = acc + w * M[k]
            arr = 100.0 * acc
            order = np.lexsort((np.abs(M[0] - ref_price), -arr)).tolist()
            score = arr.tolist()
        return LevelBook(_ScanResult(scan, order, plist, score), scan.atr, scan.notes, proximity_atr=proximity_atr)

    def _features(self, stats: dict[str, np.ndarray], prices: np.ndarray, plist: list[float], tfm: np.ndarray,
                  srm: np.ndarray, first_seen: np.ndarray, ref_price: float, atr: float,
                  notes: list[str]) -> LevelScan:
        """`level_features` for every level. Two implementations with identical results
        (tested against each other): scalar for small scans, arrays for big ones."""
        feats = self._features_small if len(plist) <= SMALL_SCAN else self._features_arrays
        return feats(stats, prices, plist, tfm, srm, first_seen, ref_price, atr, notes, params=self.params)

    @staticmethod
    def _features_arrays(stats: dict[str, np.ndarray], prices: np.ndarray, plist: list[float], tfm: np.ndarray,
                         srm: np.ndarray, first_seen: np.ndarray, ref_price: float, atr: float,
                         notes: list[str], params: LevelParams = LevelParams()) -> LevelScan:
        """`_features` with arrays (faster above SMALL_SCAN levels). Each operation is the
        elementwise IEEE twin of the per-level Python original, so the features are identical."""
        vfull, bfull, afull, ffull = (params.volume_ratio_full, params.bounces_full, params.bounce_atr_full,
                                      params.failed_full)
        rule = params.multi_tf.as_rule()
        L = len(plist)
        tf_list = list(stats)
        S = np.stack([stats[tf] for tf in tf_list])          # (timeframes, 7, levels)
        origin_tf = [_MASK_TF[m] for m in tfm.tolist()]
        o = [tf_list.index(tf) for tf in origin_tf] if len(tf_list) > 1 else [0] * L
        own = S[o, :, np.arange(L)]                          # (levels, 7): the origin timeframe's row
        bounces, bsum, failed, vr = own[:, 1], own[:, 2], own[:, 3], own[:, 6]
        mean_move = np.divide(bsum, bounces, out=np.zeros(L), where=bounces != 0)
        F, Lm = S[:, 4], S[:, 5]
        touched = (F >= 0).any(axis=0)
        first = np.where(F >= 0, F, np.inf).min(axis=0)
        last = Lm.max(axis=0)
        days = np.where(touched, (last - np.where(touched, first, last)) / 86_400_000, 0.0)
        duration = list(map(_duration(params.duration_days_full).__getitem__, days.tolist()))
        mask = np.zeros(L, dtype=np.int64)
        for tf, need, _ in rule:
            if tf in stats:
                mask |= (S[tf_list.index(tf), 0] >= need).astype(np.int64) << lv.TF_CODE[tf]
        mtf = np.array(_mtf_table(tuple(tf_list), rule), dtype=float)[mask]
        M = np.vstack([prices, np.where(vr / vfull < 1.0, vr / vfull, 1.0),
                       np.where(bfull < bounces, bfull, bounces) / bfull,
                       np.where(afull < mean_move, afull, mean_move) / afull,
                       np.where(ffull < failed, ffull, failed) / ffull,
                       np.array(duration, dtype=float), mtf, vr, bounces, mean_move, failed, days,
                       first_seen, last, srm, tfm, S[:, 0]])
        return LevelScan(ref_price, atr, notes, tuple(tf_list), M)

    @staticmethod
    def _features_small(stats: dict[str, np.ndarray], prices: np.ndarray, plist: list[float], tfm: np.ndarray,
                        srm: np.ndarray, first_seen: np.ndarray, ref_price: float, atr: float,
                        notes: list[str], params: LevelParams = LevelParams()) -> LevelScan:
        """`_features` in plain floats: for a few dozen levels numpy's per-call overhead costs
        more than the arithmetic. Each operation is the scalar twin of the per-level original."""
        vfull, bfull, afull, ffull = (params.volume_ratio_full, params.bounces_full, params.bounce_atr_full,
                                      params.failed_full)
        rule = params.multi_tf.as_rule()
        L = len(plist)
        tf_list = list(stats)
        rows = [stats[tf].tolist() for tf in tf_list]        # per timeframe: 7 lists of L floats
        origin_tf = [_MASK_TF[m] for m in tfm.tolist()]
        table = _mtf_table(tuple(tf_list), rule)
        if len(tf_list) > 1:
            pos = {tf: k for k, tf in enumerate(tf_list)}
            own = [rows[pos[tf]] for tf in origin_tf]
            cols = [[own[i][r][i] for i in range(L)] for r in (1, 2, 3, 6)]
        else:
            cols = [rows[0][r] for r in (1, 2, 3, 6)]
        bounces, bsum, failed, vr = cols
        mean_move = [s / b if b != 0 else 0.0 for s, b in zip(bsum, bounces)]
        # first touch over timeframes (ignoring -1 = untouched), last touch = max
        if len(rows) == 1:
            firsts, lasts = rows[0][4], rows[0][5]
            days = [(la - fi) / 86_400_000 if fi >= 0 else 0.0 for fi, la in zip(firsts, lasts)]
            last_l = lasts
        else:
            fz = list(zip(*(r[4] for r in rows)))
            lz = list(zip(*(r[5] for r in rows)))
            days = []
            last_l = []
            for fs, ls in zip(fz, lz):
                la = max(ls)
                last_l.append(la)
                mn = min(fs)
                if mn < 0:                       # untouched (-1) on some timeframe
                    good = [x for x in fs if x >= 0]
                    days.append((la - min(good)) / 86_400_000 if good else 0.0)
                else:                            # touched everywhere: min(good) == min(fs)
                    days.append((la - mn) / 86_400_000)
        duration = list(map(_duration(params.duration_days_full).__getitem__, days))
        mask = [0] * L
        for tf, need, _ in rule:
            if tf in stats:
                bit = 1 << lv.TF_CODE[tf]
                mask = [m | bit if t >= need else m for m, t in zip(mask, rows[tf_list.index(tf)][0])]
        mtf = [table[m] for m in mask]
        vd = [x if x < 1.0 else 1.0 for x in (v / vfull for v in vr)]
        tb = [(bfull if bfull < b else b) / bfull for b in bounces]
        bm = [(afull if afull < m else m) / afull for m in mean_move]
        fb = [(ffull if ffull < f else f) / ffull for f in failed]
        M = np.array([plist, vd, tb, bm, fb, duration, mtf, vr, bounces, mean_move, failed, days,
                      first_seen.tolist(), last_l, srm.tolist(), tfm.tolist(), *(r[0] for r in rows)], dtype=float)
        return LevelScan(ref_price, atr, notes, tuple(tf_list), M)


class _Cands(NamedTuple):
    """A scan's candidates before the merge (`BestLevelFinder._candidates`): those within
    `span` of the reference price are kept (done in `_merged`, for many scans at once)."""
    pieces: list[tuple[np.ndarray, ...]]   # per timeframe: (price, timeframe code, source code, time)
    span: float
    tf_list: list[str]       # timeframes with a usable ATR, finest first
    atr: float               # ATR the levels are merged with (15m when usable)
    notes: list[str]
    ref_price: float


def _merged(cands: list[_Cands]) -> list[_Levels | LevelScan]:
    """Each scan's candidates within reach of its reference price, merged into levels (or
    its empty scan). All scans' candidates are filtered in one pass and merged together
    (`lv.merge_sets`, identical to one at a time): a chunk of a backtest's closes costs a
    few dozen vector operations instead of a dozen per scan."""
    if not cands:
        return []
    sizes = [sum(len(p[0]) for p in c.pieces) for c in cands]
    price, code, src, tms = (ts._cat([p[k] for c in cands for p in c.pieces]) for k in range(4))
    if len(cands) == 1:
        keep = np.abs(price - cands[0].ref_price) <= cands[0].span
        kept = [int(np.count_nonzero(keep))]
    else:
        ref, span = (np.repeat(np.array(x), sizes) for x in zip(*[(c.ref_price, c.span) for c in cands]))
        keep = np.abs(price - ref) <= span
        kept = np.diff(np.concatenate([lv._ZERO, np.cumsum(keep)])[np.cumsum([0] + sizes)]).tolist()
    out: list[_Levels | LevelScan] = []
    for c, (prices, tfm, srm, first_seen) in zip(cands, lv.merge_sets(
            price[keep], code[keep], src[keep], tms[keep], kept, [lv.MERGE_ATR * c.atr for c in cands])):
        if not len(prices):
            out.append(LevelScan.empty(c.ref_price, c.atr, c.notes))
        else:
            out.append(_Levels(prices, prices.tolist(), tfm, srm, first_seen, c.tf_list,
                               [_MASK_TF[m] for m in tfm.tolist()], c.atr, c.notes))
    return out


class _Levels(NamedTuple):
    """A scan's merged levels (price order) before their touch statistics."""
    prices: np.ndarray
    plist: list[float]
    tfm: np.ndarray          # timeframe bitmask per level
    srm: np.ndarray          # source bitmask per level
    first_seen: np.ndarray
    tf_list: list[str]       # timeframes with a usable ATR, finest first
    finest: list[str]        # each level's finest timeframe
    atr: float               # ATR the levels were merged with (15m when usable)
    notes: list[str]


def _window_stats(scans: list[tuple[Any, dict[str, WindowCache]]]) -> tuple[dict[str, np.ndarray], list[int]]:
    """The touch statistics of the scans (their levels, their window cache per timeframe)
    laid end to end: per timeframe a (7, all levels) matrix whose columns offs[k]:offs[k+1]
    are scan k's, as `WindowCache.stats` gives them (columns of a scan not reading the
    timeframe are left unset). Windows that one scan alone reads (the 15m windows, new at
    every close) are computed together per timeframe (`WindowCache.fresh`); a window several
    scans share (8h/1w) computes their new prices in one `fill`, then one gather."""
    offs = np.cumsum([0] + [len(levels.plist) for levels, _ in scans]).tolist()
    readers: dict[int, list[tuple[int, str]]] = {}
    for k, (_, caches) in enumerate(scans):
        for tf, cache in caches.items():
            readers.setdefault(id(cache), []).append((k, tf))
    out: dict[str, np.ndarray] = {}

    def place(tf: str, ks: list[int], m: np.ndarray) -> None:
        if tf not in out and len(ks) == len(scans):      # every scan reads it, in order: no copy
            out[tf] = m
        else:
            out.setdefault(tf, np.empty((7, offs[-1])))[:, _columns(offs, ks)] = m

    alone: dict[str, list[tuple[int, WindowCache]]] = {}
    for reads in readers.values():
        if len(reads) == 1:
            k, tf = reads[0]
            alone.setdefault(tf, []).append((k, scans[k][1][tf]))
            continue
        cache = scans[reads[0][0]][1][reads[0][1]]
        full = [[o == tf for o in scans[k][0].finest] for k, tf in reads]
        cache.fill([(scans[k][0].plist, f) for (k, _), f in zip(reads, full)])
        place(reads[0][1], [k for k, _ in reads], cache.gather([x for k, _ in reads for x in scans[k][0].plist]))
    for tf, items in alone.items():
        place(tf, [k for k, _ in items],
              WindowCache.fresh([(c, scans[k][0].prices, [o == tf for o in scans[k][0].finest]) for k, c in items]))
    return out, offs


def _columns(offs: list[int], ks: list[int]) -> slice | np.ndarray:
    """The columns of scans ks (ascending) in a matrix laid out by `offs`: a slice when they
    are consecutive (the usual case, and a view), else the indices."""
    if ks[-1] - ks[0] == len(ks) - 1:
        return slice(offs[ks[0]], offs[ks[-1] + 1])
    return np.concatenate([np.arange(offs[k], offs[k + 1]) for k in ks])
