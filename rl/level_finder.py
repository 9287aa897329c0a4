"""BestLevelFinder: score candidate levels on six features (each 0..1) with learnable weights.

level score = 100 * sum(weight_f * feature_f), weights summing to 1, so the score is 0..100
and every level carries its feature breakdown: the dashboard and each trade's thought chain
can show *why* a level won. Feature formulas are in `level_features` and docs/strategy.md.
"""
from __future__ import annotations

import math
from functools import lru_cache
from bisect import bisect_left, bisect_right
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import numpy as np

from rl import levels as lv

FEATURES: tuple[str, ...] = ("volume_density", "touch_bounce_count", "bounce_magnitude",
                             "failed_breakout_count", "duration_days", "multi_tf_confirm")
DEFAULT_WEIGHTS: dict[str, float] = {
    "volume_density": 0.20, "touch_bounce_count": 0.20, "bounce_magnitude": 0.15,
    "failed_breakout_count": 0.20, "duration_days": 0.10, "multi_tf_confirm": 0.15,
}
# design 3.2: (timeframe, touches needed, contribution)
MULTI_TF_RULE: tuple[tuple[str, int, float], ...] = (("15m", 3, 0.6), ("8h", 2, 0.3), ("1w", 1, 0.1))
VOLUME_RATIO_FULL = 3.0      # 3x the uniform volume density -> 1.0
BOUNCES_FULL = 5             # 5 bounces -> 1.0
BOUNCE_ATR_FULL = 3.0        # mean bounce of 3 ATR -> 1.0
FAILED_FULL = 3              # 3 failed breakouts -> 1.0
DURATION_DAYS_FULL = 30.0    # log scale, 30 days -> 1.0
PROXIMITY_ATR = 3.0          # a level further than 3 ATR(15m) from price does not count now
MAX_LEVELS = 30              # levels listed in an analysis (best first)
WEIGHT_SUM_TOL = 1e-6
SMALL_SCAN = 40              # up to this many levels, _rank runs on Python floats (see _rank)


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


@dataclass(frozen=True)
class ScoredLevel:
    price: float
    kind: str                      # "support" | "resistance" relative to the current price
    score: float                   # 0..100
    features: dict[str, float]     # each 0..1
    touches: dict[str, int]        # touch episodes per timeframe
    timeframe: str                 # finest timeframe the level was found on
    first_seen_ms: int
    last_touch_ms: int             # -1 when never touched inside the windows
    sources: tuple[str, ...] = ()  # pivot_high / pivot_low / volume_node
    stats: dict[str, float] = field(default_factory=dict)  # raw counts behind the features

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sources"] = list(self.sources)
        return d


def level_features(stats: dict[str, lv.TouchStats], i: int, origin: str) -> tuple[dict[str, float], dict[str, float]]:
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
    mtf = sum(pts for tf, need, pts in MULTI_TF_RULE if tf in stats and stats[tf].touches[i] >= need)
    feats = {
        "volume_density": min(1.0, float(s.volume_ratio[i]) / VOLUME_RATIO_FULL),
        "touch_bounce_count": min(bounces, BOUNCES_FULL) / BOUNCES_FULL,
        "bounce_magnitude": min(mean_move, BOUNCE_ATR_FULL) / BOUNCE_ATR_FULL,
        "failed_breakout_count": min(float(s.failed[i]), FAILED_FULL) / FAILED_FULL,
        "duration_days": min(1.0, math.log1p(max(days, 0.0)) / math.log1p(DURATION_DAYS_FULL)),
        "multi_tf_confirm": round(mtf, 10),
    }
    raw = {"volume_ratio": float(s.volume_ratio[i]), "bounces": bounces, "mean_bounce_atr": mean_move,
           "failed_breakouts": float(s.failed[i]), "duration_days": days}
    return feats, raw


