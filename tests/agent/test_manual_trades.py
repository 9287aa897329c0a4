"""Dashboard orders on the agent's symbols (issue 13 #11): a manual trade of its own when the
agent is flat, a "mixed" agent trade when it holds a position; neither feeds the learner.

The real agent, router, paper exchange and knowledge store on a scripted market
(tests/support/scripted_world.py); the wallet is checked against the trades to the cent."""
from __future__ import annotations

import pytest

from rl.agent.agent import TradingAgent
from tests.support.scripted_world import SYMBOL, ScriptedAnalyzer, World


def wallet_change(w: World) -> float:
    return w.exchange.account().wallet_balance - 10_000.0


def test_a_manual_buy_while_flat_is_its_own_trade_with_no_stop_and_no_lesson(tmp_path):
    w = World(tmp_path, [100.0] * 70 + [101.0] * 40)
    order = w.agent.manual_order(SYMBOL, "BUY", "MARKET", 2)
    assert order["status"] == "FILLED"
    st = w.state
    assert st is not None and st.manual and st.qty == 2
    t = w.store.trade(st.trade_id)
    assert (t["source"], t["stop_price"], t["risk_amount"]) == ("manual", None, 0.0)
    assert w.exchange.open_stops(SYMBOL) == []                # the trader asked for no stop
    w.script.long = 90.0                                      # a strong signal: no entry on top
    w.cycle(20)
    assert w.exchange.position(SYMBOL).amount == pytest.approx(2)
    assert w.exchange.open_stops(SYMBOL) == [] and w.state.manual
    assert len(w.store.trades()) == 1
    w.script.long = 0.0
    w.agent.manual_order(SYMBOL, "SELL", "MARKET", 2)         # the trader closes it
    assert w.state is None and w.exchange.position(SYMBOL) is None
    t = w.store.trade(t["id"])
    assert t["status"] == "closed" and t["exit_reason"] == "manual"
    assert [e["kind"] for e in t["exits"]] == ["manual"]
    assert t["net_pnl"] == pytest.approx(2 * (101.0 - 100.0) - t["fees"], abs=1e-9)
    # the account's: in the wallet and the equity curve; not the agent's: no lesson, no count
    assert abs(wallet_change(w) - t["net_pnl"]) < 1e-9
    assert w.store.get_trade_count() == 0 and w.store.closed_samples() == []
    s = w.store.trade_logger.summary()
    assert s["trades"] == 0 and s["manual"] == {"trades": 1, "net_pnl": pytest.approx(t["net_pnl"])}
    assert w.store.trade_logger.equity_curve()[-1]["equity"] == pytest.approx(10_000.0 + t["net_pnl"])
    assert w.store.thought_chain(t["id"])["reward"]["weight_change"] is None
    # its summary says what it was: no level, score or R of the agent's (none stood behind it)
    net = f"{t['net_pnl']:+.2f}"
    chain = w.store.thought_chain(t["id"])
    assert chain["summary_en"] == f"(manual trade, kept out of the learning) manual long {SYMBOL} at 100, exited by manual, net {net} USDT."
    assert chain["summary_zh"] == f"（手动交易，不参与学习）手动做多 {SYMBOL} @ 100，手动平仓出场，净盈亏 {net} USDT。"
    w.close()


def test_a_manual_add_on_is_recorded_in_the_agents_trade_which_leaves_the_learning(tmp_path):
    w = World(tmp_path, [100.0] * 70 + [100.5] * 40)          # below 1R: no partial exit
    w.script.long = 60.0
    w.cycle()                                                 # the agent enters long at 100
    w.script.long = 0.0
    st = w.state
    q = st.qty
    w.agent.manual_order(SYMBOL, "BUY", "MARKET", 2)          # the trader adds 2 at 100
    t = w.store.trade(st.trade_id)
    assert t["source"] == "mixed" and t["quantity"] == pytest.approx(q + 2)
    assert [(a["quantity"], a["price"]) for a in t["additions"]] == [(pytest.approx(2), pytest.approx(100.0))]
    assert w.state.qty == pytest.approx(q + 2)
    [stop] = w.exchange.open_stops(SYMBOL)                    # the stop covers the whole position
    assert stop.quantity == pytest.approx(q + 2)
    w.cycle(15)
    out = w.agent.close_position(SYMBOL)
    assert out["closed"] and out["qty"] == pytest.approx(q + 2)         # the add-on closed with it
    t = w.store.trade(t["id"])
    assert t["status"] == "closed" and sum(e["quantity"] for e in t["exits"]) == pytest.approx(q + 2)
    assert abs(wallet_change(w) - t["net_pnl"]) < 1e-9      # the add-on's PnL and fee are in it
    assert w.store.get_trade_count() == 0 and w.store.closed_samples() == []
    w.close()


