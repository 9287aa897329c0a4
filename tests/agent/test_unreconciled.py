"""A position gone on the exchange whose closing fills cannot be found is 'unreconciled': an
explicit, logged state (PnL unknown, out of the learning), never an exit booked at a guessed
price; its fills are looked for on later cycles (and after a restart) and it is closed from
them when they turn up. Real parts: PaperExchange, OrderRouter, KnowledgeStore in SQLite."""
from __future__ import annotations

import pytest

from rl.errors import NetworkError
from rl.paper.exchange import PaperExchange
from tests.agent.test_agent_reconciler import MIN, SYM, T0, Parts, Slot, _enter


class FillsHidden:
    """The paper exchange whose fill history is missing (`hide`) or unreadable (`fail`):
    what a venue's history gap, a lookup window that misses the fill, or an outage looks like."""

    def __init__(self, exchange: PaperExchange) -> None:
        self._exchange = exchange
        self.hide = False
        self.fail = False
        self.hide_before: int | None = None      # hide only the fills older than this

    def fills_since(self, symbol: str, since_ms: int) -> list:
        if self.fail:
            raise NetworkError("GET /fapi/v1/userTrades: timed out")
        fills = [] if self.hide else self._exchange.fills_since(symbol, since_ms)
        return [f for f in fills if self.hide_before is None or f.time_ms >= self.hide_before]

    def __getattr__(self, name: str):
        return getattr(self._exchange, name)


def _stop_out(exchange: PaperExchange, clock, minute: int = 2) -> None:
    clock.set(T0 + minute * MIN)
    exchange.on_bar(SYM, 99.0, 99.5, 97.0, 97.5, T0 + minute * MIN - 1)      # the stop at 98 fills


def _weights_rows(store) -> int:
    return len(store.weight_history())


@pytest.mark.parametrize("fault", ["hide", "fail"])
def test_a_vanished_position_without_fills_is_unreconciled_then_closed_from_its_fills(paper_world, fault):
    exchange, store, clock = paper_world
    hidden = FillsHidden(exchange)
    parts, slot = Parts(hidden, store, clock), Slot()
    st = _enter(parts, slot)
    rows_before = _weights_rows(store)
    _stop_out(exchange, clock)
    setattr(hidden, fault, True)
    parts.reconciler.sync(SYM, slot, clock.now_ms())
    trade = store.trade(st.trade_id)
    # no guess: no exit at the stop price, no PnL, not closed, not learned from
    assert trade["status"] == "unreconciled" and trade["exits"] == [] and trade["net_pnl"] is None
    assert trade["closed_ms"] == T0 + 2 * MIN and trade["remaining_qty"] == 2.0
    assert slot.state is None and store.open_trades() == []
    assert store.get_trade_count() == 0 and _weights_rows(store) == rows_before
    warn = [line for line in parts.logs if line[0] == "WARNING" and "unreconciled" in line[3]]
    assert len(warn) == 1 and "未对账" in warn[0][2] and f"#{st.trade_id}" in warn[0][3]
    if fault == "fail":
        assert "could not be read" in warn[0][3] and "无法读取成交记录" in warn[0][2]
    clock.set(T0 + 3 * MIN)
    parts.reconciler.sync(SYM, slot, clock.now_ms())                  # still missing: still waiting
    assert store.trade(st.trade_id)["status"] == "unreconciled"
    assert len([line for line in parts.logs if "unreconciled" in line[3]]) == 1    # logged once
    setattr(hidden, fault, False)                                     # the fills turn up
    clock.set(T0 + 4 * MIN)
    parts.reconciler.sync(SYM, slot, clock.now_ms())
    trade = store.trade(st.trade_id)
    fills = [f for f in exchange.fills_since(SYM, T0) if f.side == "SELL"]
    assert trade["status"] == "closed" and trade["closed_ms"] == T0 + 2 * MIN
    assert [(e["kind"], e["quantity"], e["price"]) for e in trade["exits"]] == [("stop", 2.0, fills[0].price)]
    assert trade["net_pnl"] == pytest.approx(sum(f.realized_pnl - f.commission for f in fills)
                                             - trade["entry_fee"], abs=1e-9)
    assert store.get_trade_count() == 1 and store.unreconciled_trades() == []
    assert any(line[0] == "INFO" and "reconciled and closed" in line[3] for line in parts.logs)
    # the wallet and the store agree again
    assert exchange.account().wallet_balance == pytest.approx(10_000.0 + trade["net_pnl"], abs=1e-9)


def test_a_restart_keeps_looking_and_never_takes_a_later_trades_fills(paper_world):
    exchange, store, clock = paper_world
    hidden = FillsHidden(exchange)
    parts, slot = Parts(hidden, store, clock), Slot()
    first = _enter(parts, slot)
    _stop_out(exchange, clock)
    hidden.hide_before = T0 + 5 * MIN                    # the first trade's stop fill is missing
    parts.reconciler.sync(SYM, slot, clock.now_ms())
    assert store.trade(first.trade_id)["status"] == "unreconciled"
    # a later trade opens and is stopped out; its closing fill is there
    clock.set(T0 + 10 * MIN)
    exchange.on_price(SYM, 100.0, clock.now_ms())
    slot2 = Slot()
    second = _enter(parts, slot2)
    _stop_out(exchange, clock, minute=12)
    # the restarted process looks again: the later fill is not the first trade's
    restarted = Parts(hidden, store, clock)
    restarted.reconciler.sync(SYM, slot2, clock.now_ms())
    a, b = store.trade(first.trade_id), store.trade(second.trade_id)
    assert a["status"] == "unreconciled" and a["exits"] == []
    assert b["status"] == "closed" and [e["time_ms"] for e in b["exits"]] == [T0 + 12 * MIN - 1]
    hidden.hide_before = None                            # the missing fill turns up
    clock.set(T0 + 13 * MIN)
    restarted.reconciler.sync(SYM, Slot(), clock.now_ms())
    a = store.trade(first.trade_id)
    assert a["status"] == "closed" and [e["time_ms"] for e in a["exits"]] == [T0 + 2 * MIN - 1]
    assert exchange.account().wallet_balance == pytest.approx(10_000.0 + a["net_pnl"] + b["net_pnl"], abs=1e-9)


def test_a_stop_fill_stamped_before_the_entry_is_still_the_trades(paper_world):
    """A cycle that catches up several bars stamps the entry with the cycle's time and a stop
    that fired on one of those bars with the bar's (earlier): the order ids say it is this
    trade's exit, so it is booked from the fill (with its fee), neither guessed nor lost."""
    exchange, store, clock = paper_world
    parts, slot = Parts(exchange, store, clock), Slot()
    clock.set(T0 + 10 * MIN)
    st = _enter(parts, slot)
    assert store.trade(st.trade_id)["opened_ms"] == T0 + 10 * MIN
    exchange.on_bar(SYM, 99.0, 99.5, 97.0, 97.5, T0 + 5 * MIN - 1)      # a bar of the catch-up
    parts.reconciler.sync(SYM, slot, T0 + 5 * MIN)
    trade = store.trade(st.trade_id)
    (fill,) = [f for f in exchange.fills_since(SYM, 0) if f.side == "SELL"]
    assert fill.time_ms < trade["opened_ms"]
    assert trade["status"] == "closed"
    assert [(e["price"], e["fee"]) for e in trade["exits"]] == [(fill.price, fill.commission)]
    assert exchange.account().wallet_balance == pytest.approx(10_000.0 + trade["net_pnl"], abs=1e-9)
