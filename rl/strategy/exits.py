"""Exit rules for an open position (pure): what to do now, and why.

Rules, in priority order (the numbers are `ExitParams`, defaults in brackets):
1. a strong opposite signal (`opposite_score_exit`, 70) closes everything (the reason to
   hold is gone);
2. the target reached closes everything;
3. at `partial_at_r` (1R) take `partial_fraction` (half) off and, from then on, the stop goes
   to break-even plus the taker fees of both legs, so the trade can no longer lose;
4. after that the rest trails `trail_atr` (2) ATRs behind the best price seen.
A stop only ever moves in the position's favour. With take-profits resting on the exchange
(TAKE_PROFIT_ORDER=maker: `resting_target` / `resting_partial`) rules 2 and 3 do not close
anything themselves - the resting order does, when the price trades through it; only the
stop move of rule 3 stays. Without its resting order (refused with -5022: the price was already
through) a rule closes at market as before. Every action carries its reason in English
(`reason`, which `exit_kind` maps to the stored exit key) and in Chinese
(`reason_zh`, for the run log and the dashboard's Chinese view).
"""
from __future__ import annotations

import math
from collections.abc import Callable

from rl.execution.actions import CloseAll, ExitAction, MoveStop, PartialClose, fee_clear_price
from rl.execution.position import PositionState
from rl.strategy.params import ExitParams


def breakeven_stop(state: PositionState, fee_rate: float) -> float:
    """The stop price at which closing the rest pays back entry and both fees."""
    return fee_clear_price(state.entry_price, state.sign, fee_rate)


def _floor(qty: float, step: float) -> float:
    if step <= 0:
        return qty
    return math.floor(qty / step + 1e-9) * step


def holding_quietly(state: PositionState, high: float, low: float, opposite_score: float,
                    rules: ExitParams = ExitParams()) -> bool:
    """True when no rule can act on this bar: the opposite score is below its exit level, the
    target is not reached, and the position is short of `partial_at_r` with nothing taken off
    and the stop not yet at break-even. Most bars of a trade are such bars: `evaluate_exit`
    returns [] for them, and the agent asks this first to skip the rest of its exit work."""
    if opposite_score >= rules.opposite_score_exit or state.partial_exits or state.breakeven_done:
        return False
    long = state.side == "LONG"
    favourable = high if long else low
    sign = 1.0 if long else -1.0
    target = state.target
    if target is not None and (favourable - target) * sign >= 0:
        return False
    return _reached_r(state, favourable, sign) < rules.partial_at_r


def _reached_r(state: PositionState, favourable: float, sign: float) -> float:
    risk = abs(state.entry_price - state.initial_stop)           # = state.r_multiple(favourable)
    return (favourable - state.entry_price) * sign / risk if risk > 0 else 0.0


def evaluate_exit(state: PositionState, price: float, high: float, low: float, atr: float,
                  opposite_score: float = 0.0, rules: ExitParams = ExitParams(),
                  step: float = 0.0, min_qty: float = 0.0,
                  round_stop: Callable[[float, str], float] | None = None,
                  taker_fee: float = 0.0005, resting_target: bool = False,
                  resting_partial: bool = False) -> list[ExitAction]:
    """Actions for this bar/tick. `step`/`min_qty` keep partial sizes tradeable; `taker_fee`
    (per leg) is what the break-even stop pays back. `resting_target`/`resting_partial`: a
    take-profit order rests at that level on the exchange, so no CloseAll/PartialClose for it.

    `round_stop(price, "down"|"up")`: the price grid stops are placed on (the symbol's tick;
    `SymbolFilters.round_price`). With it, a stop move that, so rounded, would not tighten a
    live stop is left out: a trailing stop a fraction of a tick further would otherwise
    replace the stop with an identical one (an Algo order, a cancel, a saved position and a
    log line) on bar after bar."""
    if price <= 0 or high < low:
        raise ValueError(f"price/high/low: need price > 0 and high >= low, got {price}/{high}/{low}")
    if atr < 0 or atr != atr:
        raise ValueError(f"atr: must be >= 0, got {atr!r}")
    if holding_quietly(state, high, low, opposite_score, rules):
        return []          # most bars of a trade: before 1R nothing below can act
    long = state.side == "LONG"
    sign = 1.0 if long else -1.0                      # = state.sign
    if opposite_score >= rules.opposite_score_exit:
        return [CloseAll(f"strong opposite signal: score {opposite_score:.0f} >= "
                         f"{rules.opposite_score_exit:.0f}",
                         f"强烈反向信号：评分 {opposite_score:.0f} ≥ {rules.opposite_score_exit:.0f}")]
    favourable = high if long else low
    target = state.target
    be = breakeven_stop(state, taker_fee)
    # A market take-profit fills near `price`, not at the bar's best: it fires only while that
    # price still pays both fees, so an exit labelled take-profit never loses money. Below
    # that the trade is held (the stop protects it) and the rules below still apply.
    pays = (price - be) * sign > 0
    if target is not None and (favourable - target) * sign >= 0 and not resting_target and pays:
        return [CloseAll(f"target {target:g} reached", f"到达止盈价 {target:g}")]
    partial_done = bool(state.partial_exits)
    reached_r = 0.0 if partial_done else _reached_r(state, favourable, sign)
    actions: list[ExitAction] = []
    best = max(state.best_price, high) if long else min(state.best_price, low)
    stop = state.stop
    if not partial_done and reached_r >= rules.partial_at_r:
        qty = _floor(state.qty * rules.partial_fraction, step)
        rest = state.qty - qty
        if qty >= max(min_qty, 1e-12) and rest >= max(min_qty, 1e-12) and not resting_partial and pays:
            actions.append(PartialClose(qty, f"partial take-profit: {rules.partial_fraction:.0%} "
                                             f"at {rules.partial_at_r:g}R",
                                        f"分批止盈：在 {rules.partial_at_r:g}R 平掉 {rules.partial_fraction:.0%}"))
        if (be - stop) * sign > 0 and pays:
            actions.append(MoveStop(be, f"stop to break-even + fees after {rules.partial_at_r:g}R",
                                    f"达到 {rules.partial_at_r:g}R 后止损移至保本价（含手续费）"))
            stop = be
    if partial_done or state.breakeven_done or actions:
        trail = best - sign * rules.trail_atr * atr
        if atr > 0 and (trail - stop) * sign > 0 and (price - trail) * sign > 0:
            actions = [a for a in actions if not isinstance(a, MoveStop)]
            actions.append(MoveStop(trail, f"ATR trailing stop: {rules.trail_atr:g} ATR "
                                           f"behind best price {best:g}",
                                    f"ATR 移动止损：距最优价 {best:g} 相差 {rules.trail_atr:g} 倍 ATR"))
    if round_stop is not None and state.stop_client_algo_id:
        mode = "down" if long else "up"              # as the router places a stop
        actions = [a for a in actions if not isinstance(a, MoveStop)
                   or (round_stop(a.new_stop, mode) - state.stop) * sign > 0]
    return actions
