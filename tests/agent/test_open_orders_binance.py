"""Open orders and cancel on the Binance path (rl.agent.open_orders over BinanceExchange),
with `responses` answering in the shapes of Binance's docs: GET /fapi/v1/openOrders,
GET /fapi/v1/openAlgoOrders (stops live on the Algo Order API), DELETE /fapi/v1/order and its
-2011 "Unknown order sent." when the order was filled or cancelled in the meantime."""
from __future__ import annotations

from pathlib import Path

import pytest
import responses

from client import BinanceClient
from rl.agent import open_orders as desk
from rl.analysis.levels.finder import DEFAULT_WEIGHTS
from rl.errors import CancelRefused, OrderNotOpen
from rl.execution.binance import BinanceExchange
from rl.knowledge.store import KnowledgeStore

BASE = "https://demo-fapi.binance.com"
SYM = "BTCUSDT"

# GET /fapi/v1/openOrders, as in the docs ("Current All Open Orders")
OPEN_LIMIT = {"avgPrice": "48000.00000", "clientOrderId": "man-3f2a", "cumQuote": "480", "executedQty": "0.010",
              "orderId": 1917641, "origQty": "0.040", "origType": "LIMIT", "price": "48000.00",
              "reduceOnly": False, "side": "BUY", "positionSide": "BOTH", "status": "PARTIALLY_FILLED",
              "stopPrice": "0", "closePosition": False, "symbol": SYM, "time": 1579276756075,
              "timeInForce": "GTX", "type": "LIMIT", "activatePrice": "", "priceRate": "",
              "updateTime": 1579276756075, "workingType": "CONTRACT_PRICE", "priceProtect": False,
              "priceMatch": "NONE", "selfTradePreventionMode": "NONE", "goodTillDate": 0}
# GET /fapi/v1/openAlgoOrders, as in the docs ("Current All Algo Open Orders")
OPEN_STOP = {"algoId": 2146760, "clientAlgoId": "ag-sl-6B2I9XVcJpCjqPAJ4YoFX7", "algoType": "CONDITIONAL",
             "orderType": "STOP_MARKET", "symbol": SYM, "side": "SELL", "positionSide": "BOTH",
             "timeInForce": "GTC", "quantity": "0.010", "algoStatus": "NEW", "triggerPrice": "47000.00",
             "price": "0.00", "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
             "workingType": "CONTRACT_PRICE", "priceMatch": "NONE", "closePosition": False,
             "priceProtect": False, "reduceOnly": True, "activatePrice": "", "callbackRate": "",
             "createTime": 1750485492076, "updateTime": 1750485492076, "triggerTime": 0, "goodTillDate": 0}
# GET /fapi/v3/positionRisk, as in the docs: the filled part of the maker entry
POSITION = {"symbol": SYM, "positionSide": "BOTH", "positionAmt": "0.010", "entryPrice": "48000.0",
            "breakEvenPrice": "48019.2", "markPrice": "48100.00", "unRealizedProfit": "1.00",
            "liquidationPrice": "43500.0", "isolatedMargin": "48.10", "notional": "481.00",
            "marginAsset": "USDT", "isolatedWallet": "48.00", "initialMargin": "48.10",
            "maintMargin": "1.92", "positionInitialMargin": "48.10", "openOrderInitialMargin": "144",
            "adl": 0, "bidNotional": "0", "askNotional": "0", "updateTime": 1579276756075}
UNKNOWN_ORDER = {"code": -2011, "msg": "Unknown order sent."}
NO_SUCH_ORDER = {"code": -2013, "msg": "Order does not exist."}


@pytest.fixture
def world(tmp_path: Path):
    store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    ex = BinanceExchange(BinanceClient(trade_url=BASE, api_key="k", api_secret="s", sleep=lambda s: None))
    logs: list[tuple[str, str, str, str]] = []
    yield ex, store, logs
    store.close()


def _serve(position: bool = True) -> None:
    responses.add(responses.GET, BASE + "/fapi/v1/openOrders", json=[OPEN_LIMIT])
    responses.add(responses.GET, BASE + "/fapi/v1/openAlgoOrders", json=[OPEN_STOP])
    responses.add(responses.GET, BASE + "/fapi/v3/positionRisk",
                  json=[POSITION if position else {**POSITION, "positionAmt": "0", "notional": "0"}])


