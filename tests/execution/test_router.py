"""OrderRouter against PaperExchange and against BinanceExchange (HTTP mocked with `responses`,
payloads shaped as in Binance's docs): same position, same orders; no duplicate orders on
unknown outcomes; never unprotected for more than one cycle."""
from __future__ import annotations

import pytest
import responses

from client import BinanceClient, OrderRejected, UnknownOrderStatus, parse_symbol_filters
from rl.execution.actions import CloseAll, MoveStop, PartialClose
from rl.execution.binance import BinanceExchange
from rl.execution.router import OrderRouter
from rl.paper.exchange import PaperExchange
from tests.support.fake_binance import BASE, EXCHANGE_INFO, SYM, FakeBinance

FILTERS = parse_symbol_filters(EXCHANGE_INFO)


class Recorder:
    def __init__(self):
        self.rows = []

    def record(self, order, purpose, trade_id=None):
        self.rows.append((purpose, order))

    def summary(self):
        out = []
        for purpose, o in self.rows:
            if hasattr(o, "executed_qty"):
                out.append((purpose, o.side, o.type, o.status, o.executed_qty, o.avg_price))
            else:
                out.append((purpose, o.side, o.type, o.status, o.quantity, o.trigger_price))
        return out


def paper():
    ex = PaperExchange(None, filters=FILTERS)
    ex.on_price(SYM, 50_000.0, 1_000)
    return ex


def binance(rs):
    fake = FakeBinance(rs)
    client = BinanceClient(trade_url=BASE, api_key="k", api_secret="s", sleep=lambda s: None)
    return BinanceExchange(client, name="testnet"), fake


def scenario(ex, set_price):
    rec = Recorder()
    router = OrderRouter(ex, rec, ioc_offset_bps=5.0)
    out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0, target=53_000.0, trade_id=7)
    state = out.state
    assert state is not None and out.order.status == "FILLED"
    set_price(51_000.0)
    state, closes = router.apply(state, [PartialClose(0.05, "1R"), MoveStop(50_050.0, "break-even")])
    set_price(52_000.0)
    state, closes2 = router.apply(state, [CloseAll("target")])
    return state, rec, closes + closes2


def test_same_scenario_paper_and_binance_give_same_positions_and_orders():
    px = paper()
    st_p, rec_p, closes_p = scenario(px, lambda p: px.on_price(SYM, p, 5_000))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        st_b, rec_b, closes_b = scenario(bx, lambda p: setattr(fake, "price", p))
        assert fake.algos == {}                       # every stop cancelled at the close
    assert st_p is None and st_b is None
    assert rec_p.summary() == rec_b.summary()
    purposes = [r[0] for r in rec_p.summary()]
    assert purposes == ["entry", "stop", "partial_exit", "stop", "stop", "exit"]
    assert [(c.qty, c.exit_price, c.realized_pnl) for c in closes_p] == \
           [(c.qty, c.exit_price, c.realized_pnl) for c in closes_b]
    assert [c.fees for c in closes_p] == pytest.approx([c.fees for c in closes_b])
    assert px.open_stops(SYM) == [] and px.position(SYM) is None


def test_entry_limit_is_offset_and_partial_ioc_is_the_position():
    ex = PaperExchange(None, filters=FILTERS, max_fill_qty=0.03)
    ex.on_price(SYM, 50_000.0, 1_000)
    router = OrderRouter(ex, ioc_offset_bps=5.0)
    assert router.entry_limit(SYM, "LONG", 50_000.0) == 50_025.0
    assert router.entry_limit(SYM, "SHORT", 50_000.0) == 49_975.0
    out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0)
    assert out.order.status == "EXPIRED" and out.state.qty == pytest.approx(0.03)
    assert [s.quantity for s in ex.open_stops(SYM)] == [pytest.approx(0.03)]
    ex.on_price(SYM, 51_000.0, 2_000)
    miss = router.open_position(SYM, "SHORT", 0.1, 60_000.0, stop=61_000.0)   # limit above market
    assert miss.state is None and miss.order.executed_qty == 0


def test_unknown_outcome_is_looked_up_never_resent():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        fake.timeout_next_order = True                # the order DID execute; the answer was lost
        router = OrderRouter(bx)
        out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0)
        assert fake.order_posts == 1                  # looked up by clientOrderId, not re-sent
        assert out.state is not None and out.state.qty == pytest.approx(0.1)
        assert len(fake.algos) == 1


