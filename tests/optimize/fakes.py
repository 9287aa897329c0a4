"""A MonthBank whose months are made up from the parameters (no archive, milliseconds a run),
so the study loop can be tested without running the agent."""
from __future__ import annotations

from rl.optimize.bank import MonthBank
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
