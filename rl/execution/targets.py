"""TargetKeeper: take-profits resting on the exchange as reduce-only maker limits
(TAKE_PROFIT_ORDER=maker).

With `market` take-profits (the default) the exit rules close at the target, and take the
partial at `partial_at_r`, with a reduce-only MARKET order on the bar that reaches the level:
the taker fee on every winning exit. With `maker` the router puts reduce-only post-only LIMIT
orders (timeInForce GTX: Binance accepts reduceOnly with GTX on LIMIT orders) at those prices as
soon as the position is open, so a winning exit pays the maker fee:

- the partial at entry ± `partial_at_r` R for `partial_fraction` of the size, and the target for
  the rest (the whole size when the target comes first or there is no partial);
- a placement refused with -5022 (post-only would take: the price is already through) is not
  retried: the exit rules fall back to today's MARKET exit on that bar;
- each order is remembered in `PositionState.take_profits` (saved with the trade) by its client
  id, prefixed `<id_prefix>t`, so a restart finds it; after a restart the keeper lists the open
  orders once and cancels those of ours the position does not know (they were sent just before
  a kill, their place was never saved) - the levels are placed again;
- `take_fills` turns what filled into exits of the position (pnl, fees, partial exits) and
  resizes the stop; the router cancels the rest when the position closes in another way (a stop,
  a market exit) and resizes the target after a market partial.

In the paper exchange and the backtest a resting post-only order fills only when a later 1m bar
trades strictly through its price, at the maker fee (rl/paper/matching.py).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from client import BinanceError, OrderRejected, UnknownOrderStatus
from rl.execution.actions import fee_clear_price
from rl.execution.outcomes import EPS, CloseOutcome
from rl.execution.port import POST_ONLY_REJECTED, ExchangePort, OrderResult, StopOrderInfo
from rl.execution.position import PositionState

log = logging.getLogger(__name__)
TAKE_PROFIT_ORDERS = ("market", "maker")
PARTIAL, TARGET = "partial", "target"
RESTING, DECLINED, DONE, GONE = "resting", "declined", "done", "gone"
# the order book's purpose of each kind: the reconciler maps it to the exit's kind
PURPOSE = {PARTIAL: "partial_exit", TARGET: "take_profit"}
_KIND_ZH = {PARTIAL: "分批止盈", TARGET: "止盈"}


@dataclass(frozen=True)
class TargetLevel:
    kind: str               # PARTIAL | TARGET
    price: float            # on the tick, rounded to the passive side
    qty: float


@dataclass
class TargetFills:
    """What the resting take-profits did since the last look."""

    closed: bool = False                  # the position is gone through them
    outcomes: list[CloseOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    notes_zh: list[str] = field(default_factory=list)


def _floor(qty: float, step: float) -> float:
    return math.floor(qty / step + 1e-9) * step if step > 0 else qty


class TargetKeeper:
    def __init__(self, exchange: ExchangePort,
                 record: Callable[[OrderResult | StopOrderInfo, str, int | None], None],
                 new_cid: Callable[[str], str], id_prefix: str,
                 fees: Callable[[OrderResult, int | None], float], fee_rate: float = 0.0005) -> None:
        self.exchange = exchange
        # the per-leg rate a take-profit level must clear (the taker rate: no leg pays more), so
        # no order placed as a take-profit sits inside the round-trip fees of the actual fill
        self.fee_rate = float(fee_rate)
        self._record = record
        self._cid = new_cid
        self.prefix = f"{id_prefix}t"      # every take-profit's client id starts so
        self._fees = fees
        self._checked: set[str] = set()    # symbols whose open orders were looked through

    # ------------------------------------------------------------------ queries
    @staticmethod
    def resting(state: PositionState, kind: str) -> bool:
        """Does a take-profit of `kind` rest for `state` (so the exit rules must not close it)?"""
        return any(t["kind"] == kind and t["status"] == RESTING for t in state.take_profits)

    def levels(self, state: PositionState, partial_at_r: float, partial_fraction: float) -> list[TargetLevel]:
        """The take-profits `state` should have: the partial (unless taken, or the stop already
        at break-even) and the target for the rest; sizes on the LIMIT step. A level inside the
        round-trip fees of the actual entry (a fill worse than planned, a tiny R) is moved out
        to the first tick that pays them: a take-profit order never locks in a loss."""
        f = self.exchange.filters(state.symbol)
        step, min_qty = float(f.step_size), float(f.min_qty)
        mode = "up" if state.side == "LONG" else "down"       # never cheaper than the level
        sign = state.sign
        out: list[TargetLevel] = []
        rest = state.qty
        risk = state.risk_per_unit
        floor = f.round_price(fee_clear_price(state.entry_price, sign, self.fee_rate), mode)

        def clear(px: float) -> float:
            return px if (px - floor) * sign > 0 else f.round_price(floor + sign * float(f.tick_size), mode)

        if not state.partial_exits and not state.breakeven_done and risk > 0 and partial_fraction > 0:
            px = clear(f.round_price(state.entry_price + sign * partial_at_r * risk, mode))
            before_target = state.target is None or (state.target - px) * sign > 0
            qty = _floor(state.qty * partial_fraction, step)
            if before_target and qty >= max(min_qty, EPS) and state.qty - qty >= max(min_qty, EPS):
                out.append(TargetLevel(PARTIAL, px, qty))
                rest = round(state.qty - qty, 12)
        if state.target is not None and state.target > 0:
            out.append(TargetLevel(TARGET, clear(f.round_price(state.target, mode)), rest))
        return out

    # ------------------------------------------------------------------ placing
    def place(self, state: PositionState, partial_at_r: float,
              partial_fraction: float) -> list[tuple[str, str]]:
        """Put on each take-profit `state` lacks (a kind refused with -5022 stays refused);
        returns what changed as (English, Chinese) notes (empty: nothing), for the caller to
        save the position and log."""
        changed: list[tuple[str, str]] = []
        if state.symbol not in self._checked:
            changed += self._sweep_unknown(state)
        have = {t["kind"] for t in state.take_profits}
        for lv in self.levels(state, partial_at_r, partial_fraction):
            if lv.kind in have:
                continue
            note = self._place(state, lv)
            if note is not None:
                changed.append(note)
        return changed

    def _place(self, state: PositionState, lv: TargetLevel) -> tuple[str, str] | None:
        cid = self._cid("t")
        entry = {"kind": lv.kind, "client_order_id": cid, "price": lv.price, "qty": lv.qty,
                 "filled": 0.0, "avg": 0.0, "fees": 0.0, "status": RESTING,
                 "placed_ms": 0}
        try:
            order = self.exchange.place_order(state.symbol, state.close_side, "LIMIT", lv.qty, lv.price,
                                              "GTX", reduce_only=True, client_order_id=cid)
        except UnknownOrderStatus as exc:
            # it may rest: remembered by its id, found out (or found gone) by take_fills
            log.warning("take-profit %s outcome unknown: %s", cid, exc)
            state.take_profits = [*state.take_profits, entry]
            return (f"{lv.kind} take-profit {cid} sent, outcome unknown",
                    f"{_KIND_ZH[lv.kind]}挂单 {cid} 已发送，结果未知")
        except OrderRejected as exc:
            if exc.code != POST_ONLY_REJECTED:
                log.warning("take-profit %s at %g refused: %s", lv.kind, lv.price, exc)
            # -5022: the price is already through the level; another refusal (a size the
            # exchange will not take): either way no resting order, the market exit stands in
            state.take_profits = [*state.take_profits, {**entry, "client_order_id": None, "status": DECLINED,
                                                        "code": exc.code}]
            return (f"{lv.kind} take-profit at {lv.price:g} refused ({exc.code}): market exit instead",
                    f"{_KIND_ZH[lv.kind]}挂单 {lv.price:g} 被拒（{exc.code}）：改为市价平仓")
        except BinanceError as exc:           # not placed: tried again on the next bar
            log.warning("take-profit %s at %g not placed: %s", lv.kind, lv.price, exc)
            return None
        entry["placed_ms"] = order.update_time_ms
        state.take_profits = [*state.take_profits, entry]
        self._record(order, PURPOSE[lv.kind], state.trade_id)
        return (f"{lv.kind} take-profit resting at {lv.price:g} for {lv.qty:g}",
                f"{_KIND_ZH[lv.kind]}挂单在 {lv.price:g} 等待成交，数量 {lv.qty:g}")

    def _sweep_unknown(self, state: PositionState) -> list[tuple[str, str]]:
        """Once per symbol and process: cancel our resting take-profits `state` does not know."""
        try:
            listed = self.exchange.open_orders(state.symbol)
        except BinanceError as exc:
            log.warning("listing open orders of %s failed: %s", state.symbol, exc)
            return []
        self._checked.add(state.symbol)
        known = {t["client_order_id"] for t in state.take_profits}
        gone = []
        for o in listed:
            if o.reduce_only and o.client_order_id.startswith(self.prefix) and o.client_order_id not in known:
                if self._cancel(state.symbol, o.client_order_id):
                    gone.append((f"stray take-profit {o.client_order_id} cancelled",
                                 f"已撤销未记录的止盈挂单 {o.client_order_id}"))
        return gone

    # ------------------------------------------------------------------ fills
    def take_fills(self, state: PositionState) -> TargetFills:
        """Turn what the resting take-profits filled since the last look into exits of `state`
        (qty, pnl, fees, partial exits, reasons); resize the target after a partial. The caller
        resizes the stop (and cancels everything when `closed`)."""
        out = TargetFills()
        entries = list(state.take_profits)
        changed = False
        for i, t in enumerate(entries):
            if t["status"] != RESTING:
                continue
            try:
                order = self.exchange.get_order(state.symbol, t["client_order_id"])
            except BinanceError:
                continue                           # asked again next time
            if order is None:
                entries[i] = {**t, "status": GONE}
                changed = True
                continue
            delta = order.executed_qty - t["filled"]
            if delta > EPS and state.qty > EPS:
                qty = min(delta, state.qty)
                px = (order.avg_price * order.executed_qty - t["avg"] * t["filled"]) / delta
                fees_total = self._fees(order, t["placed_ms"] - 60_000 if t["placed_ms"] else None)
                fee = max(0.0, fees_total - t["fees"])
                pnl = (px - state.entry_price) * qty * state.sign
                state.qty = round(state.qty - qty, 12)
                state.realized_pnl += pnl
                state.fees += fee
                if t["kind"] == TARGET:
                    reason = f"target {t['price']:g} reached: resting take-profit filled"
                    reason_zh = f"到达止盈价 {t['price']:g}：挂单止盈已成交"
                else:
                    reason = f"partial take-profit: resting limit at {t['price']:g} filled"
                    reason_zh = f"分批止盈：{t['price']:g} 的挂单止盈已成交"
                state.exit_reasons.append(reason)
                state.exit_reasons_zh.append(reason_zh)
                if state.qty > EPS:
                    state.partial_exits = [*state.partial_exits, {
                        "qty": qty, "price": px, "reason": reason, "reason_zh": reason_zh,
                        "time_ms": order.update_time_ms, "pnl": pnl}]
                out.outcomes.append(CloseOutcome(state.qty <= EPS, qty, px, pnl, fee, reason, order, reason_zh))
                out.notes.append(f"{reason}: {qty:g} @ {px:g}")
                out.notes_zh.append(f"{reason_zh}：{qty:g} @ {px:g}")
                t = {**t, "filled": order.executed_qty, "avg": order.avg_price, "fees": fees_total}
                self._record(order, PURPOSE[t["kind"]], state.trade_id)
                changed = True
            if not order.is_open:
                t = {**t, "status": DONE if order.executed_qty > EPS else GONE}
                changed = True
            entries[i] = t
        if changed:
            state.take_profits = entries
        out.closed = state.qty <= EPS
        if out.outcomes and not out.closed:
            self.fit(state)
        return out

    # ------------------------------------------------------------------ resizing, cancelling
    def fit(self, state: PositionState) -> None:
        """After the position shrank: the resting target covers what the resting partial does
        not (cancel, then place again at the same price; a take-profit is not protection, so no
        overlap is needed). A partial larger than what is left is cancelled."""
        entries = list(state.take_profits)
        part = next((t for t in entries if t["kind"] == PARTIAL and t["status"] == RESTING), None)
        left = state.qty
        if part is not None and part["qty"] - part["filled"] > left - EPS:
            if self._cancel(state.symbol, part["client_order_id"]):
                entries = [t if t is not part else {**t, "status": GONE} for t in entries]
                part = None
        if part is not None:
            left = round(left - (part["qty"] - part["filled"]), 12)
        tgt = next((t for t in entries if t["kind"] == TARGET and t["status"] == RESTING), None)
        if tgt is not None and abs((tgt["qty"] - tgt["filled"]) - left) > EPS:
            if not self._cancel(state.symbol, tgt["client_order_id"]):
                return
            entries = [t for t in entries if t is not tgt]
            state.take_profits = entries
            if left > EPS:
                self._place(state, TargetLevel(TARGET, tgt["price"], left))
            return
        state.take_profits = entries

    def cancel_all(self, state: PositionState) -> None:
        """The position closed another way: cancel every take-profit of it still resting."""
        if not state.take_profits:
            return
        entries = []
        for t in state.take_profits:
            if t["status"] == RESTING and self._cancel(state.symbol, t["client_order_id"]):
                t = {**t, "status": GONE}
            entries.append(t)
        state.take_profits = entries

    def _cancel(self, symbol: str, cid: str) -> bool:
        """Cancel one take-profit; never raises. A failure is logged: a reduce-only order cannot
        open a position, and the exchange drops it once the position is flat."""
        try:
            self.exchange.cancel_order(symbol, cid)
        except BinanceError as exc:
            log.warning("cancel take-profit %s failed: %s", cid, exc)
            return False
        return True
