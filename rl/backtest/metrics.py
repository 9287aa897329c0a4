"""Performance metrics, pure: the backtest report and the dashboard compute them the same way.

Conventions (written down because every tool differs a little):
- Returns for Sharpe/Sortino are taken from the equity curve resampled to one point per day
  (last equity of each UTC day), annualised with sqrt(365) because crypto trades every day.
  Risk-free rate 0. Fewer than 2 daily returns -> None (not enough evidence, not zero).
- Sortino's downside deviation is sqrt(mean(min(r, 0)^2)) over all days (the standard form).
- Max drawdown is the largest peak-to-trough fall of the equity curve, as a fraction of the peak.
- Profit factor = gross profit / gross loss over closed trades (None when there is no loss).
- Expectancy = mean net PnL per closed trade; average R = mean R multiple.
- Exposure = fraction of the tested time spent with a position open.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

DAY_MS = 86_400_000


@dataclass(frozen=True)
class TradeOutcome:
    """What a metric needs of one closed trade."""

    pnl: float          # net of fees and funding, quote currency
    fees: float
    r_multiple: float | None
    opened_ms: int
    closed_ms: int


@dataclass(frozen=True)
class Summary:
    trades: int
    wins: int
    losses: int
    win_rate: float | None
    net_pnl: float
    return_pct: float
    fees: float
    max_drawdown_pct: float
    sharpe: float | None
    sortino: float | None
    profit_factor: float | None
    expectancy: float | None
    average_r: float | None
    exposure_pct: float
    buy_hold_return_pct: float | None
    start_balance: float
    end_balance: float

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def max_drawdown(equity: Sequence[float] | np.ndarray) -> float:
    """Largest peak-to-trough decline as a fraction of the running peak (0.0 .. 1.0)."""
    arr = np.asarray(equity, dtype=float)
    if arr.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(arr)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, (peaks - arr) / peaks, 0.0)
    return float(np.max(dd))


def drawdown_curve(equity: Sequence[float] | np.ndarray) -> list[float]:
    """Drawdown at each point as a negative fraction of the running peak (for charts)."""
    arr = np.asarray(equity, dtype=float)
    if arr.size == 0:
        return []
    peaks = np.maximum.accumulate(arr)
    with np.errstate(divide="ignore", invalid="ignore"):
        return list(np.where(peaks > 0, (arr - peaks) / peaks, 0.0))


def daily_returns(times_ms: Sequence[int] | np.ndarray, equity: Sequence[float] | np.ndarray) -> np.ndarray:
    """Simple returns between the last equity of consecutive UTC days."""
    t = np.asarray(times_ms, dtype=np.int64)
    e = np.asarray(equity, dtype=float)
    if t.size < 2:
        return np.empty(0)
    days = t // DAY_MS
    last_of_day = np.flatnonzero(np.diff(days) != 0)
    closes = np.concatenate([e[last_of_day], e[-1:]])
    if closes.size < 2:
        return np.empty(0)
    return np.diff(closes) / closes[:-1]


def sharpe_ratio(returns: np.ndarray, periods_per_year: float = 365.0) -> float | None:
    if returns.size < 2:
        return None
    sd = float(np.std(returns, ddof=1))
    if sd == 0.0:
        return None
    return float(np.mean(returns) / sd * math.sqrt(periods_per_year))


def sortino_ratio(returns: np.ndarray, periods_per_year: float = 365.0) -> float | None:
    if returns.size < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside == 0.0:
        return None
    return float(np.mean(returns) / downside * math.sqrt(periods_per_year))


def exposure(trades: Iterable[TradeOutcome], start_ms: int, end_ms: int) -> float:
    """Fraction of [start, end] covered by open positions (overlaps counted once)."""
    span = end_ms - start_ms
    if span <= 0:
        return 0.0
    intervals = sorted((max(t.opened_ms, start_ms), min(t.closed_ms, end_ms)) for t in trades)
    covered = cur_s = 0
    cur_e: int | None = None                 # the interval being merged: [cur_s, cur_e]
    for s, e in intervals:
        if e <= s:
            continue
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                covered += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        covered += cur_e - cur_s
    return covered / span


def summarize(trades: Sequence[TradeOutcome], times_ms: Sequence[int] | np.ndarray,
              equity: Sequence[float] | np.ndarray,
              start_balance: float, first_price: float | None = None,
              last_price: float | None = None) -> Summary:
    """All headline figures of a run from its closed trades and equity curve."""
    pnls = np.array([t.pnl for t in trades], dtype=float)
    wins = int(np.sum(pnls > 0))
    losses = int(np.sum(pnls <= 0)) if pnls.size else 0
    gross_win = float(np.sum(pnls[pnls > 0])) if pnls.size else 0.0
    gross_loss = float(-np.sum(pnls[pnls < 0])) if pnls.size else 0.0
    rs = [t.r_multiple for t in trades if t.r_multiple is not None and math.isfinite(t.r_multiple)]
    end_balance = float(equity[-1]) if len(equity) else start_balance
    rets = daily_returns(times_ms, equity)
    start_ms = int(times_ms[0]) if len(times_ms) else 0
    end_ms = int(times_ms[-1]) if len(times_ms) else 0
    bh = None
    if first_price and last_price:
        bh = (last_price / first_price - 1.0) * 100.0
    return Summary(
        trades=len(trades), wins=wins, losses=losses,
        win_rate=(wins / len(trades)) if trades else None,
        net_pnl=end_balance - start_balance,
        return_pct=(end_balance / start_balance - 1.0) * 100.0 if start_balance else 0.0,
        fees=float(sum(t.fees for t in trades)),
        max_drawdown_pct=max_drawdown(equity) * 100.0,
        sharpe=sharpe_ratio(rets), sortino=sortino_ratio(rets),
        profit_factor=(gross_win / gross_loss) if gross_loss > 0 else None,
        expectancy=float(np.mean(pnls)) if pnls.size else None,
        average_r=float(np.mean(rs)) if rs else None,
        exposure_pct=exposure(trades, start_ms, end_ms) * 100.0,
        buy_hold_return_pct=bh,
        start_balance=start_balance, end_balance=end_balance,
    )
