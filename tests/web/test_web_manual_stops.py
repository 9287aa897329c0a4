"""POST /api/order with the trader's stopLoss / takeProfit (#17 item 3) over the real app, runner,
paper exchange and SQLite store (tests/web/conftest.py): placed as reduce-only Algo orders,
listed as the trader's in the open orders; a bad one is a 400 naming its field, nothing placed."""
from __future__ import annotations

import pytest

from tests.web.test_web_api import SYMBOL, post


def _price(runner, factor: float) -> float:
    return round(runner.market.last_price(SYMBOL) * factor, 3)


def test_a_market_order_with_stops_gets_exactly_those(client, world):
    runner = world[1]
    sl, tp = _price(runner, 0.95), _price(runner, 1.05)
    resp = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 100,
                                       "stopLoss": sl, "takeProfit": tp})
    assert resp.status_code == 200, resp.get_json()
    assert [p["en"].split(" placed")[0] for p in resp.get_json()["protection"]] == [
        f"{SYMBOL}: manual stop-loss", f"{SYMBOL}: manual take-profit"]
    rows = client.get("/api/agent/orders").get_json()["orders"]
    got = sorted((r["type"], r["stop_price"], r["placed_by"], r["reduce_only"]) for r in rows)
    assert got == [("STOP_MARKET", sl, "manual", True), ("TAKE_PROFIT_MARKET", tp, "manual", True)]


@pytest.mark.parametrize("body, field", [
    ({"side": "BUY", "stopLoss": "high"}, "stopLoss"),
    ({"side": "BUY", "type": "LIMIT", "price": 3.0, "stopLoss": 3.1}, "stopLoss"),
    ({"side": "SELL", "type": "LIMIT", "price": 3.0, "takeProfit": 3.1}, "takeProfit"),
    ({"side": "BUY", "stopLoss": 1e6}, "stopLoss"),                  # MARKET: against the last price
    ({"side": "SELL", "reduceOnly": True, "takeProfit": 0.5}, "takeProfit"),
])
def test_a_bad_stop_is_a_400_naming_the_field_and_nothing_is_placed(client, world, body, field):
    runner = world[1]
    resp = post(client, "/api/order", {"symbol": SYMBOL, "quantity": 100, **body})
    assert resp.status_code == 400, resp.get_json()
    doc = resp.get_json()
    assert doc["field"] == field and doc["error"].startswith(f"{field}=") and doc["rule"]
    assert runner.exchange.open_orders(SYMBOL) == [] and runner.exchange.position(SYMBOL) is None
    assert runner.exchange.open_stops(SYMBOL) == []
