"""The months a study runs, each prepared once and run with any trial's parameters.

`MonthBank` loads a (symbol, month)'s bars (with the 30 days before as warm-up history) and
computes what no strategy number changes (rl.backtest.engine.prepare_month: bar columns,
prime frames, every level scan with its six features) the first time it is asked, then runs
the agent over it with the given StrategyParams. A run with a prepared month makes exactly
the trades of a plain backtest of that month (tests/optimize/test_bank.py).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from rl.backtest.baselines import RandomEntries
from rl.backtest.data import load_backtest_data
from rl.backtest.engine import BacktestResult, PreparedMonth, backtest_settings, prepare_month, run_backtest
from rl.optimize.folds import month_days
from rl.optimize.objective import MonthRun, daily_curve
from rl.strategy.params import StrategyParams


def quiet_agent_logs() -> None:
    """The agent explains every skipped entry in the log; thousands of runs would bury the
    progress bar, so only errors are shown while optimizing."""
    logging.getLogger("rl").setLevel(logging.ERROR)


@dataclass(frozen=True)
class OosMonth:
    """A test month's run with what its random-entry baseline needs: the entries the agent
    opened, the tested span, and buy & hold's daily curve over the same bars."""

    run: MonthRun
    opened: int
    span: tuple[int, int]
    buy_hold: MonthRun            # price / first open at each UTC day end, as a MonthRun


def month_run(symbol: str, month: str, r: BacktestResult, balance: float) -> MonthRun:
    s = r.summary
    day_ms, equity = daily_curve(r.equity_time_ms, r.equity, balance)
    return MonthRun(symbol=symbol, month=month, trades=int(s["trades"]),
                    return_pct=float(s["return_pct"]), max_drawdown_pct=float(s["max_drawdown_pct"]),
                    sortino=s.get("sortino"), buy_hold_return_pct=s.get("buy_hold_return_pct"),
                    day_ms=day_ms, equity=equity)


class MonthBank:
    """Prepared months by (symbol, month), built on first use, and runs over them."""

    def __init__(self, data: Sequence[str | Path], settings: Mapping[str, Settings],
                 scan_params: StrategyParams | None = None, portfolio: bool = False) -> None:
        """`data`: the archive paths (--data); `settings`: per symbol, the backtest settings
        (fees, leverage, balance); `scan_params`: whose level-feature rules the scans use;
        `portfolio`: a month's symbols run together on one account (`run_portfolio`)."""
        self.portfolio = portfolio
        self.data = [str(p) for p in data]
        self.settings = dict(settings)
        self.scan_params = scan_params or StrategyParams()
        self._months: dict[tuple[str, str], PreparedMonth] = {}

    @classmethod
    def for_symbols(cls, data: Sequence[str | Path], symbols: Sequence[str],
                    balance: float | None = None, portfolio: bool = False) -> MonthBank:
        return cls(data, {s: backtest_settings(s, balance) for s in symbols}, portfolio=portfolio)

    def month(self, symbol: str, month: str) -> PreparedMonth:
        key = (symbol, month)
        if key not in self._months:
            lo, hi = month_days(month)
            data = load_backtest_data(self.data, symbol, lo, hi)
            self._months[key] = prepare_month(data, self.scan_params)
        return self._months[key]

    def prepare(self, pairs: Sequence[tuple[str, str]]) -> None:
        for sym, m in pairs:
            self.month(sym, m)

    def run_portfolio(self, symbols: Sequence[str], month: str, params: StrategyParams) -> MonthRun:
        """The agent over `symbols` in `month` as ONE portfolio on one account
        (rl.backtest.portfolio): one MonthRun named "A,B,..." with the account's curve. Its
        scans are computed by the run (a prepared month serves one symbol's run)."""
        from rl.backtest.portfolio import run_portfolio

        datas = [self.month(s, month).data for s in symbols]
        settings = self.settings[symbols[0]].with_overrides(symbols=tuple(symbols))
        r = run_portfolio(datas, settings, progress=False, params=params)
        s = r.summary
        day_ms, equity = daily_curve(r.equity_time_ms, r.equity, settings.paper_balance)
        return MonthRun(symbol=",".join(symbols), month=month, trades=int(s["trades"]),
                        return_pct=float(s["return_pct"]), max_drawdown_pct=float(s["max_drawdown_pct"]),
                        sortino=s.get("sortino"), buy_hold_return_pct=s.get("buy_hold_return_pct"),
                        day_ms=day_ms, equity=equity)

    def run(self, symbol: str, month: str, params: StrategyParams) -> MonthRun:
        """The agent over (symbol, month) with `params`, as the objective reads it."""
        pm = self.month(symbol, month)
        settings = self.settings[symbol]
        r = run_backtest(pm.data, settings, progress=False, params=params, month=pm)
        return month_run(symbol, month, r, settings.paper_balance)

    def oos_month(self, symbol: str, month: str, params: StrategyParams) -> OosMonth:
        """`run` plus the entries opened, the span and buy & hold (rl.optimize.oos_baselines)."""
        pm = self.month(symbol, month)
        settings = self.settings[symbol]
        r = run_backtest(pm.data, settings, progress=False, params=params, month=pm)
        first_open = float(pm.data.frame["open"].iloc[pm.data.first_bar])
        bh_t, bh_e = daily_curve(r.price_time_ms, r.price_close, first_open)
        bh = MonthRun(symbol=symbol, month=month, trades=0, return_pct=(bh_e[-1] - 1.0) * 100.0 if bh_e else 0.0,
                      max_drawdown_pct=0.0, sortino=None, buy_hold_return_pct=r.summary.get("buy_hold_return_pct"),
                      day_ms=bh_t, equity=bh_e)
        return OosMonth(run=month_run(symbol, month, r, settings.paper_balance),
                         opened=len(r.trades) + len(r.open_trades),
                         span=(int(r.equity_time_ms[0]), int(r.equity_time_ms[-1])), buy_hold=bh)

    def random_month(self, symbol: str, month: str, params: StrategyParams, count: int,
                     span: tuple[int, int], seed: int) -> MonthRun:
        """The same month with the agent's entry decisions replaced by `count` seeded random
        entries (rl.backtest.baselines.RandomEntries: same plan, sizing, exits, protections)."""
        pm = self.month(symbol, month)
        settings = self.settings[symbol]
        policy = RandomEntries.scheduled(count, span[0], span[1], seed)
        r = run_backtest(pm.data, settings, progress=False, params=params, month=pm, entry_policy=policy)
        return month_run(symbol, month, r, settings.paper_balance)
