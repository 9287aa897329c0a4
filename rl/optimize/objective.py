"""The optimizer's objective: a risk-adjusted score of a window's equity, pure functions.

A window (a fold's training months, or its test months) is a list of month runs, one per
(symbol, month). Each run's equity is read at every UTC day end and divided by its starting
balance; a month's portfolio curve is the mean of its symbols' curves (each symbol trades its
own equal account); the months are chained by compounding. On that curve:

    score = clip(Sortino, -10, 10) - DD_PENALTY * max(0, max drawdown % - DD_FREE_PCT)

with Sortino as rl.backtest.metrics computes it (daily returns, sqrt(365), risk-free 0; no
losing day and a gain -> +10, flat -> 0). A window with fewer closed trades than
`min_trades` (all symbols and months together) scores -10 - shortfall/min_trades instead:
too few trades are no evidence, so such a trial must not win by luck on two or three trades,
and it ranks below every trial that met the minimum with a Sortino above -10 and a drawdown
within DD_FREE_PCT. Why Sortino: it punishes losing days, not the upside volatility a
trend-following stop-and-target strategy should have; why the extra drawdown penalty: Sortino
over a month does not see a deep but brief fall, which the protections exist to prevent.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from rl.backtest.metrics import DAY_MS, max_drawdown, sortino_ratio

SORTINO_CAP = 10.0       # a month of daily returns cannot tell 10 from 30: cap both ways
DD_FREE_PCT = 10.0       # the default protections' own drawdown limit: no penalty within it
DD_PENALTY = 0.2         # score points per % of drawdown beyond DD_FREE_PCT
MIN_TRADES_PER_RUN = 5   # default minimum: 5 closed trades per (symbol, month) of the window


@dataclass(frozen=True)
class MonthRun:
    """What the objective needs of one backtest month (rl.optimize.study makes them)."""

    symbol: str
    month: str                    # 'YYYY-MM'
    trades: int
    return_pct: float
    max_drawdown_pct: float
    sortino: float | None
    buy_hold_return_pct: float | None
    day_ms: tuple[int, ...]       # UTC day ends (ms) of the run, the start first
    equity: tuple[float, ...]     # equity / starting balance at those times (starts at 1.0)

    def to_dict(self, curve: bool = False) -> dict:
        d = asdict(self)
        if not curve:
            d.pop("day_ms")
            d.pop("equity")
        else:
            d["day_ms"], d["equity"] = list(self.day_ms), list(self.equity)
        return d


def daily_curve(times_ms: np.ndarray, equity: np.ndarray, balance: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(times, equity / balance) at the start and at each UTC day end (the last point of each
    day, the run's last point for its last day)."""
    t = np.asarray(times_ms, dtype=np.int64)
    e = np.asarray(equity, dtype=float) / float(balance)
    if t.size == 0:
        return (), ()
    days = t // DAY_MS
    ends = np.concatenate([np.flatnonzero(np.diff(days) != 0), [t.size - 1]])
    idx = np.unique(np.concatenate([[0], ends]))
    return tuple(int(x) for x in t[idx]), tuple(float(x) for x in e[idx])


def window_curve(runs: Sequence[MonthRun]) -> tuple[list[int], list[float]]:
    """The window's portfolio curve: per month the mean of its symbols' normalised curves
    (aligned by UTC day, a shorter curve held at its last value), months chained by
    compounding. Starts at 1.0."""
    months = sorted({r.month for r in runs})
    times: list[int] = []
    curve: list[float] = []
    level = 1.0
    for m in months:
        group = [r for r in runs if r.month == m and r.equity]
        if not group:
            continue
        days = sorted({t // DAY_MS for r in group for t in r.day_ms[1:]})
        start = min(r.day_ms[0] for r in group)
        if not times:
            times.append(start)
            curve.append(level)
        cols = []
        for r in group:
            by_day = {t // DAY_MS: v for t, v in zip(r.day_ms[1:], r.equity[1:])}
            last, col = 1.0, []
            for d in days:
                last = by_day.get(d, last)
                col.append(last)
            cols.append(col)
        mean = np.mean(np.array(cols), axis=0)
        times += [(d + 1) * DAY_MS for d in days]
        curve += [level * float(x) for x in mean]
        level = curve[-1]
    return times, curve


@dataclass(frozen=True)
class WindowScore:
    """The objective value of a window and the figures it is made of."""

    score: float
    sortino: float | None
    return_pct: float
    max_drawdown_pct: float
    trades: int
    min_trades: int
    runs: int

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def score_window(runs: Sequence[MonthRun], min_trades: int | None = None) -> WindowScore:
    """The documented score (module docstring) of a window's month runs."""
    need = MIN_TRADES_PER_RUN * len(runs) if min_trades is None else int(min_trades)
    times, curve = window_curve(runs)
    arr = np.asarray(curve, dtype=float)
    trades = sum(r.trades for r in runs)
    ret = (float(arr[-1]) - 1.0) * 100.0 if arr.size else 0.0
    mdd = max_drawdown(arr) * 100.0 if arr.size else 0.0
    rets = np.diff(arr) / arr[:-1] if arr.size >= 2 else np.empty(0)
    sortino = sortino_ratio(rets)
    if sortino is None:
        bounded = SORTINO_CAP if rets.size >= 2 and float(np.mean(rets)) > 0 else 0.0
    else:
        bounded = max(-SORTINO_CAP, min(SORTINO_CAP, sortino))
    if trades < need:
        value = -SORTINO_CAP - (need - trades) / need
    else:
        value = bounded - DD_PENALTY * max(0.0, mdd - DD_FREE_PCT)
    return WindowScore(score=float(value), sortino=sortino, return_pct=ret, max_drawdown_pct=mdd,
                       trades=trades, min_trades=need, runs=len(runs))
