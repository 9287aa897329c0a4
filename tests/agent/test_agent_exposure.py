"""The exposure caps in the real agent, two symbols on one paper account (tests/support/
two_symbol_world.py): both analyses say "enter long" at every 15m close (score 60, support 99,
ATR 1: stops at 98.5), so whether the second symbol enters is the caps' decision alone. A
refusal is logged once per symbol and reason in both languages, counted, shown in the status
and carried by the decision record; with the cap off the second entry goes through."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.scripted_world import MIN, T0
from tests.support.two_symbol_world import A, B, TwoSymbolWorld, closes_from_returns

FLAT = [100.0] * 400
NO_CAPS = {"max_open_positions": 0, "max_total_risk_percent": 0.0, "max_correlation": 0.0}


def _long(w: TwoSymbolWorld, *syms: str) -> None:
    for s in syms or (A, B):
        w.scripts[s].long = 60.0


def test_the_second_entry_is_refused_at_the_open_position_cap_logged_once_and_counted(tmp_path):
    w = TwoSymbolWorld(tmp_path, FLAT, FLAT, **{**NO_CAPS, "max_open_positions": 1})
    _long(w)
    w.run_to(T0 + 120 * MIN)                       # the 01:00 .. 01:45 closes: four signals each
    assert w.position(A) is not None and w.position(B) is None
    assert [t["symbol"] for t in w.trades()] == [A]
    (line,) = w.lines("⏭ 跳过")                     # four refusals, one line
    assert line["symbol"] == B and line["level"] == "INFO"
    assert "做多信号未入场：持仓数上限，已有 1 个持仓（BTCUSDT），上限 1 个" in line["message_zh"]
    assert "long signal not taken: the open-position cap, 1 positions open (BTCUSDT), the cap is 1" \
        in line["message_en"]
    ex = w.agent.status()["exposure"]
    assert (ex["open_positions"], ex["max_open_positions"]) == (1, 1)
    assert ex["refusals"] == ex["refusals_by_rule"]["max_open_positions"] == 4
    last = ex["last_refusals"][0]
    assert last["symbol"] == B and last["rule"] == "max_open_positions" and "time_ms" in last
    json.dumps(ex, allow_nan=False)
    refused = [r for r in w.records if "exposure" in r]
    assert {r["symbol"] for r in refused} == {B} and len(refused) == 4
    assert refused[0]["exposure"]["rule"] == "max_open_positions" and refused[0]["action"] == "enter_long"
    assert all("exposure" not in r for r in w.records if r["symbol"] == A)
    w.close()


def test_with_the_caps_off_both_symbols_enter(tmp_path):
    w = TwoSymbolWorld(tmp_path, FLAT, FLAT, **NO_CAPS)
    _long(w)
    w.run_to(T0 + 62 * MIN)
    assert w.position(A) is not None and w.position(B) is not None
    assert not w.lines("⏭ 跳过") and all("exposure" not in r for r in w.records)
    ex = w.agent.status()["exposure"]
    assert ex["open_positions"] == 2 and ex["refusals"] == 0
    w.close()


def test_the_total_risk_cap_refuses_an_entry_that_would_put_more_than_the_cap_at_risk(tmp_path):
    # full stake (2 % of equity per trade): A's position (its size capped at 100 % of equity in
    # notional) risks about 1.5 % at its stop, and B's 2 % budget would make about 3.5 %: over
    # a 3 % cap, within a 4 % one
    full = {**NO_CAPS, "phase_risk_scale": (1.0, 1.0, 1.0)}
    w = TwoSymbolWorld(tmp_path, FLAT, FLAT, **{**full, "max_total_risk_percent": 3.0})
    _long(w)
    w.run_to(T0 + 62 * MIN)
    assert w.position(A) is not None and w.position(B) is None
    (line,) = w.lines("⏭ 跳过")
    assert "总风险上限" in line["message_zh"] and "超过上限 3%" in line["message_zh"]
    assert "the total-risk cap, open risk 1.5" in line["message_en"] and "plus this trade's 2.00 %" in line["message_en"]
    assert "over the cap of 3 %" in line["message_en"]
    ex = w.agent.status()["exposure"]
    assert 1.4 < ex["open_risk_percent"] < 1.7 and ex["max_total_risk_percent"] == 3.0
    assert ex["refusals_by_rule"]["max_total_risk"] == 1
    w.close()
    w = TwoSymbolWorld(tmp_path / "b", FLAT, FLAT, **{**full, "max_total_risk_percent": 4.0})
    _long(w)
    w.run_to(T0 + 62 * MIN)
    assert w.position(A) is not None and w.position(B) is not None
    assert 2.8 < w.agent.status()["exposure"]["open_risk_percent"] < 3.4
    w.close()


def _correlated(seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.01, 400)
    return {A: closes_from_returns(common + rng.normal(0, 0.002, 400)),
            B: closes_from_returns(common + rng.normal(0, 0.002, 400), p0=50.0)}


def test_the_correlation_cap_refuses_the_same_side_in_a_correlated_symbol(tmp_path):
    closes = _correlated()
    want = np.corrcoef(np.diff(np.log(closes[A][1]))[-384:], np.diff(np.log(closes[B][1]))[-384:])[0, 1]
    assert want > 0.9
    w = TwoSymbolWorld(tmp_path, FLAT, FLAT, closes=closes, **{**NO_CAPS, "max_correlation": 0.8})
    _long(w)
    w.run_to(T0 + 62 * MIN)
    assert w.position(A) is not None and w.position(B) is None
    (line,) = w.lines("⏭ 跳过")
    assert f"15m returns correlate {want:+.2f} over 384 candles (cap 0.8)" in line["message_en"]
    assert "相关性上限" in line["message_zh"] and "同方向" in line["message_zh"]
    (rec,) = [r for r in w.records if "exposure" in r]
    assert rec["exposure"]["details"]["correlation"] == pytest.approx(want, abs=1e-12)
    w.close()


def test_the_opposite_side_of_a_correlated_symbol_is_allowed_as_a_hedge(tmp_path):
    w = TwoSymbolWorld(tmp_path, FLAT, FLAT, closes=_correlated(), **{**NO_CAPS, "max_correlation": 0.8})
    _long(w, A)
    w.scripts[B].short = 60.0
    w.scripts[B].resistance, w.scripts[B].support = 100.5, 95.0     # stop 101, target 95
    w.run_to(T0 + 62 * MIN)
    assert w.position(A).side == "LONG" and w.position(B).side == "SHORT"
    assert not w.lines("⏭ 跳过")
    w.close()


def test_too_few_shared_candles_say_so_once_and_do_not_refuse(tmp_path):
    closes = _correlated()
    closes[B] = (closes[B][0][-51:], closes[B][1][-51:])        # 50 returns < 96
    w = TwoSymbolWorld(tmp_path, FLAT, FLAT, closes=closes, **{**NO_CAPS, "max_correlation": 0.8})
    _long(w)
    w.run_to(T0 + 62 * MIN)
    assert w.position(A) is not None and w.position(B) is not None
    (note,) = w.lines("相关性未知")
    assert note["symbol"] == B
    assert "only 50 closed 15m candle returns shared with BTCUSDT (at least 96 needed)" in note["message_en"]
    w.close()


# ------------------------------------------------------------------ what the helper counts
def test_positions_count_agent_positions_at_their_stop_and_entries_under_way_not_manual_ones(tmp_path):
    from types import SimpleNamespace

    from rl.agent.exposure import AccountExposure
    from rl.execution.position import PositionState
    from rl.knowledge.store import KnowledgeStore
    from rl.risk.exposure import ExposureConfig

    store = KnowledgeStore(tmp_path / "a.db")
    store.set_state("intent:CUSDT", {"side": "SHORT", "plan": {"risk": 42.0}}, 1)
    store.set_state("intent:DUSDT", {"side": "LONG", "plan": {"risk": 7.0}}, 1)

    def slot(state=None, resting=False, pending=False):
        return SimpleNamespace(analyzer=None, state=state, resting=resting, pending=pending)

    mine = PositionState("AUSDT", "LONG", 100.0, 2.0, 2.0, 98.0, 98.0)
    manual = PositionState("BUSDT", "SHORT", 50.0, 1.0, 1.0, 0.0, 0.0, manual=True)
    ex = AccountExposure(ExposureConfig(), store, taker_fee=0.0005)
    got = ex.positions({"AUSDT": slot(mine), "BUSDT": slot(manual), "CUSDT": slot(resting=True),
                        "DUSDT": slot(pending=True), "EUSDT": slot()})
    assert [(p.symbol, p.side) for p in got] == [("AUSDT", "LONG"), ("CUSDT", "SHORT"), ("DUSDT", "LONG")]
    assert got[0].risk == pytest.approx(2 * 2.0 + 0.0005 * 98.0 * 2) and got[1].risk == 42.0
    # alone: nothing read (the equity reader would raise), nothing refused
    refusal, notes = ex.check("AUSDT", "LONG", {"AUSDT": slot()}, 2.0, lambda: 1 / 0, 0)
    assert (refusal, notes) == (None, [])
    store.close()


def test_the_real_analyzer_hands_out_its_closed_15m_candles():
    from rl.analysis.analyzer import IncrementalAnalyzer

    an = IncrementalAnalyzer(A)
    assert an.closed_candles("15m") is None
    for i in range(3):
        an.push_candle("15m", T0 + i * 15 * MIN, 1.0, 2.0, 0.5, 1.5 + i, 10.0)
    b = an.closed_candles("15m")
    assert list(b.t) == [T0, T0 + 15 * MIN, T0 + 30 * MIN] and list(b.c) == [1.5, 2.5, 3.5]