class FlakyPaper(PaperExchange):
    """Paper account whose order/stop answers can be made to fail like a network would."""

    unknown_orders = 0
    stop_failures = 0

    def place_order(self, *a, **k):
        r = super().place_order(*a, **k)
        if self.unknown_orders:
            self.unknown_orders -= 1
            raise UnknownOrderStatus("lost answer", -1007, 503, client_order_id=r.client_order_id)
        return r

    def place_stop(self, *a, **k):
        if self.stop_failures:
            self.stop_failures -= 1
            raise OrderRejected("Internal error", -1001, 400)
        return super().place_stop(*a, **k)


def flaky():
    ex = FlakyPaper(None, filters=FILTERS)
    ex.on_price(SYM, 50_000.0, 1_000)
    return ex


def test_unknown_entry_resolved_next_cycle_without_duplicate():
    ex = flaky()
    ex.unknown_orders = 1
    router = OrderRouter(ex)
    out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0)
    assert out.pending and out.state is None
    again = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0)   # agent retries
    assert again.state is not None                                           # found, not re-sent
    assert ex.position(SYM).amount == pytest.approx(0.1)
    assert len(ex.fills_since(SYM, 0)) == 1
    assert len(ex.open_stops(SYM)) == 1


def test_stop_failure_retried_next_cycle():
    ex = flaky()
    ex.stop_failures = 1
    router = OrderRouter(ex)
    out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0)
    assert out.state.unprotected_cycles == 1 and ex.open_stops(SYM) == []
    sync = router.sync(SYM, out.state)
    assert sync.state is not None and sync.state.unprotected_cycles == 0
    assert [s.trigger_price for s in ex.open_stops(SYM)] == [49_000.0]


def test_position_closed_when_it_cannot_be_protected():
    ex = flaky()
    ex.stop_failures = 5
    router = OrderRouter(ex)
    out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0)
    sync = router.sync(SYM, out.state)
    assert sync.state is None and sync.closed.closed
    assert ex.position(SYM) is None


def test_stop_hit_on_exchange_is_reported_by_sync_with_real_fill():
    ex = paper()
    router = OrderRouter(ex)
    state = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0).state
    ex.on_bar(SYM, 50_000, 50_100, 48_000, 48_500, 60_000)
    sync = router.sync(SYM, state)
    assert sync.state is None
    assert sync.closed.exit_price == 49_000.0 and sync.closed.realized_pnl == pytest.approx(-100.0)


def test_stop_already_crossed_at_fill_closes_at_once():
    ex = paper()
    router = OrderRouter(ex)
    out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=50_010.0)
    assert out.state is None and ex.position(SYM) is None


def test_sync_adopts_unknown_position_and_protects_it():
    ex = paper()
    ex.place_order(SYM, "SELL", "MARKET", 0.1)
    router = OrderRouter(ex, adopt_stop_pct=0.02)
    sync = router.sync(SYM, None)
    assert sync.state.side == "SHORT" and sync.state.qty == pytest.approx(0.1)
    assert [s.trigger_price for s in ex.open_stops(SYM)] == [51_000.0]


def test_rejected_entry_leaves_no_position_no_stop_and_nothing_pending():
    # paper: an order far beyond the available margin is refused with Binance's -2019
    ex = paper()
    router = OrderRouter(ex)
    out = router.open_position(SYM, "LONG", 500.0, 50_000.0, stop=49_000.0)
    assert out.state is None and not out.pending
    assert "Margin is insufficient" in out.reason
    assert ex.position(SYM) is None and ex.open_stops(SYM) == [] and ex.open_orders(SYM) == []
    # Binance: the same refusal as the API sends it (HTTP 400 with code/msg)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        rs.add(responses.GET, f"{BASE}/fapi/v1/exchangeInfo", json=EXCHANGE_INFO)
        rs.add(responses.GET, f"{BASE}/fapi/v1/openAlgoOrders", json=[])    # no stale stop
        rs.add(responses.POST, f"{BASE}/fapi/v1/order", status=400,
               json={"code": -2019, "msg": "Margin is insufficient."})
        client = BinanceClient(trade_url=BASE, api_key="k", api_secret="s", sleep=lambda s: None)
        router_b = OrderRouter(BinanceExchange(client, name="testnet"))
        out_b = router_b.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0)
        assert out_b.state is None and not out_b.pending and "Margin is insufficient" in out_b.reason
        posts = [c for c in rs.calls if c.request.method == "POST"]
        assert len(posts) == 1                          # refused once, never re-sent
        assert not any("algoOrder" in c.request.url for c in rs.calls)   # no stop for nothing


