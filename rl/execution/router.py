"""OrderRouter: turns decisions into exchange orders, safely. The one face the agent and the
backtest see; the work is done by one module per job:

- rl.execution.entries: an entry's life (IOC, maker, unknown outcome) up to the protected
  position; rl.execution.unknown_entry: how an unknown outcome is found out on a schedule;
- rl.execution.stops: placing, moving and cancelling protective stops (a failed cancel is
  retried, never fatal);
- here: exits (`close`, `apply`) and the per-cycle `sync` with the exchange.

Right after a fill a reduce-only STOP_MARKET goes to the exchange (Binance: Algo Order API), so
a crashed agent still has a stop. Moving it = place the new one, then cancel the old one: there
is never a moment without a stop. Closing cancels it. Every order carries a client id generated
BEFORE sending; an unknown outcome is looked up by that id, never re-sent blindly. A position
may stay unprotected for at most `max_unprotected_cycles` calls of `sync`; after that the
router closes it rather than hold an unprotected position. Each order is reported to an
`OrderRecorder` (the knowledge store's order book) with its purpose.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from client import BinanceError, RateLimitError, new_client_order_id
from rl.execution.actions import CloseAll, ExitAction, MoveStop, PartialClose, reason_zh_for
from rl.execution.entries import EntryDesk, order_fees, take_fees
from rl.execution.outcomes import (
    CloseOutcome,
    EntryOutcome,
    OrderRecorder,
    RestingEntry,
    SyncOutcome,
    error_detail,
    sequential_ids,
)
from rl.execution.port import ExchangePort, OrderResult, StopOrderInfo
from rl.execution.position import PositionState, reconcile
from rl.execution.stops import StopKeeper
from rl.execution.targets import TargetKeeper
from rl.execution.unknown_entry import PendingEntry

__all__ = ["CloseOutcome", "EntryOutcome", "OrderRecorder", "OrderRouter", "PendingEntry",
           "RestingEntry", "SyncOutcome", "error_detail", "sequential_ids"]

log = logging.getLogger(__name__)


class OrderRouter:
    def __init__(self, exchange: ExchangePort, recorder: OrderRecorder | None = None, *,
                 ioc_offset_bps: float = 5.0, id_prefix: str = "ag",
                 max_unprotected_cycles: int = 1, adopt_stop_pct: float = 0.02,
                 now_ms: Callable[[], int] | None = None,
                 id_factory: Callable[[str], str] | None = None) -> None:
        if not 0 <= ioc_offset_bps <= 500:
            raise ValueError(f"ioc_offset_bps: must be 0..500, got {ioc_offset_bps!r}")
        self.exchange = exchange
        self.recorder = recorder
        self.ioc_offset_bps = float(ioc_offset_bps)
        self.id_prefix = id_prefix
        self.max_unprotected_cycles = int(max_unprotected_cycles)
        self.adopt_stop_pct = float(adopt_stop_pct)
        # the clock of the unknown-outcome lookups and of adoption; give one (a fixed clock
        # never makes a later lookup due)
        self._now = now_ms or (lambda: 0)
        # live: random ids (unique across restarts); backtests: sequential_ids() so two runs
        # write the same orders and thought chains byte for byte
        self._new_id = id_factory or new_client_order_id
        self.stops = StopKeeper(exchange, self._record, self._cid)
        self.targets = TargetKeeper(exchange, self._record, self._cid, id_prefix,
                                    # an unreadable take-profit fee counts 0 for now: the late-fee
                                    # path (rl/agent/late_fees.py) covers entries and stops only
                                    lambda o, since: order_fees(exchange, o, since) or 0.0)
        self.entries = EntryDesk(exchange, self.stops, self._record, self._cid, self._now, self.close,
                                 self.ioc_offset_bps)

    # ------------------------------------------------------------------ entries (EntryDesk)
    def has_pending(self, symbol: str) -> bool:
        """Is an entry of unknown outcome in `symbol` waiting to be looked up (by `sync` or
        the next `open_position`)? No new entry is sent while it is."""
        return self.entries.pending(symbol) is not None

    def pending_entry(self, symbol: str) -> PendingEntry | None:
        """The entry of unknown outcome in `symbol` (read-only), None if there is none."""
        return self.entries.pending(symbol)

    def resting_entry(self, symbol: str) -> RestingEntry | None:
        """The maker entry resting in `symbol` (followed by `poll_entry`), None if there is none.
        No new entry is sent while one rests."""
        return self.entries.resting(symbol)

    def entry_limit(self, symbol: str, side: str, price: float) -> float:
        return self.entries.entry_limit(symbol, side, price)

    def maker_limit(self, symbol: str, side: str, price: float) -> float:
        return self.entries.maker_limit(symbol, side, price)

    def entry_client_id(self) -> str:
        """A fresh client id for an entry, for a caller that must remember it before the order
        goes out (a maker entry's intent, so that a restart finds the resting order)."""
        return self._cid("e")

    def open_position(self, symbol: str, side: str, qty: float, price: float, stop: float,
                      target: float | None = None, trade_id: int | None = None, *,
                      entry_type: str = "ioc", expires_ms: int | None = None,
                      client_order_id: str | None = None) -> EntryOutcome:
        """Send the entry: `entry_type` "ioc" (LIMIT IOC at price ± the offset; the outcome is
        the position) or "maker" (post-only LIMIT at price; the outcome says it rests, and
        `poll_entry` follows it, cancelling the rest from `expires_ms` on). Nothing is sent
        while an entry of unknown outcome is pending, or while a stale stop of an earlier
        position could not be cancelled."""
        return self.entries.open_position(symbol, side, qty, price, stop, target, trade_id,
                                          entry_type, expires_ms, client_order_id)

    def resolve_pending(self, symbol: str) -> EntryOutcome | None:
        """Look the entry of unknown outcome up when a lookup is due; None while still unknown."""
        return self.entries.resolve_pending(symbol)

    def resume_pending(self, symbol: str, side: str, client_order_id: str | None, stop: float,
                       target: float | None, sent_ms: int, *, entry_type: str = "ioc",
                       qty: float = 0.0, expires_ms: int | None = None,
                       trade_id: int | None = None) -> None:
        """After a restart: the entry sent at `sent_ms` (its id, when the intent knew it) whose
        outcome was never learnt is pending again, found out as any unknown outcome."""
        self.entries.resume_pending(PendingEntry(symbol, client_order_id, side, qty, 0.0, stop, target,
                                                 trade_id, entry_type, expires_ms, sent_ms=sent_ms))

    def resume_entry(self, symbol: str, side: str, client_order_id: str, stop: float,
                     target: float | None, expires_ms: int | None, placed_ms: int = 0,
                     trade_id: int | None = None) -> None:
        self.entries.resume_entry(symbol, side, client_order_id, stop, target, expires_ms,
                                  placed_ms, trade_id)

    def poll_entry(self, symbol: str, now_ms: int, still_valid: bool = True) -> EntryOutcome | None:
        return self.entries.poll_entry(symbol, now_ms, still_valid)

    # ------------------------------------------------------------------ helpers
    def _record(self, order: OrderResult | StopOrderInfo, purpose: str, trade_id: int | None) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.record(order, purpose, trade_id=trade_id)
        except Exception:           # recording must never stop the protective logic
            log.exception("recording %s order failed", purpose)

    def _cid(self, kind: str) -> str:
        return self._new_id(f"{self.id_prefix}{kind}")

    # ------------------------------------------------------------------ stops
    def move_stop(self, state: PositionState, new_stop: float, reason: str, reason_zh: str = "") -> bool:
        ok = self.stops.protect(state, new_stop)
        if ok == "ok":
            state.exit_reasons.append(f"stop → {state.stop:g}: {reason}")
            state.exit_reasons_zh.append(f"止损 → {state.stop:g}：{reason_zh or reason_zh_for(reason)}")
            return True
        return False

    # ------------------------------------------------------------------ exits
    def close(self, state: PositionState, qty: float | None = None, reason: str = "close",
              reason_zh: str = "") -> CloseOutcome:
        """Reduce-only MARKET exit of `qty` (all when None); the stop follows the new size.
        `reason`/`reason_zh`: why, in English and Chinese (kept with the exit)."""
        reason_zh = reason_zh or reason_zh_for(reason)
        f = self.exchange.filters(state.symbol)
        full = qty is None or qty >= state.qty
        q = state.qty if qty is None or full else f.floor_qty(qty, market=True)
        cid = self._cid("x")
        try:
            order = self.exchange.place_order(state.symbol, state.close_side, "MARKET", q,
                                              reduce_only=True, client_order_id=cid)
        except BinanceError as exc:
            return CloseOutcome(False, 0.0, 0.0, 0.0, 0.0, f"exit not done ({reason}): {exc}",
                                reason_zh=f"平仓未完成（{reason_zh}）：{error_detail(exc)}")
        self._record(order, "exit" if full else "partial_exit", state.trade_id)
        done = order.executed_qty
        fees = take_fees(state, order, order_fees(self.exchange, order))
        pnl = (order.avg_price - state.entry_price) * done * state.sign
        state.realized_pnl += pnl
        state.fees += fees
        state.qty = round(state.qty - done, 12)
        state.exit_reasons.append(reason)
        state.exit_reasons_zh.append(reason_zh)
        if done > 0 and state.qty > 1e-12:
            state.partial_exits.append({"qty": done, "price": order.avg_price, "reason": reason,
                                        "reason_zh": reason_zh, "time_ms": order.update_time_ms,
                                        "pnl": pnl})
            self.stops.protect(state, state.stop)     # resize the stop: new first, then cancel old
            if state.take_profits:
                self.targets.fit(state)               # the resting target covers the rest
        closed = state.qty <= 1e-12
        if closed:
            self.stops.cancel_all(state.symbol)
            self.targets.cancel_all(state)
        return CloseOutcome(closed, done, order.avg_price, pnl, fees, reason, order, reason_zh)

    def apply(self, state: PositionState, actions: list[ExitAction]) -> tuple[PositionState | None, list[CloseOutcome]]:
        """Carry out the exit manager's actions in order; (None, ...) once the position is closed."""
        outcomes: list[CloseOutcome] = []
        for a in actions:
            if isinstance(a, CloseAll):
                out = self.close(state, None, a.reason, a.reason_zh)
                outcomes.append(out)
                if out.closed:
                    return None, outcomes
            elif isinstance(a, PartialClose):
                out = self.close(state, a.qty, a.reason, a.reason_zh)
                outcomes.append(out)
                if out.closed:
                    return None, outcomes
            elif isinstance(a, MoveStop):
                if self.move_stop(state, a.new_stop, a.reason, a.reason_zh):
                    state.breakeven_done = True
        return state, outcomes

    # ------------------------------------------------------------------ every cycle
    def sync(self, symbol: str, state: PositionState | None) -> SyncOutcome:
        """Bring memory and exchange together; guarantee protection. Order matters: the
        protective stop is verified or placed FIRST, then the stops that protect nothing are
        cancelled one by one, each guarded (a failed cancel is retried on the next sync, never
        lets the position go unprotected). A listing of the stops that fails does not stop it
        either: a reduce-only stop is placed anyway."""
        notes: list[str] = []
        zh: list[str] = []
        entry = None
        if self.has_pending(symbol):
            entry = self.resolve_pending(symbol)
            if entry is not None:
                notes.append(entry.reason)
                zh.append(entry.reason_zh or reason_zh_for(entry.reason))
                if not entry.resting:
                    state = entry.state or state
            elif self.has_pending(symbol):
                # still unknown: a position now may be that entry's fill, to be matched to its
                # plan (its stop) by a later lookup, not adopted with a default stop
                return SyncOutcome(state, None, notes, zh)
        if self.resting_entry(symbol) is not None:
            # a maker entry rests: the position its fills make is the entry's (poll_entry)
            # until it ends, not one to adopt
            return SyncOutcome(state, None, notes, zh, entry)
        if state is not None and state.take_profits:
            try:
                tp = self.targets.take_fills(state)   # resting take-profits that filled
            except RateLimitError:
                tp = None                             # reads held back: looked at next sync
            if tp is not None:
                notes.extend(tp.notes)
                zh.extend(tp.notes_zh)
                if tp.closed:
                    self.stops.cancel_all(symbol)
                    self.targets.cancel_all(state)
                    last = tp.outcomes[-1]
                    return SyncOutcome(None, CloseOutcome(True, sum(o.qty for o in tp.outcomes), last.exit_price,
                                                          sum(o.realized_pnl for o in tp.outcomes),
                                                          sum(o.fees for o in tp.outcomes), last.reason,
                                                          last.order, last.reason_zh), notes, zh, entry)
                if tp.outcomes:
                    self.stops.protect(state, state.stop)    # the stop follows the smaller size
        try:
            pos = self.exchange.position(symbol)
        except RateLimitError as exc:
            return self._sync_unread(symbol, state, exc, notes, zh, entry)
        try:
            stops = self.exchange.open_stops(symbol)
        except BinanceError as exc:
            stops = []          # reconcile then places a stop: better two reduce-only stops than none
            if pos is not None:
                notes.append(f"listing the open stops failed ({exc}): placing a reduce-only stop anyway")
                zh.append(f"查询止损单失败（{error_detail(exc)}）：仍补挂一张只减仓止损单")
        plan = reconcile(state, pos, stops)
        notes.extend(plan.reasons)
        zh.extend(plan.reasons_zh)
        if pos is None:
            self.stops.sweep(symbol, plan.cancel_stops)
            if state is not None:
                self.targets.cancel_all(state)        # stopped out: the take-profits go too
            if plan.drop and state is not None:     # reconcile drops only a remembered position
                return SyncOutcome(None, self._closed_outside(state), notes, zh, entry)
            return SyncOutcome(None, None, notes, zh, entry)
        if plan.adopt:
            side = "LONG" if pos.amount > 0 else "SHORT"
            stop = pos.entry_price * (1 - self.adopt_stop_pct if side == "LONG" else 1 + self.adopt_stop_pct)
            state = PositionState(symbol=symbol, side=side, entry_price=pos.entry_price,
                                  qty=abs(pos.amount), initial_qty=abs(pos.amount), stop=stop,
                                  initial_stop=stop, opened_ms=self._now())
        assert state is not None                    # reconcile adopts whenever memory holds none
        if plan.new_qty is not None:
            state.qty = plan.new_qty
        ok = "ok"
        if plan.place_stop or plan.new_qty is not None:
            ok = self.stops.protect(state, state.stop)
        # the position is protected (or that failed and is handled below): now the others
        keep = state.stop_client_algo_id
        self.stops.sweep(symbol, plan.cancel_stops, keep=keep)
        return self._protected(state, ok, notes, zh, entry)

    def _sync_unread(self, symbol: str, state: PositionState | None, exc: RateLimitError,
                     notes: list[str], zh: list[str], entry: EntryOutcome | None) -> SyncOutcome:
        """sync while weighted reads are rate limited (429; the position and the open stops
        cannot be read): a remembered position whose stop is not confirmed on the exchange
        gets it from memory now. Stops carry no IP weight and go through a 429, while every
        read sent during one counts towards the IP ban (418) that would block the stops too;
        so nothing is read, the reduce-only stop is placed for the remembered size (on a
        position gone meanwhile it can only expire: reduce-only never opens one), and the
        full reconcile waits for the reads to come back. Flat, or protected: nothing to do."""
        if state is None or (state.stop_client_algo_id and state.unprotected_cycles == 0):
            return SyncOutcome(state, None, notes, zh, entry)
        notes.append(f"reads rate limited ({exc.msg}): the stop is placed from memory")
        zh.append(f"查询受限流限制（{error_detail(exc)}）：按内存中的持仓补挂止损单")
        return self._protected(state, self.stops.protect(state, state.stop), notes, zh, entry)

    def _protected(self, state: PositionState, ok: str, notes: list[str], zh: list[str],
                   entry: EntryOutcome | None) -> SyncOutcome:
        """The end of a sync once the stop placement said `ok` ("ok", "crossed" or an error):
        crossed closes now; a failure counts an unprotected cycle, and past the limit the
        position is closed for safety (reduce-only: it goes through a 429 too)."""
        if ok == "crossed":
            out = self.close(state, reason="protective stop already crossed",
                             reason_zh="价格已越过保护性止损价")
            return SyncOutcome(None if out.closed else state, out, notes, zh, entry)
        if ok != "ok":
            state.unprotected_cycles += 1
            notes.append(f"stop placement failed ({ok}); unprotected for "
                         f"{state.unprotected_cycles} cycle(s)")
            zh.append(f"止损单下单失败（{ok}）；已连续 {state.unprotected_cycles} 轮无止损保护")
            if state.unprotected_cycles > self.max_unprotected_cycles:
                out = self.close(state, reason="cannot place a protective stop: closed for safety",
                                 reason_zh="无法挂出保护性止损单：为安全起见已平仓")
                return SyncOutcome(None if out.closed else state, out, notes, zh, entry)
        return SyncOutcome(state, None, notes, zh, entry)

    def _closed_outside(self, state: PositionState) -> CloseOutcome:
        """The exchange closed the position (stop, liquidation): account for it from the fills.

        The fills since opening also hold our own partial exits; the last fills on the closing
        side that add up to the remembered size are the ones that closed it."""
        try:
            fills = [f for f in self.exchange.fills_since(state.symbol, state.opened_ms)
                     if f.side == state.close_side]
        except BinanceError:
            fills = []
        tail, need = [], state.qty
        for f in reversed(fills):
            if need <= 1e-12:
                break
            tail.append(f)
            need -= f.qty
        if tail:
            qty = sum(f.qty for f in tail)
            price = sum(f.price * f.qty for f in tail) / qty
            pnl, fees = sum(f.realized_pnl for f in tail), sum(f.commission for f in tail)
            reason = "protective stop filled on the exchange"
            reason_zh = "保护性止损单已在交易所成交"
        else:
            qty, price, fees = state.qty, state.stop, 0.0
            pnl = (price - state.entry_price) * qty * state.sign
            reason = "position closed outside the agent (no fill found; stop price assumed)"
            reason_zh = "持仓在代理之外被平掉（未找到成交记录，按止损价估算）"
        state.realized_pnl += pnl
        state.fees += fees
        state.exit_reasons.append(reason)
        state.exit_reasons_zh.append(reason_zh)
        return CloseOutcome(True, qty, price, pnl, fees, reason, reason_zh=reason_zh)
