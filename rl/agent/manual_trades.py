"""ManualTrades: orders a trader places from the dashboard, kept apart from the agent's trades.

The exchange holds ONE net position per symbol (one-way mode), so a manual order lands either
on a symbol the agent is flat in or on the agent's own position:
- flat: the fill becomes a trade of its own, source "manual", with only the stops the trader
  asked for (rl/agent/manual_stops.py; none when the order form's fields were left empty). The agent records its fills
  and closes its record when the exchange is flat again, but never protects or manages it and enters
  nothing on that symbol meanwhile. A manual LIMIT that fills later is found when the
  reconciler adopts the position: its fills came from a manual order, so the stop the router
  placed for the adoption is cancelled and the position is recorded the same way.
- on the agent's position: it cannot be split off the net position, so the agent's trade
  takes it in and is marked "mixed": an add-on's quantity, price and fee are recorded
  (trade_additions, average entry), a manual sell is an exit of kind "manual"; the stop is
  resized to the whole position as for any size change.
Manual and mixed trades are kept out of the learning, the phase count and the agent's R
statistics (rl.knowledge.store, rl.agent.journal); their PnL stays in the account's figures.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from client import BinanceError
from rl.agent import manual_stops
from rl.agent.journal import LogFn, TradeJournal, state_copy
from rl.execution.port import ExchangePort, Fill, OrderResult
from rl.execution.position import PositionState
from rl.knowledge.store import KnowledgeStore

EPS = 1e-12
LOOKBACK_MS = 7 * 86_400_000      # how far back the fills that built an adopted position are sought

Note = tuple[str, str]
RecordExitFills = Callable[[Mapping[str, Any], str], object]   # returns the lookup's error or None


class ManualTrades:
    """The manual side of the Reconciler (see the module doc). `record_exit_fills(trade,
    kind)` is the reconciler's fill-based exit recording (keyed by exchange order id)."""

    def __init__(self, exchange: ExchangePort, store: KnowledgeStore, journal: TradeJournal, *,
                 leverage: int, log: LogFn, publish: Callable[[str], None],
                 record_exit_fills: RecordExitFills) -> None:
        self.exchange = exchange
        self.store = store
        self.journal = journal
        self._leverage = leverage
        self._log = log
        self._publish = publish
        self._record_exit_fills = record_exit_fills

    # ------------------------------------------------------------------ opening
    def open(self, sym: str, slot: Any, order: OrderResult, now: int) -> int | None:
        """A dashboard order filled (a part of it) while the agent held nothing in `sym`:
        record the position it made as a manual trade. None if no position resulted."""
        if order.executed_qty <= 0:
            return None
        pos = self.exchange.position(sym)
        if pos is None or pos.amount == 0:
            return None
        fee = order.commission or sum(f.commission for f in self._fills(sym, order.update_time_ms - 60_000)
                                      if f.order_id == order.order_id)
        st = PositionState(symbol=sym, side=pos.side, entry_price=pos.entry_price, qty=abs(pos.amount),
                           initial_qty=abs(pos.amount), stop=0.0, initial_stop=0.0,
                           opened_ms=order.update_time_ms or now, fees=fee,
                           entry_client_order_id=order.client_order_id, manual=True)
        return self._record(sym, slot, st, now, [order.client_order_id])

    def adopt(self, sym: str, slot: Any, st: PositionState, now: int) -> Note | None:
        """The router just adopted a position the agent had no record of (`st`, protected by a
        stop the router placed). If the fills that built it came from a manual order, it is
        the trader's: that stop is cancelled and a manual trade recorded. None otherwise (an
        unknown position: the agent adopts it as before)."""
        open_side = "BUY" if st.side == "LONG" else "SELL"
        fills, need, fee = [], st.qty, 0.0
        for f in reversed([f for f in self._fills(sym, now - LOOKBACK_MS) if f.side == open_side]):
            if need <= EPS:
                break
            fills.append(f)
            # a fill that flipped a position opened only part of this one: its share of the fee
            fee += f.commission * min(1.0, need / f.qty) if f.qty > 0 else 0.0
            need -= f.qty
        orders = {str(f.order_id): self.store.orders.find(sym, str(f.order_id)) for f in fills}
        manual = [o for o in orders.values() if o is not None and o["purpose"] == "manual"]
        if not manual:
            return None
        if st.stop_client_algo_id:
            try:
                self.exchange.cancel_stop(sym, st.stop_client_algo_id)
            except BinanceError as exc:     # reduce-only: a stale one is harmless, the log says so
                self._log("WARNING", sym, f"撤销接管时挂出的止损单失败：{exc}",
                          f"cancelling the stop placed on adoption failed: {exc}", now)
        st.manual, st.stop, st.initial_stop = True, 0.0, 0.0
        st.stop_client_algo_id = st.stop_algo_id = None
        st.opened_ms = min(f.time_ms for f in fills)
        st.fees = fee
        st.entry_client_order_id = str(manual[0]["client_order_id"])
        cids = [str(o["client_order_id"]) for o in manual]
        tid = self._record(sym, slot, st, now, cids)
        sl, tp = manual_stops.pending(self.store, cids)
        if sl is not None or tp is not None:      # the stops the trader set with the LIMIT
            for zh, en in manual_stops.place(self.exchange, self.store, st, sl, tp, now):
                self._log("INFO", sym, zh, en, now)
            self.store.update_trade(tid, stop_price=st.stop or None, position=state_copy(st))
            return (f"{sym}：手动挂单已成交，记为手动交易 #{tid}（仅挂出交易者设定的止损/止盈，不参与学习）",
                    f"{sym}: a manual order filled: recorded as manual trade #{tid} (only the trader's "
                    "stop-loss/take-profit, kept out of the learning)")
        return (f"{sym}：手动挂单已成交，记为手动交易 #{tid}（无止损，不参与学习）",
                f"{sym}: a manual order filled: recorded as manual trade #{tid} (no stop, kept out of the learning)")

    def _record(self, sym: str, slot: Any, st: PositionState, now: int, order_ids: list[str]) -> int:
        side_zh = "多单" if st.side == "LONG" else "空单"
        assert st.entry_client_order_id is not None
        with self.store.batch():
            tid = self.store.open_trade(
                symbol=sym, side=st.side, entry_client_order_id=st.entry_client_order_id,
                opened_ms=st.opened_ms, entry_price=st.entry_price, quantity=st.qty, stop_price=None,
                target_price=None, leverage=self._leverage, features={},
                perception={"symbol": sym, "time_ms": now, "note": "manual order from the dashboard",
                            "note_zh": "交易面板手动下单", "note_en": "manual order from the dashboard"},
                action={"side": st.side, "price": st.entry_price, "quantity": st.qty, "manual": True},
                entry_fee=st.fees, note="manual: a dashboard order opened this position",
                order_ids=order_ids, source="manual")
            st.trade_id = tid
            self.store.update_trade(tid, position=state_copy(st))
        slot.state = st
        self._publish(sym)
        self._log("INFO", sym,
                  f"手动交易 #{tid}：{side_zh} {st.qty:g} @ {st.entry_price:g}，代理不另设止损、不管理、不学习",
                  f"manual trade #{tid}: {st.side} {st.qty:g} @ {st.entry_price:g}, no stop of the agent's; the agent "
                  f"neither manages it nor learns from it", now)
        return tid

    # ------------------------------------------------------------------ upkeep
    def sync(self, sym: str, slot: Any, now: int) -> tuple[list[Note], bool]:
        """A manual trade against the exchange: smaller → its exit fills; larger → the add-on;
        flat → its record closed. Returns (notes, flipped): flipped when the exchange now
        holds the other side (the caller reconciles that as a new position)."""
        st: PositionState = slot.state
        notes: list[Note] = []
        trade = self.store.trade_row(st.trade_id, with_position=False) if st.trade_id is not None else None
        if trade is None or trade["status"] != "open":
            slot.state = None
            return notes, False
        pos = self.exchange.position(sym)
        same = pos is not None and pos.amount != 0 and pos.side == st.side
        size = abs(pos.amount) if same and pos is not None else 0.0
        if size < st.qty - EPS:
            self._record_exit_fills(trade, "manual")
            # the closing orders belong to the trade too (the fill history names it)
            self.store.orders.link(int(trade["id"]), self._manual_exit_orders(trade))
            if size <= EPS:
                left = self.store.trade_row(int(trade["id"]), with_position=False)
                if left is not None and left["remaining_qty"] > EPS:
                    # no fill to be found (history unavailable): booked at its entry, said so
                    self.store.record_exit(int(trade["id"]), client_order_id=f"{sym}:outside-{trade['id']}",
                                           time_ms=now, kind="reconcile", price=st.entry_price,
                                           quantity=left["remaining_qty"], pnl=0.0, fee=0.0)
                    notes.append((f"{sym}：手动交易 #{trade['id']} 的平仓成交未找到：按开仓价记录",
                                  f"{sym}: manual trade #{trade['id']}: its closing fill was not found: "
                                  f"booked at its entry price"))
                self.journal.finalize(st.trade_id, now, "manual")
                manual_stops.cancel_left(self.exchange, self.store, sym, trade["id"])
                slot.state = None
                notes.append((f"{sym}：手动交易 #{trade['id']} 已平仓", f"{sym}: manual trade #{trade['id']} closed"))
            else:
                st.qty = size
        elif size > st.qty + EPS and pos is not None:
            self.took_in(trade, st, st.qty)
            st.qty, st.entry_price = size, pos.entry_price
        if slot.state is not None and st.trade_id is not None:
            self.store.update_trade(st.trade_id, position=state_copy(st))
        self._publish(sym)
        return notes, pos is not None and pos.amount != 0 and not same

    def took_in(self, trade: Mapping[str, Any], st: PositionState, before_qty: float) -> float:
        """The exchange's position of `trade` grew from before_qty to st.qty outside the agent:
        record the opening fills that did it (oldest first, up to the growth) as additions of
        the trade; an agent trade becomes "mixed". Moves st.entry_price to the new average
        (when the fills are found). Returns the quantity recorded."""
        sym, tid = str(trade["symbol"]), int(trade["id"])
        open_side = "BUY" if trade["side"] == "LONG" else "SELL"
        known = {str(o["order_id"]) for o in self.store.orders.for_trade(tid) if o.get("order_id")}
        entry = self.store.orders.get(str(trade["entry_client_order_id"]))
        if entry is not None and entry.get("order_id"):
            known.add(str(entry["order_id"]))
        elif ":" in str(trade["entry_client_order_id"]):          # "SYMBOL:orderId" (recovered trades)
            known.add(str(trade["entry_client_order_id"]).split(":", 1)[1])
        groups: dict[str, list[Fill]] = {}
        for f in self._fills(sym, int(trade["opened_ms"])):
            if f.side == open_side and str(f.order_id) not in known:
                groups.setdefault(str(f.order_id), []).append(f)
        need, added, notional = st.qty - before_qty, 0.0, 0.0
        for oid, fills in groups.items():
            if need <= EPS:
                break
            qty = sum(f.qty for f in fills)
            price = sum(f.price * f.qty for f in fills) / qty
            order = self.store.orders.find(sym, oid)
            cid = str(order["client_order_id"]) if order is not None else f"{sym}:{oid}"
            if self.store.record_addition(tid, client_order_id=cid, time_ms=max(f.time_ms for f in fills),
                                          price=price, quantity=qty, fee=sum(f.commission for f in fills)):
                added += qty
                notional += price * qty
                need -= qty
        self.store.mark_mixed(tid)
        if added > 0:
            st.entry_price = (st.entry_price * before_qty + notional) / (before_qty + added)
            self._log("INFO", sym, f"交易 #{tid} 被手动加仓 {added:g}：已记录，此交易不再参与学习",
                      f"trade #{tid} was added to by hand ({added:g}): recorded; it is kept out of the learning",
                      max(f.time_ms for fs in groups.values() for f in fs))
        return added

    def note_exits(self, trade: Mapping[str, Any]) -> None:
        """Exits of an agent trade that a manual order made (a sell from the dashboard while
        the agent was long): the trade becomes "mixed" and the orders are linked to it."""
        manual = self._manual_exit_orders(trade)
        if manual:
            with self.store.batch():
                self.store.mark_mixed(int(trade["id"]))
                self.store.orders.link(int(trade["id"]), manual)

    def _manual_exit_orders(self, trade: Mapping[str, Any]) -> list[str]:
        """The client ids of the dashboard orders that made exits of `trade`."""
        sym, tid = str(trade["symbol"]), int(trade["id"])
        manual = []
        for e in self.store.exit_totals(tid)["exits"]:
            oid = str(e["client_order_id"]).split(":", 1)[-1]
            order = self.store.orders.find(sym, oid)
            if order is not None and order["purpose"] == "manual":
                manual.append(str(order["client_order_id"]))
        return manual

    def _fills(self, sym: str, since_ms: int) -> list[Fill]:
        try:
            return self.exchange.fills_since(sym, max(0, since_ms))
        except BinanceError:
            return []
