"""TradingAgent on a scripted market: PaperExchange + ReplayMarketData + ManualClock.

The analysis verdict (scores, levels, ATR) is scripted so each test knows exactly when the agent
must enter; the price path is real candles the paper exchange fills against, so entries, the
partial take-profit, break-even, stop and target exits all go through the real router, exit
manager, paper exchange and knowledge store.
"""
from __future__ import annotations

import numpy as np
import pytest

from config import Settings
from rl.agent.agent import TradingAgent
from rl.analysis.levels.finder import DEFAULT_WEIGHTS, FEATURES
from rl.clock import ManualClock
from rl.knowledge.store import KnowledgeStore
from rl.paper.exchange import PaperExchange
from tests.support.scripted_world import (
    ENTRY_PARTIAL_TARGET_STOP_PATH,
    MIN,
    SYMBOL,
    T0,
    Script,
    ScriptedAnalyzer,
    World,
    seed_closed_trades,
)


def test_entry_partial_breakeven_target_then_stop(tmp_path):
    w = World(tmp_path, ENTRY_PARTIAL_TARGET_STOP_PATH)
    w.script.long = 60.0
    w.cycle()                                     # t=61: last closed bar 100 → enter long
    st = w.state
    assert st is not None and st.side == "LONG" and st.trade_id == 1
    assert st.stop == pytest.approx(98.5) and st.target == pytest.approx(103.0)
    assert w.exchange.position(SYMBOL).amount == pytest.approx(st.qty)
    assert [s.trigger_price for s in w.exchange.open_stops(SYMBOL)] == [pytest.approx(98.5)]
    assert w.agent.next_interval() == w.settings.check_interval_position
    w.script.long = 0.0
    qty0 = st.qty
    w.cycle(3)                                    # 100.5, 101.0, then high 101.6 ≥ 1R → partial + BE
    st = w.state
    assert st.qty == pytest.approx(qty0 - np.floor(qty0 / 2))
    assert st.breakeven_done and st.stop > 100.0
    trade = w.store.trade(1)
    assert [e["kind"] for e in trade["exits"]] == ["partial"]
    assert abs(w.exchange.position(SYMBOL).amount) == pytest.approx(st.qty)
    w.cycle(3)                                    # 102.0, 102.5, high 103.3 ≥ target 103 → close all
    assert w.state is None and w.exchange.position(SYMBOL) is None
    t1 = w.store.trade(1)
    assert t1["status"] == "closed" and t1["exit_reason"] == "target"
    assert sum(e["quantity"] for e in t1["exits"]) == pytest.approx(t1["quantity"])
    assert t1["net_pnl"] > 0 and t1["r_multiple"] > 0.5
    assert w.exchange.open_stops(SYMBOL) == []

    # second trade: at the next 15m close enter at 103.2 leaning on support 102.5, then the
    # paper stop fills at 102.0
    w.to_15m_close()
    assert w.state is None                        # flat between 15m closes: no decision
    w.script.support, w.script.resistance, w.script.long = 102.5, 110.0, 60.0
    w.cycle()
    st = w.state
    assert st is not None and st.trade_id == 2 and st.stop == pytest.approx(102.0)
    w.script.long = 0.0
    w.cycle(4)                                    # low 101.4 crosses the stop on the exchange
    assert w.state is None
    t2 = w.store.trade(2)
    assert t2["status"] == "closed" and t2["exit_reason"] == "stop"
    assert t2["r_multiple"] == pytest.approx(-1.0, abs=0.2)
    assert w.store.get_trade_count() == 2
    # equity: the paper wallet moved by exactly the recorded net PnL of both trades
    acct = w.exchange.account()
    assert acct.wallet_balance == pytest.approx(10_000.0 + t1["net_pnl"] + t2["net_pnl"], abs=1e-6)
    curve = w.store.trade_logger.equity_curve()
    assert curve[-1]["equity"] == pytest.approx(acct.wallet_balance)
    w.close()


