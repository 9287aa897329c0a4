"""Reconciler on real parts (PaperExchange, OrderRouter, KnowledgeStore in SQLite): the exchange's
truth comes back into the agent's memory and the store exactly once, however often it runs."""
from __future__ import annotations

import pandas as pd
import pytest

from client import UnknownOrderStatus
from rl.agent.journal import TradeJournal
from rl.agent.reconciler import Reconciler
from rl.analysis.levels.finder import DEFAULT_WEIGHTS, FEATURES
from rl.clock import ManualClock
from rl.execution.position import PositionState
from rl.execution.router import OrderRouter, sequential_ids
from rl.knowledge.store import KnowledgeStore
from rl.paper.exchange import PaperExchange
from rl.strategy.params import LearningParams

SYM = "BTCUSDT"
T0 = int(pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000)
MIN = 60_000
INTENT = {"side": "LONG", "time_ms": T0, "plan": {"stop": 98.0, "target": 104.0},
          "features": {f: 0.5 for f in FEATURES}, "perception": {"symbol": SYM, "price": 100.0},
          "phase": "exploration", "long_score": 60.0, "short_score": 0.0,
          "reason_zh": "测试", "reason_en": "test"}


class Slot:
    """The agent's memory of one symbol (rl.agent.reconciler.PositionSlot)."""

    def __init__(self) -> None:
        self.state: PositionState | None = None
        self.pending = False
        self.resting = False


class Parts:
    """One process: router, journal and reconciler over the given exchange and store."""

    def __init__(self, exchange: PaperExchange, store: KnowledgeStore, clock: ManualClock) -> None:
        self.logs: list[tuple] = []
        self.published: list[str] = []
        self.router = OrderRouter(exchange, store.orders, now_ms=clock.now_ms, id_factory=sequential_ids())
        self.journal = TradeJournal(store, leverage=10, learning=LearningParams(),
                                    log=lambda *line: self.logs.append(line), on_weights=lambda w: None)
        self.reconciler = Reconciler(exchange, self.router, store, self.journal, leverage=10,
                                     log=lambda *line: self.logs.append(line),
                                     publish=self.published.append, exchange_ok=lambda: None)


def _enter(parts: Parts, slot: Slot, record: bool = True, target: float = 104.0) -> PositionState:
    out = parts.router.open_position(SYM, "LONG", 2.0, 100.0, stop=98.0, target=target)
    assert out.state is not None
    if record:
        parts.journal.record_open(SYM, out.state, INTENT)
        slot.state = out.state
    return out.state


def test_a_stop_filled_on_the_exchange_is_recorded_once(paper_world):
    exchange, store, clock = paper_world
    parts, slot = Parts(exchange, store, clock), Slot()
    st = _enter(parts, slot)
    clock.set(T0 + 2 * MIN)
    exchange.on_bar(SYM, 99.0, 99.5, 97.0, 97.5, T0 + 2 * MIN - 1)      # the stop at 98 fills
    notes = parts.reconciler.sync(SYM, slot, clock.now_ms())
    assert slot.state is None and not slot.pending and SYM in parts.published
    assert any("closed on the exchange by its stop @ " in en for _, en in notes)
    assert not any("position gone" in en for _, en in notes)   # an ordinary exit, not an alarm
    trade = store.trade(st.trade_id)
    assert trade["status"] == "closed" and trade["exit_reason"] == "stop"
    assert [(e["kind"], e["quantity"]) for e in trade["exits"]] == [("stop", 2.0)]
    assert any(line[0] == "INFO" and "closed on the exchange" in line[3] for line in parts.logs)
    parts.reconciler.sync(SYM, slot, clock.now_ms())                      # again: nothing new
    assert len(store.trade(st.trade_id)["exits"]) == 1 and store.get_trade_count() == 1