class LevelBook:
    """Ranked levels of one scan, re-labelled support/resistance cheaply as price moves."""

    def __init__(self, ranked: list[ScoredLevel], atr_value: float, notes: list[str]) -> None:
        self.ranked = ranked
        self.atr = atr_value
        self.notes = notes
        by_price = sorted(range(len(ranked)), key=lambda k: ranked[k].price)
        self._prices = [ranked[k].price for k in by_price]
        self._levels = [ranked[k] for k in by_price]
        self._variants: dict[tuple[int, int], ScoredLevel] = {}  # made on demand: scans must stay cheap
        self._cache_key: tuple[int, int] | None = None
        self._cache: tuple = ()

    @property
    def size(self) -> int:
        """Number of levels (without building them)."""
        return len(self._prices)

    def view(self, price: float) -> tuple[list[ScoredLevel], ScoredLevel | None, ScoredLevel | None]:
        """(levels best first labelled for `price`, best support, best resistance).

        Supports are levels <= price, resistances >= price. The best support maximises
        score * max(0, 1 - distance / (3 ATR15m)); if none is that close, the nearest one.
        """
        lo, hi = bisect_left(self._prices, price), bisect_right(self._prices, price)
        if (lo, hi) == self._cache_key:
            listed, bs, br = self._cache
            return list(listed), bs, br
        listed = [self._variant(x, 0 if x.price <= price else 1) for x in self.ranked[:MAX_LEVELS]]
        bs = self._best(range(hi - 1, -1, -1), price, 0)
        br = self._best(range(lo, len(self._levels)), price, 1)
        self._cache_key, self._cache = (lo, hi), (listed, bs, br)
        return list(listed), bs, br

    def pick(self, price: float) -> tuple[ScoredLevel | None, ScoredLevel | None]:
        """(best support, best resistance) of `view(price)` without building the listed
        levels (the backtest reads only these two; the list is built when someone reads it)."""
        lo, hi = bisect_left(self._prices, price), bisect_right(self._prices, price)
        if (lo, hi) == self._cache_key:
            return self._cache[1], self._cache[2]
        return (self._best(range(hi - 1, -1, -1), price, 0), self._best(range(lo, len(self._levels)), price, 1))

    def _best(self, idx, price: float, side: int) -> ScoredLevel | None:
        best, best_eff, nearest = None, 0.0, None
        reach = PROXIMITY_ATR * self.atr if self.atr == self.atr else 0.0
        for k in idx:
            x = self._levels[k]
            dist = abs(price - x.price)
            if nearest is None:
                nearest = x
            if dist >= reach:
                break
            eff = x.score * (1.0 - dist / reach)
            if eff > best_eff:
                best, best_eff = x, eff
        pick = best if best is not None else nearest
        return None if pick is None else self._variant(pick, side)

    def _variant(self, x: ScoredLevel, side: int) -> ScoredLevel:
        key = (id(x), side)
        v = self._variants.get(key)
        if v is None:
            kind = "support" if side == 0 else "resistance"
            v = self._variants[key] = x if x.kind == kind else replace(x, kind=kind)
        return v

    def proximity(self, level: ScoredLevel, price: float) -> float:
        """1 at the level, falling linearly to 0 at 3 ATR(15m) away."""
        if not (self.atr == self.atr and self.atr > 0):
            return 0.0
        return max(0.0, 1.0 - abs(price - level.price) / (PROXIMITY_ATR * self.atr))


class _ScanResult:
    """A ranked scan: the ranking permutation and scores over a LevelScan's columns;
    ScoredLevel objects are built only for the rows somebody looks at (the listed best 30
    and the chosen support/resistance), not for every level of every scan."""

    def __init__(self, scan: "LevelScan", order: list[int], plist: list[float], score: list[float]) -> None:
        self.ref_price, self.order, self._scan = scan.ref_price, order, scan
        self.price = [plist[k] for k in order]          # ranking order (what views iterate)
        self.score = [score[k] for k in order]

    def __len__(self) -> int:
        return len(self.price)

    def level(self, r: int, kind: str) -> ScoredLevel:
        """The ScoredLevel of ranking row r, labelled `kind`."""
        scan = self._scan
        col = scan.M[:, self.order[r]].tolist()
        feats = col[1:7]
        if feats[5] == 0:
            feats[5] = 0                 # multi_tf_confirm's "none" is the int 0 of level_features
        x = object.__new__(ScoredLevel)
        object.__setattr__(x, "__dict__", {
            "price": self.price[r], "kind": kind, "score": self.score[r],
            "features": _feature_dict(*feats),
            "touches": {tf: int(v) for tf, v in zip(scan.tf_names, col[_ROW_TOUCH:])},
            "timeframe": _MASK_TF[int(col[_ROW_TFM])], "first_seen_ms": int(col[_ROW_FIRST]),
            "last_touch_ms": int(col[_ROW_LAST]), "sources": _MASK_SRC[int(col[_ROW_SRC])],
            "stats": _raw_dict(*col[7:12])})
        return x