def test_thought_chain_has_all_four_parts(tmp_path):
    path = [100.0] * 61 + [(100.0, 103.5, 100.0, 103.2)] + [103.2] * 5
    w = World(tmp_path, path)
    w.script.long = 60.0
    w.cycle()
    w.script.long = 0.0
    w.cycle(2)
    chain = w.store.trade(1)["thought_chain"]
    p, a, r = chain["perception"], chain["action"], chain["reward"]
    assert p["price"] == pytest.approx(100.0) and p["symbol"] == SYMBOL
    assert p["level"]["price"] == pytest.approx(99.0) and set(p["features"]) == set(FEATURES)
    assert p["scores"]["long"] == 60.0 and "trend" in p["scores"]["long_breakdown"]
    assert p["phase"]["key"] == "exploration" and p["phase"]["min_score"] == 35.0
    assert p["indicators"]["15m"]["rsi"] == 50.0
    assert a["side"] == "LONG" and a["stop"] == pytest.approx(98.5) and a["target"] == pytest.approx(103.0)
    assert a["leverage"] == 10 and a["order_ids"] and a["stop_order_id"] and a["quantity"] > 0
    assert r["exit_reason"] == "target" and r["r_multiple"] > 0 and r["fees"] > 0
    assert r["weight_change"]["applied"] is False            # 1 trade < 30: weights untouched
    assert "目标" in chain["summary_zh"] or "止盈" in chain["summary_zh"]
    assert "long BTCUSDT" in chain["summary_en"] and "R)" in chain["summary_en"]
    w.close()


def test_opposite_signal_closes_a_short(tmp_path):
    w = World(tmp_path, [100.0] * 61 + [99.8] * 30)
    w.script.short, w.script.support, w.script.resistance = 60.0, 97.0, 101.0
    w.cycle()
    assert w.state.side == "SHORT"
    w.script.short, w.script.long = 0.0, 80.0                 # strong opposite signal ...
    w.cycle()
    assert w.state is not None                                # ... is only seen at a 15m close
    w.to_15m_close()
    w.cycle()
    assert w.state is None
    t = w.store.trade(1)
    assert t["exit_reason"] == "signal" and t["status"] == "closed"
    w.close()


def test_phase_thresholds_move_at_30_and_100(tmp_path):
    w = World(tmp_path, [100.0] * 61 + [100.0] * 40)
    seed_closed_trades(w.store, 30)
    w.script.long = 40.0                                       # enough in exploration, not in learning
    w.cycle()
    assert w.state is None
    st = w.agent.status()["phase"]
    assert (st["key"], st["trade_count"], st["min_score"], st["next_at"]) == ("learning", 30, 45.0, 100)
    assert "≥45" in w.store.decisions.recent(1)[0]["message_zh"]
    w.script.long = 46.0
    w.cycle()
    assert w.state is None                                     # not a 15m close: no decision
    w.to_15m_close()
    w.cycle()
    assert w.state is not None
    w.close()
    w2 = World(tmp_path / "b", [100.0] * 80)
    seed_closed_trades(w2.store, 99)
    assert w2.agent.status()["phase"]["key"] == "learning"
    w2.script.long = 50.0
    w2.cycle()
    assert w2.state is not None                                # 50 ≥ 45 at 99 trades
    w2.close()
    w3 = World(tmp_path / "c", [100.0] * 80)
    seed_closed_trades(w3.store, 100)
    w3.script.long = 50.0
    w3.cycle()
    s3 = w3.agent.status()["phase"]
    assert w3.state is None and s3["key"] == "stable" and s3["progress"] == 1.0
    w3.close()


def test_learning_after_30_trades_moves_weights_toward_evidence(tmp_path):
    path = [100.0] * 61 + [(100.0, 103.5, 100.0, 103.2)] + [103.2] * 5
    w = World(tmp_path, path)
    seed_closed_trades(w.store, 29)
    assert w.store.weight_history()[-1]["weights"] == DEFAULT_WEIGHTS
    w.script.long = 60.0
    w.cycle()
    w.script.long = 0.0
    w.cycle(2)                                                 # trade #30 closes at its target
    assert w.store.get_trade_count() == 30
    new = w.store.current_weights()
    assert new["touch_bounce_count"] > DEFAULT_WEIGHTS["touch_bounce_count"]
    assert new["duration_days"] < DEFAULT_WEIGHTS["duration_days"]
    assert sum(new.values()) == pytest.approx(1.0, abs=1e-9)
    hist = w.store.weight_history()
    assert len(hist) == 2 and hist[-1]["trade_count"] == 30
    assert hist[-1]["evidence"]["touch_bounce_count"]["verdict"] == "helped"
    trade_id = hist[-1]["trade_id"]
    assert w.store.thought_chain(trade_id)["reward"]["weight_change"]["applied"] is True
    assert w.script.weights_seen[-1] == pytest.approx(new)     # the analysis uses them next cycle
    assert w.agent.status()["weights"] == pytest.approx(new)
    w.close()
    # ... and they survive a restart
    again = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    assert again.current_weights() == pytest.approx(new)
    again.close()


