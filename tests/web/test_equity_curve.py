"""GET /api/equity is the account's equity (issue 17 item 6): its last point is what the
account panel shows (wallet + unrealized, funding paid and every fee in), to the cent, and a
store the agent never ran on draws nothing (no 0.00 point at 1970).

The real parts of tests/web/conftest.py: the AgentRunner, TradingAgent, PaperExchange and
KnowledgeStore in SQLite files over replayed candles on a ManualClock; the paper account
charges the funding itself when the clock crosses a funding time."""
from __future__ import annotations

import pytest

from rl.paper.rules import FUNDING_INTERVAL_MS
from tests.web.test_web_api import SYMBOL, post


def _curve(client) -> list[dict]:
    resp = client.get("/api/equity")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["equity"]


def _equity(client) -> float:
    return client.get("/api/account").get_json()["margin_balance"]


def _cross_funding_time(runner, clock) -> int:
    """Move the world past the next funding time and show the paper account the price there:
    it charges the open position's funding (longs pay a positive rate)."""
    now = clock.now_ms()
    after = (now // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS + 90_000
    clock.set(after)
    runner.exchange.on_price(SYMBOL, runner.market.last_price(SYMBOL), after)
    return after


def test_an_empty_store_has_no_curve_at_all(client):
    assert _curve(client) == []          # not [{"time_ms": 0, "equity": 0.0}]


def test_the_curves_last_point_is_the_account_with_funding_paid_and_fees(client, world):
    runner = world[1]
    clock = runner.clock
    runner.agent.startup()                # what the agent thread does first: the starting balance
    start = _curve(client)
    assert [p["equity"] for p in start] == [pytest.approx(runner.settings.paper_balance)] * len(start)
    assert post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 2000}).status_code == 200
    opened = client.get("/api/positions").get_json()["positions"]
    assert opened and opened[0]["amount"] == pytest.approx(2000)
    t_funding = _cross_funding_time(runner, clock)
    paid = runner.exchange.funding_since(SYMBOL, 0)
    assert paid and paid[0].amount < 0                        # the long paid funding
    # open: wallet (fee and funding out) + unrealized, exactly the account panel's figure
    acct = client.get("/api/account").get_json()
    curve = _curve(client)
    assert curve[-1]["time_ms"] == t_funding
    assert round(curve[-1]["equity"], 2) == round(acct["margin_balance"], 2)
    assert acct["wallet_balance"] < runner.settings.paper_balance     # the fee and the funding
    # every point in time order, one per time
    times = [p["time_ms"] for p in curve]
    assert times == sorted(set(times))

    assert post(client, "/api/close", {"symbol": SYMBOL}).status_code == 200
    closed = runner.store.trades(status="closed")
    assert len(closed) == 1 and closed[0]["funding"] == pytest.approx(sum(f.amount for f in paid))
    acct = client.get("/api/account").get_json()
    curve = _curve(client)
    assert round(curve[-1]["equity"], 2) == round(acct["margin_balance"], 2) == round(acct["wallet_balance"], 2)
    assert curve[-1]["equity"] == pytest.approx(runner.settings.paper_balance + closed[0]["net_pnl"], abs=0.005)


def test_equity_marks_carry_the_unrealized_part_between_trades(client, world):
    """The marks the agent observed at 15m closes (wallet + unrealized) are points of the curve."""
    runner = world[1]
    runner.agent.startup()
    t0 = runner.clock.now_ms()
    runner.store.equity_marks.record(t0 + 900_000, 9_990.0)
    runner.store.equity_marks.record(t0 + 1_800_000, 10_010.0)
    runner.clock.set(t0 + 2_000_000)
    curve = _curve(client)
    assert [(p["time_ms"], p["equity"]) for p in curve][-3:-1] == [(t0 + 900_000, 9_990.0),
                                                                   (t0 + 1_800_000, 10_010.0)]
    assert curve[-1]["time_ms"] == t0 + 2_000_000
    assert curve[-1]["equity"] == pytest.approx(_equity(client))


def test_the_curve_starts_at_the_first_start_not_the_first_trade(client, world):
    """Marks observed before the first trade are part of the curve, from the starting balance."""
    runner = world[1]
    runner.agent.startup()
    began = runner.store.get_state("initial_balance_ms")
    runner.store.equity_marks.record(began + 900_000, 10_000.0)
    runner.clock.set(began + 3_600_000)
    assert post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 100}).status_code == 200
    runner.clock.set(began + 4_000_000)
    assert post(client, "/api/close", {"symbol": SYMBOL}).status_code == 200
    curve = _curve(client)
    assert curve[0] == {"time_ms": began, "equity": pytest.approx(runner.settings.paper_balance)}
    assert (began + 900_000) in [p["time_ms"] for p in curve]
    assert curve[-1]["equity"] == pytest.approx(_equity(client))