def _cancel(world, order_id: str, confirm: bool = False) -> dict:
    ex, store, logs = world
    return desk.cancel(ex, store.orders, SYM, order_id, confirm_unprotected=confirm,
                       log=lambda *a: logs.append(a))


@responses.activate
def test_open_orders_list_the_resting_limit_and_the_protective_stop(world):
    ex, store, _ = world
    _serve()
    rows = desk.open_orders(ex, store.orders, [SYM])
    by_kind = {r["kind"]: r for r in rows}
    o, s = by_kind["order"], by_kind["stop"]
    assert (o["order_id"], o["price"], o["qty"], o["filled_qty"], o["status"], o["placed_by"],
            o["reduce_only"], o["time_in_force"]) == (
        "1917641", 48000.0, 0.04, 0.01, "PARTIALLY_FILLED", "manual", False, "GTX")
    assert (s["order_id"], s["type"], s["stop_price"], s["qty"], s["protective"], s["reduce_only"]) == (
        "2146760", "STOP_MARKET", 47000.0, 0.01, True, True)
    assert [r["kind"] for r in rows] == ["stop", "order"]        # newest first


@responses.activate
def test_cancel_answers_canceled_and_records_it(world):
    ex, store, logs = world
    _serve()
    responses.add(responses.DELETE, BASE + "/fapi/v1/order",
                  json={**OPEN_LIMIT, "status": "CANCELED", "updateTime": 1579276800000})
    out = _cancel(world, "1917641")
    assert out["cancelled"] is True and out["order"]["filled_qty"] == 0.01
    [sent] = [c.request for c in responses.calls if c.request.method == "DELETE"]
    assert "origClientOrderId=man-3f2a" in sent.url
    assert store.orders.get("man-3f2a")["status"] == "CANCELED"
    assert logs and "已撤销挂单" in logs[-1][2] and "cancelled open order" in logs[-1][3]


@responses.activate
def test_cancel_of_an_order_gone_meanwhile_is_not_open(world):
    """-2011 on the cancel, then -2013 on the lookup: nothing is open by that id any more."""
    _serve()
    responses.add(responses.DELETE, BASE + "/fapi/v1/order", json=UNKNOWN_ORDER, status=400)
    responses.add(responses.GET, BASE + "/fapi/v1/order", json=NO_SUCH_ORDER, status=400)
    with pytest.raises(OrderNotOpen, match="order_id='1917641'"):
        _cancel(world, "1917641")
    assert world[2] == []


@responses.activate
def test_cancel_of_an_order_filled_meanwhile_says_filled(world):
    _serve()
    responses.add(responses.DELETE, BASE + "/fapi/v1/order", json=UNKNOWN_ORDER, status=400)
    responses.add(responses.GET, BASE + "/fapi/v1/order",
                  json={**OPEN_LIMIT, "status": "FILLED", "executedQty": "0.040", "avgPrice": "48000"})
    out = _cancel(world, "1917641")
    assert (out["cancelled"], out["status"], out["order"]["filled_qty"]) == (False, "FILLED", 0.04)


@responses.activate
def test_the_stop_loss_of_an_open_position_needs_confirmation(world):
    _serve()
    responses.add(responses.DELETE, BASE + "/fapi/v1/algoOrder",
                  json={"algoId": 2146760, "clientAlgoId": OPEN_STOP["clientAlgoId"],
                        "code": "200", "msg": "success"})
    with pytest.raises(CancelRefused, match="confirm_unprotected"):
        _cancel(world, "2146760")
    assert not any(c.request.method == "DELETE" for c in responses.calls)
    out = _cancel(world, "2146760", confirm=True)
    assert out["cancelled"] is True
    assert [c.request.method for c in responses.calls].count("DELETE") == 1
    assert world[2][-1][0] == "WARNING" and "unprotected" in world[2][-1][3]


@responses.activate
def test_a_stop_without_a_position_cancels_without_confirmation(world):
    _serve(position=False)
    responses.add(responses.DELETE, BASE + "/fapi/v1/algoOrder",
                  json={"algoId": 2146760, "clientAlgoId": OPEN_STOP["clientAlgoId"],
                        "code": "200", "msg": "success"})
    assert _cancel(world, OPEN_STOP["clientAlgoId"])["cancelled"] is True


@responses.activate
def test_an_unknown_id_is_not_open(world):
    _serve()
    with pytest.raises(OrderNotOpen, match="order_id"):
        _cancel(world, "42")
