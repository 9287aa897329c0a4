"""Risk rules around entries: re-entry cooldown after a close and phase-scaled risk."""
from __future__ import annotations

import pytest

from rl.agent.agent import TradingAgent
from rl.strategy.params import StrategyParams, TradePlanParams
from tests.support.scripted_world import ScriptedAnalyzer, World

FLAT = [100.0] * 60
# enter long at 100 (stop 98.5, target 103), run to the target within 6 bars, then drift flat
PATH = FLAT + [100.5, 101.0, (101.0, 101.6, 101.0, 101.5), 102.0, 102.5, (102.5, 103.3, 102.5, 103.2)] \
    + [103.2] * 200


def _close_first_trade(w: World) -> int:
    w.script.long = 60.0
    w.cycle()
    assert w.state is not None
    w.script.long = 0.0
    w.cycle(6)
    t1 = w.store.trade(1)
    assert t1["status"] == "closed"
    return int(t1["closed_ms"])


def test_no_reentry_within_cooldown_even_after_restart(tmp_path) -> None:
    w = World(tmp_path, PATH)
    w.settings = w.settings.with_overrides(reentry_cooldown_minutes=60)
    w.agent.settings = w.settings
    w.agent.params = StrategyParams.from_settings(w.settings)
    closed_ms = _close_first_trade(w)
    w.script.long = 60.0                      # a strong long signal at every 15m close from here on
    while w.clock.now_ms() - closed_ms < 45 * 60_000:
        w.cycle()
    assert w.state is None and w.store.get_trade_count() == 1
    assert len(w.store.trades()) == 1        # no second trade opened inside the cooldown

    # a restarted agent on the same store still honours the cooldown of the last close
    agent2 = TradingAgent(w.settings, w.market, w.exchange, w.store, w.clock, feed=w.exchange,
                          analyzer_factory=lambda sym, wts: ScriptedAnalyzer(w.script, sym, wts))
    agent2.startup()
    w.agent = agent2
    while w.clock.now_ms() - closed_ms < 59 * 60_000:
        w.cycle()
    assert len(w.store.trades()) == 1
    while w.clock.now_ms() - closed_ms < 80 * 60_000:
        w.cycle()
    trades = w.store.trades()
    assert len(trades) == 2                  # the first 15m close after the hour enters
    assert trades[0]["opened_ms"] - closed_ms >= 60 * 60_000
    w.close()


def test_exploration_trades_stake_half_the_risk_budget(tmp_path) -> None:
    w = World(tmp_path, PATH)
    w.script.long = 60.0
    w.cycle()
    t = w.store.trade(1)
    budget = 10_000.0 * w.settings.max_risk_percent / 100.0
    assert w.settings.phase_risk_scale[0] == 0.5
    # the price risk to the stop is half the budget less the fees reserved inside it and the
    # step rounding (a full-budget trade would risk ~190 here)
    assert budget * 0.5 * 0.9 <= t["risk_amount"] <= budget * 0.5 + 1e-9
    w.close()


def test_fee_floor_keeps_stops_away_from_entry() -> None:
    from rl.strategy.trade_plan import plan_trade
    # level 99.95 right under entry 100 with a tiny ATR: the natural stop would be 0.1 % away
    plan = plan_trade("LONG", 100.0, 99.95, 0.05, 10_000.0, 10_000.0, taker_fee=0.0005)
    assert plan.stop == pytest.approx(99.5)               # 5 round-trip fees = 0.5 %
    assert plan_trade("LONG", 100.0, 99.95, 0.05, 10_000.0, 10_000.0, taker_fee=0.0005,
                      params=TradePlanParams(fee_stop_multiple=0.0)).stop == pytest.approx(99.8)   # the 0.2 % minimum