# ------------------------------------------------------------------ maker (post-only) entries
class PaperVenue:
    """A paper account on which the market trades through a resting order one bar at a time
    (each bar fills `fill_qty` of it: max_fill_qty)."""

    def __init__(self, fill_qty: float | None):
        self.ex = PaperExchange(None, filters=FILTERS, max_fill_qty=fill_qty)
        self.ex.on_price(SYM, 50_000.0, 1_000)
        self.t = 60_000

    def trade_through(self, cid: str, qty: float) -> None:
        self.ex.on_bar(SYM, 50_000.0, 50_000.0, 49_990.0, 49_995.0, self.t)
        self.t += 60_000

    def open_orders(self):
        return self.ex.open_orders(SYM)

    def stops(self):
        return [(s.quantity, s.trigger_price) for s in self.ex.open_stops(SYM)]

    def position(self) -> float:
        p = self.ex.position(SYM)
        return p.amount if p is not None else 0.0


class BinanceVenue:
    """BinanceExchange over FakeBinance (documented payloads); fills come from `maker_fill`."""

    def __init__(self, rs):
        self.ex, self.fake = binance(rs)

    def trade_through(self, cid: str, qty: float) -> None:
        self.fake.maker_fill(cid, qty)

    def open_orders(self):
        return [o for o in self.fake.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")]

    def stops(self):
        return [(float(a["quantity"]), float(a["triggerPrice"])) for a in self.fake.algos.values()]

    def position(self) -> float:
        return self.fake.amount


@pytest.fixture(params=["paper", "binance"])
def venue_of(request):
    """venue_of(fill_qty): the same maker scenario on the paper account and on Binance."""
    if request.param == "paper":
        yield PaperVenue
        return
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        yield lambda fill_qty: BinanceVenue(rs)


def _maker_entry(router: OrderRouter, expires_ms: int = 900_000, price: float = 50_000.0):
    return router.open_position(SYM, "LONG", 0.1, price, stop=49_000.0, target=53_000.0, trade_id=3,
                                entry_type="maker", expires_ms=expires_ms, client_order_id="agm-1")


def test_maker_entry_rests_then_fills_and_is_protected_at_once(venue_of):
    v = venue_of(None)
    rec = Recorder()
    router = OrderRouter(v.ex, rec)
    out = _maker_entry(router)
    assert out.resting and out.state is None and not out.pending
    assert (out.order.status, out.order.time_in_force, out.order.price) == ("NEW", "GTX", 50_000.0)
    assert v.position() == 0 and v.stops() == [] and len(v.open_orders()) == 1
    still = router.poll_entry(SYM, 120_000)                      # nothing traded through yet
    assert still.resting and still.state is None
    v.trade_through("agm-1", 0.1)
    done = router.poll_entry(SYM, 180_000)
    assert not done.resting and done.order.status == "FILLED"
    st = done.state
    assert (st.qty, st.entry_price, st.stop, st.trade_id) == (pytest.approx(0.1), 50_000.0, 49_000.0, 3)
    assert st.fees == pytest.approx(0.1 * 50_000 * 0.0002)       # the maker fee
    assert v.stops() == [(pytest.approx(0.1), 49_000.0)]
    assert router.resting_entry(SYM) is None and router.poll_entry(SYM, 240_000) is None
    assert [p for p, *_ in rec.summary()] == ["entry", "entry", "stop"]


def test_maker_entry_times_out_unfilled_no_position(venue_of):
    v = venue_of(None)
    router = OrderRouter(v.ex)
    _maker_entry(router, expires_ms=900_000)
    assert router.poll_entry(SYM, 899_999).resting
    out = router.poll_entry(SYM, 900_000)
    assert not out.resting and out.state is None and out.order.status == "CANCELED"
    assert "timed out" in out.reason and "no position" in out.reason
    assert v.open_orders() == [] and v.position() == 0 and v.stops() == []
    if isinstance(v, PaperVenue):
        assert v.ex.account().initial_margin == 0.0              # the reservation is released


def test_partial_fill_is_protected_then_timeout_keeps_it(venue_of):
    v = venue_of(0.04)
    rec = Recorder()
    router = OrderRouter(v.ex, rec)
    _maker_entry(router)
    v.trade_through("agm-1", 0.04)
    out = router.poll_entry(SYM, 120_000)
    assert out.resting and out.state.qty == pytest.approx(0.04)
    assert v.stops() == [(pytest.approx(0.04), 49_000.0)]       # the filled part is protected at once
    v.trade_through("agm-1", 0.04)
    out = router.poll_entry(SYM, 180_000)
    assert out.resting and out.state.qty == pytest.approx(0.08)
    assert v.stops() == [(pytest.approx(0.08), 49_000.0)]       # resized: one stop, the new size
    end = router.poll_entry(SYM, 900_000)                        # timeout: the rest is cancelled
    assert not end.resting and end.order.status == "CANCELED"
    assert end.state.qty == pytest.approx(0.08) and end.state.entry_price == 50_000.0
    assert "partial: 0.08 of 0.1" in end.reason and "timed out" in end.reason
    assert v.open_orders() == [] and v.position() == pytest.approx(0.08)
    assert v.stops() == [(pytest.approx(0.08), 49_000.0)]
    assert end.state.fees == pytest.approx(0.08 * 50_000 * 0.0002)
    assert [r[0] for r in rec.summary()] == ["entry", "entry", "stop", "entry", "stop", "entry"]


def test_setup_gone_cancels_the_rest(venue_of):
    v = venue_of(0.04)
    router = OrderRouter(v.ex)
    _maker_entry(router)
    v.trade_through("agm-1", 0.04)
    out = router.poll_entry(SYM, 120_000, still_valid=False)
    assert not out.resting and out.order.status == "CANCELED" and "setup gone" in out.reason
    assert out.state.qty == pytest.approx(0.04) and v.stops() == [(pytest.approx(0.04), 49_000.0)]
    assert v.open_orders() == []


def test_post_only_that_would_take_gives_no_position(venue_of):
    v = venue_of(None)
    router = OrderRouter(v.ex)
    out = _maker_entry(router, price=50_100.0)                   # the market is at 50_000 now
    assert out.state is None and not out.resting and not out.pending
    assert out.reason.startswith("post-only would take: price moved") and "-5022" in out.reason
    assert not router.has_pending(SYM) and router.resting_entry(SYM) is None
    assert v.open_orders() == [] and v.stops() == [] and v.position() == 0


def test_maker_fills_seen_by_paper_and_binance_alike():
    def run(v):
        rec = Recorder()
        router = OrderRouter(v.ex, rec)
        _maker_entry(router)
        v.trade_through("agm-1", 0.04)
        router.poll_entry(SYM, 120_000)
        end = router.poll_entry(SYM, 900_000)
        return rec.summary(), end.state.qty, end.state.fees

    paper_run = run(PaperVenue(0.04))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        binance_run = run(BinanceVenue(rs))
    assert paper_run[0] == binance_run[0]
    assert paper_run[1:] == pytest.approx(binance_run[1:])


def test_maker_entry_of_unknown_outcome_is_found_resting_and_not_adopted():
    ex = FlakyPaper(None, filters=FILTERS, max_fill_qty=0.04)
    ex.on_price(SYM, 50_000.0, 1_000)
    ex.unknown_orders = 1
    router = OrderRouter(ex)
    out = _maker_entry(router)
    assert out.pending and not out.resting
    ex.on_bar(SYM, 50_000.0, 50_000.0, 49_990.0, 49_995.0, 60_000)   # a part fills meanwhile
    sync = router.sync(SYM, None)                                # looks it up: it rests
    assert sync.state is None and router.resting_entry(SYM) is not None
    assert not router.has_pending(SYM)
    assert [s.quantity for s in ex.open_stops(SYM)] == [pytest.approx(0.04)]   # protected, once
    assert router.sync(SYM, None).state is None                  # its filled part is not adopted
    assert len(ex.open_stops(SYM)) == 1
    end = router.poll_entry(SYM, 900_000)
    assert end.state.qty == pytest.approx(0.04) and ex.open_orders(SYM) == []
    assert router.sync(SYM, end.state).state is end.state        # now it is a normal position


def test_filled_part_with_stop_already_crossed_is_closed_and_the_rest_cancelled():
    ex = PaperExchange(None, filters=FILTERS, max_fill_qty=0.04)
    ex.on_price(SYM, 50_000.0, 1_000)
    router = OrderRouter(ex)
    router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0, entry_type="maker", expires_ms=900_000)
    ex.on_bar(SYM, 50_000.0, 50_000.0, 48_800.0, 48_900.0, 60_000)   # through the entry and the stop
    out = router.poll_entry(SYM, 120_000, still_valid=False)
    assert not out.resting and out.state is None and out.order.executed_qty == pytest.approx(0.04)
    assert "closed at once" in out.reason
    assert ex.position(SYM) is None and ex.open_orders(SYM) == [] and ex.open_stops(SYM) == []


