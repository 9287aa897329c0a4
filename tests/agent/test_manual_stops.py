"""A manual trade gets exactly the stops the trader set (#17 item 3): a stop-loss as a
reduce-only STOP_MARKET and a take-profit as a reduce-only TAKE_PROFIT_MARKET on the Algo Order
API, for the size that filled; none when none was asked; the one left is cancelled when the
trade is flat. The real agent on the paper exchange (tests/support/scripted_world.py) and on the
fake Binance server over loopback HTTP (tests/support/binance_world.py)."""
from __future__ import annotations

import pytest

from tests.support.binance_world import Rig, clock_at_start, market_frame, new_server
from tests.support.scripted_world import SYMBOL, World


def _stops(exchange) -> list[tuple[str, str, float, float]]:
    return sorted((s.type, s.side, s.trigger_price, s.quantity) for s in exchange.open_stops(SYMBOL))


def test_a_market_buy_gets_the_traders_stop_and_target_and_the_rest_goes_when_one_fires(tmp_path):
    w = World(tmp_path, [100.0] * 70 + [(100.0, 100.2, 96.5, 97.0)] + [97.0] * 20)
    order = w.agent.manual_order(SYMBOL, "BUY", "MARKET", 2, stop_loss=98.0, take_profit=104.0)
    assert order["status"] == "FILLED" and len(order["protection"]) == 2
    st = w.state
    assert st is not None and st.manual and st.stop == 98.0 and st.target == 104.0
    assert _stops(w.exchange) == [("STOP_MARKET", "SELL", 98.0, 2.0), ("TAKE_PROFIT_MARKET", "SELL", 104.0, 2.0)]
    t = w.store.trade(st.trade_id)
    assert t["source"] == "manual" and t["stop_price"] == 98.0
    purposes = {o["purpose"] for o in w.store.orders.for_trade(st.trade_id)}
    assert {"manual_stop", "manual_take_profit"} <= purposes
    w.cycle(12)                                               # the dip to 96.5 fires the stop
    assert w.exchange.position(SYMBOL) is None and w.state is None
    assert w.exchange.open_stops(SYMBOL) == []                # the take-profit went with it
    t = w.store.trade(t["id"])
    assert t["status"] == "closed" and t["net_pnl"] < 0 and w.store.get_trade_count() == 0
    w.close()


def test_no_stop_is_placed_when_the_trader_set_none(tmp_path):
    w = World(tmp_path, [100.0] * 80)
    w.agent.manual_order(SYMBOL, "SELL", "MARKET", 2)
    assert w.state is not None and w.state.manual and w.exchange.open_stops(SYMBOL) == []
    w.close()


def test_a_resting_limit_gets_its_stops_when_it_fills(tmp_path):
    prices = [100.0] * 65 + [(100.0, 100.0, 98.5, 99.0)] + [99.0] * 30
    w = World(tmp_path, prices)
    order = w.agent.manual_order(SYMBOL, "BUY", "LIMIT", 3, price=99.0, stop_loss=97.0, take_profit=103.0)
    assert order["status"] == "NEW" and w.exchange.open_stops(SYMBOL) == []
    w.cycle(8)
    st = w.state
    assert st is not None and st.manual and st.qty == pytest.approx(3)
    assert _stops(w.exchange) == [("STOP_MARKET", "SELL", 97.0, 3.0), ("TAKE_PROFIT_MARKET", "SELL", 103.0, 3.0)]
    w.close()


@pytest.mark.parametrize("kw, field, words", [
    ({"side": "BUY", "stop_loss": 101.0}, "stopLoss", "below the entry price"),
    ({"side": "BUY", "take_profit": 99.0}, "takeProfit", "above the entry price"),
    ({"side": "SELL", "stop_loss": 99.0}, "stopLoss", "above the entry price"),
    ({"side": "SELL", "take_profit": 101.0}, "takeProfit", "below the entry price"),
    ({"side": "BUY", "stop_loss": -1.0}, "stopLoss", "a price > 0"),
    ({"side": "SELL", "stop_loss": 105.0, "reduce_only": True}, "stopLoss", "reduce-only"),
])
def test_a_stop_on_the_wrong_side_is_refused_before_any_order(tmp_path, kw, field, words):
    w = World(tmp_path, [100.0] * 80)
    side = kw.pop("side")
    with pytest.raises(ValueError) as e:
        w.agent.manual_order(SYMBOL, side, "MARKET", 2, **kw)
    assert str(e.value).startswith(f"{field}=") and words in str(e.value)
    assert w.exchange.position(SYMBOL) is None and w.store.orders.recent(10) == []
    w.close()


def test_stops_are_refused_on_the_agents_position(tmp_path):
    w = World(tmp_path, [100.0] * 70 + [100.2] * 20)
    w.script.long = 60.0
    w.cycle()                                                 # the agent is long
    w.script.long = 0.0
    assert w.state is not None and not w.state.manual
    with pytest.raises(ValueError, match="^stopLoss=.*manual trade of its own"):
        w.agent.manual_order(SYMBOL, "BUY", "MARKET", 1, stop_loss=95.0)
    w.close()


def test_on_binance_the_stops_go_to_the_algo_order_api_reduce_only(tmp_path):
    frame = market_frame()
    with new_server(frame) as server:
        clock = clock_at_start()
        rig = Rig(tmp_path / "agent.db", server.url, frame, clock)
        rig.script.long = 0.0
        rig.agent.startup()
        before = len(server.requests)
        order = rig.agent.manual_order(SYMBOL, "BUY", "MARKET", 2, stop_loss=97.0, take_profit=104.0)
        assert order["status"] == "FILLED"
        sent = server.requests[before:]
        assert sent.count("POST /fapi/v1/algoOrder") == 2 and "POST /fapi/v1/order" in sent
        assert _stops(rig.exchange) == [("STOP_MARKET", "SELL", 97.0, 2.0),
                                        ("TAKE_PROFIT_MARKET", "SELL", 104.0, 2.0)]
        algos = [a for a in server.ledger.algos.values() if a["algoStatus"] == "NEW"]
        assert sorted((a["orderType"], a["reduceOnly"], a["quantity"]) for a in algos) == [
            ("STOP_MARKET", True, "2"), ("TAKE_PROFIT_MARKET", True, "2")]
        rig.close()
