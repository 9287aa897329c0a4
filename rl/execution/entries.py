"""EntryDesk: an entry's whole life, from the order sent to the position protected.

- IOC entries (the default) are LIMIT IOC at the current price plus `ioc_offset_bps` (pay at
  most that much, never chase); whatever filled is the position.
- Maker entries are post-only LIMIT (GTX) at the planned price: they pay the maker fee or
  nothing. One that would take liquidity is refused (-5022: the price moved): no position. One
  that rests is followed by `poll_entry` on every bar: each fill (a part too) is protected at
  once by a stop for the filled size, resized as more fills; at its timeout, or when the caller
  says the setup is gone, the rest is cancelled and the filled part is the position.
- An entry of unknown outcome stays pending with its plan (rl.execution.unknown_entry) and is
  looked up on a schedule, never re-sent; no other entry is sent in that symbol meanwhile.
- A fill is protected by its stop FIRST; its fees (another request: userTrades) come after.
- Before a new entry no stale stop of an earlier position may remain on the symbol.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from client import BinanceError, NetworkError, OrderRejected, UnknownOrderStatus
from rl.execution.outcomes import EPS, STATUS_ZH, CloseOutcome, EntryOutcome, RestingEntry, error_detail
from rl.execution.port import POST_ONLY_REJECTED, ExchangePort, OrderResult, StopOrderInfo
from rl.execution.position import PositionState
from rl.execution.stops import StopKeeper
from rl.execution.unknown_entry import WINDOW_MS, FillEvidence, PendingEntry, find_fill

log = logging.getLogger(__name__)
ENTRY_TYPES = ("ioc", "maker")


def order_fees(exchange: ExchangePort, order: OrderResult, since_ms: int | None = None) -> float | None:
    """The order's commission; Binance's order answer has none, so from its fills since
    `since_ms` (default: a minute before its last update, enough for an IOC). None when the
    fills could not be read (reads rate limited, 5xx): not known yet, never a silent 0."""
    if order.commission > 0 or order.executed_qty <= 0:
        return order.commission
    since = order.update_time_ms - 60_000 if since_ms is None else since_ms
    try:
        return sum(f.commission for f in exchange.fills_since(order.symbol, max(0, since))
                   if f.order_id == order.order_id)
    except BinanceError as exc:
        log.warning("fees of order %s not known yet (%s): looked up later", order.order_id, exc)
        return None


def take_fees(state: PositionState, order: OrderResult, fees: float | None, counted: float = 0.0) -> float:
    """The fees to book for `order` now: `fees`, or (not known yet) `counted` with the order
    remembered in state.unpriced_fees, for the reconciler to read later."""
    if fees is not None:
        state.unpriced_fees.pop(order.order_id, None)
        return fees
    if order.order_id:
        state.unpriced_fees[order.order_id] = counted
    return counted


def priced(order: OrderResult, fallback: float) -> OrderResult:
    """An order that filled but whose answer gave no average price (the adapter could not find
    one either) is priced at its limit (an IOC buy paid at most that): its stop is placed
    anyway, instead of a crash on a zero entry price."""
    if order.executed_qty <= 0 or order.avg_price > 0:
        return order
    price = order.price if order.price > 0 else fallback
    log.warning("entry %s filled %g without an average price: priced at its limit %g",
                order.client_order_id, order.executed_qty, price)
    return replace(order, avg_price=price)


class EntryDesk:
    def __init__(self, exchange: ExchangePort, stops: StopKeeper,
                 record: Callable[[OrderResult | StopOrderInfo, str, int | None], None],
                 new_cid: Callable[[str], str], now_ms: Callable[[], int],
                 close: Callable[..., CloseOutcome], ioc_offset_bps: float) -> None:
        self.exchange = exchange
        self.stops = stops
        self._record = record
        self._cid = new_cid
        self._now = now_ms
        self._close = close
        self.ioc_offset_bps = ioc_offset_bps
        self._pending: dict[str, PendingEntry] = {}      # symbol -> entry whose outcome is unknown
        self._resting: dict[str, RestingEntry] = {}      # symbol -> maker entry on the book

    # ------------------------------------------------------------------ queries
    def pending(self, symbol: str) -> PendingEntry | None:
        return self._pending.get(symbol)

    def resting(self, symbol: str) -> RestingEntry | None:
        return self._resting.get(symbol)

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

    # ------------------------------------------------------------------ sending
    def open_position(self, symbol: str, side: str, qty: float, price: float, stop: float,
                      target: float | None, trade_id: int | None, entry_type: str,
                      expires_ms: int | None, client_order_id: str | None) -> EntryOutcome:
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
        blocked = self.stops.clear_for_entry(symbol)
        if blocked is not None:
            return EntryOutcome(None, None, f"entry not sent: {blocked[0]}",
                                reason_zh=f"未发送入场单：{blocked[1]}")
        f = self.exchange.filters(symbol)
        qty = f.floor_qty(qty)
        maker = entry_type == "maker"
        limit = self.maker_limit(symbol, side, price) if maker else self.entry_limit(symbol, side, price)
        cid = client_order_id or self._cid("e")
        self._pending[symbol] = PendingEntry(symbol, cid, side, qty, limit, stop, target, trade_id,
                                             entry_type, expires_ms, sent_ms=self._now())
        try:
            order = self.exchange.place_order(symbol, "BUY" if side == "LONG" else "SELL", "LIMIT",
                                              qty, limit, "GTX" if maker else "IOC", client_order_id=cid)
        except UnknownOrderStatus as exc:
            return EntryOutcome(None, None, f"entry outcome unknown ({exc.msg}): kept pending with its "
                                            f"plan; {cid} is looked up before anything else", True,
                                f"入场单结果未知（{exc.msg}）：保留其交易计划，先按订单号 {cid} 查询，再做其他操作")
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
        order = priced(order, limit)
        if maker and order.is_open:
            return self._rest(order, side, stop, target, trade_id, expires_ms)
        return self._after_entry(order, side, stop, target, trade_id)

    # ------------------------------------------------------------------ unknown outcomes
    def resume_pending(self, p: PendingEntry) -> None:
        """After a restart: an entry whose outcome was never learnt is pending again."""
        self._pending[p.symbol] = p

    def resolve_pending(self, symbol: str) -> EntryOutcome | None:
        """One scheduled lookup of the entry of unknown outcome in `symbol` (see
        rl.execution.unknown_entry); None while it is still unknown (or no lookup is due)."""
        p = self._pending.get(symbol)
        if p is None:
            return None
        now = self._now()
        if not p.due(now):
            return None
        order = None
        if p.client_order_id:
            try:
                order = self.exchange.get_order(symbol, p.client_order_id)
            except BinanceError:
                return None                 # not an answer: asked again on the next call
        if order is not None:
            self._pending.pop(symbol)
            order = priced(order, p.limit)
            if order.is_open and p.entry_type == "maker":     # it rests: follow it
                return self._rest(order, p.side, p.stop, p.target, p.trade_id, p.expires_ms)
            if order.is_open:       # an IOC is never left open; be safe anyway
                order = priced(self.exchange.cancel_order(symbol, order.client_order_id) or order, p.limit)
            return self._after_entry(order, p.side, p.stop, p.target, p.trade_id)
        try:
            ev = find_fill(self.exchange, p)
        except BinanceError:
            return None
        if ev is not None:
            self._pending.pop(symbol)
            return self._after_evidence(p, ev)
        p.found_nothing(now)
        if not p.may_be_declared_unplaced(now):
            return None
        self._pending.pop(symbol)
        secs = (now - p.sent_ms) / 1000
        name = p.client_order_id or "sent before the restart"
        return EntryOutcome(None, None, f"entry {name} was never placed ({p.lookups} lookups over "
                                        f"{secs:.0f} s found no order, position or fill)",
                            reason_zh=f"入场单 {name} 从未到达交易所（{secs:.0f} 秒内查询 {p.lookups} 次，"
                                      f"未见订单、持仓或成交）")

    def _after_evidence(self, p: PendingEntry, ev: FillEvidence) -> EntryOutcome:
        """The order was not found, but its fill was: the position it made, with the planned stop."""
        order = ev.order
        if p.entry_type == "maker" and p.client_order_id:
            try:                  # whatever still rests of it must not fill on top unprotected
                order = priced(self.exchange.cancel_order(p.symbol, p.client_order_id) or order, order.avg_price)
            except BinanceError as exc:
                log.warning("cancelling maker entry %s failed: %s", p.client_order_id, exc)
        self._record(order, "entry", p.trade_id)
        if ev.held <= EPS:
            return EntryOutcome(None, order, f"entry of unknown outcome filled {order.executed_qty:g} @ "
                                             f"{order.avg_price:g}, and the position is gone already",
                                reason_zh=f"结果未知的入场单已成交 {order.executed_qty:g} @ {order.avg_price:g}，"
                                          f"但持仓已不在")
        qty = min(order.executed_qty, ev.held)
        cid = p.client_order_id or (f"{p.symbol}:{order.order_id}" if order.order_id else None)
        state = PositionState(symbol=p.symbol, side=p.side, entry_price=order.avg_price, qty=qty,
                              initial_qty=qty, stop=p.stop, initial_stop=p.stop, target=p.target,
                              opened_ms=order.update_time_ms, trade_id=p.trade_id,
                              fees=order.commission, entry_client_order_id=cid)
        return self._entered(state, order, self.stops.protect(state, p.stop),
                             "entry of unknown outcome found by its fill", "结果未知的入场单已从成交中找到")

    # ------------------------------------------------------------------ fills
    def _after_entry(self, order: OrderResult, side: str, stop: float, target: float | None,
                     trade_id: int | None) -> EntryOutcome:
        self._record(order, "entry", trade_id)
        if order.executed_qty <= 0:
            if order.time_in_force == "GTX":
                return EntryOutcome(None, order, f"post-only entry {order.status.lower()} unfilled at "
                                                 f"{order.price:g}: no position",
                                    reason_zh=f"只做挂单的入场单在 {order.price:g} 未成交"
                                              f"（{STATUS_ZH.get(order.status, order.status)}）：未开仓")
            return EntryOutcome(None, order, f"IOC entry {order.status.lower()} unfilled at "
                                             f"{order.price:g}: no position",
                                reason_zh=f"IOC 入场单在 {order.price:g} 未成交"
                                          f"（{STATUS_ZH.get(order.status, order.status)}）：未开仓")
        state = self._filled_state(order, side, stop, target, trade_id, order.commission)
        ok = self.stops.protect(state, stop)             # the stop first: fees can wait
        state.fees = take_fees(state, order, order_fees(self.exchange, order), order.commission)
        return self._entered(state, order, ok)

    @staticmethod
    def _filled_state(order: OrderResult, side: str, stop: float, target: float | None,
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
            out = self._close(state, reason="stop already crossed right after the fill",
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
                                             adopted_stop=live[0] if live else None, confirmed=False)

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
        if order is None and not r.confirmed and now_ms - r.placed_ms < WINDOW_MS:
            # sent just before a restart: Binance may not show a new order at once
            return EntryOutcome(r.state, None, f"maker entry {r.client_order_id} not visible yet; "
                                               f"asked again next bar",
                                reason_zh=f"挂单入场 {r.client_order_id} 暂未在交易所显示，下一根K线再查",
                                resting=True)
        if order is None:       # not on the exchange (any more): nothing will fill
            self._resting.pop(symbol)
            if r.state is None:
                return EntryOutcome(None, None, f"maker entry {r.client_order_id} is not on the "
                                                f"exchange: no position",
                                    reason_zh=f"挂单入场 {r.client_order_id} 不在交易所上：未开仓")
            return EntryOutcome(r.state, None, f"maker entry {r.client_order_id} is gone from the "
                                               f"exchange: its filled part is the position",
                                reason_zh=f"挂单入场 {r.client_order_id} 已不在交易所上：已成交部分即为持仓")
        r.confirmed = True
        order = priced(order, order.price)
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
                                          f"（{STATUS_ZH.get(order.status, order.status)}），未开仓")
        return self._entered(r.state, order, r.protection, why, why_zh)

    def _cancel_rest(self, r: RestingEntry, order: OrderResult) -> OrderResult:
        """Cancel what rests of a maker entry; the answer holds its final fills (a fill that
        came first is not lost). On failure the order is still open: the caller retries."""
        try:
            return priced(self.exchange.cancel_order(r.symbol, r.client_order_id) or order, order.price)
        except BinanceError as exc:
            log.warning("cancelling maker entry %s failed: %s", r.client_order_id, exc)
            return order

    def _take_fills(self, r: RestingEntry, order: OrderResult) -> None:
        """Record the order when it changed; what filled since the last look becomes (more of)
        the entry's position, protected at once by a stop for the whole filled size (a new stop
        first, then the old one cancelled); its fees are looked up after that."""
        if r.seen != (order.status, order.executed_qty):
            r.seen = (order.status, order.executed_qty)
            self._record(order, "entry", r.trade_id)
        filled = order.executed_qty
        st = r.state
        if filled <= (st.qty if st is not None else 0.0) + EPS:
            return
        if st is None:
            st = r.state = self._filled_state(order, r.side, r.stop, r.target, r.trade_id, order.commission)
            if r.adopted_stop is not None:     # resumed after a restart: our stop is already on
                st.stop_client_algo_id = r.adopted_stop.client_algo_id
                st.stop_algo_id = r.adopted_stop.algo_id
        else:
            st.qty = st.initial_qty = filled
            st.entry_price = st.best_price = order.avg_price
        r.protection = self.stops.protect(st, r.stop)
        # a maker order may rest for long: its fills since it was placed (all of them: the
        # fees so far stay counted when the read fails)
        st.fees = take_fees(st, order, order_fees(self.exchange, order, r.placed_ms - 60_000), st.fees)