# ------------------------------------------------------------------ faults (issue 13: 1, 2, 3, 9)
class Clock:
    """The router's injected clock (ms), moved by hand."""

    def __init__(self, t: int = 0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def _calls(rs, method, path):
    return [c for c in rs.calls if c.request.method == method and c.request.url.split("?")[0].endswith(path)]


def test_sync_places_the_missing_stop_before_a_cancel_that_fails():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        router = OrderRouter(bx)
        state = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0).state
        fake.algos.clear()                                        # our stop is gone ...
        bx.place_stop(SYM, "BUY", "STOP_MARKET", 60_000.0, 0.1, "wrong-side-1")   # ... a stray one is live
        fake.fail_cancel_algo = 2                                 # and the cancels answer 503
        sync = router.sync(SYM, state)                            # the old sync raised here
        assert sync.state is state and state.unprotected_cycles == 0
        live = {c: (a["side"], float(a["triggerPrice"])) for c, a in fake.algos.items()}
        assert live[state.stop_client_algo_id] == ("SELL", 49_000.0)
        assert "wrong-side-1" in live and "wrong-side-1" in router.stops.stale(SYM)
        router.sync(SYM, state)                                   # the failed cancel is retried
        assert list(fake.algos) == [state.stop_client_algo_id] and not router.stops.stale(SYM)