def test_a_failing_cycle_is_logged_and_the_next_one_runs(tmp_path):
    w = World(tmp_path, [100.0] * 80, start_bar=59)           # the retry lands on a 15m close
    real = w.market.klines
    calls = {"n": 0}

    def flaky(symbol, interval, limit=500):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("bad data: kline row has high < low")
        return real(symbol, interval, limit)

    w.market.klines = flaky
    w.script.long = 60.0
    w.cycle()
    err = w.agent.status()["last_error"]
    assert err["symbol"] == SYMBOL and err["message"] == "cycle failed, will retry next cycle"
    assert "bad data" not in str(err) and "ValueError" not in str(err)   # the raw text: log only
    assert w.store.decisions.recent(1)[0]["level"] == "ERROR"
    w.cycle()
    assert w.state is not None                                 # the next cycle traded normally
    w.close()


def test_manual_close_and_order_are_recorded(tmp_path):
    w = World(tmp_path, [100.0] * 80)
    w.script.long = 60.0
    w.cycle()
    w.script.long = 0.0
    out = w.agent.close_position(SYMBOL)
    assert out["closed"] and w.state is None
    assert w.store.trade(1)["exit_reason"] == "manual"
    assert w.agent.close_position(SYMBOL)["closed"] is False
    order = w.agent.manual_order(SYMBOL, "SELL", "MARKET", 3)
    assert order["status"] == "FILLED"
    # the position the trader opened is a manual trade of its own: no stop the trader did
    # not ask for (issue 13 #11; tests/agent/test_manual_trades.py)
    st = w.state
    assert st is not None and st.side == "SHORT" and st.qty == 3 and st.manual
    assert w.store.trade(st.trade_id)["source"] == "manual"
    assert w.exchange.open_stops(SYMBOL) == []
    with pytest.raises(ValueError, match="quantity"):
        w.agent.manual_order(SYMBOL, "BUY", "MARKET", -1)
    w.close()


def test_backtest_step_aggregates_like_the_market_module_and_trades(tmp_path):
    script = Script()
    clock = ManualClock(T0)
    ex = PaperExchange(None, balance=10_000.0, clock=clock.now_ms)
    store = KnowledgeStore(tmp_path / "bt.db", default_weights=DEFAULT_WEIGHTS)
    settings = Settings(db_path=tmp_path / "bt.db", entry_order="ioc", take_profit_order="market")
    agent = TradingAgent(settings, None, ex, store, clock,
                         analyzer_factory=lambda s, wts: ScriptedAnalyzer(script, s, wts))
    script.long = 60.0
    entered_at = None
    for i in range(40):
        t = T0 + i * MIN
        price = 100.0 if i < 20 else 103.5
        clock.set(t + MIN)
        ex.on_bar(SYMBOL, price, price, price, price, t + MIN - 1)
        worked = agent.step(t + MIN, {SYMBOL: (t, price, price, price, price, 1.0)})
        if agent.managed_position(SYMBOL) is not None and entered_at is None:
            entered_at = i
            script.long = 0.0
        if i < 14:
            assert not worked                                   # flat and no 15m close: nothing to do
    assert entered_at == 14                                     # first 15m candle closed at bar 14
    assert store.trade(1)["exit_reason"] == "target"
    store.close()


def test_entry_of_unknown_outcome_is_recorded_as_the_planned_trade(tmp_path):
    from client import UnknownOrderStatus
    w = World(tmp_path, [100.0] * 80)
    real = w.exchange.place_order
    state = {"first": True}

    def lost_answer(*args, **kwargs):
        order = real(*args, **kwargs)              # the exchange executed it ...
        if state["first"] and not kwargs.get("reduce_only"):
            state["first"] = False
            raise UnknownOrderStatus("timeout; order status unknown", -1007, 503,
                                     kwargs.get("client_order_id", ""))   # ... but we never heard back
        return order

    w.exchange.place_order = lost_answer
    w.script.long = 60.0
    w.cycle()
    assert w.state is None and w.store.get_state(f"intent:{SYMBOL}") is not None
    assert w.exchange.position(SYMBOL) is not None            # unprotected for now
    w.script.long = 0.0
    w.cycle()                                                 # sync looks the order up by its id
    st = w.state
    assert st is not None and st.trade_id == 1
    t = w.store.trade(1)
    assert not t["note"].startswith("adopted") and set(t["features"]) == set(FEATURES)
    assert t["thought_chain"]["perception"]["scores"]["long"] == 60.0
    assert len(w.exchange.open_stops(SYMBOL)) == 1 and w.store.get_state(f"intent:{SYMBOL}") is None
    w.close()


