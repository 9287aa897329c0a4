"""The agent with maker entries (ENTRY_ORDER=maker) on a scripted market: the post-only entry
rests, is polled every bar, and becomes the planned trade (with its thought chain) when it
fills; it is cancelled at its timeout or when the setup is gone; a restart (real SQLite files,
reopened) follows or cancels it."""
from __future__ import annotations

import pytest

from config import Settings, load_settings
from rl.agent.agent import TradingAgent
from rl.analysis.levels.finder import DEFAULT_WEIGHTS, FEATURES
from rl.clock import ManualClock
from rl.errors import SettingsError
from rl.knowledge.store import KnowledgeStore
from rl.market.ports import ReplayMarketData
from rl.paper.exchange import PaperExchange
from tests.support.scripted_world import MIN, SYMBOL, T0, Script, ScriptedAnalyzer, candles

FLAT = [100.0] * 60          # the agent decides at the close of bar 59 (a 15m close): long at 100
TOUCH = (100.0, 100.4, 100.0, 100.2)       # trades at the limit, not through it
THROUGH = (100.2, 100.3, 99.9, 100.1)      # trades through the buy limit at 100


def test_entry_order_settings_default_to_ioc_and_name_the_rule():
    s = load_settings({}, dotenv_path="/nonexistent/.env")
    assert (s.entry_order, s.entry_timeout_seconds) == ("ioc", 900.0)
    s = load_settings({"ENTRY_ORDER": "Maker", "ENTRY_TIMEOUT_SECONDS": "300"}, dotenv_path="/nonexistent/.env")
    assert (s.entry_order, s.entry_timeout_seconds) == ("maker", 300.0)
    for var, raw, rule in (("ENTRY_ORDER", "gtx", "ENTRY_ORDER must be one of ioc, maker"),
                           ("ENTRY_TIMEOUT_SECONDS", "30", "ENTRY_TIMEOUT_SECONDS must be a number >= 60 and <= 86400")):
        with pytest.raises(SettingsError) as err:
            load_settings({var: raw}, dotenv_path="/nonexistent/.env")
        assert str(err.value) == f"{var}={raw!r} is invalid: {rule}"
    with pytest.raises(SettingsError, match="ENTRY_ORDER='fok' is invalid"):
        s.with_overrides(entry_order="fok")


class MakerWorld:
    """Agent (ENTRY_ORDER=maker, market take-profits) + paper exchange + store in SQLite files, on a ManualClock."""

    def __init__(self, tmp_path, prices, *, timeout: float = 900.0, fill_qty: float | None = None,
                 start_bar: int = 60, script: Script | None = None) -> None:
        self.script = script or Script()
        self.clock = ManualClock(T0 + start_bar * MIN)
        self.market = ReplayMarketData({SYMBOL: candles(prices)}, self.clock)
        self.settings = Settings(db_path=tmp_path / "agent.db", reentry_cooldown_minutes=0,
                                 entry_order="maker", entry_timeout_seconds=timeout,
                                 take_profit_order="market")
        self.exchange = PaperExchange(tmp_path / "paper.db", balance=10_000.0, clock=self.clock.now_ms,
                                      max_fill_qty=fill_qty)
        self.store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
        self.agent = TradingAgent(self.settings, self.market, self.exchange, self.store, self.clock,
                                  feed=self.exchange,
                                  analyzer_factory=lambda sym, w: ScriptedAnalyzer(self.script, sym, w))
        self.notes = self.agent.startup()

    def cycle(self, n: int = 1) -> None:
        for _ in range(n):
            self.agent.run_cycle()
            self.clock.advance(60)

    @property
    def state(self):
        return self.agent.managed_position(SYMBOL)

    def log(self) -> list[str]:
        return [r["message_en"] for r in reversed(self.store.decisions.recent(200))]

    def close(self) -> None:
        self.store.close()
        self.exchange.close()


def _resting(w: MakerWorld):
    orders = w.exchange.open_orders(SYMBOL)
    assert len(orders) == 1 and orders[0].time_in_force == "GTX"
    return orders[0]


