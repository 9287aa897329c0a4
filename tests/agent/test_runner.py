"""AgentRunner: one background thread, prompt stop, a raising cycle never ends the loop,
JSON-safe views for the dashboard."""
from __future__ import annotations

import json
import threading
import time

import pytest

from rl.agent.runner import AgentAlreadyRunning, AgentRunner
from rl.clock import SystemClock
from tests.support.scripted_world import SYMBOL, World


def wait_for(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return False


def runner_for(w: World, clock=None) -> AgentRunner:
    return AgentRunner(w.settings, w.market, w.exchange, w.store, clock or w.clock, agent=w.agent)


def test_start_stop_is_prompt_and_single(tmp_path):
    w = World(tmp_path, [100.0] * 200)
    r = runner_for(w, SystemClock())          # real sleeping: 60 s between cycles
    r.start()
    assert r.running
    with pytest.raises(AgentAlreadyRunning):
        r.start()
    assert wait_for(lambda: r.status()["last_cycle_ms"] is not None)
    t0 = time.monotonic()
    r.stop()
    assert time.monotonic() - t0 < 1.0 and not r.running
    r.start()                                 # can be started again after a stop
    assert r.running
    r.stop()
    w.close()


def test_a_raising_cycle_does_not_stop_the_thread(tmp_path):
    w = World(tmp_path, [100.0] * 400)
    real = w.agent.run_cycle
    calls = {"n": 0}

    def sometimes_raises(stop=None):
        calls["n"] += 1
        if calls["n"] % 3 == 1:
            raise RuntimeError(f"boom {calls['n']}")
        return real(stop)

    w.agent.run_cycle = sometimes_raises
    r = runner_for(w)
    r.start()
    assert wait_for(lambda: calls["n"] >= 10)
    assert r.running
    r.stop()
    assert not r.running
    assert r.status()["last_error"]["message"] == "cycle failed, will retry next cycle"   # "boom": log only
    assert any(line["level"] == "ERROR" for line in r.logs(limit=500))
    w.close()


def test_runner_trades_and_serves_json_views(tmp_path):
    path = [100.0] * 60 + [(100.0, 103.5, 100.0, 103.2)] + [103.2] * 2000
    w = World(tmp_path, path)
    w.script.long = 60.0
    r = runner_for(w)
    r.start()
    assert wait_for(lambda: w.store.get_trade_count() >= 1 or w.state is not None)
    w.script.long = 0.0
    assert wait_for(lambda: w.store.get_trade_count() >= 1)
    r.stop()
    st = r.status()
    json.dumps(st)
    assert st["running"] is False and st["mode"] == "paper" and st["symbols"] == [SYMBOL]
    assert st["phase"]["trade_count"] >= 1 and st["phase"]["next_at"] == 30
    assert 0 < st["phase"]["progress"] < 1
    assert set(st["last_scores"][SYMBOL]) >= {"long", "short", "long_breakdown", "short_breakdown", "time_ms"}
    assert sum(st["weights"].values()) == pytest.approx(1.0)
    assert st["connectivity"] == {"market": "ok", "exchange": "ok"}
    logs = r.logs(limit=5)
    assert logs == sorted(logs, key=lambda x: -x["id"]) and set(logs[0]) >= {"id", "time_ms", "level", "symbol",
                                                                             "message_zh", "message_en"}
    assert r.logs(after_id=logs[0]["id"]) == []
    trades = r.trades()
    assert trades[0]["status"] == "closed"
    one = r.trade(trades[-1]["id"])
    assert one["thought_chain"]["reward"] is not None
    json.dumps(one)
    assert [x["price"] for x in r.levels(SYMBOL)] == [99.0, 103.0]
    assert r.equity_curve()[0]["equity"] == pytest.approx(10_000.0)
    assert r.weight_history()[0]["reason"].startswith("initial")
    assert r.account()["wallet_balance"] > 0
    with pytest.raises(ValueError, match="SYMBOLS"):
        r.levels("DOGEUSDT")
    order = r.manual_order(SYMBOL, "BUY", "MARKET", 2)
    assert order["status"] == "FILLED"
    pos = r.positions()
    # a manual trade of its own: shown as manual, with no stop of the agent's (issue 13 #11)
    assert pos[0]["symbol"] == SYMBOL and pos[0]["amount"] == 2 and pos[0]["stop"] is None
    assert pos[0]["source"] == "manual"
    assert r.close_position(SYMBOL)["closed"]
    assert r.positions() == []
    w.close()


def test_manual_actions_wait_for_the_cycle_lock(tmp_path):
    w = World(tmp_path, [100.0] * 200)
    r = runner_for(w)
    order_done = threading.Event()
    with w.agent.lock:                        # the agent is mid-step
        t = threading.Thread(target=lambda: (r.manual_order(SYMBOL, "BUY", "MARKET", 1), order_done.set()))
        t.start()
        assert not order_done.wait(0.2)       # the trader's order waits for the agent's step
    assert order_done.wait(5.0)
    t.join()
    w.close()
