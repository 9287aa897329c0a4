"""The run log is one language per column: message_zh entirely Chinese, message_en entirely
English (symbols, numbers, order ids and a few trading abbreviations excepted), for the lines
an entry, a partial take-profit, a stop, a target, a restart reconcile and a network error
write. Also the reason texts the exit manager, router and reconcile hand back in both languages.
"""
from __future__ import annotations

import re

import pytest

from client import NetworkError
from rl.execution.actions import MoveStop, PartialClose
from rl.execution.port import PositionSnapshot
from rl.execution.position import PositionState, reconcile
from rl.knowledge.thought import features_zh
from rl.strategy.exits import evaluate_exit
from rl.strategy.params import ExitParams
from tests.support.scripted_world import ENTRY_PARTIAL_TARGET_STOP_PATH, SYMBOL, World

ALLOWED = {"BTCUSDT", "USDT", "ATR", "RSI", "MACD", "IOC", "API", "R", "UTC"}
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def english_runs(zh: str) -> list[str]:
    """Runs of 3+ ASCII letters in a Chinese text that are not on the allow-list."""
    return [w for w in re.findall(r"[A-Za-z]{3,}", zh) if w not in ALLOWED]


def assert_pure(lines: list[dict]) -> None:
    assert lines, "no log lines to check"
    for ln in lines:
        assert not english_runs(ln["message_zh"]), ln["message_zh"]
        assert not CJK.search(ln["message_en"]), ln["message_en"]


def test_entry_partial_target_stop_lines_are_one_language_each(tmp_path):
    w = World(tmp_path, ENTRY_PARTIAL_TARGET_STOP_PATH)
    w.script.long = 60.0
    w.cycle()                                   # entry
    w.script.long = 0.0
    w.cycle(3)                                  # partial at 1R + stop to break-even
    w.cycle(3)                                  # target
    w.to_15m_close()
    w.script.support, w.script.resistance, w.script.long = 102.5, 110.0, 60.0
    w.cycle()                                   # second entry
    w.script.long = 0.0
    w.cycle(4)                                  # the paper stop fills on the exchange
    assert w.store.trade(1)["exit_reason"] == "target" and w.store.trade(2)["exit_reason"] == "stop"
    lines = w.store.decisions.recent(500)
    zh = " | ".join(ln["message_zh"] for ln in lines)
    assert "开仓" in zh and "分批止盈" in zh and "保本" in zh and "单在交易所成交" in zh and "持仓已平" in zh and "已无此持仓" not in zh
    en = " | ".join(ln["message_en"] for ln in lines)
    assert "partial take-profit" in en and "closed on the exchange by its stop" in en and "position gone" not in en
    assert_pure(lines)
    # the partial exit keeps its Chinese reason next to the English one
    part = w.store.trade(1)["position"]
    assert part is None or all("reason_zh" in p for p in part.get("partial_exits", []))
    w.close()


def test_restart_reconcile_and_position_gone_lines(tmp_path):
    path = [100.0] * 60 + [100.0] * 40
    w = World(tmp_path, path, persist=True)
    w.script.long = 60.0
    w.cycle()
    w.script.long = 0.0
    st = w.state
    w.exchange.cancel_stop(SYMBOL, st.stop_client_algo_id)      # the stop vanished while away
    w.close()
    w2 = World(tmp_path, path, persist=True, script=w.script, start_bar=61)
    restart = [ln for ln in w2.store.decisions.recent(100) if ln["message_zh"].startswith("重启对账")]
    assert restart and any("补挂" in ln["message_zh"] for ln in restart)
    assert any("no protective stop" in ln["message_en"] for ln in restart)
    assert len(w2.exchange.open_stops(SYMBOL)) == 1
    # the trader closes the position on the exchange by hand: the next cycle drops it
    pos = w2.exchange.position(SYMBOL)
    w2.exchange.place_order(SYMBOL, "SELL", "MARKET", abs(pos.amount), reduce_only=True,
                            client_order_id="by-hand-1")
    w2.cycle()
    assert w2.state is None and w2.store.trade(1)["status"] == "closed"
    assert_pure(w2.store.decisions.recent(500))
    w2.close()


def test_protection_pause_skip_and_lift_lines(tmp_path):
    """Each rule's start and lift, and the skipped entry, on the agent's scripted paths."""
    from tests.support.protection_paths import ONLY_DAILY, ONLY_STOPS, entered_at, lines, run_to, stop_outs
    from tests.support.scripted_world import MIN, T0

    w = World(tmp_path / "stops", stop_outs(3, 660), **ONLY_STOPS)
    w.script.long = 60.0
    w.cycle()
    run_to(w, T0 + 10 * 60 * MIN)
    w2 = World(tmp_path / "daily", stop_outs(2, 1500), daily_loss_limit_percent=1.5, **ONLY_DAILY)
    w2.script.long = 60.0
    w2.cycle()
    run_to(w2, T0 + 1441 * MIN)
    assert len(entered_at(w)) == 4 and len(entered_at(w2)) == 3
    for world, name in ((w, "止损保护"), (w2, "日亏损保护")):
        assert len(lines(world, f"⛔ {name}")) == len(lines(world, f"✅ {name}解除")) == 1
        assert len(lines(world, "⏸ 做多信号未入场")) == 1
        assert_pure(world.store.decisions.recent(500))
        world.close()