def test_restore_rebuilds_a_trade_from_the_intent_of_an_entry_killed_before_its_record(paper_world):
    exchange, store, clock = paper_world
    store.set_state(f"intent:{SYM}", INTENT, T0)
    _enter(Parts(exchange, store, clock), Slot(), record=False)         # filled, then killed
    parts, slot = Parts(exchange, store, clock), Slot()                  # the restarted process
    notes = parts.reconciler.restore(SYM, slot, clock.now_ms())
    st = slot.state
    assert st is not None and st.trade_id is not None and st.qty == 2.0 and st.stop == 98.0
    assert any("entry filled just before the agent stopped" in en for _, en in notes)
    trade = store.trade(st.trade_id)
    assert trade["note"].startswith("recovered") and set(trade["features"]) == set(FEATURES)
    assert trade["thought_chain"]["perception"] == INTENT["perception"]
    assert store.get_state(f"intent:{SYM}") is None
    assert [s.trigger_price for s in exchange.open_stops(SYM)] == [98.0]  # the live stop, not a second one
    Parts(exchange, store, clock).reconciler.restore(SYM, Slot(), clock.now_ms())
    assert len(store.trades()) == 1                                      # a second restart adds nothing


def test_an_exit_recorded_from_the_fills_is_not_counted_again_by_record_exit(paper_world):
    exchange, store, clock = paper_world
    parts, slot = Parts(exchange, store, clock), Slot()
    st = _enter(parts, slot)
    clock.set(T0 + MIN)
    out = parts.router.close(st, 1.0, "take half")                      # filled, then killed
    assert out.qty == 1.0
    restarted, slot2 = Parts(exchange, store, clock), Slot()
    restarted.reconciler.restore(SYM, slot2, clock.now_ms())            # finds the fill on the exchange
    assert slot2.state is not None and slot2.state.qty == 1.0
    assert [e["quantity"] for e in store.trade(st.trade_id)["exits"]] == [1.0]
    parts.reconciler.record_exit(st, out, clock.now_ms())              # the old process, late
    trade = store.trade(st.trade_id)
    assert [e["quantity"] for e in trade["exits"]] == [1.0] and trade["remaining_qty"] == 1.0


def _place_maker_entry(parts: Parts, store: KnowledgeStore, expires_ms: int) -> str:
    """What the agent's _enter does for ENTRY_ORDER=maker: the intent with the order's id first."""
    cid = parts.router.entry_client_id()
    store.set_state(f"intent:{SYM}", {**INTENT, "entry": {"order": "maker", "client_order_id": cid,
                                                         "expires_ms": expires_ms, "placed_ms": T0}}, T0)
    out = parts.router.open_position(SYM, "LONG", 2.0, 100.0, stop=98.0, target=104.0, entry_type="maker",
                                     expires_ms=expires_ms, client_order_id=cid)
    assert out.resting
    return cid


def test_restart_resumes_a_resting_maker_entry_then_records_it_when_it_ends(tmp_path):
    clock = ManualClock(T0)
    exchange = PaperExchange(tmp_path / "paper.db", clock=clock.now_ms, funding_rate=0.0, max_fill_qty=1.0)
    exchange.on_price(SYM, 100.0, T0)
    store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    store.ensure_initial_weights(T0)
    cid = _place_maker_entry(Parts(exchange, store, clock), store, expires_ms=T0 + 15 * MIN)
    clock.set(T0 + 2 * MIN)
    exchange.on_bar(SYM, 100.0, 100.1, 99.8, 99.9, T0 + 2 * MIN - 1)    # 1 of 2 fills, unprotected: killed
    store.close()
    exchange.close()
    # the restarted process: both SQLite files reopened
    exchange = PaperExchange(tmp_path / "paper.db", clock=clock.now_ms, funding_rate=0.0, max_fill_qty=1.0)
    store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    parts, slot = Parts(exchange, store, clock), Slot()
    notes = parts.reconciler.restore(SYM, slot, clock.now_ms())
    assert slot.resting and slot.state is None and any("still rests" in en for _, en in notes)
    assert [s.quantity for s in exchange.open_stops(SYM)] == [1.0]      # protected at once
    assert exchange.position(SYM).amount == 1.0 and store.trades() == []
    assert store.get_state(f"intent:{SYM}") is not None                # a second restart finds it too
    clock.set(T0 + 15 * MIN)                                             # its timeout
    out = parts.router.poll_entry(SYM, clock.now_ms())
    parts.reconciler.settle_entry(SYM, slot, out, store.get_state(f"intent:{SYM}"), clock.now_ms())
    assert not slot.resting and slot.state is not None and slot.state.qty == 1.0
    trade = store.trade(slot.state.trade_id)
    assert trade["entry_client_order_id"] == cid and trade["quantity"] == 1.0
    assert trade["thought_chain"]["perception"] == INTENT["perception"]
    assert store.get_state(f"intent:{SYM}") is None and exchange.open_orders(SYM) == []
    store.close()
    exchange.close()


