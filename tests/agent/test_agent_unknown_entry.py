"""The agent with an entry of unknown outcome (issue 13 item 2): the plan it was sent with is
kept until the exchange tells what became of it; no other entry, no new intent over it."""
from __future__ import annotations

from client import NetworkError, UnknownOrderStatus
from tests.support.scripted_world import SYMBOL, World


def test_no_new_entry_nor_intent_while_an_entry_outcome_is_unknown(tmp_path):
    w = World(tmp_path, [100.0] * 120)
    real_place, real_get = w.exchange.place_order, w.exchange.get_order
    sent: list = []

    def lost_answer(*args, **kwargs):
        if not kwargs.get("reduce_only"):
            sent.append((args, kwargs))
            if len(sent) == 1:          # a 503: it reaches the book only later
                raise UnknownOrderStatus("Service Unavailable", -1001, 503, kwargs.get("client_order_id", ""))
        return real_place(*args, **kwargs)

    def lookup_down(*args, **kwargs):
        raise NetworkError("Service Unavailable", -1001, 503)

    w.exchange.place_order = lost_answer
    w.exchange.get_order = lookup_down                 # and no lookup gets an answer for a while
    w.script.long = 60.0
    w.cycle()
    first = w.store.get_state(f"intent:{SYMBOL}")
    assert first is not None and first["entry"]["outcome"] == "unknown" and w.state is None
    w.to_15m_close()
    w.cycle()                                          # a 15m close that still says long
    assert len(sent) == 1                              # nothing else was sent ...
    assert w.store.get_state(f"intent:{SYMBOL}")["time_ms"] == first["time_ms"]   # ... nor planned over it
    args, kwargs = sent[0]
    real_place(*args, **kwargs)                        # the order reaches the book
    w.exchange.get_order = real_get
    w.cycle()
    st = w.state
    assert st is not None and st.stop == first["plan"]["stop"] and len(sent) == 1
    trade = w.store.trade(st.trade_id)
    assert trade["opened_ms"] >= first["time_ms"] and trade["stop_price"] == first["plan"]["stop"]
    assert [s.trigger_price for s in w.exchange.open_stops(SYMBOL)] == [st.stop]
    w.close()