def test_a_manual_sell_of_part_of_the_agents_position_is_a_manual_exit_and_no_lesson(tmp_path):
    w = World(tmp_path, [100.0] * 70 + [101.0] * 40)
    w.script.long = 60.0
    w.cycle()
    w.script.long = 0.0
    st = w.state
    q = st.qty
    w.agent.manual_order(SYMBOL, "SELL", "MARKET", 1)
    assert w.state.qty == pytest.approx(q - 1) and not w.state.manual
    t = w.store.trade(st.trade_id)
    assert t["source"] == "mixed" and [e["kind"] for e in t["exits"]] == ["manual"]
    w.cycle(15)
    w.agent.close_position(SYMBOL)
    t = w.store.trade(t["id"])
    assert t["status"] == "closed" and abs(wallet_change(w) - t["net_pnl"]) < 1e-9
    assert w.store.get_trade_count() == 0 and w.store.closed_samples() == []
    w.close()


def test_a_manual_limit_that_fills_later_is_a_manual_trade_and_survives_a_restart(tmp_path):
    prices = [100.0] * 65 + [(100.0, 100.0, 98.5, 99.0)] + [99.0] * 30
    w = World(tmp_path, prices, persist=True)
    order = w.agent.manual_order(SYMBOL, "BUY", "LIMIT", 3, price=99.0)
    assert order["status"] == "NEW" and w.state is None
    w.cycle(8)                                                # the dip fills it; the next sync sees it
    st = w.state
    assert st is not None and st.manual and st.qty == pytest.approx(3) and st.entry_price == pytest.approx(99.0)
    assert w.store.trade(st.trade_id)["source"] == "manual"
    assert w.exchange.open_stops(SYMBOL) == []                # the adoption's stop was taken back
    tid = st.trade_id
    w.agent = TradingAgent(w.settings, w.market, w.exchange, w.store, w.clock, feed=w.exchange,
                           analyzer_factory=lambda sym, wt: ScriptedAnalyzer(w.script, sym, wt))
    w.agent.startup()                                         # a restart: still the trader's
    assert w.state is not None and w.state.manual and w.state.trade_id == tid
    assert w.exchange.open_stops(SYMBOL) == []
    w.cycle(3)
    assert w.exchange.open_stops(SYMBOL) == [] and len(w.store.trades()) == 1
    w.agent.close_position(SYMBOL)
    t = w.store.trade(tid)
    assert t["status"] == "closed" and abs(wallet_change(w) - t["net_pnl"]) < 1e-9
    assert w.store.get_trade_count() == 0
    w.close()


def test_a_manual_sell_beyond_the_agents_long_closes_it_and_opens_a_manual_short(tmp_path):
    """One fill flips the net position: its closing part is the agent trade's exit, its rest the
    manual trade's entry, and its fee is shared between them (counted once, not twice)."""
    w = World(tmp_path, [100.0] * 70 + [100.5] * 40)
    w.script.long = 60.0
    w.cycle()
    w.script.long = 0.0
    q = w.state.qty
    w.agent.manual_order(SYMBOL, "SELL", "MARKET", q + 40)
    st = w.state
    assert st.manual and st.side == "SHORT" and st.qty == pytest.approx(40)
    assert w.exchange.open_stops(SYMBOL) == []
    agent_t, manual_t = w.store.trade(1), w.store.trade(st.trade_id)
    assert (agent_t["status"], agent_t["source"], manual_t["source"]) == ("closed", "mixed", "manual")
    w.cycle(5)
    w.agent.manual_order(SYMBOL, "BUY", "MARKET", 40)
    assert w.state is None and w.exchange.position(SYMBOL) is None
    trades = w.store.trades(status="closed")
    assert len(trades) == 2 and abs(wallet_change(w) - sum(t["net_pnl"] for t in trades)) < 1e-9
    assert w.store.get_trade_count() == 0
    w.close()