def test_network_error_line_says_binance_unreachable_first(tmp_path):
    w = World(tmp_path, [100.0] * 80)

    def down(symbol, interval, limit=500):
        raise NetworkError("GET /fapi/v1/klines: ConnectionError")

    w.market.klines = down
    w.cycle()
    ln = w.store.decisions.recent(1)[0]
    assert ln["level"] == "ERROR"
    assert ln["message_zh"].startswith("无法连接币安，下一轮重试（")
    assert ln["message_en"].startswith("Binance unreachable, retrying next cycle (")
    assert "ConnectionError" in ln["message_zh"]                # the technical detail follows
    plain_zh = ln["message_zh"].split("（", 1)[0]
    assert not english_runs(plain_zh) and not CJK.search(ln["message_en"])
    err = w.agent.status()["last_error"]
    assert err["message_zh"] == ln["message_zh"] and err["message"] == ln["message_en"]
    assert "NetworkError" not in str(err) and "NetworkError" not in ln["message_en"]   # no type
    w.close()


def test_manual_order_and_manual_close_lines(tmp_path):
    w = World(tmp_path, [100.0] * 80)
    w.agent.manual_order(SYMBOL, "BUY", "MARKET", 2)
    out = w.agent.close_position(SYMBOL)
    assert out["closed"] and out["reason_zh"] == "交易面板手动平仓"
    assert w.store.trade(1)["exit_reason"] == "manual"
    assert_pure(w.store.decisions.recent(500))
    w.close()


def test_exit_actions_and_reconcile_reasons_come_in_both_languages():
    st = PositionState(symbol=SYMBOL, side="LONG", entry_price=100.0, qty=1.0, initial_qty=1.0,
                       stop=99.0, initial_stop=99.0, target=110.0)
    acts = evaluate_exit(st, 101.0, 101.2, 100.5, 0.1, rules=ExitParams(), step=0.001)
    assert isinstance(acts[0], PartialClose) and any(isinstance(a, MoveStop) for a in acts)
    for a in acts:
        assert a.reason and a.reason_zh and not english_runs(a.reason_zh) and not CJK.search(a.reason)
    assert PartialClose(acts[0].qty, acts[0].reason) == acts[0]     # equality ignores the zh text
    snap = PositionSnapshot(SYMBOL, 2.0, 100.0, 100.0, 0.0, 50.0, 10, 20.0)
    for r in (reconcile(st, None, []), reconcile(None, snap, []), reconcile(st, snap, [])):
        assert len(r.reasons) == len(r.reasons_zh) > 0
        assert all(not english_runs(z) for z in r.reasons_zh)


def _plans():
    """Plans that say each kind of reason: stop, 2R target, next resistance, margin cap,
    zero quantity, a negative target."""
    from rl.strategy.trade_plan import plan_trade
    return [plan_trade("LONG", 100.0, 99.0, 1.0, 10_000.0, 10_000.0),                   # 2R target
            plan_trade("LONG", 100.0, 99.0, 0.5, 10_000.0, 10_000.0, opposing_level=103.0),
            plan_trade("LONG", 100.0, 99.0, 0.5, 10_000.0, 12.0),                      # margin cap
            plan_trade("LONG", 100.0, 99.0, 0.5, 10_000.0, 0.0),                       # qty 0
            plan_trade("SHORT", 10.0, 14.0, 5.0, 10_000.0, 10_000.0)]                  # target <= 0


@pytest.mark.parametrize("zh", ["止损 98.5", "2R", "阻力位 103", "12.00", "数量为 0", "将 ≤ 0"])
def test_plan_reasons_come_in_both_languages(zh):
    plans = _plans()
    for plan in plans:
        assert len(plan.reasons) == len(plan.reasons_zh) > 0
        assert all(not english_runs(z) for z in plan.reasons_zh)
        assert all(not CJK.search(e) for e in plan.reasons)
        assert plan.to_dict()["reasons_zh"] == list(plan.reasons_zh)
    assert any(zh in z for plan in plans for z in plan.reasons_zh)


def test_feature_names_in_chinese():
    assert features_zh("有效特征 touch_bounce_count, duration_days") == "有效特征 触及反弹, 持续天数"