_RAW_KEYS = ("volume_ratio", "bounces", "mean_bounce_atr", "failed_breakouts", "duration_days")


def _feature_dict(a: float, b: float, c: float, d: float, e: float, f: float) -> dict[str, float]:
    """dict(zip(FEATURES, row)) as a literal: views build a few dozen of these per scan."""
    return {"volume_density": a, "touch_bounce_count": b, "bounce_magnitude": c,
            "failed_breakout_count": d, "duration_days": e, "multi_tf_confirm": f}


def _raw_dict(a: float, b: float, c: float, d: float, e: float) -> dict[str, float]:
    return {"volume_ratio": a, "bounces": b, "mean_bounce_atr": c, "failed_breakouts": d, "duration_days": e}


assert tuple(_feature_dict(*FEATURES)) == FEATURES and tuple(_raw_dict(*_RAW_KEYS)) == _RAW_KEYS


class _LazyBook(LevelBook):
    """A LevelBook over a `_ScanResult`: same answers as LevelBook over the full list."""

    def __init__(self, res: _ScanResult, atr_value: float, notes: list[str]) -> None:
        self._res = res
        self.atr = atr_value
        self.notes = notes
        self._ranked: list[ScoredLevel] | None = None
        by_price = sorted(range(len(res)), key=res.price.__getitem__)
        self._prices = [res.price[r] for r in by_price]
        self._rows = by_price
        self._variants_r: dict[tuple[int, int], ScoredLevel] = {}
        self._cache_key = None
        self._cache = ()

    @property
    def ranked(self) -> list[ScoredLevel]:  # type: ignore[override]
        if self._ranked is None:
            ref = self._res.ref_price
            self._ranked = [self._row(r, 0 if p <= ref else 1) for r, p in enumerate(self._res.price)]
        return self._ranked

    def _row(self, r: int, side: int) -> ScoredLevel:
        key = (r, side)
        v = self._variants_r.get(key)
        if v is None:
            v = self._variants_r[key] = self._res.level(r, "support" if side == 0 else "resistance")
        return v

    def view(self, price: float) -> tuple[list[ScoredLevel], ScoredLevel | None, ScoredLevel | None]:
        lo, hi = bisect_left(self._prices, price), bisect_right(self._prices, price)
        if (lo, hi) == self._cache_key:
            listed, bs, br = self._cache
            return list(listed), bs, br
        listed = [self._row(r, 0 if p <= price else 1) for r, p in enumerate(self._res.price[:MAX_LEVELS])]
        bs = self._best_row(range(hi - 1, -1, -1), price, 0)
        br = self._best_row(range(lo, len(self._rows)), price, 1)
        self._cache_key, self._cache = (lo, hi), (listed, bs, br)
        return list(listed), bs, br

    def pick(self, price: float) -> tuple[ScoredLevel | None, ScoredLevel | None]:
        lo, hi = bisect_left(self._prices, price), bisect_right(self._prices, price)
        if (lo, hi) == self._cache_key:
            return self._cache[1], self._cache[2]
        return (self._best_row(range(hi - 1, -1, -1), price, 0), self._best_row(range(lo, len(self._rows)), price, 1))

    def _best_row(self, idx, price: float, side: int) -> ScoredLevel | None:
        best, best_eff, nearest = None, 0.0, None
        reach = PROXIMITY_ATR * self.atr if self.atr == self.atr else 0.0
        score = self._res.score
        for k in idx:
            r = self._rows[k]
            dist = abs(price - self._prices[k])
            if nearest is None:
                nearest = r
            if dist >= reach:
                break
            eff = score[r] * (1.0 - dist / reach)
            if eff > best_eff:
                best, best_eff = r, eff
        pick = best if best is not None else nearest
        return None if pick is None else self._row(pick, side)


