"""OrderRouter: turns decisions into exchange orders, safely.

- IOC entries (the default) are LIMIT IOC at the current price plus `ioc_offset_bps` (the
  design's answer to slippage: pay at most that much, never chase); whatever filled is the
  position.
- Maker entries are post-only LIMIT (GTX) at the planned price: they pay the maker fee or
  nothing. One that would take liquidity is refused by the exchange (-5022: the price moved):
  no position. One that rests is followed by `poll_entry` on every bar: each fill (a part
  too) is protected at once by a stop for the filled size, resized as more fills; at its
  timeout, or when the caller says the setup is gone, the rest is cancelled and the filled
  part is the position.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from client import BinanceError, NetworkError, OrderRejected, UnknownOrderStatus, new_client_order_id
from rl.execution.actions import CloseAll, ExitAction, MoveStop, PartialClose, reason_zh_for
from rl.execution.port import POST_ONLY_REJECTED, ExchangePort, OrderResult, StopOrderInfo
from rl.execution.position import PositionState, reconcile

log = logging.getLogger(__name__)
WOULD_TRIGGER = -2021
ENTRY_TYPES = ("ioc", "maker")
EPS = 1e-12

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
    # a maker entry rests on the book: `poll_entry` follows it; `state` is its filled part so
    # far (protected by its stop, not yet the caller's position), None while nothing filled
    resting: bool = False


@dataclass
class RestingEntry:
    """A maker (post-only) entry on the book, followed by `OrderRouter.poll_entry` until it
    ends. Read-only for callers (the agent reads side and stop to judge the setup)."""

    symbol: str
    side: str                      # "LONG" | "SHORT"
    client_order_id: str
    stop: float
    target: float | None
    trade_id: int | None
    expires_ms: int | None         # cancel the rest from this time on (None: never by time)
    placed_ms: int = 0             # when it was sent (its fills are looked for from then on)
    state: PositionState | None = None   # the filled part, protected by its own stop
    protection: str = "ok"         # the last stop placement for `state`: ok, crossed or an error
    seen: tuple[str, float] = ("", 0.0)  # (status, executed qty) last recorded
    adopted_stop: StopOrderInfo | None = None   # resumed after a restart: our stop already on


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
        self._resting: dict[str, RestingEntry] = {}      # symbol -> maker entry on the book

    def has_pending(self, symbol: str) -> bool:
        """Is an entry of unknown outcome in `symbol` waiting to be looked up (by `sync` or
        the next `open_position`)? No new entry is sent while it is."""
        return symbol in self._pending

    def resting_entry(self, symbol: str) -> RestingEntry | None:
        """The maker entry resting in `symbol` (followed by `poll_entry`), None if there is none.
        No new entry is sent while one rests."""
        return self._resting.get(symbol)

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

    def maker_limit(self, symbol: str, side: str, price: float) -> float:
        """Post-only limit: the planned price on the tick, rounded to the passive side (a buy
        never above it, a sell never below), so at the current price it rests instead of taking."""
        f = self.exchange.filters(symbol)
        return f.round_price(price, "down" if side == "LONG" else "up")

    def entry_client_id(self) -> str:
        """A fresh client id for an entry, for a caller that must remember it before the order
        goes out (a maker entry's intent, so that a restart finds the resting order)."""
        return self._cid("e")

    def _fees(self, order: OrderResult, since_ms: int | None = None) -> float:
        """The order's commission; Binance's order answer has none, so from its fills since
        `since_ms` (default: a minute before its last update, enough for an IOC)."""
        if order.commission > 0 or order.executed_qty <= 0:
            return order.commission
        since = order.update_time_ms - 60_000 if since_ms is None else since_ms
        try:
            return sum(f.commission for f in self.exchange.fills_since(order.symbol, max(0, since))
                       if f.order_id == order.order_id)
        except BinanceError:
            return 0.0

    # ------------------------------------------------------------------ entry
    def open_position(self, symbol: str, side: str, qty: float, price: float, stop: float,
                      target: float | None = None, trade_id: int | None = None, *,
                      entry_type: str = "ioc", expires_ms: int | None = None,
                      client_order_id: str | None = None) -> EntryOutcome:
        """Send the entry: `entry_type` "ioc" (LIMIT IOC at price ± the offset; the outcome is
        the position) or "maker" (post-only LIMIT at price; the outcome says it rests, and
        `poll_entry` follows it, cancelling the rest from `expires_ms` on)."""
        if side not in ("LONG", "SHORT"):
            raise ValueError(f"side: must be LONG or SHORT, got {side!r}")
        if entry_type not in ENTRY_TYPES:
            raise ValueError(f"entry_type: must be ioc or maker, got {entry_type!r}")
        if symbol in self._resting:
            return EntryOutcome(None, None, "a maker entry already rests: not sending another",
                                reason_zh="已有一笔挂单入场在等待成交：不再发送新单", resting=True)
        if symbol in self._pending:
            resolved = self.resolve_pending(symbol)
            return resolved if resolved is not None else EntryOutcome(
                None, None, "previous entry outcome still unknown: not sending another", True,
                "上一笔入场单结果仍未知：不再发送新单")
        f = self.exchange.filters(symbol)
        qty = f.floor_qty(qty)
        maker = entry_type == "maker"
        limit = self.maker_limit(symbol, side, price) if maker else self.entry_limit(symbol, side, price)
        cid = client_order_id or self._cid("e")
        self._pending[symbol] = {"cid": cid, "side": side, "stop": stop, "target": target,
                                 "trade_id": trade_id, "entry_type": entry_type,
                                 "expires_ms": expires_ms}
        try:
            order = self.exchange.place_order(symbol, "BUY" if side == "LONG" else "SELL", "LIMIT",
                                              qty, limit, "GTX" if maker else "IOC", client_order_id=cid)
        except UnknownOrderStatus as exc:
            return EntryOutcome(None, None, f"entry outcome unknown ({exc.msg}); will look up "
                                            f"{cid} before anything else", True,
                                f"入场单结果未知（{exc.msg}）；先按订单号 {cid} 查询，再做其他操作")
        except (OrderRejected, NetworkError, BinanceError) as exc:
            self._pending.pop(symbol, None)
            if maker and exc.code == POST_ONLY_REJECTED:
                return EntryOutcome(None, None, f"post-only would take: price moved (limit {limit:g}; "
                                                f"{error_detail(exc)}): no position",
                                    reason_zh=f"只做挂单的入场单会立即吃单：价格已变动（限价 {limit:g}；"
                                              f"{error_detail(exc)}），未开仓")
            return EntryOutcome(None, None, f"entry not placed: {exc}",
                                reason_zh=f"入场单未能下达（{error_detail(exc)}）")
        self._pending.pop(symbol, None)
        if maker and order.is_open:
            return self._rest(order, side, stop, target, trade_id, expires_ms)
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
        if order.is_open and p.get("entry_type") == "maker":     # it rests: follow it
            return self._rest(order, p["side"], p["stop"], p["target"], p["trade_id"], p.get("expires_ms"))
        if order.is_open:       # an IOC is never left open; be safe anyway
            order = self.exchange.cancel_order(symbol, p["cid"]) or order
        return self._after_entry(order, p["side"], p["stop"], p["target"], p["trade_id"])

    def _after_entry(self, order: OrderResult, side: str, stop: float, target: float | None,
                     trade_id: int | None) -> EntryOutcome:
        self._record(order, "entry", trade_id)
        if order.executed_qty <= 0:
            if order.time_in_force == "GTX":
                return EntryOutcome(None, order, f"post-only entry {order.status.lower()} unfilled at "
                                                 f"{order.price:g}: no position",
                                    reason_zh=f"只做挂单的入场单在 {order.price:g} 未成交"
                                              f"（{_STATUS_ZH.get(order.status, order.status)}）：未开仓")
            return EntryOutcome(None, order, f"IOC entry {order.status.lower()} unfilled at "
                                             f"{order.price:g}: no position",
                                reason_zh=f"IOC 入场单在 {order.price:g} 未成交"
                                          f"（{_STATUS_ZH.get(order.status, order.status)}）：未开仓")
        state = self._filled_state(order, side, stop, target, trade_id, self._fees(order))
        return self._entered(state, order, self._protect(state, stop))

    def _filled_state(self, order: OrderResult, side: str, stop: float, target: float | None,
                      trade_id: int | None, fees: float) -> PositionState:
        """The position an entry order's fills make."""
        return PositionState(symbol=order.symbol, side=side, entry_price=order.avg_price,
                             qty=order.executed_qty, initial_qty=order.executed_qty, stop=stop,
                             initial_stop=stop, target=target, opened_ms=order.update_time_ms,
                             trade_id=trade_id, fees=fees, entry_client_order_id=order.client_order_id)

    def _entered(self, state: PositionState, order: OrderResult, ok: str,
                 why: str = "", why_zh: str = "") -> EntryOutcome:
        """The outcome of an entry that filled (all or part) and whose stop placement said `ok`
        ("ok", "crossed" or an error): crossed closes at once, a failure is retried by sync.
        `why`: what ended a maker entry (prefixed to the reason)."""
        full = order.executed_qty >= order.orig_qty
        note = "" if full else f" (partial: {order.executed_qty:g} of {order.orig_qty:g})"
        note_zh = "" if full else f"（部分成交：{order.executed_qty:g} / {order.orig_qty:g}）"
        pre = f"{why}: " if why else ""
        pre_zh = f"{why_zh}：" if why_zh else ""
        if ok == "crossed":
            out = self.close(state, reason="stop already crossed right after the fill",
                             reason_zh="成交后价格已越过止损价")
            return EntryOutcome(None if out.closed else state, order,
                                pre + "entered and closed at once: price already beyond the stop" + note,
                                reason_zh=pre_zh + "开仓后立即平仓：价格已越过止损价" + note_zh)
        if ok != "ok":
            state.unprotected_cycles = 1
            return EntryOutcome(state, order, f"{pre}entered{note}; stop placement failed ({ok}); "
                                              f"retrying next cycle",
                                reason_zh=f"{pre_zh}已开仓{note_zh}；止损单下单失败（{ok}），下一轮重试")
        return EntryOutcome(state, order, f"{pre}entered{note} with stop {state.stop:g}",
                            reason_zh=f"{pre_zh}已开仓{note_zh}，止损 {state.stop:g}")

    # ------------------------------------------------------------------ maker entries
    def _rest(self, order: OrderResult, side: str, stop: float, target: float | None,
              trade_id: int | None, expires_ms: int | None) -> EntryOutcome:
        """A maker entry is on the book: follow it from now on."""
        r = RestingEntry(order.symbol, side, order.client_order_id, stop, target, trade_id, expires_ms,
                         placed_ms=order.update_time_ms)
        self._resting[order.symbol] = r
        return self._follow(r, order)

    def resume_entry(self, symbol: str, side: str, client_order_id: str, stop: float,
                     target: float | None, expires_ms: int | None, placed_ms: int = 0,
                     trade_id: int | None = None) -> None:
        """After a restart: follow the maker entry `client_order_id` again (the next
        `poll_entry` finds out what it did meanwhile). A stop of ours already protecting its
        filled part is replaced by one sized for it (new first, then the old one cancelled)."""
        close_side = "SELL" if side == "LONG" else "BUY"
        try:
            live = [s for s in self.exchange.open_stops(symbol)
                    if s.status == "NEW" and s.side == close_side and s.type == "STOP_MARKET"]
        except BinanceError:
            live = []
        self._resting[symbol] = RestingEntry(symbol, side, client_order_id, stop, target, trade_id,
                                             expires_ms, placed_ms=placed_ms,
                                             adopted_stop=live[0] if live else None)

    def poll_entry(self, symbol: str, now_ms: int, still_valid: bool = True) -> EntryOutcome | None:
        """Follow the maker entry resting in `symbol` (None if there is none): protect what
        filled since the last poll, and cancel the rest at its timeout or when `still_valid` is
        False (the setup is gone). The outcome rests (`resting`, `state` = the filled part so
        far) or says how the entry ended: its `state` is then the position, as for an IOC."""
        r = self._resting.get(symbol)
        if r is None:
            return None
        try:
            order = self.exchange.get_order(symbol, r.client_order_id)
        except BinanceError as exc:
            return EntryOutcome(r.state, None, f"maker entry {r.client_order_id}: status not known "
                                               f"({error_detail(exc)}); asked again next bar",
                                reason_zh=f"挂单入场 {r.client_order_id} 状态未知（{error_detail(exc)}），"
                                          f"下一根K线再查", resting=True)
        if order is None:       # not on the exchange (any more): nothing will fill
            self._resting.pop(symbol)
            if r.state is None:
                return EntryOutcome(None, None, f"maker entry {r.client_order_id} is not on the "
                                                f"exchange: no position",
                                    reason_zh=f"挂单入场 {r.client_order_id} 不在交易所上：未开仓")
            return EntryOutcome(r.state, None, f"maker entry {r.client_order_id} is gone from the "
                                               f"exchange: its filled part is the position",
                                reason_zh=f"挂单入场 {r.client_order_id} 已不在交易所上：已成交部分即为持仓")
        why, why_zh = "", ""
        if order.is_open and r.expires_ms is not None and now_ms >= r.expires_ms:
            why, why_zh = "maker entry timed out, rest cancelled", "挂单入场超时，撤销剩余挂单"
        elif order.is_open and not still_valid:
            why, why_zh = "setup gone, rest cancelled", "入场条件已失效，撤销剩余挂单"
        return self._follow(r, order, why, why_zh)

    def _follow(self, r: RestingEntry, order: OrderResult, why: str = "",
                why_zh: str = "") -> EntryOutcome:
        """One look at a resting maker entry's order: cancel its rest if `why` says so, protect
        its filled part, and end it once nothing of it rests any more."""
        if why and order.is_open:
            order = self._cancel_rest(r, order)
        self._take_fills(r, order)
        if r.protection != "ok" and order.is_open:
            # the filled part cannot be protected (crossed, or the stop failed): nothing more
            # may fill on top of it
            why = why or "its stop could not be placed, rest cancelled"
            why_zh = why_zh or "止损单无法挂出，撤销剩余挂单"
            order = self._cancel_rest(r, order)
            self._take_fills(r, order)
        if order.is_open:
            if why:
                return EntryOutcome(r.state, order, f"{why} failed: the cancel is retried next bar",
                                    reason_zh=f"{why_zh}失败：下一根K线重试撤单", resting=True)
            filled = (f"{order.executed_qty:g} of {order.orig_qty:g} filled, stop {r.state.stop:g}"
                      if r.state is not None else "nothing filled yet")
            filled_zh = (f"已成交 {order.executed_qty:g} / {order.orig_qty:g}，止损 {r.state.stop:g}"
                         if r.state is not None else "尚未成交")
            return EntryOutcome(r.state, order, f"maker entry resting at {order.price:g}: {filled}",
                                reason_zh=f"挂单入场在 {order.price:g} 等待成交：{filled_zh}", resting=True)
        self._resting.pop(r.symbol, None)
        if r.state is None:
            return EntryOutcome(None, order, f"{why or 'maker entry ended'}: "
                                             f"{order.status.lower()} unfilled at {order.price:g}, no position",
                                reason_zh=f"{why_zh or '挂单入场结束'}：在 {order.price:g} 未成交"
                                          f"（{_STATUS_ZH.get(order.status, order.status)}），未开仓")
        return self._entered(r.state, order, r.protection, why, why_zh)

    def _cancel_rest(self, r: RestingEntry, order: OrderResult) -> OrderResult:
        """Cancel what rests of a maker entry; the answer holds its final fills (a fill that
        came first is not lost). On failure the order is still open: the caller retries."""
        try:
            return self.exchange.cancel_order(r.symbol, r.client_order_id) or order
        except BinanceError as exc:
            log.warning("cancelling maker entry %s failed: %s", r.client_order_id, exc)
            return order

    def _take_fills(self, r: RestingEntry, order: OrderResult) -> None:
        """Record the order when it changed; what filled since the last look becomes (more of)
        the entry's position, protected at once by a stop for the whole filled size (a new stop
        first, then the old one cancelled)."""
        if r.seen != (order.status, order.executed_qty):
            r.seen = (order.status, order.executed_qty)
            self._record(order, "entry", r.trade_id)
        filled = order.executed_qty
        st = r.state
        if filled <= (st.qty if st is not None else 0.0) + EPS:
            return
        fees = self._fees(order, r.placed_ms - 60_000)      # a maker order may rest for long
        if st is None:
            st = r.state = self._filled_state(order, r.side, r.stop, r.target, r.trade_id, fees)
            if r.adopted_stop is not None:     # resumed after a restart: our stop is already on
                st.stop_client_algo_id = r.adopted_stop.client_algo_id
                st.stop_algo_id = r.adopted_stop.algo_id
        else:
            st.qty = st.initial_qty = filled
            st.entry_price = st.best_price = order.avg_price
            st.fees = fees
        r.protection = self._protect(st, r.stop)

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
                if not res.resting:
                    state = res.state or state
        if symbol in self._resting:
            # a maker entry rests: the position its fills make is the entry's (poll_entry)
            # until it ends, not one to adopt
            return SyncOutcome(state, None, notes, zh)
        pos = self.exchange.position(symbol)
        stops = self.exchange.open_stops(symbol)
        plan = reconcile(state, pos, stops)
        notes.extend(plan.reasons)
        zh.extend(plan.reasons_zh)
        for cid in plan.cancel_stops:
            self.exchange.cancel_stop(symbol, cid)
        if plan.drop and state is not None:         # reconcile drops only a remembered position
            return SyncOutcome(None, self._closed_outside(state), notes, zh)
        if pos is None:
            return SyncOutcome(None, None, notes, zh)
        if plan.adopt:
            side = "LONG" if pos.amount > 0 else "SHORT"
            stop = pos.entry_price * (1 - self.adopt_stop_pct if side == "LONG" else 1 + self.adopt_stop_pct)
            state = PositionState(symbol=symbol, side=side, entry_price=pos.entry_price,
                                  qty=abs(pos.amount), initial_qty=abs(pos.amount), stop=stop,
                                  initial_stop=stop, opened_ms=self._now())
        assert state is not None                    # reconcile adopts whenever memory holds none
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