def test_sync_places_a_stop_when_the_stops_cannot_be_listed():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        router = OrderRouter(bx)
        state = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0).state
        fake.algos.clear()
        fake.fail_open_algos = 4                                  # the GET and its 3 retries: 503
        sync = router.sync(SYM, state)
        assert sync.state is state and state.unprotected_cycles == 0
        assert [(a["side"], float(a["triggerPrice"]), a["reduceOnly"]) for a in fake.algos.values()] == \
               [("SELL", 49_000.0, True)]
        assert any("placing a reduce-only stop anyway" in n for n in sync.notes)


def test_the_safety_close_fires_although_every_cancel_fails():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        router = OrderRouter(bx)
        state = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0).state
        fake.algos.clear()
        bx.place_stop(SYM, "BUY", "STOP_MARKET", 60_000.0, 0.1, "wrong-side-1")
        fake.fail_cancel_algo = fake.fail_algo = 1_000           # no stop can be placed nor cancelled
        first = router.sync(SYM, state)
        assert first.state is state and state.unprotected_cycles == 1
        second = router.sync(SYM, state)
        assert second.state is None and second.closed.closed and "closed for safety" in second.closed.reason
        assert fake.amount == 0


def test_an_entry_answered_503_that_fills_later_gets_its_planned_stop():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        clock = Clock(0)
        router = OrderRouter(bx, now_ms=clock)
        fake.late_next_order = True                               # 503; the client's lookup 1 s later: -2013
        out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_500.0, target=52_000.0, trade_id=9)
        assert out.pending and out.state is None and router.has_pending(SYM)
        clock.t = 1_000
        assert router.sync(SYM, None).state is None and router.has_pending(SYM)
        clock.t = 1_500
        again = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_500.0)
        assert again.pending and "still unknown" in again.reason and fake.order_posts == 1
        fake.execute_late()                                       # the order reaches the book now
        clock.t = 3_000                                           # the next lookup is due (1 s + 2 s)
        sync = router.sync(SYM, None)
        st = sync.state
        assert st is not None and sync.entry is not None and not router.has_pending(SYM)
        assert (st.stop, st.initial_stop, st.target, st.trade_id) == (49_500.0, 49_500.0, 52_000.0, 9)
        assert st.qty == pytest.approx(0.1) and st.fees == pytest.approx(2.5)
        assert [float(a["triggerPrice"]) for a in fake.algos.values()] == [49_500.0]
        assert fake.order_posts == 1