def test_maker_entry_rests_fills_through_and_is_recorded_like_an_ioc_entry(tmp_path):
    w = MakerWorld(tmp_path, FLAT + [TOUCH, TOUCH, THROUGH] + [100.1] * 20)
    w.script.long = 60.0
    w.cycle()                                     # decides at 100: a post-only buy at 100 rests
    order = _resting(w)
    assert order.price == 100.0 and w.state is None and w.exchange.position(SYMBOL) is None
    intent = w.store.get_state(f"intent:{SYMBOL}")
    assert intent["entry"]["client_order_id"] == order.client_order_id
    assert any(line.startswith("maker entry: long") for line in w.log())
    w.script.long = 0.0                           # no new decision between 15m closes anyway
    w.cycle(2)                                    # two bars touch 100: still resting
    assert w.state is None and _resting(w).executed_qty == 0
    w.cycle()                                     # low 99.9: filled at 100 as maker
    st = w.state
    assert st is not None and st.trade_id == 1 and st.entry_price == 100.0
    assert st.stop == pytest.approx(98.5) and st.target == pytest.approx(103.0)
    assert w.exchange.open_orders(SYMBOL) == []
    assert [(s.quantity, s.trigger_price) for s in w.exchange.open_stops(SYMBOL)] == [(st.qty, 98.5)]
    trade = w.store.trade(1)
    assert trade["entry_fee"] == pytest.approx(st.qty * 100.0 * 0.0002)   # maker, not taker
    assert trade["entry_client_order_id"] == order.client_order_id
    chain = trade["thought_chain"]
    assert chain["perception"]["scores"]["long"] == 60.0 and set(trade["features"]) == set(FEATURES)
    assert chain["action"]["entry_fee"] == pytest.approx(trade["entry_fee"])
    assert w.store.get_state(f"intent:{SYMBOL}") is None
    assert any(line.startswith("✅ opened long") for line in w.log())
    w.close()


def test_maker_entry_times_out_then_the_next_decision_may_place_a_new_one(tmp_path):
    w = MakerWorld(tmp_path, FLAT + [TOUCH] * 40)
    w.script.long = 60.0
    w.cycle()
    first = _resting(w).client_order_id
    w.script.long = 0.0
    w.cycle(14)                                   # 14 bars at or above the limit
    assert _resting(w).client_order_id == first
    w.cycle()                                     # the next 15m close: 900 s are up, cancelled
    assert w.exchange.open_orders(SYMBOL) == [] and w.state is None
    assert w.exchange.get_order(SYMBOL, first).status == "CANCELED"
    assert w.exchange.account().initial_margin == 0.0
    assert w.store.get_state(f"intent:{SYMBOL}") is None and w.store.trades() == []
    assert any("timed out" in line and "no position" in line for line in w.log())
    w.script.long = 60.0
    w.cycle(15)                                   # the following 15m close decides afresh
    assert _resting(w).client_order_id != first
    w.close()


def test_partial_fill_then_timeout_is_the_trade_and_its_stop_covers_it(tmp_path):
    w = MakerWorld(tmp_path, FLAT + [THROUGH, (100.1, 100.2, 100.05, 100.1)] + [TOUCH] * 20, fill_qty=10.0)
    w.script.long = 60.0
    w.cycle()
    planned = _resting(w).orig_qty
    assert planned > 10
    w.script.long = 0.0
    w.cycle()                                     # 10 of it fills: protected at once
    assert w.exchange.position(SYMBOL).amount == pytest.approx(10.0)
    assert [s.quantity for s in w.exchange.open_stops(SYMBOL)] == [pytest.approx(10.0)]
    assert w.state is None and w.store.trades() == []   # the entry is still resting
    w.cycle(13)
    assert w.state is None
    w.cycle()                                     # timeout: the rest is cancelled, 10 is the trade
    st = w.state
    assert st is not None and st.qty == pytest.approx(10.0) and st.initial_qty == pytest.approx(10.0)
    assert w.exchange.open_orders(SYMBOL) == []
    assert [s.quantity for s in w.exchange.open_stops(SYMBOL)] == [pytest.approx(10.0)]
    trade = w.store.trade(st.trade_id)
    assert trade["quantity"] == pytest.approx(10.0)
    assert trade["entry_fee"] == pytest.approx(10.0 * 100.0 * 0.0002)
    w.cycle(2)                                    # managed normally from here: nothing differs
    assert w.state.qty == pytest.approx(10.0) and len(w.exchange.open_stops(SYMBOL)) == 1
    w.close()


def test_setup_gone_at_a_15m_close_cancels_the_entry(tmp_path):
    w = MakerWorld(tmp_path, FLAT + [TOUCH] * 40, timeout=3600.0)
    w.script.long = 60.0
    w.cycle()
    cid = _resting(w).client_order_id
    w.cycle(14)                                   # the analysis still wants the long: it rests
    assert _resting(w).client_order_id == cid
    w.script.long = 0.0
    w.cycle()                                     # the 15m close no longer decides long
    assert w.exchange.open_orders(SYMBOL) == []
    assert w.exchange.get_order(SYMBOL, cid).status == "CANCELED"
    assert any("setup gone" in line for line in w.log())
    w.close()


