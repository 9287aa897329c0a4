"""A MonthBank whose months are made up from the parameters (no archive, milliseconds a run),
so the study loop can be tested without running the agent."""
from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime

from rl.optimize.bank import MonthBank, OosMonth
from rl.optimize.objective import MonthRun
from rl.strategy.params import StrategyParams

DAY = 86_400_000


class FakeBank(MonthBank):
    """run(): a month whose daily equity rises with plan.atr_buffer and falls with
    exits.trail_atr, deterministic in the parameters; `fail_when` above that atr_buffer raises."""

    def __init__(self, fail_when: float | None = None) -> None:
        super().__init__([], {})
        self.fail_when = fail_when

    def run(self, symbol: str, month: str, params: StrategyParams) -> MonthRun:
        a, t = params.plan.atr_buffer, params.exits.trail_atr
        if self.fail_when is not None and a > self.fail_when:
            raise RuntimeError(f"made-up failure at atr_buffer {a}")
        drift = 0.002 * a - 0.001 * t
        eq, level = [1.0], 1.0
        for k in range(10):
            level *= 1.0 + drift + (0.003 if k % 3 == 0 else -0.002)
            eq.append(level)
        return MonthRun(symbol=symbol, month=month, trades=20, return_pct=(eq[-1] - 1) * 100,
                        max_drawdown_pct=0.0, sortino=None, buy_hold_return_pct=None,
                        day_ms=tuple(k * DAY for k in range(len(eq))), equity=tuple(eq))


class FakeTestBank(FakeBank):
    """FakeBank with the two runs rl.optimize.oos_baselines asks for: the test month (the
    agent's run, `opened` entries, buy & hold rising 1 % a day) and random-entry months whose
    daily drift is drawn from the seed (so each seed gives its own, reproducible curve)."""

    def run(self, symbol: str, month: str, params: StrategyParams) -> MonthRun:
        # the made-up days start at the month's first day, so stitched months follow each other
        run = super().run(symbol, month, params)
        return replace(run, day_ms=tuple(_start(month) + t for t in run.day_ms))

    def oos_month(self, symbol: str, month: str, params: StrategyParams) -> OosMonth:
        run = self.run(symbol, month, params)
        bh = tuple(1.01 ** k for k in range(len(run.equity)))
        buy_hold = MonthRun(symbol=symbol, month=month, trades=0, return_pct=(bh[-1] - 1) * 100,
                            max_drawdown_pct=0.0, sortino=None, buy_hold_return_pct=(bh[-1] - 1) * 100,
                            day_ms=run.day_ms, equity=bh)
        return OosMonth(run=run, opened=run.trades, span=(run.day_ms[0], run.day_ms[-1]), buy_hold=buy_hold)

    def random_month(self, symbol: str, month: str, params: StrategyParams, count: int,
                     span: tuple[int, int], seed: int) -> MonthRun:
        drift = random.Random(f"{symbol}{month}{seed}").uniform(-0.004, 0.004)
        eq = tuple((1.0 + drift) ** k for k in range(11))
        return MonthRun(symbol=symbol, month=month, trades=count, return_pct=(eq[-1] - 1) * 100,
                        max_drawdown_pct=0.0, sortino=None, buy_hold_return_pct=None,
                        day_ms=tuple(_start(month) + k * DAY for k in range(len(eq))), equity=eq)


def _start(month: str) -> int:
    return int(datetime.strptime(month + "-01", "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)
