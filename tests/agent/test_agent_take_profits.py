"""The agent with resting maker take-profits (TAKE_PROFIT_ORDER=maker) on a scripted market:
the partial and the target rest as reduce-only post-only limits from the entry on, fill only
when a bar trades through them (maker fee), are cancelled when the stop closes the trade, and a
restart (real SQLite files, reopened) adopts them instead of placing them twice."""
from __future__ import annotations

import pytest

from config import Settings, load_settings
from rl.agent.agent import TradingAgent
from rl.analysis.levels.finder import DEFAULT_WEIGHTS
from rl.clock import ManualClock
from rl.errors import SettingsError
from rl.knowledge.store import KnowledgeStore
from rl.market.ports import ReplayMarketData
from rl.paper.exchange import PaperExchange
from tests.support.scripted_world import MIN, SYMBOL, T0, Script, ScriptedAnalyzer, candles

FLAT = [100.0] * 60          # the agent decides at the close of bar 59 (a 15m close): long at 100
TOUCH_1R = (100.2, 101.5, 100.2, 101.4)     # reaches the partial level 101.5 (1R), not through
THROUGH_1R = (101.4, 101.6, 101.4, 101.5)   # trades through it
THROUGH_TARGET = (102.9, 103.2, 102.9, 103.1)
STOP_OUT = (100.0, 100.0, 98.0, 98.2)       # through the stop at 98.5


def test_take_profit_order_setting_defaults_to_market_and_names_the_rule():
    s = load_settings({}, dotenv_path="/nonexistent/.env")
    assert s.take_profit_order == "market"
    assert load_settings({"TAKE_PROFIT_ORDER": "Maker"}, dotenv_path="/nonexistent/.env").take_profit_order == "maker"
    with pytest.raises(SettingsError) as err:
        load_settings({"TAKE_PROFIT_ORDER": "limit"}, dotenv_path="/nonexistent/.env")
    assert str(err.value) == "TAKE_PROFIT_ORDER='limit' is invalid: TAKE_PROFIT_ORDER must be one of market, maker"


class TpWorld:
    """Agent (IOC entries, TAKE_PROFIT_ORDER=maker) + paper exchange + store in SQLite files."""

    def __init__(self, tmp_path, prices, *, start_bar: int = 60, script: Script | None = None) -> None:
        self.script = script or Script()
        self.clock = ManualClock(T0 + start_bar * MIN)
        self.market = ReplayMarketData({SYMBOL: candles(prices)}, self.clock)
        self.settings = Settings(db_path=tmp_path / "agent.db", reentry_cooldown_minutes=0,
                                 entry_order="ioc", take_profit_order="maker")
        self.exchange = PaperExchange(tmp_path / "paper.db", balance=10_000.0, clock=self.clock.now_ms)
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

    def resting(self) -> list[tuple[float, float]]:
        return sorted((o.price, o.orig_qty - o.executed_qty) for o in self.exchange.open_orders(SYMBOL)
                      if o.reduce_only and o.time_in_force == "GTX")

    def log(self) -> list[str]:
        return [r["message_en"] for r in reversed(self.store.decisions.recent(200))]

    def close(self) -> None:
        self.store.close()
        self.exchange.close()


def _enter(w: TpWorld):
    w.script.long = 60.0
    w.cycle()                                     # decides at 100: IOC long, take-profits rest
    w.script.long = 0.0
    st = w.state
    assert st is not None and st.entry_price == 100.0 and st.target == pytest.approx(103.0)
    half = st.qty / 2
    assert w.resting() == [(101.5, pytest.approx(half)), (103.0, pytest.approx(st.qty - half))]
    return st


def test_take_profits_rest_from_the_entry_and_fill_only_when_traded_through(tmp_path):
    w = TpWorld(tmp_path, FLAT + [TOUCH_1R, THROUGH_1R, 102.0, THROUGH_TARGET] + [103.1] * 10)
    st = _enter(w)
    qty = st.qty
    assert any(line.startswith("resting take-profit: partial take-profit resting at 101.5") for line in w.log())
    saved = w.store.trade(st.trade_id)["position"]["take_profits"]
    assert [t["kind"] for t in saved] == ["partial", "target"]           # saved with the trade at once
    w.cycle()                                     # 1R touched: no market partial, the order rests
    assert w.state.qty == pytest.approx(qty) and len(w.resting()) == 2
    assert [f for f in w.exchange.fills_since(SYMBOL, 0) if f.side == "SELL"] == []
    assert w.state.stop == pytest.approx(100.0 * (1 + 2 * 0.0005))     # the stop still goes to break-even
    w.cycle()                                     # through 101.5: half filled as maker
    st = w.state
    assert st.qty == pytest.approx(qty / 2) and st.partial_exits[0]["price"] == 101.5
    assert [(s.quantity, s.trigger_price) for s in w.exchange.open_stops(SYMBOL)] == \
           [(pytest.approx(qty / 2), pytest.approx(st.stop))]            # the stop follows
    w.cycle(2)                                    # 102, then through the target
    assert w.state is None
    trade = w.store.trade(1)
    assert trade["status"] == "closed" and trade["exit_reason"] == "target"
    kinds = [(e["kind"], e["price"]) for e in w.store.exit_totals(1)["exits"]]
    assert kinds == [("partial", 101.5), ("target", 103.0)]
    sells = [f for f in w.exchange.fills_since(SYMBOL, 0) if f.side == "SELL"]
    assert all(f.maker for f in sells) and sum(f.commission for f in sells) == \
        pytest.approx(qty / 2 * 101.5 * 0.0002 + qty / 2 * 103.0 * 0.0002)
    assert w.exchange.open_orders(SYMBOL) == [] and w.exchange.open_stops(SYMBOL) == []
    w.close()


def test_a_stop_out_cancels_the_resting_take_profits(tmp_path):
    w = TpWorld(tmp_path, FLAT + [STOP_OUT] + [98.2] * 10)
    _enter(w)
    w.cycle()
    assert w.state is None and w.store.trade(1)["exit_reason"] == "stop"
    assert w.exchange.open_orders(SYMBOL) == [] and w.exchange.open_stops(SYMBOL) == []
    w.close()


def test_a_restart_adopts_the_resting_take_profits(tmp_path):
    prices = FLAT + [101.0, THROUGH_1R, 102.0, THROUGH_TARGET] + [103.1] * 10
    w = TpWorld(tmp_path, prices)
    st = _enter(w)
    cids = sorted(o.client_order_id for o in w.exchange.open_orders(SYMBOL))
    w.close()                                     # killed with both take-profits resting
    w2 = TpWorld(tmp_path, prices, script=w.script, start_bar=61)
    w2.cycle()
    assert sorted(o.client_order_id for o in w2.exchange.open_orders(SYMBOL)) == cids   # adopted, none twice
    w2.cycle(3)
    assert w2.state is None
    kinds = [e["kind"] for e in w2.store.exit_totals(st.trade_id)["exits"]]
    assert kinds == ["partial", "target"] and w2.store.trade(st.trade_id)["exit_reason"] == "target"
    assert len(w2.store.trades()) == 1
    w2.close()