def test_a_gap_through_entry_and_stop_fills_then_closes_at_once_and_is_recorded(tmp_path):
    w = MakerWorld(tmp_path, FLAT + [(98.0, 98.2, 97.9, 98.0)] + [98.0] * 10)
    w.script.long = 60.0
    w.cycle()
    w.script.long = 0.0
    w.cycle()                                     # fills at 100, but the price is below the stop
    assert w.state is None and w.exchange.position(SYMBOL) is None
    assert w.exchange.open_orders(SYMBOL) == [] and w.exchange.open_stops(SYMBOL) == []
    trade = w.store.trade(1)
    assert trade["status"] == "closed" and trade["entry_price"] == 100.0
    assert w.store.get_state(f"intent:{SYMBOL}") is None
    w.close()


def test_restart_follows_the_resting_entry_and_records_its_fill(tmp_path):
    prices = FLAT + [TOUCH, TOUCH, THROUGH] + [100.1] * 20
    w = MakerWorld(tmp_path, prices)
    w.script.long = 60.0
    w.cycle()
    cid = _resting(w).client_order_id
    w.script.long = 0.0
    w.close()                                     # killed while the entry rests
    w2 = MakerWorld(tmp_path, prices, script=w.script, start_bar=61)
    assert any("still rests" in n for n in w2.notes)
    assert _resting(w2).client_order_id == cid and w2.state is None
    w2.cycle(3)                                   # TOUCH, TOUCH, THROUGH
    st = w2.state
    assert st is not None and st.entry_price == 100.0 and st.entry_client_order_id == cid
    trade = w2.store.trade(st.trade_id)
    assert trade["thought_chain"]["perception"]["scores"]["long"] == 60.0
    assert len(w2.store.trades()) == 1 and len(w2.exchange.open_stops(SYMBOL)) == 1
    w2.close()


def test_restart_protects_a_part_filled_while_away_and_cancels_after_the_timeout(tmp_path):
    prices = FLAT + [TOUCH] * 40
    w = MakerWorld(tmp_path, prices, fill_qty=10.0)
    w.script.long = 60.0
    w.cycle()
    cid = _resting(w).client_order_id
    w.script.long = 0.0
    w.exchange.on_bar(SYMBOL, 100.2, 100.3, 99.9, 100.1, T0 + 61 * MIN - 1)   # filled while the agent is down
    w.close()
    w2 = MakerWorld(tmp_path, prices, script=w.script, start_bar=80, fill_qty=10.0)   # past its timeout
    assert any("has ended" in n for n in w2.notes)
    assert w2.exchange.get_order(SYMBOL, cid).status == "CANCELED"
    st = w2.state
    assert st is not None and st.qty == pytest.approx(10.0) and st.entry_client_order_id == cid
    assert [s.quantity for s in w2.exchange.open_stops(SYMBOL)] == [pytest.approx(10.0)]
    assert w2.store.trade(st.trade_id)["quantity"] == pytest.approx(10.0)
    assert w2.store.get_state(f"intent:{SYMBOL}") is None
    w2.close()
    w3 = MakerWorld(tmp_path, prices, script=w.script, start_bar=81, fill_qty=10.0)   # and again
    assert len(w3.store.trades()) == 1 and w3.state.trade_id == st.trade_id
    w3.close()


def test_a_partly_filled_resting_entry_is_shown_as_the_agents_position(tmp_path):
    w = MakerWorld(tmp_path, FLAT + [THROUGH] + [TOUCH] * 20, fill_qty=10.0)
    w.script.long = 60.0
    w.cycle()
    order = _resting(w)
    assert w.agent.positions() == []              # nothing filled yet: no position
    w.script.long = 0.0
    w.cycle()                                     # 10 of it fills, the rest still rests
    (pos,) = w.agent.positions()
    assert pos["amount"] == pytest.approx(10.0) and pos["source"] == "agent"
    assert pos["stop"] == pytest.approx(98.5) and pos["target"] == pytest.approx(103.0)
    assert pos["entry_resting"] == {"client_order_id": order.client_order_id, "price": 100.0,
                                    "filled": pytest.approx(10.0), "quantity": pytest.approx(order.orig_qty),
                                    "expires_ms": order.update_time_ms + 900_000}
    assert w.state is None                        # not managed yet: the entry is still open
    w.close()
