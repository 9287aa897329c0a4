"""Open orders, cancel and fills over the real API (issue 17 item 2): the real AgentRunner,
TradingAgent, PaperExchange and KnowledgeStore in SQLite files, replayed candles (the parts
of tests/web/test_web_api.py). A resting limit order holds margin while no position shows, so
it must be listed, and cancelling it must give the margin back."""
from __future__ import annotations

import pytest

from tests.web.test_web_api import SYMBOL, TOKEN, post

CANCEL = "/api/agent/orders/cancel"




def _price(runner, factor: float) -> float:
    """A price `factor` times the market's, on FILUSDT's 0.001 tick."""
    return round(runner.market.last_price(SYMBOL) * factor, 3)


def _orders(client) -> list[dict]:
    resp = client.get("/api/agent/orders")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["orders"]


def test_a_resting_limit_is_listed_holds_margin_and_cancel_releases_it(client, world):
    runner = world[1]
    assert _orders(client) == []
    free = client.get("/api/account").get_json()["available_balance"]
    below = _price(runner, 0.9)
    placed = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT",
                                         "quantity": 100, "price": below})
    assert placed.status_code == 200 and placed.get_json()["status"] == "NEW"
    assert client.get("/api/positions").get_json()["positions"] == []     # "无持仓" ...
    acct = client.get("/api/account").get_json()
    assert acct["initial_margin"] > 0 and acct["available_balance"] < free   # ... but margin is held
    [row] = _orders(client)
    assert (row["symbol"], row["side"], row["type"], row["price"], row["qty"], row["filled_qty"],
            row["reduce_only"], row["placed_by"], row["kind"]) == (
        SYMBOL, "BUY", "LIMIT", below, 100.0, 0.0, False, "manual", "order")
    assert row["time_ms"] > 0 and row["stop_price"] is None

    done = post(client, CANCEL, {"symbol": SYMBOL, "order_id": row["order_id"]})
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["cancelled"] is True and done.get_json()["order"]["status"] == "CANCELED"
    assert _orders(client) == [] and runner.exchange.open_orders(SYMBOL) == []
    acct = client.get("/api/account").get_json()
    assert acct["initial_margin"] == 0 and acct["available_balance"] == pytest.approx(free)
    logs = runner.logs(limit=5)
    assert any("已撤销挂单" in r["message_zh"] and "cancelled open order" in r["message_en"] for r in logs)
    again = post(client, CANCEL, {"symbol": SYMBOL, "order_id": row["order_id"]})
    assert again.status_code == 404 and "order_id" in again.get_json()["error"]
    history = client.get("/api/agent/fills").get_json()["orders"]
    assert [(o["status"], o["purpose"]) for o in history] == [("CANCELED", "manual")]


def test_the_stop_loss_of_an_open_position_is_cancelled_only_when_confirmed(client, world):
    runner = world[1]
    assert post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 100}).status_code == 200
    stop = runner.exchange.place_stop(SYMBOL, "SELL", "STOP_MARKET", _price(runner, 0.8), None, "ag-sl-test")
    runner.store.orders.record(stop, "stop")
    [row] = [o for o in _orders(client) if o["kind"] == "stop"]
    assert (row["stop_price"], row["protective"], row["placed_by"], row["reduce_only"]) == (_price(runner, 0.8), True, "agent", True)

    refused = post(client, CANCEL, {"symbol": SYMBOL, "order_id": row["order_id"]})
    assert refused.status_code == 409 and "confirm_unprotected" in refused.get_json()["error"]
    assert len(runner.exchange.open_stops(SYMBOL)) == 1                 # still protected
    done = post(client, CANCEL, {"symbol": SYMBOL, "order_id": row["order_id"], "confirm_unprotected": True})
    assert done.status_code == 200 and done.get_json()["cancelled"] is True
    assert runner.exchange.open_stops(SYMBOL) == []
    warn = [r for r in runner.logs(limit=5) if r["level"] == "WARNING"]
    assert warn and "没有止损保护" in warn[0]["message_zh"] and "unprotected" in warn[0]["message_en"]
    [fill] = client.get("/api/agent/fills").get_json()["fills"]
    assert (fill["side"], fill["qty"], fill["placed_by"]) == ("BUY", 100.0, "manual")


def test_a_take_profit_stop_is_not_protective(client, world):
    runner = world[1]
    post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 100})
    runner.exchange.place_stop(SYMBOL, "SELL", "TAKE_PROFIT_MARKET", _price(runner, 1.2), None, "ag-tp-test")
    [row] = [o for o in _orders(client) if o["kind"] == "stop"]
    assert row["protective"] is False and row["placed_by"] == "agent"
    assert post(client, CANCEL, {"symbol": SYMBOL, "order_id": "ag-tp-test"}).status_code == 200
    assert runner.exchange.open_stops(SYMBOL) == []


@pytest.mark.parametrize("body,field,status", [
    ({}, "symbol", 400),
    ({"order_id": "1"}, "symbol", 400),
    ({"symbol": "BTCUSDT", "order_id": "1"}, "symbol", 404),
    ({"symbol": "fil usdt", "order_id": "1"}, "symbol", 400),
    ({"symbol": SYMBOL}, "order_id", 400),
    ({"symbol": SYMBOL, "order_id": ""}, "order_id", 400),
    ({"symbol": SYMBOL, "order_id": 12}, "order_id", 400),
    ({"symbol": SYMBOL, "order_id": "a" * 37}, "order_id", 400),
    ({"symbol": SYMBOL, "order_id": "1", "confirm_unprotected": "yes"}, "confirm_unprotected", 400),
    ({"symbol": SYMBOL, "order_id": "1", "confirm_unprotected": 1}, "confirm_unprotected", 400),
    ({"symbol": SYMBOL, "order_id": "1", "force": True}, "force", 400),
    ({"symbol": SYMBOL, "order_id": "999"}, "order_id", 404),
])
def test_bad_cancel_input_is_a_4xx_json_error_naming_the_field(client, body, field, status):
    resp = post(client, CANCEL, body)
    assert resp.status_code == status, resp.get_json()
    assert field in resp.get_json()["error"]


def test_cancel_needs_the_token(client):
    assert post(client, CANCEL, {"symbol": SYMBOL, "order_id": "1"}, token=None).status_code == 403
    assert post(client, CANCEL, {"symbol": SYMBOL, "order_id": "1"}, token=TOKEN + "x").status_code == 403


def test_fills_limit_is_checked(client):
    resp = client.get("/api/agent/fills?limit=0")
    assert resp.status_code == 400 and resp.get_json()["field"] == "limit"