class _TfCache:
    """One timeframe's window as last scanned: its candidates, the price-independent touch
    arrays and touch statistics already computed per level price. 8h and 1w windows change
    only when their own candle closes, so between those closes a 15m rescan reuses all of it
    (the statistics of a price depend only on the window, its ATR and the price)."""

    MAX_MEMO = 4096

    def __init__(self, bars: lv.Bars, atr: float, tf: str, cands: tuple | None = None,
                 prep: lv.TouchPrep | None = None) -> None:
        """`cands`/`prep`, when given, must equal `lv.candidate_arrays(bars, atr, tf)` and
        `lv.touch_prep(bars, atr)` (rl.scan_ahead derives them from whole-series arrays)."""
        self.bars, self.atr, self.tf = bars, atr, tf
        self.cands = lv.candidate_arrays(bars, atr, tf) if cands is None else cands
        self.code = np.full(len(self.cands[0]), _TF_CODE[tf], dtype=np.int64)  # timeframe code per candidate
        self.prep = lv.touch_prep(bars, atr) if prep is None else prep
        self.memo: dict[float, int] = {}           # price -> column of self.table
        self.full: list[bool] = []                 # per column: event/volume rows computed
        self.table = _NO_TABLE                     # stats per memo column (capacity doubles)
        self.used = 0

    def same(self, bars: lv.Bars, atr: float) -> bool:
        if self.atr != atr:
            return False
        b = self.bars
        if bars is b:
            return True
        return (len(bars) == len(b) and np.array_equal(bars.t, b.t) and np.array_equal(bars.h, b.h)
                and np.array_equal(bars.l, b.l) and np.array_equal(bars.c, b.c) and np.array_equal(bars.v, b.v))

    def stats(self, prices: np.ndarray, plist: list[float], full: list[bool]) -> np.ndarray:
        """Touch statistics of `prices` (plist = the same as floats) as a (7, levels) matrix
        (rows in TouchStats field order), computing only prices never seen on this window.
        full[i]: level i needs the event and volume rows too (its finest timeframe is this
        one); the others need only touches and first/last times (NaN elsewhere). A memo hit
        is exact: same window, same ATR, same price."""
        memo, done = self.memo, self.full
        if len(memo) > self.MAX_MEMO:
            memo.clear()
            done.clear()
            self.used = 0
        if not memo:                                 # fresh window (every 15m scan): all new
            ev = any(full)                           # (level prices of a scan are distinct)
            m = _as_matrix(lv.touch_stats(self.bars, prices, self.atr, self.tf, self.prep, events=ev))
            self._store(plist, m, ev)
            return m
        need = {p: f for p, f in zip(plist, full) if p not in memo or (f and not done[memo[p]])}
        ev = any(need.values())
        if len(need) == len(plist):                  # first sight of this window: no gather
            m = _as_matrix(lv.touch_stats(self.bars, prices, self.atr, self.tf, self.prep, events=ev))
            self._store(plist, m, ev)
            return m
        if need:
            self._store(list(need), _as_matrix(lv.touch_stats(self.bars, np.array(list(need)), self.atr, self.tf,
                                                              self.prep, events=ev)), ev)
        return self.table[:, [memo[p] for p in plist]]

    @staticmethod
    def fresh(windows: list[tuple["_TfCache", np.ndarray, list[bool]]]) -> list[np.ndarray]:
        """`stats(prices, plist, full)` for several windows of one timeframe, each read by one
        scan only (a backtest's 15m windows), in one `lv.touch_stats_many` call and without
        the memo (storing what nobody reads again would only cost). Same numbers: a level's
        row depends only on its window, ATR and price (event rows where no level of a window
        needs them may hold numbers instead of NaN; `_features_arrays` never reads them)."""
        m = _as_matrix(lv.touch_stats_many([(c.prep, p) for c, p, _ in windows], windows[0][0].tf,
                                           events=any(any(f) for _, _, f in windows)))
        out, a = [], 0
        for _, p, _ in windows:
            out.append(m[:, a:a + len(p)])
            a += len(p)
        return out

    def fill(self, requests: list[tuple[list[float], list[bool]]]) -> None:
        """Compute, in one touch_stats call, the statistics that several scans of this window
        will `gather` (a chunk of 15m closes shares one 8h/1w window): the same numbers as
        `stats` per scan, since each level's row depends only on the window, ATR and price."""
        if len(self.memo) > self.MAX_MEMO:
            self.memo.clear()
            self.full.clear()
            self.used = 0
        memo, done = self.memo, self.full
        need: dict[float, bool] = {}
        for plist, full in requests:
            for p, f in zip(plist, full):
                if p not in memo or (f and not done[memo[p]]):
                    need[p] = need.get(p, False) or f
        if need:
            ev = any(need.values())
            self._store(list(need), _as_matrix(lv.touch_stats(self.bars, np.array(list(need)), self.atr, self.tf,
                                                              self.prep, events=ev)), ev)

    def gather(self, plist: list[float]) -> np.ndarray:
        """(7, levels) statistics of prices already computed by `fill`."""
        return self.table[:, [self.memo[p] for p in plist]]

    def _store(self, plist: list[float], m: np.ndarray, full: bool) -> None:
        k, base = len(plist), self.used
        if base + k > self.table.shape[1]:
            grown = np.zeros((7, max(2 * self.table.shape[1], base + k, 64)))
            grown[:, :base] = self.table[:, :base]
            self.table = grown
        self.table[:, base:base + k] = m
        for q, p in enumerate(plist):
            self.memo[p] = base + q
        self.full.extend([full] * k)
        self.used = base + k


