"""Cancelling the agent's own orders from the dashboard (TradingAgent.open_orders /
cancel_order) on the maker world of tests/agent/test_agent_maker.py: a resting maker entry
(the order that holds margin while no position shows) is listed as the agent's, cancelled, and
the agent's next bar ends the entry with no position; the stop-loss of the filled trade is
refused without the trader's confirmation, and the agent places it again at its next check."""
from __future__ import annotations

import pytest

from rl.errors import CancelRefused, OrderNotOpen
from tests.agent.test_agent_maker import FLAT, THROUGH, TOUCH, MakerWorld, _resting
from tests.support.scripted_world import SYMBOL


def test_the_agents_resting_entry_is_listed_cancelled_and_ended(tmp_path):
    w = MakerWorld(tmp_path, FLAT + [TOUCH] * 10)
    w.script.long = 60.0
    w.cycle()
    order = _resting(w)
    assert w.exchange.account().initial_margin > 0 and w.exchange.position(SYMBOL) is None
    [row] = w.agent.open_orders()
    assert (row["order_id"], row["placed_by"], row["purpose"], row["price"], row["time_in_force"]) == (
        order.order_id, "agent", "entry", 100.0, "GTX")
    w.script.long = 0.0
    out = w.agent.cancel_order(SYMBOL, order.order_id)
    assert out["cancelled"] is True and w.exchange.open_orders(SYMBOL) == []
    assert w.exchange.account().initial_margin == 0.0
    w.cycle()                                       # the agent sees its entry gone
    assert w.state is None and w.store.get_state(f"intent:{SYMBOL}") is None
    assert w.store.trades() == [] and w.agent.open_orders() == []
    assert any("cancelled open order" in line for line in w.log())
    with pytest.raises(OrderNotOpen):
        w.agent.cancel_order(SYMBOL, order.order_id)
    w.close()


def test_the_agents_stop_loss_is_cancelled_only_when_confirmed(tmp_path):
    w = MakerWorld(tmp_path, FLAT + [TOUCH, THROUGH] + [100.1] * 10)
    w.script.long = 60.0
    w.cycle()
    w.script.long = 0.0
    w.cycle(2)
    assert w.state is not None
    stops = [o for o in w.agent.open_orders() if o["kind"] == "stop" and o["protective"]]
    assert len(stops) == 1 and stops[0]["placed_by"] == "agent" and stops[0]["stop_price"] == pytest.approx(98.5)
    with pytest.raises(CancelRefused):
        w.agent.cancel_order(SYMBOL, stops[0]["order_id"])
    assert len(w.exchange.open_stops(SYMBOL)) == 1
    w.agent.cancel_order(SYMBOL, stops[0]["order_id"], confirm_unprotected=True)
    assert w.exchange.open_stops(SYMBOL) == []
    assert any("now unprotected; the agent places it again" in line for line in w.log())
    w.cycle()                       # ... and it does: its position is not left without a stop
    assert [s.trigger_price for s in w.exchange.open_stops(SYMBOL)] == [pytest.approx(98.5)]
    w.close()