def test_restart_after_the_timeout_cancels_an_unfilled_maker_entry(tmp_path):
    clock = ManualClock(T0)
    exchange = PaperExchange(tmp_path / "paper.db", clock=clock.now_ms, funding_rate=0.0)
    exchange.on_price(SYM, 100.0, T0)
    store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    store.ensure_initial_weights(T0)
    cid = _place_maker_entry(Parts(exchange, store, clock), store, expires_ms=T0 + 15 * MIN)
    store.close()
    exchange.close()
    clock.set(T0 + 30 * MIN)                                             # down past its timeout
    exchange = PaperExchange(tmp_path / "paper.db", clock=clock.now_ms, funding_rate=0.0)
    store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    parts, slot = Parts(exchange, store, clock), Slot()
    notes = parts.reconciler.restore(SYM, slot, clock.now_ms())
    assert any("has ended" in en and "timed out" in en for _, en in notes)
    assert not slot.resting and slot.state is None
    assert exchange.get_order(SYM, cid).status == "CANCELED" and exchange.open_orders(SYM) == []
    assert exchange.account().initial_margin == 0.0
    assert store.get_state(f"intent:{SYM}") is None and store.trades() == []
    store.close()
    exchange.close()


def test_restart_keeps_one_stop_over_a_part_protected_before_the_kill(tmp_path):
    clock = ManualClock(T0)
    exchange = PaperExchange(tmp_path / "paper.db", clock=clock.now_ms, funding_rate=0.0, max_fill_qty=1.0)
    exchange.on_price(SYM, 100.0, T0)
    store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    store.ensure_initial_weights(T0)
    parts = Parts(exchange, store, clock)
    _place_maker_entry(parts, store, expires_ms=T0 + 15 * MIN)
    exchange.on_bar(SYM, 100.0, 100.1, 99.8, 99.9, T0 + MIN - 1)
    assert parts.router.poll_entry(SYM, T0 + MIN).resting              # 1 filled, its stop placed
    old = [s.client_algo_id for s in exchange.open_stops(SYM)]
    store.close()
    exchange.close()
    exchange = PaperExchange(tmp_path / "paper.db", clock=clock.now_ms, funding_rate=0.0, max_fill_qty=1.0)
    store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    parts, slot = Parts(exchange, store, clock), Slot()
    parts.reconciler.restore(SYM, slot, T0 + 2 * MIN)
    stops = exchange.open_stops(SYM)
    assert slot.resting and [(s.quantity, s.trigger_price) for s in stops] == [(1.0, 98.0)]
    assert stops[0].client_algo_id not in old                          # replaced, never two, never none
    store.close()
    exchange.close()


# ------------------------------------------------------------------ entries of unknown outcome
class LatePaper(PaperExchange):
    """A paper account whose next order is answered like a 503 and reaches the book only at
    `arrive()` (until then it is not found, as on Binance right after such an answer)."""

    late = False
    held: tuple | None = None

    def place_order(self, symbol, side, type, quantity, price=None, time_in_force=None,
                    reduce_only=False, client_order_id=None):
        if self.late:
            self.late = False
            self.held = (symbol, side, type, quantity, price, time_in_force, reduce_only, client_order_id)
            raise UnknownOrderStatus("Service Unavailable", -1001, 503, client_order_id=client_order_id or "")
        return super().place_order(symbol, side, type, quantity, price, time_in_force, reduce_only,
                                   client_order_id)

    def arrive(self) -> None:
        assert self.held is not None
        super().place_order(*self.held)
        self.held = None


PLANNED = {**INTENT, "plan": {"stop": 99.0, "target": 104.0, "qty": 2.0}}   # 2 % below 100 would be 98


@pytest.fixture
def late_world(tmp_path):
    clock = ManualClock(T0)
    exchange = LatePaper(tmp_path / "paper.db", balance=10_000.0, clock=clock.now_ms, funding_rate=0.0)
    exchange.on_price(SYM, 100.0, T0)
    store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    store.ensure_initial_weights(T0)
    yield exchange, store, clock
    store.close()
    exchange.close()


