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


# ----------------------------------------------------------------------------- report figures
# More figures for the HTML report, pure like the above. Conventions:
# - A loss is a trade with net PnL <= 0 (as `summarize` counts losses), so a break-even trade
#   extends a losing streak.
# - CAGR is compounded over the calendar span of the equity curve (first to last point, years of
#   365.25 days): (end / start) ** (1 / years) - 1. A wiped-out account (end <= 0) is -100 %.
# - Calmar = CAGR / max drawdown (both fractions); undefined (None) without a drawdown.
# - SQN (Van Tharp, as backtesting.py computes it) = sqrt(n) * mean(R) / std(R), with the sample
#   standard deviation (ddof=1) of the trades' R multiples; None with fewer than 2 R values or
#   when they are all equal.
# - Breakdowns put each trade in the UTC month it closed in.

YEAR_MS = 365.25 * DAY_MS


def cagr(start_balance: float, end_balance: float, start_ms: int, end_ms: int) -> float | None:
    """Compound annual growth rate as a fraction over [start_ms, end_ms] (None: no span)."""
    if end_ms <= start_ms or start_balance <= 0:
        return None
    if end_balance <= 0:
        return -1.0
    years = (end_ms - start_ms) / YEAR_MS
    return float((end_balance / start_balance) ** (1.0 / years) - 1.0)


def calmar_ratio(cagr_fraction: float | None, max_drawdown_fraction: float) -> float | None:
    """CAGR / max drawdown, both fractions (None when either is missing or there was no drawdown)."""
    if cagr_fraction is None or max_drawdown_fraction <= 0:
        return None
    return cagr_fraction / max_drawdown_fraction


def sqn(r_multiples: Sequence[float]) -> float | None:
    """System quality number: sqrt(n) * mean(R) / sample std(R)."""
    rs = np.asarray([r for r in r_multiples if r is not None and math.isfinite(r)], dtype=float)
    if rs.size < 2:
        return None
    sd = float(np.std(rs, ddof=1))
    if sd == 0.0:
        return None
    return float(math.sqrt(rs.size) * float(np.mean(rs)) / sd)


def longest_streak(pnls: Sequence[float], losing: bool = True) -> int:
    """Most consecutive losses (pnl <= 0), or wins (pnl > 0) with losing=False, in trade order."""
    best = cur = 0
    for p in pnls:
        hit = (p <= 0) if losing else (p > 0)
        cur = cur + 1 if hit else 0
        best = max(best, cur)
    return best


@dataclass(frozen=True)
class DrawdownPeriod:
    """The deepest fall: from the peak before it to its trough, and when equity regained the peak
    (None: not by the end of the run). `depth` is a fraction of the peak."""

    depth: float
    peak_ms: int
    trough_ms: int
    recovered_ms: int | None


def max_drawdown_period(times_ms: Sequence[int], equity: Sequence[float]) -> DrawdownPeriod | None:
    """Dates of the max drawdown (None without one: empty curve or equity never fell)."""
    e = np.asarray(equity, dtype=float)
    if e.size == 0:
        return None
    peaks = np.maximum.accumulate(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, (peaks - e) / peaks, 0.0)
    trough = int(np.argmax(dd))
    if dd[trough] <= 0:
        return None
    peak = int(np.flatnonzero(e[: trough + 1] == peaks[trough])[-1])
    after = np.flatnonzero(e[trough:] >= peaks[trough])
    recovered = int(times_ms[trough + int(after[0])]) if after.size else None
    return DrawdownPeriod(float(dd[trough]), int(times_ms[peak]), int(times_ms[trough]), recovered)


@dataclass(frozen=True)
class TradeStats:
    """Per-trade figures over closed trades (durations in ms; None without trades)."""

    avg_duration_ms: float | None
    max_duration_ms: int | None
    best_pnl: float | None
    worst_pnl: float | None
    longest_losing_streak: int
    longest_winning_streak: int


def trade_stats(trades: Sequence[TradeOutcome]) -> TradeStats:
    """Durations, best/worst trade and streaks, in the order the trades are given (close order)."""
    if not trades:
        return TradeStats(None, None, None, None, 0, 0)
    durations = [t.closed_ms - t.opened_ms for t in trades]
    pnls = [t.pnl for t in trades]
    return TradeStats(avg_duration_ms=float(np.mean(durations)), max_duration_ms=int(max(durations)),
                      best_pnl=max(pnls), worst_pnl=min(pnls),
                      longest_losing_streak=longest_streak(pnls, True),
                      longest_winning_streak=longest_streak(pnls, False))


@dataclass(frozen=True)
class GroupFigures:
    """One row of a breakdown (by exit reason, side or month)."""

    key: str
    trades: int
    wins: int
    win_rate: float
    net_pnl: float
    average_r: float | None
    profit_factor: float | None


def breakdown(keyed: Iterable[tuple[str, TradeOutcome]]) -> list[GroupFigures]:
    """Figures per key, keys in first-seen order; profit factor as in `summarize`."""
    groups: dict[str, list[TradeOutcome]] = {}
    for key, t in keyed:
        groups.setdefault(key, []).append(t)
    rows = []
    for key, ts in groups.items():
        pnls = [t.pnl for t in ts]
        wins = sum(1 for p in pnls if p > 0)
        loss = -sum(p for p in pnls if p < 0)
        rs = [t.r_multiple for t in ts if t.r_multiple is not None and math.isfinite(t.r_multiple)]
        rows.append(GroupFigures(key=key, trades=len(ts), wins=wins, win_rate=wins / len(ts),
                                 net_pnl=float(sum(pnls)), average_r=float(np.mean(rs)) if rs else None,
                                 profit_factor=(sum(p for p in pnls if p > 0) / loss) if loss > 0 else None))
    return rows


def month_key(ms: int) -> str:
    """'YYYY-MM' of a UTC instant."""
    days = ms // DAY_MS
    y, m, _ = np.datetime64(int(days), "D").astype(object).timetuple()[:3]
    return f"{y:04d}-{m:02d}"
