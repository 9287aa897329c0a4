"""Several symbols on one dashboard (issue 18 #3) over the real API: the real AgentRunner,
TradingAgent, PaperExchange and KnowledgeStore in SQLite files, two replayed symbols at
different prices on a ManualClock (the parts of tests/web/test_web_api.py). `?symbol=` must be a
configured symbol (else 400 naming the field and the rule); positions, open orders and the
per-symbol PnL list every symbol, or the one asked for."""
from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from rl.clock import ManualClock
from rl.market.ports import ReplayMarketData
from tests.support.candles import make_candles
from tests.web.test_web_api import DAY_MIN, TOKEN, build_runner, post
from web.app import create_app

SYMBOLS = ("FILUSDT", "NEARUSDT")
FILTERED = ("/api/positions", "/api/agent/orders", "/api/pnl/symbols", "/api/agent/levels")


@pytest.fixture
def two(tmp_path: Path):
    frames = {"FILUSDT": make_candles(n=35 * DAY_MIN, start="2024-01-01", price=4.0, vol=0.002, seed=1),
              "NEARUSDT": make_candles(n=35 * DAY_MIN, start="2024-01-01", price=1.2, vol=0.002, seed=2)}
    clock = ManualClock(int(frames["FILUSDT"].index[30 * DAY_MIN].value // 1_000_000) + 30_000)
    market = ReplayMarketData(frames, clock)
    settings = Settings(symbols=SYMBOLS, db_path=tmp_path / "agent.db")
    runner = build_runner(settings, market, clock)
    app = create_app(settings, market=market, runner=runner, token=TOKEN)
    yield app.test_client(), runner, clock
    runner.stop()
    runner.store.close()
    runner.exchange.close()


@pytest.mark.parametrize("path", FILTERED)
@pytest.mark.parametrize("value, rule", [
    ("XRPUSDT", "it must be one of the configured symbols (FILUSDT, NEARUSDT)"),
    ("FIL-USDT", "it must be a symbol like BTCUSDT (2..30 ASCII letters and digits)"),
    ("", "it is required: a symbol like BTCUSDT"),
])
def test_a_symbol_query_outside_the_configured_symbols_is_a_400_naming_field_and_rule(two, path, value, rule):
    client = two[0]
    resp = client.get(f"{path}?symbol={value}")
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    assert body["field"] == "symbol" and body["rule"] == rule and body["error"].startswith("symbol")


@pytest.mark.parametrize("path", FILTERED)
def test_a_symbol_query_given_twice_is_refused(two, path):
    resp = two[0].get(f"{path}?symbol=FILUSDT&symbol=NEARUSDT")
    assert resp.status_code == 400 and resp.get_json()["field"] == "symbol"


def test_positions_and_open_orders_list_every_symbol_or_the_one_asked_for(two):
    client, runner, _ = two
    for sym, side, qty in (("FILUSDT", "BUY", 100), ("NEARUSDT", "SELL", 300)):
        assert post(client, "/api/order", {"symbol": sym, "side": side, "quantity": qty}).status_code == 200
        below = round(runner.market.last_price(sym) * 0.9, 3)
        resp = post(client, "/api/order", {"symbol": sym, "side": "BUY", "type": "LIMIT", "quantity": qty,
                                           "price": below})
        assert resp.status_code == 200 and resp.get_json()["status"] == "NEW"

    every = client.get("/api/positions").get_json()["positions"]
    assert sorted(p["symbol"] for p in every) == list(SYMBOLS)
    near = client.get("/api/positions?symbol=nearusdt").get_json()["positions"]   # any case
    assert [(p["symbol"], p["side"]) for p in near] == [("NEARUSDT", "SHORT")]

    orders = client.get("/api/agent/orders").get_json()["orders"]
    assert sorted(o["symbol"] for o in orders) == list(SYMBOLS)
    fil = client.get("/api/agent/orders?symbol=FILUSDT").get_json()["orders"]
    assert [o["symbol"] for o in fil] == ["FILUSDT"]

    levels = client.get("/api/agent/levels?symbol=NEARUSDT").get_json()
    assert levels["symbol"] == "NEARUSDT"
    assert client.get("/api/agent/levels").get_json()["symbol"] == "FILUSDT"   # default: the first


def test_the_symbol_pnl_counts_each_symbols_closed_trades_and_open_position(two):
    client, runner, clock = two
    empty = client.get("/api/pnl/symbols").get_json()
    assert [r["symbol"] for r in empty["symbols"]] == list(SYMBOLS)
    assert all(r["trades"] == 0 and r["win_rate"] is None and r["realized_net"] == 0 for r in empty["symbols"])

    for sym, side, qty in (("FILUSDT", "BUY", 100), ("NEARUSDT", "SELL", 300)):
        assert post(client, "/api/order", {"symbol": sym, "side": side, "quantity": qty}).status_code == 200
    clock.advance(3 * 3600)
    for sym in SYMBOLS:                          # the market moves on: both positions gain or lose
        runner.exchange.on_price(sym, runner.market.last_price(sym), clock.now_ms())
    assert post(client, "/api/close", {"symbol": "FILUSDT"}).get_json()["closed"] is True
    [closed] = runner.store.trades(status="closed")
    assert closed["symbol"] == "FILUSDT"
    [near_pos] = [p for p in client.get("/api/positions").get_json()["positions"] if p["symbol"] == "NEARUSDT"]

    pnl = client.get("/api/pnl/symbols").get_json()
    rows = {r["symbol"]: r for r in pnl["symbols"]}
    assert rows["FILUSDT"]["realized_net"] == pytest.approx(closed["net_pnl"])
    assert (rows["FILUSDT"]["trades"], rows["FILUSDT"]["unrealized"]) == (1, 0.0)
    assert rows["FILUSDT"]["win_rate"] == (1.0 if closed["net_pnl"] > 0 else 0.0)
    assert rows["NEARUSDT"]["unrealized"] == pytest.approx(near_pos["unrealized_pnl"])
    assert near_pos["unrealized_pnl"] != 0
    assert (rows["NEARUSDT"]["trades"], rows["NEARUSDT"]["realized_net"], rows["NEARUSDT"]["open_positions"]) == (0, 0.0, 1)
    total = pnl["total"]
    assert total["realized_net"] == pytest.approx(closed["net_pnl"])
    assert total["unrealized"] == pytest.approx(near_pos["unrealized_pnl"])
    assert total["trades"] == 1

    one = client.get("/api/pnl/symbols?symbol=NEARUSDT").get_json()
    assert [r["symbol"] for r in one["symbols"]] == ["NEARUSDT"] and one["total"] == total
