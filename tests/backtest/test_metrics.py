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