def test_restart_reloads_the_position_and_keeps_managing_it(tmp_path):
    path = [100.0] * 60 + [100.5, 101.0, (101.0, 101.6, 101.0, 101.5)] + [101.5] * 20
    w = World(tmp_path, path, persist=True)
    w.script.long = 60.0
    w.cycle()
    w.script.long = 0.0
    w.store.update_trade(1, position={})            # even a lost position blob is rebuilt from the row
    w.close()
    # a new process: same databases, same clock
    w2 = World(tmp_path, path, persist=True, script=w.script, start_bar=61)
    st = w2.state
    assert st is not None and st.trade_id == 1 and st.stop == pytest.approx(98.5)
    assert len(w2.store.trades()) == 1 and len(w2.exchange.open_stops(SYMBOL)) == 1
    w2.cycle(3)                                     # partial exit at 1R still happens after the restart
    assert [e["kind"] for e in w2.store.trade(1)["exits"]] == ["partial"]
    w2.close()


def test_trailing_stop_is_not_replaced_by_an_identical_one(tmp_path):
    """A trailing stop a fraction of a tick above the live stop rounds (down, for a long) to
    the very same trigger: the agent must not cancel and re-place it on every bar."""
    path = [100.0] * 60 + [100.5, 101.0, (101.0, 101.6, 101.0, 101.5), (101.5, 102.6, 101.5, 102.5)] + [102.5] * 12
    w = World(tmp_path, path)
    w.script.atr = 0.98731                        # trail 102.6 - 2 ATR = 100.62538: not on a tick
    w.script.long = 60.0
    w.cycle()
    w.script.long = 0.0
    w.cycle(15)
    st = w.state
    moves = [r for r in st.exit_reasons if r.startswith("stop →")]
    assert len(moves) == 2                        # break-even, then one trailing move
    assert st.stop == pytest.approx(100.625) and moves[-1].startswith("stop → 100.625")
    stop_orders = [o for o in w.store.orders.for_trade(st.trade_id) if o.get("purpose") == "stop"]
    # the initial stop, its resize after the partial exit, break-even, one trailing move
    assert len(stop_orders) == 4
    assert [s.trigger_price for s in w.exchange.open_stops(SYMBOL)] == [pytest.approx(100.625)]
    w.close()


def test_the_learners_running_statistics_follow_the_store(tmp_path):
    """The agent learns from running statistics (O(1) a close, not a pass over every trade):
    the evidence each close learns from must equal the evidence over the store's closed
    trades, also when trades were closed behind the agent's back, and a close whose write
    failed must not leave its sample in them (it is learned from once, when it is stored)."""
    from rl.strategy.learning import feature_evidence
    path = [100.0] * 61 + [(100.0, 103.5, 100.0, 103.2)] + [103.2] * 19 + [(103.2, 106.6, 103.2, 106.4)] + [106.4] * 5
    w = World(tmp_path, path)
    seed_closed_trades(w.store, 29)

    def learned_from(trade_id: int) -> dict:
        """The weight change the close of `trade_id` made, as its thought chain keeps it."""
        return w.store.thought_chain(trade_id)["reward"]["weight_change"]

    def assert_evidence_of_the_store(change: dict) -> None:
        want = feature_evidence(w.store.closed_samples(), list(FEATURES))
        assert change["trade_count"] == w.store.get_trade_count()
        assert change["evidence"].keys() == want.keys()
        for f, e in want.items():
            got = change["evidence"][f]
            assert got["n"] == e.n and got["verdict"] == e.verdict
            assert got["correlation"] == pytest.approx(e.correlation, abs=1e-12)

    w.script.long = 60.0
    w.cycle()
    first = w.state.trade_id
    w.script.long = 0.0
    w.cycle(2)                                                 # trade #30 closes at its target
    assert w.store.get_trade_count() == 30
    assert_evidence_of_the_store(learned_from(first))
    seed_closed_trades(w.store, 5, seed=9, prefix="other")    # closed elsewhere (another process)
    real_close = w.store.close_trade
    fail = {"once": True}

    def close_trade(*args, **kwargs):
        if fail["once"]:
            fail["once"] = False
            raise OSError("disk full")
        return real_close(*args, **kwargs)
    w.store.close_trade = close_trade
    w.script.support, w.script.resistance = 102.2, 106.3
    w.to_15m_close()
    w.script.long = 60.0
    w.cycle()
    assert w.state is not None
    tid = w.state.trade_id
    w.script.long = 0.0
    w.cycle(8)                                                 # the failed write, then the retry
    assert not fail["once"] and w.store.get_trade_count() == 36
    assert_evidence_of_the_store(learned_from(tid))            # 35 in the store + this one, once
    w.close()
