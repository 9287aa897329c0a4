"""The learned trade filter inside the agent (TRADE_FILTER=on), on the scripted market: a model
that expects a loss skips the signal with a log line in both languages, its exploration budget
takes one at the least stake, its view is in the status, and off keeps today's agent."""
from __future__ import annotations

import numpy as np
import pytest

from rl.analysis.levels.finder import DEFAULT_WEIGHTS
from rl.knowledge.store import KnowledgeStore
from rl.strategy.filter_features import FILTER_FEATURES
from rl.strategy.params import FilterParams
from rl.strategy.trade_filter import TradeFilter
from tests.support.scripted_world import SYMBOL, World

PATH = [100.0] * 61 + [100.0] * 10


def _seed_losing_model(tmp_path, seen: int, taken: int) -> None:
    """A stored model that has learned 200 trades of about -1R whatever their features."""
    rng = np.random.default_rng(0)
    f = TradeFilter(FILTER_FEATURES, FilterParams())
    for _ in range(200):
        f.learn({k: float(rng.uniform()) for k in FILTER_FEATURES}, float(rng.normal(-1.0, 0.1)))
    f.seen, f.taken, f.skipped = seen, taken, seen - taken
    store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    store.set_filter_state(f.to_state(), 0)
    store.close()


def test_a_model_that_expects_a_loss_skips_the_signal_and_says_why(tmp_path) -> None:
    _seed_losing_model(tmp_path, seen=10, taken=5)            # exploration budget already met
    w = World(tmp_path, PATH, trade_filter="on")
    w.script.long = 60.0
    w.cycle()
    assert w.state is None and w.exchange.position(SYMBOL) is None
    logs = w.store.decisions.recent(50)
    skip = [x for x in logs if x["message_zh"].startswith("⏭ 跳过")]
    assert len(skip) == 1
    assert "做多:60 预期 -" in skip[0]["message_zh"] and "R" in skip[0]["message_zh"]
    assert skip[0]["message_en"].startswith("⏭ skipped | long:60 expected -")
    view = w.agent.status()["trade_filter"]
    assert view["learned"] == 200 and view["seen"] == 11 and view["skipped"] == 6
    assert view["baseline_r"] < -0.5 and set(view["weights"]) == set(FILTER_FEATURES)
    assert w.store.filter_state()["seen"] == 11               # the count is stored
    w.close()


def test_the_exploration_budget_takes_a_signal_at_the_least_stake(tmp_path) -> None:
    off = World(tmp_path / "off", PATH)
    off.script.long = 60.0
    off.cycle()
    full_qty = off.state.qty
    off.close()

    (tmp_path / "on").mkdir()
    _seed_losing_model(tmp_path / "on", seen=10, taken=1)     # below its 10 % budget
    w = World(tmp_path / "on", PATH, trade_filter="on")
    w.script.long = 60.0
    w.cycle()
    st = w.state
    assert st is not None and st.qty < 0.5 * full_qty
    tf = w.store.trade(st.trade_id)["thought_chain"]["perception"]["trade_filter"]
    assert tf["reason"] == "explore" and tf["stake"] == pytest.approx(FilterParams().min_stake)
    assert tf["mean"] < 0 and 0 <= tf["p_positive"] < 0.5 and len(tf["top"]) == 3
    assert set(tf["x"]) == set(FILTER_FEATURES)
    w.close()


def test_off_shows_no_filter_and_takes_the_signal_at_full_stake(tmp_path) -> None:
    _seed_losing_model(tmp_path, seen=10, taken=5)            # a stored model is ignored when off
    w = World(tmp_path, PATH)
    w.script.long = 60.0
    w.cycle()
    assert w.state is not None
    assert w.agent.status()["trade_filter"] is None
    assert "trade_filter" not in w.store.trade(w.state.trade_id)["thought_chain"]["perception"]
    w.close()


def test_the_trend_input_reads_the_published_indicators_and_degrades_to_none() -> None:
    from rl.agent.filter_gate import _trend

    assert _trend({"ema_fast": 11.0, "ema_slow": 10.0, "atr": 4.0}) == pytest.approx(0.25)
    assert _trend({"ema_fast": 30.0, "ema_slow": 10.0, "atr": 4.0}) == 1.0
    assert _trend({"ema_fast": 11.0, "ema_slow": float("nan"), "atr": 4.0}) is None   # < 50 candles
    assert _trend({"ema_fast": 11.0, "ema_slow": 10.0, "atr": 0.0}) is None
    assert _trend(None) is None and _trend({}) is None
