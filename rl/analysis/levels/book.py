"""What a level scan hands out: `ScoredLevel`, the `LevelBook` the analysis reads (best
support/resistance for a price, the listed best levels) and the weight-independent
`LevelScan` matrix a scan is prepared as (rl.analysis.levels.finder makes both; a backtest
prepares its LevelScans a chunk of closes ahead, rl.backtest.scans).

Books are built lazily: a scan ranks a few dozen levels at every 15m close, but only the best
support/resistance and, when someone looks, the listed best 30 become ScoredLevel objects.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import numpy as np

from rl.analysis.levels import candidates as lv

FEATURES: tuple[str, ...] = ("volume_density", "touch_bounce_count", "bounce_magnitude",
                             "failed_breakout_count", "duration_days", "multi_tf_confirm")
MAX_LEVELS = 30              # levels listed in an analysis (best first)
V = TypeVar("V")             # a feature value: a float, or its key in the import-time check


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


class _ScanResult:
    """A ranked scan: the ranking permutation and scores over a LevelScan's columns;
    ScoredLevel objects are built only for the rows somebody looks at (the listed best 30
    and the chosen support/resistance), not for every level of every scan."""

    def __init__(self, scan: LevelScan, order: list[int], plist: list[float], score: list[float]) -> None:
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


def _feature_dict(a: V, b: V, c: V, d: V, e: V, f: V) -> dict[str, V]:
    """dict(zip(FEATURES, row)) as a literal: views build a few dozen of these per scan."""
    return {"volume_density": a, "touch_bounce_count": b, "bounce_magnitude": c,
            "failed_breakout_count": d, "duration_days": e, "multi_tf_confirm": f}


def _raw_dict(a: V, b: V, c: V, d: V, e: V) -> dict[str, V]:
    return {"volume_ratio": a, "bounces": b, "mean_bounce_atr": c, "failed_breakouts": d, "duration_days": e}


assert tuple(_feature_dict(*FEATURES)) == FEATURES and tuple(_raw_dict(*_RAW_KEYS)) == _RAW_KEYS


class LevelBook:
    """Ranked levels of one scan, re-labelled support/resistance cheaply as price moves.

    Over a `_ScanResult` (the ranking of a LevelScan's columns): a ScoredLevel is built only
    for a row somebody reads (the listed best 30, the chosen support/resistance), once per
    side it is labelled for. Supports are levels <= price, resistances >= price; the best
    support maximises score * max(0, 1 - distance / (proximity_atr ATR15m)), or is the nearest
    one when none is that close (tests/analysis/levels/test_level_finder.py checks every answer against the
    plain definition over the full list of levels). `proximity_atr`: LevelParams.proximity_atr."""

    def __init__(self, res: _ScanResult, atr_value: float, notes: list[str], *, proximity_atr: float) -> None:
        self._res = res
        self.atr = atr_value
        self.proximity_atr = proximity_atr
        self.notes = notes
        self._ranked: list[ScoredLevel] | None = None
        by_price = sorted(range(len(res)), key=res.price.__getitem__)
        self._prices = [res.price[r] for r in by_price]
        self._rows = by_price
        self._variants_r: dict[tuple[int, int], ScoredLevel] = {}
        # the last view: its (lo, hi) bisection of the prices and (listed, support, resistance)
        self._cache_key: tuple[int, int] | None = None
        self._cache: tuple[list[ScoredLevel], ScoredLevel | None, ScoredLevel | None] = ([], None, None)

    @property
    def ranked(self) -> list[ScoredLevel]:
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

    @property
    def size(self) -> int:
        """Number of levels (without building them)."""
        return len(self._prices)

    def proximity(self, level: ScoredLevel | PickedLevel, price: float) -> float:
        """1 at the level, falling linearly to 0 at proximity_atr ATR(15m) away."""
        if not (self.atr == self.atr and self.atr > 0):
            return 0.0
        return max(0.0, 1.0 - abs(price - level.price) / (self.proximity_atr * self.atr))

    def view(self, price: float) -> tuple[list[ScoredLevel], ScoredLevel | None, ScoredLevel | None]:
        """(levels best first labelled for `price`, best support, best resistance)."""
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
        """(best support, best resistance) of `view(price)` without building the listed levels."""
        lo, hi = bisect_left(self._prices, price), bisect_right(self._prices, price)
        if (lo, hi) == self._cache_key:
            return self._cache[1], self._cache[2]
        return (self._best_row(range(hi - 1, -1, -1), price, 0), self._best_row(range(lo, len(self._rows)), price, 1))

    def pick_lazy(self, price: float) -> tuple[PickedLevel | None, PickedLevel | None]:
        """`pick` without building the two ScoredLevels (a backtest scores at every 15m close
        from their price and score, and reads the levels themselves only at an entry)."""
        lo, hi = bisect_left(self._prices, price), bisect_right(self._prices, price)
        res = self._res
        out = []
        for side, idx in ((0, range(hi - 1, -1, -1)), (1, range(lo, len(self._rows)))):
            r = self._best_index(idx, price)
            out.append(None if r is None else PickedLevel(self, r, side, res.price[r], res.score[r]))
        return out[0], out[1]

    def _best_row(self, idx, price: float, side: int) -> ScoredLevel | None:
        r = self._best_index(idx, price)
        return None if r is None else self._row(r, side)

    def _best_index(self, idx, price: float) -> int | None:
        """The ranking row of the best level among the price-sorted positions idx (walked
        away from the price), by the rule in the class doc."""
        best, best_eff, nearest = None, 0.0, None
        reach = self.proximity_atr * self.atr if self.atr == self.atr else 0.0
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
        return best if best is not None else nearest


class PickedLevel:
    """A book's best support or resistance named by its ranking row: the price and score now,
    the ScoredLevel (`build`, the same object `pick` returns) only when someone reads it."""

    __slots__ = ("book", "row", "side", "price", "score")

    def __init__(self, book: LevelBook, row: int, side: int, price: float, score: float) -> None:
        self.book, self.row, self.side, self.price, self.score = book, row, side, price, score

    def build(self) -> ScoredLevel:
        return self.book._row(self.row, self.side)


_MASK_TF = [next((tf for i, tf in enumerate(lv.LEVEL_TIMEFRAMES) if m >> i & 1), "") for m in range(8)]
_MASK_SRC = [tuple(sorted(s for i, s in enumerate(lv.SOURCES) if m >> i & 1)) for m in range(8)]


# rows of LevelScan.M (one column per level, cluster order)
_ROW_FIRST, _ROW_LAST, _ROW_SRC, _ROW_TFM, _ROW_TOUCH = 12, 13, 14, 15, 16


class LevelScan:
    """The weight-independent result of one scan: one float column per level (cluster
    order) holding its price, six features, the five raw numbers behind them, first/last
    touch times, source and timeframe bitmasks and touch counts per timeframe (rows as
    `_ROW_*`; ms times < 2**53 and counts are exact in float64). `BestLevelFinder.rank`
    turns it into a LevelBook."""

    __slots__ = ("ref_price", "atr", "notes", "tf_names", "M")

    def __init__(self, ref_price: float, atr: float, notes: list[str], tf_names: tuple, M: np.ndarray) -> None:
        self.ref_price, self.atr, self.notes, self.tf_names, self.M = ref_price, atr, notes, tf_names, M

    @staticmethod
    def empty(ref_price: float, atr: float, notes: list[str]) -> LevelScan:
        return LevelScan(ref_price, atr, notes, (), np.zeros((_ROW_TOUCH, 0)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LevelScan):
            return NotImplemented
        return (self.notes == other.notes and self.tf_names == other.tf_names
                and _same_float(self.ref_price, other.ref_price) and _same_float(self.atr, other.atr)
                and self.M.shape == other.M.shape and np.array_equal(self.M, other.M, equal_nan=True))


def _same_float(a: float, b: float) -> bool:
    """Equal, or both NaN."""
    return a == b or (a != a and b != b)
