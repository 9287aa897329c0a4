"""What an analysis hands out: the frozen `Analysis` (scores, breakdowns, levels, indicators)
and `assemble`, which builds one from its parts. The parts a backtest rarely reads (the
breakdowns with their reason texts, the listed levels, the best support/resistance as
ScoredLevels, the 1m indicators) are built on first read: a backtest scores at every 15m close
and reads them only at an entry; whoever reads them gets exactly what an eager build gives.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from rl.analysis import signals as sig
from rl.analysis.levels.book import LevelBook, PickedLevel, ScoredLevel
from rl.knowledge.thought import json_safe
from rl.strategy.params import ScoreParams

TIMEFRAMES = ("1m", "15m", "8h", "1w")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Breakdown = dict[str, dict]      # component name -> {"points", "max", "reason"}


class LazyIndicators(Mapping):
    """timeframe -> indicator dict; entries given as thunks are computed on first access
    (the 1m values are only needed by the charts, never by the backtest's decisions)."""

    def __init__(self, ready: dict[str, dict], lazy: Mapping[str, Callable[[], dict]] | None = None) -> None:
        self._ready = dict(ready)
        self._lazy = dict(lazy or {})
        self._order = [tf for tf in TIMEFRAMES if tf in self._ready or tf in self._lazy]

    def __getitem__(self, tf: str) -> dict:
        if tf not in self._ready:
            if tf not in self._lazy:
                raise KeyError(tf)
            self._ready[tf] = self._lazy.pop(tf)()
        return self._ready[tf]

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __repr__(self) -> str:
        return f"LazyIndicators({dict(self)!r})"


class _Builds(Protocol[T_co]):
    """What a `_LazyField` holds until first read: something that builds the value."""

    def build(self) -> T_co: ...


class _Lazy:
    """A field value built on first read (see `_LazyField`)."""

    __slots__ = ()

    def build(self) -> Any:
        raise NotImplementedError


class _Deferred(_Lazy):
    """The listed levels of `book.view(price)`, built on first read: a backtest decides
    from the best support/resistance alone, and building ~30 ScoredLevel objects at every
    15m close cost more than any other single step of a rescan."""

    __slots__ = ("book", "price")

    def __init__(self, book: LevelBook, price: float) -> None:
        self.book, self.price = book, price

    def build(self) -> list[ScoredLevel]:
        return self.book.view(self.price)[0]


class _Breakdowns:
    """Both score breakdowns of one analysis, with their reason texts, made together on the
    first read of either: the scores themselves are summed without them
    (`sig.price_scores`), and a backtest reads the reasons only at an entry."""

    __slots__ = ("args", "made")

    def __init__(self, snaps: dict, book: LevelBook, bs: Any, br: Any, price: float,
                 static: tuple[dict, dict], score: ScoreParams) -> None:
        # the 15m snapshot of now (the analyzer's snaps dict gets the next candle's later)
        s15 = {"15m": snaps["15m"]} if "15m" in snaps else {}
        self.args: tuple[dict, LevelBook, Any, Any, float, tuple[dict, dict], ScoreParams]
        self.made: tuple[Breakdown, Breakdown] | None
        self.args, self.made = (s15, book, bs, br, price, static, score), None

    def side(self, i: int) -> Breakdown:
        if self.made is None:
            snaps, book, bs, br, price, static, score = self.args
            bs, br = (x.build() if isinstance(x, PickedLevel) else x for x in (bs, br))
            pl, ps = sig.price_components(snaps, book, bs, br, price, [], score)   # notes: taken already
            lb, sb = {**static[0], **pl}, {**static[1], **ps}
            # (the inputs are kept: two readers at once, e.g. two dashboard requests, each
            # build the same dicts, and neither finds them gone)
            self.made = ({k: lb[k] for k in sig.COMPONENTS}, {k: sb[k] for k in sig.COMPONENTS})
        return self.made[i]


class _BreakdownSide(_Lazy):
    __slots__ = ("both", "i")

    def __init__(self, both: _Breakdowns, i: int) -> None:
        self.both, self.i = both, i

    def build(self) -> Breakdown:
        return self.both.side(self.i)


class _LazyField(Generic[T]):
    """Data descriptor for an `Analysis` field built on first read: stores the value or a
    `_Lazy` and always reads as the value (equality, repr, asdict and to_dict all see it)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> T:
        if obj is None:
            raise AttributeError(self.key[1:])   # no class-level default for the dataclass
        v = obj.__dict__[self.key]
        if isinstance(v, (_Lazy, PickedLevel)):
            v = v.build()
            obj.__dict__[self.key] = v
        return v

    def __set__(self, obj: Any, value: T | _Builds[T]) -> None:
        obj.__dict__[self.key] = value


@dataclass(frozen=True)
class Analysis:
    symbol: str
    price: float
    time_ms: int
    long_score: float
    short_score: float
    # built on first read; read as the type in brackets, given as it or as what builds it
    long_breakdown: _LazyField[Breakdown] = _LazyField()
    short_breakdown: _LazyField[Breakdown] = _LazyField()
    levels: _LazyField[list[ScoredLevel]] = _LazyField()
    best_support: _LazyField[ScoredLevel | None] = _LazyField()
    best_resistance: _LazyField[ScoredLevel | None] = _LazyField()
    # (no default really: a _LazyField read on the class raises AttributeError, which is how
    # the dataclass finds the fields above default-less; mypy counts `= _LazyField()` as one)
    indicators: Mapping[str, dict[str, float]]   # type: ignore[misc]
    atr_15m: float                               # type: ignore[misc]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return json_safe({
            "symbol": self.symbol, "price": self.price, "time_ms": self.time_ms,
            "long_score": self.long_score, "short_score": self.short_score,
            "long_breakdown": self.long_breakdown, "short_breakdown": self.short_breakdown,
            "levels": [x.to_dict() for x in self.levels],
            "best_support": self.best_support.to_dict() if self.best_support else None,
            "best_resistance": self.best_resistance.to_dict() if self.best_resistance else None,
            "indicators": {tf: dict(v) for tf, v in self.indicators.items()},
            "atr_15m": self.atr_15m, "notes": list(self.notes)})


def assemble(symbol: str, price: float, time_ms: int, snaps: dict[str, dict], book: LevelBook,
              static: tuple[dict, dict], static_notes: list[str], indicators: Mapping,
              score: ScoreParams) -> Analysis:
    """The Analysis at `price` from its parts: the indicator snapshots, the ranked book, the
    price-independent score components and their notes, all made with the `score` params.
    The scores are summed now; the breakdowns with their reasons, the level list and the best
    levels themselves are built when first read."""
    bs, br = book.pick_lazy(price)
    notes = list(static_notes)
    long_score, short_score = sig.price_scores(snaps, book, bs, br, price, static, notes, score)
    both = _Breakdowns(snaps, book, bs, br, price, static, score)
    s15 = snaps.get("15m") or {}
    return Analysis(symbol, float(price), int(time_ms), long_score, short_score,
                    _BreakdownSide(both, 0), _BreakdownSide(both, 1), _Deferred(book, price), bs, br,
                    indicators, float(s15.get("atr", float("nan"))), notes)