_NO_TABLE = np.zeros((7, 0))   # shared and never written: `_store` allocates on first use


def _as_matrix(s: lv.TouchStats) -> np.ndarray:
    """TouchStats as one float matrix (ms times < 2**53 stay exact in float64)."""
    return np.array([s.touches, s.bounces, s.bounce_atr_sum, s.failed, s.first_ms, s.last_ms, s.volume_ratio],
                    dtype=float)


@lru_cache(maxsize=None)
def _mtf_table(tfs: tuple[str, ...]) -> list:
    """multi_tf_confirm for each bitmask of 'enough touches' per timeframe, computed with
    the very expression of `level_features` (so even its int 0 for no confirmation stays)."""
    out = []
    for mask in range(8):
        ok = {tf: bool(mask >> i & 1) for i, tf in enumerate(lv.LEVEL_TIMEFRAMES)}
        out.append(round(sum(pts for tf, need, pts in MULTI_TF_RULE if tf in tfs and ok[tf]), 10))
    return out


_LOG31 = math.log1p(DURATION_DAYS_FULL)


class _DurationMemo(dict):
    """duration_days feature by days value, with `level_features`' very expression: days
    are differences of candle times, so the same few values recur at every scan and a dict
    lookup replaces the log. (Days are never NaN or -0.0, which a dict would conflate.)"""

    LIMIT = 1 << 16

    def __missing__(self, d: float) -> float:
        if len(self) >= self.LIMIT:
            self.clear()
        v = self[d] = min(1.0, math.log1p(max(d, 0.0)) / _LOG31)
        return v


_DURATION = _DurationMemo()
_TF_CODE = {tf: i for i, tf in enumerate(lv.LEVEL_TIMEFRAMES)}
_MASK_TF = [next((tf for i, tf in enumerate(lv.LEVEL_TIMEFRAMES) if m >> i & 1), "") for m in range(8)]
_MASK_SRC = [tuple(sorted(s for i, s in enumerate(lv.SOURCES) if m >> i & 1)) for m in range(8)]



