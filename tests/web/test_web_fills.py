"""GET /api/agent/fills as an order history (#17 item 2): each fill names its order's type and
purpose and the agent's trade it belongs to, newest first; ?symbol= filters, an unknown symbol
is refused naming the field; ?limit= pages."""
from __future__ import annotations

from tests.web.test_web_api import SYMBOL, post


def test_fills_carry_type_purpose_and_trade_and_filter_by_symbol(client, world):
    for side in ("BUY", "SELL", "BUY"):
        assert post(client, "/api/order", {"symbol": SYMBOL, "side": side, "quantity": 100}).status_code == 200
    fills = client.get(f"/api/agent/fills?symbol={SYMBOL}").get_json()["fills"]
    assert [(f["side"], f["order_type"], f["purpose"], f["agent_trade_id"]) for f in fills] == [
        ("BUY", "MARKET", "manual", 2), ("SELL", "MARKET", "manual", 1), ("BUY", "MARKET", "manual", 1)]
    assert [f["side"] for f in client.get("/api/agent/fills?limit=1").get_json()["fills"]] == ["BUY"]
    bad = client.get("/api/agent/fills?symbol=DOGEUSDT")
    assert bad.status_code in (400, 404) and "symbol" in bad.get_json()["error"]