def test_an_unknown_entry_is_declared_never_placed_only_after_lookups_over_30_s():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        clock = Clock(0)
        router = OrderRouter(bx, now_ms=clock)
        fake.late_next_order = True                               # ... and it never executes
        assert router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_500.0).pending
        lookups_by_client = len(_calls(rs, "GET", "/fapi/v1/order"))
        ended = None
        for t in range(0, 40_001, 500):                          # the agent's cycles, every 0.5 s
            clock.t = t
            sync = router.sync(SYM, None)
            if sync.entry is not None:
                ended = (t, sync.entry)
                break
            assert router.has_pending(SYM)
        assert ended is not None and ended[0] == 30_000
        assert "never placed" in ended[1].reason and not ended[1].pending
        assert len(_calls(rs, "GET", "/fapi/v1/order")) - lookups_by_client == 5   # at 0, 2, 6, 14, 30 s
        assert len(_calls(rs, "GET", "/fapi/v3/positionRisk")) >= 5
        assert fake.order_posts == 1 and fake.algos == {}


def test_an_order_lookup_that_lags_is_matched_by_position_and_fills():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        router = OrderRouter(bx, now_ms=Clock(0))
        fake.timeout_next_order = True                            # executed, answered -1007 ...
        fake.hide_orders = True                                   # ... and GET order says -2013
        out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_500.0, trade_id=4)
        assert out.pending
        sync = router.sync(SYM, None)
        st = sync.state
        assert st is not None and "found by its fill" in sync.entry.reason
        assert (st.stop, st.qty, st.entry_price, st.trade_id) == (49_500.0, pytest.approx(0.1), 50_000.0, 4)
        assert st.fees == pytest.approx(2.5)
        assert [float(a["triggerPrice"]) for a in fake.algos.values()] == [49_500.0]


@pytest.mark.parametrize("query_has_avg", [True, False])
def test_an_entry_fill_without_avg_price_is_priced_and_protected(query_has_avg):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        fake.omit_avg_next_order = True                           # neither avgPrice nor cumQuote
        fake.omit_avg_in_query = not query_has_avg                # then only userTrades tell
        router = OrderRouter(bx)
        out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0)
        assert out.state is not None and out.state.entry_price == 50_000.0
        assert out.state.fees == pytest.approx(2.5)
        assert [float(a["triggerPrice"]) for a in fake.algos.values()] == [49_000.0]


def test_the_stop_is_placed_before_the_fees_are_looked_up():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        out = OrderRouter(bx).open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0)
        assert out.state.fees == pytest.approx(2.5)
        urls = [(c.request.method, c.request.url.split("?")[0].rsplit("/", 1)[1]) for c in rs.calls]
        assert urls.index(("POST", "algoOrder")) < urls.index(("GET", "userTrades"))


def test_a_cancel_answered_unknown_is_retried_until_the_stop_is_gone():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        router = OrderRouter(bx)
        state = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0).state
        old = state.stop_client_algo_id
        fake.cancel_algo_unknown = 1                              # -2011, yet the stop stays live
        assert router.move_stop(state, 49_500.0, "tighter")
        assert set(fake.algos) == {old, state.stop_client_algo_id} and router.stops.stale(SYM) == {old}
        router.sync(SYM, state)
        assert list(fake.algos) == [state.stop_client_algo_id] and not router.stops.stale(SYM)


def test_no_stale_stop_remains_before_a_new_entry():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        bx, fake = binance(rs)
        router = OrderRouter(bx)
        state = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0).state
        fake.cancel_algo_unknown = 1_000                          # every cancel: -2011, the stop stays
        gone, _ = router.apply(state, [CloseAll("signal")])
        assert gone is None and fake.amount == 0 and len(fake.algos) == 1   # a stale SELL stop is live
        refused = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0)
        assert refused.state is None and not refused.pending and "stale stop" in refused.reason
        assert fake.order_posts == 2                              # the entry and the close: nothing sent
        fake.cancel_algo_unknown = 0
        out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_200.0)
        assert out.state is not None and fake.order_posts == 3
        assert [float(a["triggerPrice"]) for a in fake.algos.values()] == [49_200.0]