class BestLevelFinder:
    """Finds, scores and ranks support/resistance levels with the given feature weights.

    A finder remembers, per timeframe, the last window it scanned (see `_TfCache`): reuse
    one finder across a backtest and a 15m close only redoes the 15m work. `Bars` passed in
    are treated as immutable (an unchanged window is recognised by identity or equality).
    """

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = validate_weights(dict(DEFAULT_WEIGHTS) if weights is None else weights)
        self._caches: dict[str, _TfCache] = {}   # per-timeframe window cache, see _TfCache

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

    def prepare(self, bars: dict[str, lv.Bars], atrs: dict[str, float], ref_price: float) -> "LevelScan":
        """Everything of a scan that does not depend on the weights: the levels and their six
        features. A backtest computes these ahead in a worker process (rl.scan_ahead); the
        weights, which learning changes as trades close, are applied by `rank`."""
        p = self._levels(bars, atrs, ref_price)
        if isinstance(p, LevelScan):
            return p
        stats = {tf: self._caches[tf].stats(p.prices, p.plist, [o == tf for o in p.finest]) for tf in p.tf_list}
        return self._features(stats, p.prices, p.plist, p.tfm, p.srm, p.first_seen, ref_price, p.atr, p.notes)

    def _levels(self, bars: dict[str, lv.Bars], atrs: dict[str, float], ref_price: float) -> "_Levels | LevelScan":
        """The merged levels of a scan before their touch statistics (or the empty scan)."""
        c = self._candidates(bars, atrs, ref_price)
        return c if isinstance(c, LevelScan) else _merged([c])[0]

    def _candidates(self, bars: dict[str, lv.Bars], atrs: dict[str, float], ref_price: float) -> "_Cands | LevelScan":
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
                caches[tf] = _TfCache(bars[tf], a, tf)
        tf_list = list(good_atr)
        cs = [caches[tf].cands for tf in tf_list]
        if len(cs) == 1:
            price, src, tms = cs[0]
            code = caches[tf_list[0]].code
        else:
            price = np.concatenate([c[0] for c in cs])
            code = np.concatenate([caches[tf].code for tf in tf_list])
            src = np.concatenate([c[1] for c in cs])
            tms = np.concatenate([c[2] for c in cs])
        if "8h" in good_atr:
            span = lv.RANGE_ATR_8H * good_atr["8h"]
        else:
            span = lv.RANGE_ATR_8H * 5.0 * merge_atr
        keep = np.abs(price - ref_price) <= span
        return _Cands(price[keep], code[keep], src[keep], tms[keep], tf_list, merge_atr, notes, ref_price)

    def rank(self, scan: "LevelScan") -> LevelBook:
        """Score every level of `scan` with this finder's weights and rank them (best score
        first, ties by distance to the scan's reference price)."""
        M = scan.M
        L = M.shape[1]
        if not L:
            return LevelBook([], scan.atr, scan.notes)
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
        return _LazyBook(_ScanResult(scan, order, plist, score), scan.atr, scan.notes)

    def _features(self, stats: dict[str, np.ndarray], prices: np.ndarray, plist: list[float], tfm: np.ndarray,
                  srm: np.ndarray, first_seen: np.ndarray, ref_price: float, atr: float,
                  notes: list[str]) -> "LevelScan":
        """`level_features` for every level. Two implementations with identical results
        (tested against each other): scalar for small scans, arrays for big ones."""
        feats = self._features_small if len(plist) <= SMALL_SCAN else self._features_arrays
        return feats(stats, prices, plist, tfm, srm, first_seen, ref_price, atr, notes)

    @staticmethod
    def _features_arrays(stats: dict[str, np.ndarray], prices: np.ndarray, plist: list[float], tfm: np.ndarray,
                         srm: np.ndarray, first_seen: np.ndarray, ref_price: float, atr: float,
                         notes: list[str]) -> "LevelScan":
        """`_features` with arrays (faster above SMALL_SCAN levels). Each operation is the
        elementwise IEEE twin of the per-level Python original, so the features are identical."""
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
        days_l = days.tolist()
        duration = list(map(_DURATION.__getitem__, days_l))
        mask = np.zeros(L, dtype=np.int64)
        for tf, need, _ in MULTI_TF_RULE:
            if tf in stats:
                mask |= (S[tf_list.index(tf), 0] >= need).astype(np.int64) << _TF_CODE[tf]
        table = _mtf_table(tuple(tf_list))
        mtf = [table[m] for m in mask.tolist()]
        feat_cols = [
            np.where(vr / VOLUME_RATIO_FULL < 1.0, vr / VOLUME_RATIO_FULL, 1.0).tolist(),
            (np.where(BOUNCES_FULL < bounces, BOUNCES_FULL, bounces) / BOUNCES_FULL).tolist(),
            (np.where(BOUNCE_ATR_FULL < mean_move, BOUNCE_ATR_FULL, mean_move) / BOUNCE_ATR_FULL).tolist(),
            (np.where(FAILED_FULL < failed, FAILED_FULL, failed) / FAILED_FULL).tolist(),
            duration, mtf]
        M = np.vstack([prices, np.array(feat_cols, dtype=float), vr, bounces, mean_move, failed, days,
                       first_seen, last, srm, tfm, S[:, 0]])
        return LevelScan(ref_price, atr, notes, tuple(tf_list), M)

    @staticmethod
    def _features_small(stats: dict[str, np.ndarray], prices: np.ndarray, plist: list[float], tfm: np.ndarray,
                        srm: np.ndarray, first_seen: np.ndarray, ref_price: float, atr: float,
                        notes: list[str]) -> "LevelScan":
        """`_features` in plain floats: for a few dozen levels numpy's per-call overhead costs
        more than the arithmetic. Each operation is the scalar twin of the per-level original."""
        L = len(plist)
        tf_list = list(stats)
        rows = [stats[tf].tolist() for tf in tf_list]        # per timeframe: 7 lists of L floats
        origin_tf = [_MASK_TF[m] for m in tfm.tolist()]
        table = _mtf_table(tuple(tf_list))
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
        duration = list(map(_DURATION.__getitem__, days))
        mask = [0] * L
        for tf, need, _ in MULTI_TF_RULE:
            if tf in stats:
                bit = 1 << _TF_CODE[tf]
                mask = [m | bit if t >= need else m for m, t in zip(mask, rows[tf_list.index(tf)][0])]
        mtf = [table[m] for m in mask]
        vd = [x if x < 1.0 else 1.0 for x in (v / VOLUME_RATIO_FULL for v in vr)]
        tb = [(BOUNCES_FULL if BOUNCES_FULL < b else b) / BOUNCES_FULL for b in bounces]
        bm = [(BOUNCE_ATR_FULL if BOUNCE_ATR_FULL < m else m) / BOUNCE_ATR_FULL for m in mean_move]
        fb = [(FAILED_FULL if FAILED_FULL < f else f) / FAILED_FULL for f in failed]
        M = np.array([plist, vd, tb, bm, fb, duration, mtf, vr, bounces, mean_move, failed, days,
                      first_seen.tolist(), last_l, srm.tolist(), tfm.tolist(), *(r[0] for r in rows)], dtype=float)
        return LevelScan(ref_price, atr, notes, tuple(tf_list), M)


