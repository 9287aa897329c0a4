"""#17 item 4: an exit called a take-profit never lost money.

- the plan: MIN_REWARD_R must be > 0 (tests/config, tests/strategy/test_params);
- the exit rules: a market take-profit (target or partial) fires only while the price pays both
  fees; a resting take-profit level never sits inside the fees of the actual fill;
- the label: a take-profit exit that still nets a loss (a slipped fill, funding) is stored as
  "target_loss" and its summary says so;
- end to end: over a generated month, no trade or exit stored as "target"/"partial" lost money
  (before this change 1-3 of every 40 market take-profits did, see the test's seeds).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from rl.backtest.data import load_backtest_data
from rl.backtest.engine import backtest_settings, run_backtest
from rl.execution.actions import CloseAll, MoveStop, PartialClose, honest_exit_kind
from rl.execution.position import PositionState
from rl.strategy.exits import evaluate_exit
from tests.agent.test_agent_reconciler import SYM, T0, Parts, Slot, _enter
from tests.support.archives import write_archive

MIN = 60_000
FEE = 0.0005


def _long(target: float | None = 101.0) -> PositionState:
    return PositionState(symbol=SYM, side="LONG", entry_price=100.0, qty=2.0, initial_qty=2.0,
                         stop=99.0, initial_stop=99.0, target=target, opened_ms=T0)


# ------------------------------------------------------------------ the exit rules (pure)
def test_a_target_touched_but_given_back_inside_the_fees_is_not_taken_at_market() -> None:
    st = _long()
    # the bar's high reached the target, but a market order now fills near 100.05: inside the
    # round-trip fees (100 x (1 + 2 x 0.0005) = 100.1), so "take profit" would lose money
    assert evaluate_exit(st, 100.05, 101.2, 100.0, 0.5, taker_fee=FEE) == []
    acts = evaluate_exit(st, 100.5, 101.2, 100.0, 0.5, taker_fee=FEE)
    assert [type(a) for a in acts] == [CloseAll] and "target" in acts[0].reason


def test_a_partial_and_the_breakeven_move_wait_until_the_price_pays_the_fees() -> None:
    st = _long(target=None)
    # 1R (101) was reached on the high, the close is back at 100.08: no partial, no stop move
    assert evaluate_exit(st, 100.08, 101.0, 100.0, 0.5, taker_fee=FEE) == []
    acts = evaluate_exit(st, 100.6, 101.0, 100.0, 0.5, taker_fee=FEE)
    assert [type(a) for a in acts] == [PartialClose, MoveStop]


def test_the_honest_kind_only_changes_take_profits_that_lost() -> None:
    assert honest_exit_kind("target", -0.01) == "target_loss"
    assert honest_exit_kind("partial", -0.01) == "target_loss"
    assert honest_exit_kind("target", 0.0) == "target"
    assert honest_exit_kind("stop", -5.0) == "stop"


# ------------------------------------------------------------------ real parts
def test_a_take_profit_that_lost_after_fees_is_stored_and_summarised_as_a_loss(paper_world) -> None:
    exchange, store, clock = paper_world
    parts, slot = Parts(exchange, store, clock), Slot()
    st = _enter(parts, slot)
    clock.set(T0 + 5 * MIN)
    exchange.on_price(SYM, 100.05, clock.now_ms())      # +0.05 a unit, the fees cost 0.1 a unit
    new, outs = parts.router.apply(st, [CloseAll("target 100.05 reached", "到达止盈价 100.05")])
    assert new is None and outs
    for out in outs:
        parts.reconciler.record_exit(st, out, clock.now_ms())
    parts.journal.finalize(st.trade_id, clock.now_ms(), "target")
    trade = store.trade(int(st.trade_id))
    assert trade is not None and trade["net_pnl"] < 0
    assert trade["exit_reason"] == "target_loss"
    assert [e["kind"] for e in trade["exits"]] == ["target_loss"]
    chain = trade["thought_chain"]
    assert "止盈价（扣费后亏损）出场" in chain["summary_zh"]
    assert "take-profit price (a net loss after fees)" in chain["summary_en"]


def test_a_partial_that_lost_after_fees_is_not_stored_as_a_win_but_a_winning_one_is(paper_world) -> None:
    exchange, store, clock = paper_world
    parts, slot = Parts(exchange, store, clock), Slot()
    st = _enter(parts, slot)
    clock.set(T0 + 5 * MIN)
    exchange.on_price(SYM, 100.02, clock.now_ms())
    st, outs = parts.router.apply(st, [PartialClose(1.0, "partial take-profit: 50% at 1R")])
    assert st is not None
    for out in outs:
        parts.reconciler.record_exit(st, out, clock.now_ms())
    clock.set(T0 + 6 * MIN)
    exchange.on_price(SYM, 103.0, clock.now_ms())
    st, outs = parts.router.apply(st, [CloseAll("target 103 reached")])
    assert st is None
    for out in outs:
        parts.reconciler.record_exit(slot.state, out, clock.now_ms())   # type: ignore[arg-type]
    trade = store.trade(int(slot.state.trade_id))                       # type: ignore[union-attr]
    assert [e["kind"] for e in trade["exits"]] == ["target_loss", "target"]


def test_a_resting_target_inside_the_fees_of_the_fill_is_placed_beyond_them(paper_world) -> None:
    exchange, store, clock = paper_world
    parts, slot = Parts(exchange, store, clock), Slot()
    st = _enter(parts, slot, target=100.05)              # a fill that left the target in the fees
    levels = parts.router.targets.levels(st, partial_at_r=1.0, partial_fraction=0.5)
    tgt = [lv for lv in levels if lv.kind == "target"]
    assert tgt and tgt[0].price > st.entry_price * (1 + 2 * FEE)
    assert all(lv.price > st.entry_price * (1 + 2 * FEE) for lv in levels)


# ------------------------------------------------------------------ a generated month
@pytest.mark.parametrize("take_profit", ["market", "maker"])
@pytest.mark.parametrize("seed", [3, 8])
def test_over_a_month_no_exit_labelled_take_profit_lost_money(tmp_path: Path, take_profit: str, seed: int) -> None:
    src = write_archive(tmp_path, "TSTUSDT", "2024-01", 31 * 1440, "2024-01-01", seed=seed)
    data = load_backtest_data([src], "TSTUSDT", "2024-01-04", "2024-01-31")
    settings = backtest_settings("TSTUSDT", 10_000.0, {"take_profit_order": take_profit, "entry_order": "ioc",
                                                       "min_reward_r": 0.01}, base=Settings())
    trades = run_backtest(data, settings, progress=False).trades
    closed = [t for t in trades if t["exit_reason"]]
    assert sum(t["exit_reason"] == "target" for t in closed) >= 10      # the month has take-profits
    seen = 0
    for t in closed:
        if t["exit_reason"] in ("target", "partial"):
            assert t["pnl"] >= 0, t
        for e in (t["thought_chain"] or {}).get("reward", {}).get("exits", []):
            if e["kind"] in ("target", "partial"):
                seen += 1
                assert e["pnl"] - e["fee"] >= 0, (t["id"], e)
    assert seen >= 10