def test_a_resumed_maker_entry_not_visible_yet_is_followed_until_the_window_ends():
    ex = paper()
    router = OrderRouter(ex)
    router.resume_entry(SYM, "LONG", "agm-9", 49_000.0, None, expires_ms=None, placed_ms=10_000)
    assert router.poll_entry(SYM, 20_000).resting                  # Binance may show it late
    end = router.poll_entry(SYM, 40_000)                           # 30 s on: it is not there
    assert not end.resting and end.state is None and "not on the exchange" in end.reason


# ------------------------------------------------------------------ resting maker take-profits
def _ioc_long(router: OrderRouter):
    out = router.open_position(SYM, "LONG", 0.1, 50_000.0, stop=49_000.0, target=53_000.0, trade_id=4)
    assert out.state is not None and out.state.qty == pytest.approx(0.1)
    return out.state


def _through(v, cid: str, qty: float, price: float) -> None:
    """The market trades strictly through the resting take-profit `cid` at `price`."""
    if isinstance(v, PaperVenue):
        v.ex.on_bar(SYM, price - 50.0, price + 100.0, price - 50.0, price + 50.0, v.t)
        v.t += 60_000
    else:
        v.fake.price = price + 50.0
        v.fake.maker_fill(cid, qty)


def _set_price(v, price: float) -> None:
    if isinstance(v, PaperVenue):
        v.ex.on_price(SYM, price, v.t)
    else:
        v.fake.price = price


def _tp(state, kind):
    return next(t for t in state.take_profits if t["kind"] == kind)


def test_resting_take_profits_fill_as_maker_and_the_stop_follows(venue_of):
    v = venue_of(None)
    rec = Recorder()
    router = OrderRouter(v.ex, rec)
    st = _ioc_long(router)
    notes = router.targets.place(st, 1.0, 0.5)
    assert len(notes) == 2 and all(en and zh for en, zh in notes)
    rest = sorted((o.price, o.orig_qty, o.reduce_only, o.time_in_force, o.side) for o in v.ex.open_orders(SYM))
    assert rest == [(51_000.0, pytest.approx(0.05), True, "GTX", "SELL"),
                    (53_000.0, pytest.approx(0.05), True, "GTX", "SELL")]
    assert all(t["client_order_id"].startswith("agt") for t in st.take_profits)
    assert router.targets.resting(st, "partial") and router.targets.resting(st, "target")
    assert router.targets.place(st, 1.0, 0.5) == []                   # nothing twice
    entry_fees = st.fees
    _through(v, _tp(st, "partial")["client_order_id"], 0.05, 51_000.0)
    out = router.sync(SYM, st)
    st = out.state
    assert st is not None and st.qty == pytest.approx(0.05)
    assert st.partial_exits[0]["price"] == 51_000.0 and st.realized_pnl == pytest.approx(50.0)
    assert st.fees - entry_fees == pytest.approx(0.05 * 51_000 * 0.0002)     # the maker fee
    assert not router.targets.resting(st, "partial") and router.targets.resting(st, "target")
    assert v.stops() == [(pytest.approx(0.05), 49_000.0)]                   # the stop follows
    _through(v, _tp(st, "target")["client_order_id"], 0.05, 53_000.0)
    out = router.sync(SYM, st)
    assert out.state is None and out.closed is not None and "target 53000 reached" in out.closed.reason
    assert out.closed.exit_price == 53_000.0
    assert v.position() == 0 and v.stops() == [] and v.open_orders() == []
    purposes = [p for p, *_ in rec.summary()]
    assert purposes.count("partial_exit") == 2 and purposes.count("take_profit") == 2


