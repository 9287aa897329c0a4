"""The risk protections are account-wide with several symbols (issue 18, design §11.2): one
stop-out in each of two symbols counts twice toward the stop-loss guard, and the daily loss
limit and the drawdown guard read the whole account's equity, so two losses each under the
limit pause entries together; a pause then holds the entries of every symbol.

Two symbols on one paper account (tests/support/two_symbol_world.py), both entering long at
01:00 (stops 98.5) and both stopped out by the 01:00 bar's dip to 98."""
from __future__ import annotations

import pytest

from tests.support.protection_paths import stop_outs
from tests.support.scripted_world import MIN, T0
from tests.support.two_symbol_world import A, B, TwoSymbolWorld

CAPS_OFF = {"max_open_positions": 0, "max_total_risk_percent": 0.0, "max_correlation": 0.0}
ONLY = {
    "stoploss_guard": {"max_drawdown_percent": 0.0, "daily_loss_limit_percent": 0.0, "stoploss_guard_trades": 2},
    "daily_loss": {"max_drawdown_percent": 0.0, "stoploss_guard_trades": 0, "daily_loss_limit_percent": 1.5},
    "drawdown": {"daily_loss_limit_percent": 0.0, "stoploss_guard_trades": 0, "max_drawdown_percent": 1.5},
}


@pytest.mark.parametrize("rule", sorted(ONLY))
def test_one_loss_in_each_symbol_pauses_entries_of_both(tmp_path, rule):
    path = stop_outs(1, 400)
    w = TwoSymbolWorld(tmp_path, path, path, **CAPS_OFF, **ONLY[rule])
    for s in (A, B):
        w.scripts[s].long = 60.0
    w.run_to(T0 + 62 * MIN)
    trades = w.trades()
    assert sorted(t["symbol"] for t in trades) == [A, B]
    assert all(t["exit_reason"] == "stop" for t in trades)
    losses = [-t["net_pnl"] for t in trades]
    # each symbol alone lost less than the limit (1.5 % of 10,000), together more
    assert all(0 < x < 150 for x in losses) and sum(losses) > 150
    w.run_to(T0 + 120 * MIN)                    # 01:15 .. 01:45: the signals hold, no entry
    assert len(w.trades()) == 2 and w.position(A) is None and w.position(B) is None
    (active,) = w.agent.status()["protections"]["active"]
    assert active["rule"] == rule
    if rule == "stoploss_guard":
        assert active["details"]["stop_outs"] == 2
        assert list(active["details"]["symbols"]) == [A, B]
    else:                                       # the account's equity, not one symbol's
        equity = w.exchange.account().margin_balance
        assert active["details"]["equity"] == pytest.approx(equity)
        assert 10_000 - equity == pytest.approx(sum(losses), rel=1e-9)
    skipped = w.lines("⏸ 做多信号未入场")
    assert sorted(ln["symbol"] for ln in skipped) == [A, B]        # once per symbol
    w.close()


def test_one_symbols_loss_alone_does_not_pause(tmp_path):
    w = TwoSymbolWorld(tmp_path, stop_outs(1, 400), [100.0] * 400, **CAPS_OFF, **ONLY["daily_loss"])
    w.scripts[A].long = 60.0
    w.run_to(T0 + 80 * MIN)
    assert [t["exit_reason"] for t in w.trades()][:1] == ["stop"]
    assert w.agent.status()["protections"]["active"] == []
    assert w.position(A) is not None                 # entered again at 01:15: no pause
    w.close()
