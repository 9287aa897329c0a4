"""Metrics checked against hand-computed figures."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rl.backtest.metrics import (
    DAY_MS,
    TradeOutcome,
    daily_returns,
    drawdown_curve,
    exposure,
    max_drawdown,
    sharpe_ratio,
    sortino_ratio,
    summarize,
)


def test_max_drawdown_by_hand() -> None:
    # peak 120 -> trough 90 = 25 %; later peak 130 -> 117 = 10 %
    assert max_drawdown([100, 120, 90, 110, 130, 117]) == pytest.approx(0.25)
    assert max_drawdown([100, 101, 102]) == 0.0
    assert max_drawdown([]) == 0.0
    assert drawdown_curve([100, 50, 100]) == pytest.approx([0.0, -0.5, 0.0])


def test_daily_returns_use_last_equity_of_each_day() -> None:
    t = [0, DAY_MS // 2, DAY_MS + 1, DAY_MS + 5, 2 * DAY_MS + 7]
    e = [100, 105, 110, 121, 108.9]
    # day closes: 105, 121, 108.9
    assert daily_returns(t, e) == pytest.approx([121 / 105 - 1, 108.9 / 121 - 1])


def test_sharpe_and_sortino_by_hand() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0])
    mean, sd = r.mean(), r.std(ddof=1)
    assert sharpe_ratio(r) == pytest.approx(mean / sd * math.sqrt(365))
    downside = math.sqrt((0.02 ** 2) / 4)
    assert sortino_ratio(r) == pytest.approx(mean / downside * math.sqrt(365))
    assert sharpe_ratio(np.array([0.01])) is None
    assert sortino_ratio(np.array([0.01, 0.02])) is None   # no downside: undefined, not infinite


def test_exposure_merges_overlaps() -> None:
    trades = [TradeOutcome(1, 0, 1, 10, 30), TradeOutcome(1, 0, 1, 20, 40), TradeOutcome(1, 0, 1, 60, 70)]
    assert exposure(trades, 0, 100) == pytest.approx(0.40)


def test_summarize_headline_figures() -> None:
    trades = [TradeOutcome(50.0, 2.0, 1.0, 0, 10), TradeOutcome(-25.0, 2.0, -0.5, 20, 30),
              TradeOutcome(100.0, 3.0, 2.0, 40, 50)]
    times = [0, DAY_MS, 2 * DAY_MS, 3 * DAY_MS]
    equity = [1000.0, 1050.0, 1025.0, 1125.0]
    s = summarize(trades, times, equity, 1000.0, first_price=10.0, last_price=12.0)
    assert (s.trades, s.wins, s.losses) == (3, 2, 1)
    assert s.win_rate == pytest.approx(2 / 3)
    assert s.net_pnl == pytest.approx(125.0) and s.return_pct == pytest.approx(12.5)
    assert s.fees == pytest.approx(7.0)
    assert s.profit_factor == pytest.approx(150 / 25)
    assert s.expectancy == pytest.approx(125 / 3)
    assert s.average_r == pytest.approx(2.5 / 3)
    assert s.max_drawdown_pct == pytest.approx(25 / 1050 * 100)
    assert s.buy_hold_return_pct == pytest.approx(20.0)
    assert s.to_dict()["trades"] == 3


def test_summarize_no_trades_is_not_an_error() -> None:
    s = summarize([], [0, DAY_MS], [1000.0, 1000.0], 1000.0)
    assert s.trades == 0 and s.win_rate is None and s.profit_factor is None and s.net_pnl == 0.0


# ----------------------------------------------------------------------------- report figures

from rl.backtest.metrics import (  # noqa: E402
    YEAR_MS,
    breakdown,
    cagr,
    calmar_ratio,
    longest_streak,
    max_drawdown_period,
    month_key,
    sqn,
    trade_stats,
)


def test_cagr_compounds_over_the_calendar_span() -> None:
    # 1000 -> 1210 over two years: 10 % a year; 1000 -> 1100 over half a year: 1.1^2 - 1 = 21 %
    assert cagr(1000, 1210, 0, int(2 * YEAR_MS)) == pytest.approx(0.10)
    assert cagr(1000, 1100, 0, int(YEAR_MS / 2)) == pytest.approx(0.21)
    assert cagr(1000, 0, 0, DAY_MS) == -1.0
    assert cagr(1000, 1100, 5, 5) is None


def test_calmar_is_cagr_over_max_drawdown() -> None:
    assert calmar_ratio(0.21, 0.07) == pytest.approx(3.0)
    assert calmar_ratio(0.21, 0.0) is None and calmar_ratio(None, 0.1) is None


def test_sqn_by_hand() -> None:
    # R = 1, -1, 2, 2: mean 1, sample std sqrt(((0)+(4)+(1)+(1))/3) = sqrt(2); sqrt(4)*1/sqrt(2)
    assert sqn([1.0, -1.0, 2.0, 2.0]) == pytest.approx(math.sqrt(2))
    assert sqn([1.0]) is None and sqn([0.5, 0.5]) is None


def test_streaks_count_break_even_as_a_loss() -> None:
    pnls = [5, -1, 0, -2, 3, 4, -1]
    assert longest_streak(pnls) == 3 and longest_streak(pnls, losing=False) == 2
    assert longest_streak([]) == 0


def test_max_drawdown_period_dates() -> None:
    t = [0, 10, 20, 30, 40, 50]
    # peak 120 at t=10, trough 90 at t=20 (25 %), back to 120 at t=40
    p = max_drawdown_period(t, [100, 120, 90, 110, 125, 117])
    assert (p.peak_ms, p.trough_ms, p.recovered_ms) == (10, 20, 40) and p.depth == pytest.approx(0.25)
    q = max_drawdown_period(t, [100, 120, 120, 90, 100, 110])
    assert (q.peak_ms, q.trough_ms, q.recovered_ms) == (20, 30, None)   # last time at the peak
    assert max_drawdown_period(t, [1, 2, 3, 4, 5, 6]) is None


def test_trade_stats_and_breakdown_by_hand() -> None:
    trades = [TradeOutcome(50.0, 1, 1.0, 0, 60_000), TradeOutcome(-20.0, 1, -1.0, 100_000, 400_000),
              TradeOutcome(-10.0, 1, -0.5, 500_000, 520_000)]
    s = trade_stats(trades)
    assert s.avg_duration_ms == pytest.approx((60_000 + 300_000 + 20_000) / 3)
    assert s.max_duration_ms == 300_000 and (s.best_pnl, s.worst_pnl) == (50.0, -20.0)
    assert (s.longest_losing_streak, s.longest_winning_streak) == (2, 1)
    assert trade_stats([]).best_pnl is None
    rows = breakdown(zip(["stop", "target", "stop"], [trades[1], trades[0], trades[2]]))
    assert [r.key for r in rows] == ["stop", "target"]
    stop = rows[0]
    assert (stop.trades, stop.wins, stop.net_pnl, stop.average_r, stop.profit_factor) == (2, 0, -30.0, -0.75, 0.0)
    assert rows[1].profit_factor is None and rows[1].win_rate == 1.0
    assert month_key(1_693_526_400_000) == "2023-09" and month_key(1_693_526_399_999) == "2023-08"
