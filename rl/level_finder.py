"""BestLevelFinder: score candidate levels on six features (each 0..1) with learnable weights.

level score = 100 * sum(weight_f * feature_f), weights summing to 1, so the score is 0..100
and every level carries its feature breakdown: the dashboard and each trade's thought chain
can show *why* a level won. Feature formulas are in `level_features` and docs/strategy.md.
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import asdict, dataclass, field, replace

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


class BestLevelFinder:
    """Finds, scores and ranks support/resistance levels with the given feature weights."""

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = validate_weights(dict(DEFAULT_WEIGHTS) if weights is None else weights)

    def score(self, features: dict[str, float]) -> float:
        return 100.0 * sum(self.weights[f] * features[f] for f in FEATURES)

    def scan(self, bars: dict[str, lv.Bars], atrs: dict[str, float], ref_price: float) -> LevelBook:
        """Candidates on 15m/8h/1w, merged within 0.5 ATR(15m), scored and ranked.

        `ref_price` (the last closed 15m close) only bounds which candidates are kept
        (+/- 6 ATR(8h)) and labels the returned book; it is not the live price.
        """
        notes: list[str] = []
        tfs = [tf for tf in lv.LEVEL_TIMEFRAMES if tf in bars and len(bars[tf]) > 0]
        good_atr = {tf: atrs.get(tf, float("nan")) for tf in tfs}
        good_atr = {tf: a for tf, a in good_atr.items() if a == a and a > 0}
        for tf in lv.LEVEL_TIMEFRAMES:
            if tf not in good_atr:
                n = len(bars[tf]) if tf in bars else 0
                notes.append(f"levels: {tf} has {n} closed candles, too few for ATR; its touches are not counted")
        if not good_atr:
            return LevelBook([], float("nan"), notes)
        merge_atr = good_atr.get("15m", next(iter(good_atr.values())))
        cands = []
        for tf in good_atr:
            cands += lv.candidates(bars[tf], good_atr[tf], tf)
        if "8h" in good_atr:
            span = lv.RANGE_ATR_8H * good_atr["8h"]
        else:
            span = lv.RANGE_ATR_8H * 5.0 * merge_atr
        cands = [c for c in cands if abs(c.price - ref_price) <= span]
        clusters = lv.merge(cands, lv.MERGE_ATR * merge_atr)
        if not clusters:
            return LevelBook([], merge_atr, notes)
        prices = np.array([c.price for c in clusters])
        stats = {tf: lv.touch_stats(bars[tf], prices, good_atr[tf], tf) for tf in good_atr}
        out = []
        for i, cl in enumerate(clusters):
            origin = cl.timeframe if cl.timeframe in stats else next(iter(stats))
            feats, raw = level_features(stats, i, origin)
            touches = {tf: int(stats[tf].touches[i]) for tf in stats}
            lasts = [int(st.last_ms[i]) for st in stats.values()]
            out.append(ScoredLevel(
                price=cl.price, kind="support" if cl.price <= ref_price else "resistance",
                score=self.score(feats), features=feats, touches=touches, timeframe=cl.timeframe,
                first_seen_ms=cl.first_seen_ms, last_touch_ms=max(lasts) if lasts else -1,
                sources=cl.sources, stats=raw))
        out.sort(key=lambda x: (-x.score, abs(x.price - ref_price)))
        return LevelBook(out, merge_atr, notes)
