"""OrderRouter: turns decisions into exchange orders, safely.

- Entries are LIMIT IOC at the current price plus `ioc_offset_bps` (the design's answer to
  slippage: pay at most that much, never chase); whatever filled is the position.
- Right after a fill a reduce-only STOP_MARKET goes to the exchange (Binance: Algo Order API),
  so a crashed agent still has a stop. Moving it = place the new one, then cancel the old one:
  there is never a moment without a stop. Closing cancels it.
- Every order carries a client id generated BEFORE sending; an unknown outcome is looked up by
  that id (client.py does it, and `sync` re-checks the exchange), never re-sent blindly.
- A position may stay unprotected for at most `max_unprotected_cycles` calls of `sync`; after
  that the router closes it rather than hold an unprotected position.
Each order is reported to an `OrderRecorder` (the knowledge store's order book) with its purpose.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from client import (BinanceError, NetworkError, OrderRejected, UnknownOrderStatus,
                    new_client_order_id)
from rl.execution.port import ExchangePort, OrderResult, StopOrderInfo
from rl.strategy.exits import CloseAll, ExitAction, MoveStop, PartialClose, reason_zh_for
from rl.execution.position import PositionState, reconcile

log = logging.getLogger(__name__)
WOULD_TRIGGER = -2021

_STATUS_ZH = {"NEW": "已挂单", "PARTIALLY_FILLED": "部分成交", "FILLED": "已成交", "CANCELED": "已撤销",
              "EXPIRED": "已过期", "REJECTED": "被拒绝", "EXPIRED_IN_MATCH": "撮合时过期"}


def error_detail(exc: BaseException) -> str:
    """The technical part of an exchange error for a Chinese text: Binance's own msg and code
    as Binance wrote them (a trader can search them), not our English wrapper."""
    msg = getattr(exc, "msg", None)
    code = getattr(exc, "code", None)
    if msg:
        return f"{msg}, code={code}" if code is not None else str(msg)
    return str(exc)


class OrderRecorder(Protocol):
    def record(self, order: OrderResult | StopOrderInfo, purpose: str,
               trade_id: int | None = None) -> None: ...


@dataclass
class EntryOutcome:
    state: PositionState | None
    order: OrderResult | None
    reason: str
    pending: bool = False          # outcome unknown: `sync`/`resolve_pending` will find out
    reason_zh: str = ""            # `reason` in Chinese (run log, Chinese dashboard)


@dataclass
class CloseOutcome:
    closed: bool                   # the whole position is gone
    qty: float                     # quantity closed now
    exit_price: float
    realized_pnl: float            # this exit, before fees
    fees: float
    reason: str
    order: OrderResult | None = None
    reason_zh: str = ""            # `reason` in Chinese


@dataclass
class SyncOutcome:
    state: PositionState | None
    closed: CloseOutcome | None = None
    notes: list[str] = field(default_factory=list)
    notes_zh: list[str] = field(default_factory=list)   # notes[i] in Chinese


def sequential_ids() -> Callable[[str], str]:
    """Deterministic client order ids (prefix-000001, ...) for simulated runs."""
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}-{next(counter):06d}"


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
        self._now = now_ms or (lambda: 0)
        # live: random ids (unique across restarts); backtests: sequential_ids() so two runs
        # write the same orders and thought chains byte for byte
        self._new_id = id_factory or new_client_order_id
        self._pending: dict[str, dict[str, Any]] = {}    # symbol -> entry whose outcome is unknown

    def has_pending(self, symbol: str) -> bool:
        """Is an entry of unknown outcome in `symbol` waiting to be looked up (by `sync` or
        the next `open_position`)? No new entry is sent while it is."""
        return symbol in self._pending

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

    def entry_limit(self, symbol: str, side: str, price: float) -> float:
        """IOC limit: price ± offset, rounded away (a buy may pay up to the offset, not more)."""
        f = self.exchange.filters(symbol)
        off = self.ioc_offset_bps / 10_000.0
        if side == "LONG":
            return f.round_price(price * (1 + off), "up")
        return f.round_price(price * (1 - off), "down")

    def _fees(self, order: OrderResult) -> float:
        if order.commission > 0 or order.executed_qty <= 0:
            return order.commission
        try:    # Binance's order answer has no commission: read it from the fills
            return sum(f.commission for f in self.exchange.fills_since(
                order.symbol, max(0, order.update_time_ms - 60_000)) if f.order_id == order.order_id)
        except BinanceError:
            return 0.0

    # ------------------------------------------------------------------ entry
    def open_position(self, symbol: str, side: str, qty: float, price: float, stop: float,
                      target: float | None = None, trade_id: int | None = None) -> EntryOutcome:
        if side not in ("LONG", "SHORT"):
            raise ValueError(f"side: must be LONG or SHORT, got {side!r}")
        if symbol in self._pending:
            resolved = self.resolve_pending(symbol)
            return resolved if resolved is not None else EntryOutcome(
                None, None, "previous entry outcome still unknown: not sending another", True,
                "上一笔入场单结果仍未知：不再发送新单")
        f = self.exchange.filters(symbol)
        qty = f.floor_qty(qty)
        limit = self.entry_limit(symbol, side, price)
        cid = self._cid("e")
        self._pending[symbol] = {"cid": cid, "side": side, "stop": stop, "target": target,
                                 "trade_id": trade_id}
        try:
            order = self.exchange.place_order(symbol, "BUY" if side == "LONG" else "SELL", "LIMIT",
                                              qty, limit, "IOC", client_order_id=cid)
        except UnknownOrderStatus as exc:
            return EntryOutcome(None, None, f"entry outcome unknown ({exc.msg}); will look up "
                                            f"{cid} before anything else", True,
                                f"入场单结果未知（{exc.msg}）；先按订单号 {cid} 查询，再做其他操作")
        except (OrderRejected, NetworkError, BinanceError) as exc:
            self._pending.pop(symbol, None)
            return EntryOutcome(None, None, f"entry not placed: {exc}",
                                reason_zh=f"入场单未能下达（{error_detail(exc)}）")
        self._pending.pop(symbol, None)
        return self._after_entry(order, side, stop, target, trade_id)

    def resolve_pending(self, symbol: str) -> EntryOutcome | None:
        """Look up an entry of unknown outcome by its client id; None if still unknown."""
        p = self._pending.get(symbol)
        if p is None:
            return None
        try:
            order = self.exchange.get_order(symbol, p["cid"])
        except BinanceError:
            return None
        self._pending.pop(symbol)
        if order is None:
            return EntryOutcome(None, None, f"entry {p['cid']} was never placed",
                                reason_zh=f"入场单 {p['cid']} 从未到达交易所")
        if order.is_open:       # an IOC is never left open; be safe anyway
            order = self.exchange.cancel_order(symbol, p["cid"]) or order
        return self._after_entry(order, p["side"], p["stop"], p["target"], p["trade_id"])

    def _after_entry(self, order: OrderResult, side: str, stop: float, target: float | None,
                     trade_id: int | None) -> EntryOutcome:
        self._record(order, "entry", trade_id)
        if order.executed_qty <= 0:
            return EntryOutcome(None, order, f"IOC entry {order.status.lower()} unfilled at "
                                             f"{order.price:g}: no position",
                                reason_zh=f"IOC 入场单在 {order.price:g} 未成交"
                                          f"（{_STATUS_ZH.get(order.status, order.status)}）：未开仓")
        state = PositionState(symbol=order.symbol, side=side, entry_price=order.avg_price,
                              qty=order.executed_qty, initial_qty=order.executed_qty, stop=stop,
                              initial_stop=stop, target=target, opened_ms=order.update_time_ms,
                              trade_id=trade_id, fees=self._fees(order),
                              entry_client_order_id=order.client_order_id)
        full = order.executed_qty >= order.orig_qty
        note = "" if full else f" (partial: {order.executed_qty:g} of {order.orig_qty:g})"
        note_zh = "" if full else f"（部分成交：{order.executed_qty:g} / {order.orig_qty:g}）"
        ok = self._protect(state, stop)
        if ok == "crossed":
            out = self.close(state, reason="stop already crossed right after the fill",
                             reason_zh="成交后价格已越过止损价")
            return EntryOutcome(None if out.closed else state, order,
                                "entered and closed at once: price already beyond the stop" + note,
                                reason_zh="开仓后立即平仓：价格已越过止损价" + note_zh)
        if ok != "ok":
            state.unprotected_cycles = 1
            return EntryOutcome(state, order, f"entered{note}; stop placement failed ({ok}); "
                                              f"retrying next cycle",
                                reason_zh=f"已开仓{note_zh}；止损单下单失败（{ok}），下一轮重试")
        return EntryOutcome(state, order, f"entered{note} with stop {state.stop:g}",
                            reason_zh=f"已开仓{note_zh}，止损 {state.stop:g}")

    # ------------------------------------------------------------------ stops
    def _protect(self, state: PositionState, trigger: float) -> str:
        """Place a stop for the whole open size at `trigger`, then cancel the old one.

        Returns "ok", "crossed" (the price is already beyond: -2021) or an error text."""
        f = self.exchange.filters(state.symbol)
        trigger = f.round_price(trigger, "down" if state.side == "LONG" else "up")
        cid = self._cid("s")
        try:
            info = self.exchange.place_stop(state.symbol, state.close_side, "STOP_MARKET",
                                            trigger, state.qty, cid)
        except OrderRejected as exc:
            if exc.code == WOULD_TRIGGER:
                return "crossed"
            return str(exc)
        except UnknownOrderStatus as exc:
            try:
                found = [s for s in self.exchange.open_stops(state.symbol) if s.client_algo_id == cid]
            except BinanceError:
                found = []
            if not found:
                return f"stop outcome unknown: {exc}"
            info = found[0]
        except BinanceError as exc:
            return str(exc)
        old = state.stop_client_algo_id
        state.stop_client_algo_id, state.stop_algo_id = info.client_algo_id, info.algo_id
        state.stop, state.unprotected_cycles = trigger, 0
        self._record(info, "stop", state.trade_id)
        if old and old != cid:
            self._cancel_stop(state, old)
        return "ok"

    def _cancel_stop(self, state: PositionState, client_algo_id: str) -> None:
        try:
            self.exchange.cancel_stop(state.symbol, client_algo_id)
        except BinanceError as exc:     # a stale extra stop is reduce-only: reconcile retries
            log.warning("cancel stop %s failed: %s", client_algo_id, exc)

    def move_stop(self, state: PositionState, new_stop: float, reason: str, reason_zh: str = "") -> bool:
        ok = self._protect(state, new_stop)
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
        q = state.qty if full else f.floor_qty(qty, market=True)
        cid = self._cid("x")
        try:
            order = self.exchange.place_order(state.symbol, state.close_side, "MARKET", q,
                                              reduce_only=True, client_order_id=cid)
        except BinanceError as exc:
            return CloseOutcome(False, 0.0, 0.0, 0.0, 0.0, f"exit not done ({reason}): {exc}",
                                reason_zh=f"平仓未完成（{reason_zh}）：{error_detail(exc)}")
        self._record(order, "exit" if full else "partial_exit", state.trade_id)
        done = order.executed_qty
        fees = self._fees(order)
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
            self._protect(state, state.stop)     # resize the stop: new first, then cancel old
        closed = state.qty <= 1e-12
        if closed:
            self._cancel_all_stops(state)
        return CloseOutcome(closed, done, order.avg_price, pnl, fees, reason, order, reason_zh)

    def _cancel_all_stops(self, state: PositionState) -> None:
        try:
            for s in self.exchange.open_stops(state.symbol):
                self._cancel_stop(state, s.client_algo_id)
        except BinanceError as exc:
            log.warning("listing stops of %s failed: %s", state.symbol, exc)

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
        """Bring memory and exchange together; guarantee protection (see module doc)."""
        notes: list[str] = []
        zh: list[str] = []
        if symbol in self._pending:
            res = self.resolve_pending(symbol)
            if res is not None:
                notes.append(res.reason)
                zh.append(res.reason_zh or reason_zh_for(res.reason))
                state = res.state or state
        pos = self.exchange.position(symbol)
        stops = self.exchange.open_stops(symbol)
        plan = reconcile(state, pos, stops)
        notes.extend(plan.reasons)
        zh.extend(plan.reasons_zh)
        for cid in plan.cancel_stops:
            self.exchange.cancel_stop(symbol, cid)
        if plan.drop:
            return SyncOutcome(None, self._closed_outside(state), notes, zh)
        if pos is None:
            return SyncOutcome(None, None, notes, zh)
        if plan.adopt:
            side = "LONG" if pos.amount > 0 else "SHORT"
            stop = pos.entry_price * (1 - self.adopt_stop_pct if side == "LONG" else 1 + self.adopt_stop_pct)
            state = PositionState(symbol=symbol, side=side, entry_price=pos.entry_price,
                                  qty=abs(pos.amount), initial_qty=abs(pos.amount), stop=stop,
                                  initial_stop=stop, opened_ms=self._now())
        if plan.new_qty is not None:
            state.qty = plan.new_qty
        if plan.place_stop or plan.new_qty is not None:
            ok = self._protect(state, state.stop)
            if ok == "crossed":
                out = self.close(state, reason="protective stop already crossed",
                                 reason_zh="价格已越过保护性止损价")
                return SyncOutcome(None if out.closed else state, out, notes, zh)
            if ok != "ok":
                state.unprotected_cycles += 1
                notes.append(f"stop placement failed ({ok}); unprotected for "
                             f"{state.unprotected_cycles} cycle(s)")
                zh.append(f"止损单下单失败（{ok}）；已连续 {state.unprotected_cycles} 轮无止损保护")
                if state.unprotected_cycles > self.max_unprotected_cycles:
                    out = self.close(state, reason="cannot place a protective stop: closed for safety",
                                     reason_zh="无法挂出保护性止损单：为安全起见已平仓")
                    return SyncOutcome(None if out.closed else state, out, notes, zh)
        return SyncOutcome(state, None, notes, zh)

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
