from __future__ import annotations

import pytest

from rl.execution.actions import CloseAll, MoveStop, PartialClose
from rl.execution.port import PositionSnapshot, StopOrderInfo
from rl.execution.position import PositionState, Reconciliation, reconcile
from rl.strategy.exits import breakeven_stop, evaluate_exit
from rl.strategy.params import ExitParams


def long_state(**kw):
    d = dict(symbol="BTCUSDT", side="LONG", entry_price=100.0, qty=1.0, initial_qty=1.0,
             stop=98.0, initial_stop=98.0, target=110.0)
    d.update(kw)
    return PositionState(**d)


def test_nothing_before_1r():
    assert evaluate_exit(long_state(), 101.0, 101.5, 100.5, atr=0.5) == []


def test_half_at_1r_then_breakeven_plus_fees():
    acts = evaluate_exit(long_state(), 102.1, 102.2, 101.0, atr=0.5, step=0.001,
                         rules=ExitParams(trail_atr=10))
    assert acts[0] == PartialClose(0.5, acts[0].reason) and "1R" in acts[0].reason
    be = breakeven_stop(long_state(), 0.0005)
    assert be == pytest.approx(100.1)
    assert isinstance(acts[1], MoveStop) and acts[1].new_stop == pytest.approx(be)


def test_trailing_after_partial_only_moves_in_favour():
    s = long_state(qty=0.5, stop=100.1, partial_exits=[{"qty": 0.5}], best_price=104.0)
    acts = evaluate_exit(s, 105.0, 106.0, 104.5, atr=1.0, rules=ExitParams(trail_atr=2.0))
    assert acts == [MoveStop(104.0, acts[0].reason)] and "ATR" in acts[0].reason
    s.stop = 104.5
    assert evaluate_exit(s, 105.0, 106.0, 104.5, atr=1.0) == []


def test_target_and_opposite_signal_close_all_with_reason():
    a = evaluate_exit(long_state(), 109.0, 110.5, 108.0, atr=1.0)
    assert a == [CloseAll("target 110 reached")]
    b = evaluate_exit(long_state(), 100.5, 101.0, 100.0, atr=1.0, opposite_score=80)
    assert isinstance(b[0], CloseAll) and "opposite" in b[0].reason


def test_short_mirror():
    s = long_state(side="SHORT", stop=102.0, initial_stop=102.0, target=90.0)
    acts = evaluate_exit(s, 97.9, 99.0, 97.8, atr=0.1, rules=ExitParams(trail_atr=50))
    assert isinstance(acts[0], PartialClose)
    assert acts[1].new_stop == pytest.approx(99.9)


def test_position_state_roundtrip_and_reconcile():
    s = long_state(stop_client_algo_id="s1", trade_id=3)
    assert PositionState.from_dict(s.to_dict()) == s
    snap = PositionSnapshot("BTCUSDT", 1.0, 100.0, 100.0, 0.0, 90.0, 10, 10.0)
    stop = StopOrderInfo("BTCUSDT", "9", "s1", "SELL", "STOP_MARKET", 98.0, 1.0, False, "NEW")
    assert reconcile(s, snap, [stop]) == Reconciliation()        # nothing to do, nothing to say
    r = reconcile(s, snap, [])
    assert r.place_stop and not r.adopt
    r = reconcile(s, None, [stop])
    assert r.drop and r.cancel_stops == ("s1",)
    r = reconcile(None, snap, [])
    assert r.adopt and r.place_stop
    half = PositionSnapshot("BTCUSDT", 0.5, 100.0, 100.0, 0.0, 90.0, 10, 5.0)
    assert reconcile(s, half, [stop]).new_qty == 0.5


def test_stop_moves_the_tick_grid_cannot_place_tighter_are_left_out():
    """A trail a fraction of a tick above a live stop rounds (down, as the router places a
    long stop) back onto it: no move. A whole tick higher is a move; without a live stop,
    or without the grid, every move stays."""
    from rl.paper.rules import default_filters
    f = default_filters("BTCUSDT", 108.0)
    assert float(f.tick_size) == pytest.approx(0.001)

    def acts(best, **kw):
        st = long_state(stop=105.0, partial_exits=[{"qty": 0.5}], best_price=best, **kw)
        return evaluate_exit(st, 108.0, best, 107.9, atr=1.5, round_stop=f.round_price)

    assert acts(108.0004, stop_client_algo_id="ags-1") == []                  # trail 105.0004
    assert [a.new_stop for a in acts(108.2, stop_client_algo_id="ags-1")] == [pytest.approx(105.2)]
    assert [type(a) for a in acts(108.0004)] == [MoveStop]                     # no live stop
    st = long_state(stop=105.0, partial_exits=[{"qty": 0.5}], best_price=108.0004, stop_client_algo_id="ags-1")
    assert [type(a) for a in evaluate_exit(st, 108.0, 108.0004, 107.9, atr=1.5)] == [MoveStop]   # no grid


def test_resting_take_profits_are_not_closed_twice_and_absent_ones_fall_back_to_market():
    rules = ExitParams(trail_atr=10)
    # 1R reached with the partial resting: no PartialClose, the break-even move stays
    acts = evaluate_exit(long_state(), 102.1, 102.2, 101.0, atr=0.5, step=0.001, rules=rules,
                         resting_partial=True)
    assert [type(a) for a in acts] == [MoveStop]
    # the target reached with the target resting: no CloseAll (the order closes it)
    s = long_state(qty=0.5, stop=100.1, partial_exits=[{"qty": 0.5}], breakeven_done=True)
    assert not any(isinstance(a, CloseAll) for a in
                   evaluate_exit(s, 110.0, 110.5, 109.0, atr=0.5, rules=rules, resting_target=True))
    # without the resting order (refused at placement, -5022): the market exit as before
    assert isinstance(evaluate_exit(s, 110.0, 110.5, 109.0, atr=0.5, rules=rules)[0], CloseAll)
    assert isinstance(evaluate_exit(long_state(), 102.1, 102.2, 101.0, atr=0.5, step=0.001,
                                    rules=rules)[0], PartialClose)