def test_paper_take_profit_touched_but_not_traded_through_does_not_fill():
    v = PaperVenue(None)
    router = OrderRouter(v.ex)
    st = _ioc_long(router)
    router.targets.place(st, 1.0, 0.5)
    v.ex.on_bar(SYM, 50_900.0, 51_000.0, 50_900.0, 50_990.0, v.t)      # high = the level: a touch
    assert v.position() == pytest.approx(0.1) and len(v.open_orders()) == 2
    v.ex.on_bar(SYM, 50_990.0, 51_000.5, 50_990.0, 50_995.0, 2 * v.t)   # strictly through
    assert v.position() == pytest.approx(0.05)
    fill = v.ex.fills_since(SYM, 0)[-1]
    assert (fill.price, fill.maker) == (51_000.0, True)


def test_take_profit_already_through_is_refused_and_the_market_exit_stands_in(venue_of):
    v = venue_of(None)
    router = OrderRouter(v.ex)
    st = _ioc_long(router)
    _set_price(v, 51_500.0)                          # beyond 1R already: a sell at 51000 would take
    notes = router.targets.place(st, 1.0, 0.5)
    assert any("-5022" in en and "market exit instead" in en for en, _ in notes)
    assert _tp(st, "partial")["status"] == "declined" and not router.targets.resting(st, "partial")
    assert router.targets.resting(st, "target")
    assert router.targets.place(st, 1.0, 0.5) == []                 # a refused level is not retried
    st, closes = router.apply(st, [PartialClose(0.05, "partial take-profit: 50% at 1R")])
    assert closes[0].qty == pytest.approx(0.05) and st.qty == pytest.approx(0.05)
    assert [(o.price, o.orig_qty) for o in v.ex.open_orders(SYM)] == [(53_000.0, pytest.approx(0.05))]


def test_a_market_partial_resizes_the_resting_target(venue_of):
    v = venue_of(None)
    router = OrderRouter(v.ex)
    st = _ioc_long(router)
    router.targets.place(st, 1.0, 0.0)              # no partial level: the target for all of it
    assert [(o.price, o.orig_qty) for o in v.ex.open_orders(SYM)] == [(53_000.0, pytest.approx(0.1))]
    st, _ = router.apply(st, [PartialClose(0.04, "manual partial")])
    assert [(o.price, o.orig_qty) for o in v.ex.open_orders(SYM)] == [(53_000.0, pytest.approx(0.06))]
    assert router.targets.resting(st, "target")


def test_a_market_close_cancels_the_resting_take_profits(venue_of):
    v = venue_of(None)
    router = OrderRouter(v.ex)
    st = _ioc_long(router)
    router.targets.place(st, 1.0, 0.5)
    st, closes = router.apply(st, [CloseAll("strong opposite signal")])
    assert st is None and closes[0].closed
    assert v.open_orders() == [] and v.stops() == [] and v.position() == 0


def test_a_stop_out_cancels_the_resting_take_profits():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        v = BinanceVenue(rs)
        router = OrderRouter(v.ex)
        st = _ioc_long(router)
        router.targets.place(st, 1.0, 0.5)
        # the stop fires on the exchange: its market order closes the position
        v.fake.algos.clear()
        v.fake.price = 49_000.0
        v.fake.execute({"side": "SELL", "quantity": "0.1", "type": "MARKET", "reduceOnly": "true",
                        "newClientOrderId": "autoclose-stop"})
        out = router.sync(SYM, st)
        assert out.state is None and out.closed is not None
        assert v.open_orders() == []                  # both take-profits cancelled


def test_a_restart_adopts_its_take_profits_and_cancels_the_unknown_one(venue_of):
    from rl.execution.position import PositionState
    v = venue_of(None)
    router = OrderRouter(v.ex)
    st = _ioc_long(router)
    router.targets.place(st, 1.0, 0.5)
    known = sorted(t["client_order_id"] for t in st.take_profits)
    saved = st.to_dict()                               # as the store keeps it with the trade
    # sent just before a kill, never saved: an extra take-profit of ours on the book
    v.ex.place_order(SYM, "SELL", "LIMIT", 0.05, 52_000.0, "GTX", reduce_only=True,
                     client_order_id="agt-stray")
    again = OrderRouter(v.ex)                         # the restarted agent's router
    st2 = PositionState.from_dict(saved)
    notes = again.targets.place(st2, 1.0, 0.5)
    assert [en for en, _ in notes] == ["stray take-profit agt-stray cancelled"]
    assert sorted(o.client_order_id for o in v.ex.open_orders(SYM)) == known
    assert again.targets.resting(st2, "partial") and again.targets.resting(st2, "target")
