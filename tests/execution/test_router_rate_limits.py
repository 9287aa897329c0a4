"""The router and the fee bookkeeping while Binance rate limits the weighted reads (429), against
the loopback fake Binance server (tests/support/fake_binance_server.py): a position gets its
stop from memory without a read, and a fee that could not be read when its order filled is
booked later, never as a silent 0 (#13 item 8)."""
from __future__ import annotations

import pytest

from client import BinanceClient
from rl.agent.late_fees import PARKED, LateFees
from rl.clock import ManualClock
from rl.execution.binance import BinanceExchange
from rl.execution.router import OrderRouter
from rl.knowledge.store import KnowledgeStore
from tests.support.binance_world import START_BAR, market_frame, new_server
from tests.support.fake_binance_server import API_KEY, API_SECRET, Fault
from tests.support.scripted_world import MIN, SYMBOL, T0

A = "POST /fapi/v1/algoOrder"
READS = ("GET /fapi/v3/positionRisk", "GET /fapi/v1/openAlgoOrders", "GET /fapi/v1/userTrades")


@pytest.fixture
def world():
    with new_server(market_frame()) as server:
        clock = ManualClock(T0 + START_BAR * MIN)
        client = BinanceClient(market_url=server.url, trade_url=server.url, api_key=API_KEY,
                               api_secret=API_SECRET, timeout=5.0, sleep=lambda s: None,
                               now=lambda: (clock.now_ms() + 0.5) / 1000.0)
        ex = BinanceExchange(client)
        yield server, clock, ex, OrderRouter(ex, now_ms=clock.now_ms)
        client.session.close()


def enter_with_stop_refused(server, router):
    """An IOC entry whose stop is answered 429 (IP weight, Retry-After 90 s): the entry filled,
    its stop is not on the exchange, weighted reads are blocked from now on."""
    server.faults = [Fault(A, "429", retry_after=90)]
    out = router.open_position(SYMBOL, "LONG", 10.0, 100.0, stop=98.5, target=103.0)
    assert out.state is not None and out.state.unprotected_cycles == 1
    assert not server.protected(SYMBOL)
    return out


def test_a_sync_while_reads_are_rate_limited_places_the_stop_from_memory(world):
    server, clock, _, router = world
    state = enter_with_stop_refused(server, router).state
    clock.advance(60)                           # the next cycle: reads blocked for 30 s more
    sent = len(server.requests)
    res = router.sync(SYMBOL, state)
    assert res.state is state and state.unprotected_cycles == 0
    assert server.protected(SYMBOL)             # within one cycle, through the 429
    assert server.requests[sent:] == [A]        # no weighted read sent during the 429
    assert any("placed from memory" in n for n in res.notes)
    clock.advance(60)
    assert router.sync(SYMBOL, state).state is state     # nothing more to do once protected
    assert server.protected(SYMBOL)


def test_a_fee_not_readable_at_the_fill_is_not_booked_as_zero_but_later(world, tmp_path):
    server, clock, ex, router = world
    out = enter_with_stop_refused(server, router)
    st, order = out.state, out.order
    assert st.fees == 0.0 and st.unpriced_fees == {order.order_id: 0.0}     # not known yet
    store = KnowledgeStore(tmp_path / "k.db")
    try:
        st.trade_id = store.open_trade(symbol=SYMBOL, side="LONG", entry_client_order_id=order.client_order_id,
                                       opened_ms=st.opened_ms, entry_price=st.entry_price, quantity=st.qty,
                                       stop_price=98.5, target_price=103.0, leverage=10, features={},
                                       perception={}, action={}, entry_fee=st.fees)
        logs = []
        fees = LateFees(ex, store, lambda *a: logs.append(a))
        fees.settle(st, clock.now_ms())          # still blocked: nothing read, nothing booked
        assert st.unpriced_fees and store.trade_row(st.trade_id)["entry_fee"] == 0.0
        clock.advance(91)
        fees.settle(st, clock.now_ms())
        paid = sum(-float(f["commission"]) for f in server.ledger.trades)
        assert paid > 0 and st.unpriced_fees == {} and st.fees == pytest.approx(paid)
        assert store.trade_row(st.trade_id)["entry_fee"] == pytest.approx(paid)
        assert store.trade_row(st.trade_id)["position"]["unpriced_fees"] == {}   # saved with it
    finally:
        store.close()


def test_a_trade_closed_owing_a_fee_gets_it_booked_later(world, tmp_path):
    server, clock, ex, router = world
    out = enter_with_stop_refused(server, router)
    st = out.state
    router.sync(SYMBOL, st)                      # the stop, from memory
    close = router.close(st, None, "target")     # reduce-only: goes through the 429
    assert close.closed and close.fees == 0.0 and set(st.unpriced_fees) == {out.order.order_id, close.order.order_id}
    store = KnowledgeStore(tmp_path / "k.db")
    try:
        tid = store.open_trade(symbol=SYMBOL, side="LONG", entry_client_order_id=out.order.client_order_id,
                               opened_ms=st.opened_ms, entry_price=st.entry_price, quantity=close.qty,
                               stop_price=98.5, target_price=103.0, leverage=10, features={},
                               perception={}, action={}, entry_fee=0.0)
        st.trade_id = tid
        store.record_exit(tid, client_order_id=f"{SYMBOL}:{close.order.order_id}", time_ms=clock.now_ms(),
                          kind="target", price=close.exit_price, quantity=close.qty, pnl=close.realized_pnl, fee=0.0)
        fees = LateFees(ex, store, lambda *a: None)
        fees.settle(st, clock.now_ms())          # blocked: the debt stays
        fees.park(st, clock.now_ms())
        assert st.unpriced_fees == {} and len(store.get_state(PARKED)) == 2
        store.close_trade(tid, closed_ms=clock.now_ms(), exit_reason="target", reward={}, summary_zh="",
                          summary_en="")
        clock.advance(91)
        fees.settle_parked(SYMBOL, clock.now_ms())
        entry_fee, exit_fee = (-float(f["commission"]) for f in server.ledger.trades)
        t = store.trade_row(tid)
        assert store.get_state(PARKED) == []
        assert t["entry_fee"] == pytest.approx(entry_fee)
        assert store.exit_totals(tid)["fee"] == pytest.approx(exit_fee)
        assert t["fees"] == pytest.approx(entry_fee + exit_fee)
        assert t["net_pnl"] == pytest.approx(close.realized_pnl - entry_fee - exit_fee)
    finally:
        store.close()