class _Cands(NamedTuple):
    """A scan's candidates kept for the merge (`BestLevelFinder._candidates`)."""
    price: np.ndarray
    code: np.ndarray         # timeframe code per candidate
    src: np.ndarray          # source code per candidate
    tms: np.ndarray          # time per candidate
    tf_list: list[str]       # timeframes with a usable ATR, finest first
    atr: float               # ATR the levels are merged with (15m when usable)
    notes: list[str]
    ref_price: float


def _merged(cands: list[_Cands]) -> list["_Levels | LevelScan"]:
    """Each scan's candidates merged into levels (or its empty scan); the merges of many
    scans run together (`lv.merge_arrays_many`, identical to one at a time)."""
    out: list[_Levels | LevelScan] = []
    for c, (prices, tfm, srm, first_seen) in zip(cands, lv.merge_arrays_many(
            [(c.price, c.code, c.src, c.tms, lv.MERGE_ATR * c.atr) for c in cands])):
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


# rows of LevelScan.M (one column per level, cluster order)
_ROW_FIRST, _ROW_LAST, _ROW_SRC, _ROW_TFM, _ROW_TOUCH = 12, 13, 14, 15, 16


class LevelScan:
    """The weight-independent result of one scan: one float column per level (cluster
    order) holding its price, six features, the five raw numbers behind them, first/last
    touch times, source and timeframe bitmasks and touch counts per timeframe (rows as
    `_ROW_*`; ms times < 2**53 and counts are exact in float64). One matrix, so a worker
    process hands it over in microseconds. `BestLevelFinder.rank` turns it into a LevelBook."""

    __slots__ = ("ref_price", "atr", "notes", "tf_names", "M", "static")

    def __init__(self, ref_price: float, atr: float, notes: list[str], tf_names: tuple, M: np.ndarray) -> None:
        self.ref_price, self.atr, self.notes, self.tf_names, self.M = ref_price, atr, notes, tf_names, M
        # the entry score's price-independent components for the same state, when whoever
        # prepared the scan also had the indicators (rl.scan_ahead); not part of equality
        self.static: tuple | None = None

    @staticmethod
    def empty(ref_price: float, atr: float, notes: list[str]) -> "LevelScan":
        return LevelScan(ref_price, atr, notes, (), np.zeros((_ROW_TOUCH, 0)))

    def __getstate__(self) -> tuple:
        return (self.ref_price, self.atr, self.notes, self.tf_names, self.M, self.static)

    def __setstate__(self, state: tuple) -> None:
        self.ref_price, self.atr, self.notes, self.tf_names, self.M, self.static = state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LevelScan):
            return NotImplemented
        a, b = self.__getstate__()[:5], other.__getstate__()[:5]
        return (a[2:4] == b[2:4] and (a[0] == b[0] or a[0] != a[0] and b[0] != b[0])
                and (a[1] == b[1] or a[1] != a[1] and b[1] != b[1])
                and a[4].shape == b[4].shape and np.array_equal(a[4], b[4], equal_nan=True))