def _enter_unknown(parts: Parts, slot: Slot, store: KnowledgeStore, exchange: LatePaper) -> None:
    """What the agent's _enter does, with the entry answered 503."""
    store.set_state(f"intent:{SYM}", PLANNED, T0)
    exchange.late = True
    out = parts.router.open_position(SYM, "LONG", 2.0, 100.0, stop=99.0, target=104.0)
    assert out.pending
    parts.reconciler.settle_entry(SYM, slot, out, PLANNED, T0)


def _assert_recorded_as_planned(store: KnowledgeStore, exchange: PaperExchange, slot: Slot) -> None:
    st = slot.state
    assert st is not None and st.trade_id is not None and (st.stop, st.initial_stop) == (99.0, 99.0)
    trade = store.trade(st.trade_id)
    assert trade["stop_price"] == 99.0 and trade["entry_fee"] > 0
    assert trade["thought_chain"]["perception"] == INTENT["perception"]
    assert [s.trigger_price for s in exchange.open_stops(SYM)] == [99.0]
    assert store.get_state(f"intent:{SYM}") is None and len(store.trades()) == 1


def test_an_entry_of_unknown_outcome_that_fills_later_is_the_planned_trade(late_world):
    exchange, store, clock = late_world
    parts, slot = Parts(exchange, store, clock), Slot()
    _enter_unknown(parts, slot, store, exchange)
    assert slot.pending and store.get_state(f"intent:{SYM}")["entry"]["outcome"] == "unknown"
    clock.set(T0 + 1_000)
    parts.reconciler.sync(SYM, slot, clock.now_ms())           # not found yet: still pending
    assert slot.pending and slot.state is None and store.get_state(f"intent:{SYM}") is not None
    exchange.arrive()
    clock.set(T0 + 3_000)
    parts.reconciler.sync(SYM, slot, clock.now_ms())
    assert not slot.pending
    _assert_recorded_as_planned(store, exchange, slot)


def test_an_entry_of_unknown_outcome_never_seen_is_dropped_after_the_lookups(late_world):
    exchange, store, clock = late_world
    parts, slot = Parts(exchange, store, clock), Slot()
    _enter_unknown(parts, slot, store, exchange)
    t = T0
    while slot.pending and t < T0 + 60_000:
        clock.set(t)
        parts.reconciler.sync(SYM, slot, t)
        t += 1_000
    assert not slot.pending and t - 1_000 - T0 >= 30_000
    assert store.get_state(f"intent:{SYM}") is None and store.trades() == [] and exchange.position(SYM) is None


def test_a_restart_keeps_looking_for_an_entry_of_unknown_outcome(late_world):
    exchange, store, clock = late_world
    _enter_unknown(Parts(exchange, store, clock), Slot(), store, exchange)   # then killed
    clock.set(T0 + 1_000)
    parts, slot = Parts(exchange, store, clock), Slot()                      # the restarted process
    notes = parts.reconciler.restore(SYM, slot, clock.now_ms())
    assert slot.pending and slot.state is None and any("looked up again" in en for _, en in notes)
    assert store.get_state(f"intent:{SYM}") is not None
    exchange.arrive()
    clock.set(T0 + 5_000)
    parts.reconciler.sync(SYM, slot, clock.now_ms())
    _assert_recorded_as_planned(store, exchange, slot)


def test_a_restart_after_a_kill_during_the_entry_request_finds_its_fill(late_world):
    exchange, store, clock = late_world
    store.set_state(f"intent:{SYM}", PLANNED, T0)                  # the intent, then the request ...
    exchange.late = True
    assert Parts(exchange, store, clock).router.open_position(SYM, "LONG", 2.0, 100.0, stop=99.0).pending
    clock.set(T0 + 1_000)                                            # ... killed before its answer
    parts, slot = Parts(exchange, store, clock), Slot()
    parts.reconciler.restore(SYM, slot, clock.now_ms())
    assert slot.pending and store.get_state(f"intent:{SYM}") is not None
    exchange.arrive()                                                # no order id known: found by its fill
    clock.set(T0 + 3_000)
    parts.reconciler.sync(SYM, slot, clock.now_ms())
    _assert_recorded_as_planned(store, exchange, slot)
