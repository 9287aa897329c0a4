"""LateFees: commissions that could not be read when their order filled, booked once they can.

Binance's order answer carries no commission: the router reads it from the order's fills
(userTrades, a weighted read). While reads are rate limited (429/418) or answer 5xx that read
fails, and the fee is not known yet; it is never booked as a silent 0. The router remembers
such orders on the position (`PositionState.unpriced_fees`: order id -> fee counted so far);
here they are read again on every sync, by order id among the position's fills, and what is
missing is added to the trade's record (the exit under that order's key, else the entry fee)
in one transaction with the position that no longer owes it (kill -9 never books one twice).
A trade that closes while a fee is still owed keeps the debt in the store's state
(`unpriced_fees`), settled on a later sync (the closed trade's fees, net PnL and R follow).
"""
from __future__ import annotations

from collections.abc import Mapping

from rl.agent.journal import LogFn, state_copy
from rl.errors import BinanceError
from rl.execution.port import ExchangePort, Fill
from rl.execution.position import PositionState
from rl.knowledge.store import KnowledgeStore

PARKED = "unpriced_fees"        # store state key: fees owed by closed trades
SKEW_MS = 60_000                # an order's fills are looked for from a minute before the position


class LateFees:
    def __init__(self, exchange: ExchangePort, store: KnowledgeStore, log: LogFn) -> None:
        self.exchange = exchange
        self.store = store
        self._log = log
        self._any_parked: bool | None = None      # None: not read from the store yet

    def _fees_by_order(self, symbol: str, since_ms: int) -> dict[str, float] | None:
        """order id -> the commission of its fills since `since_ms`; None when unreadable."""
        try:
            fills: list[Fill] = self.exchange.fills_since(symbol, max(0, since_ms - SKEW_MS))
        except BinanceError:
            return None
        out: dict[str, float] = {}
        for f in fills:
            out[str(f.order_id)] = out.get(str(f.order_id), 0.0) + f.commission
        return out

    def settle(self, st: PositionState, now: int) -> None:
        """Book the fees `st` still owes that can be read now (an open trade's, or one closing)."""
        if not st.unpriced_fees or st.trade_id is None:
            return
        fees = self._fees_by_order(st.symbol, st.opened_ms)
        if fees is None:
            return                  # asked again on the next sync
        for oid, counted in list(st.unpriced_fees.items()):
            if oid not in fees:
                continue            # its fills not shown yet (Binance may show them late)
            missing = fees[oid] - counted
            del st.unpriced_fees[oid]
            st.fees += missing
            self.store.add_fee(st.trade_id, missing, order_key=f"{st.symbol}:{oid}", position=state_copy(st))
            self._log("INFO", st.symbol, f"交易 #{st.trade_id}：订单 {oid} 的手续费 {missing:g} 已补记",
                      f"trade #{st.trade_id}: the fee {missing:g} of order {oid} booked late", now)

    def park(self, st: PositionState, now: int) -> None:
        """`st` closes owing fees: keep the debt in the store until it can be read."""
        if st.trade_id is not None:
            self.park_owed(st.trade_id, st.symbol, st.unpriced_fees, st.opened_ms, now)
        st.unpriced_fees.clear()

    def park_owed(self, trade_id: int, symbol: str, owed: Mapping[str, float], since_ms: int, now: int) -> None:
        """Trade `trade_id` closes owing the fees of the orders in `owed` (order id -> fee
        counted so far): kept in the store's state until their fills can be read."""
        if not owed:
            return
        parked = list(self.store.get_state(PARKED) or [])
        self._any_parked = True
        parked += [{"trade_id": int(trade_id), "symbol": symbol, "order_id": str(oid), "counted": float(counted),
                    "since_ms": int(since_ms)} for oid, counted in owed.items()]
        self.store.set_state(PARKED, parked, now)
        ids = ", ".join(owed)
        self._log("WARNING", symbol, f"交易 #{trade_id} 平仓时订单 {ids} 的手续费仍无法查询：稍后补记",
                  f"trade #{trade_id} closed with the fee of order(s) {ids} not readable yet: booked later", now)

    def settle_parked(self, symbol: str, now: int) -> None:
        """Book the fees closed trades of `symbol` still owe, once their fills can be read."""
        if self._any_parked is False:
            return
        parked = list(self.store.get_state(PARKED) or [])
        self._any_parked = bool(parked)
        mine = [p for p in parked if p["symbol"] == symbol]
        if not mine:
            return
        fees = self._fees_by_order(symbol, min(int(p["since_ms"]) for p in mine))
        if fees is None:
            return
        for p in mine:
            if p["order_id"] not in fees:
                continue
            missing = fees[p["order_id"]] - float(p["counted"])
            parked.remove(p)
            with self.store.batch():        # the fee and the debt's removal: one transaction
                self.store.add_fee(int(p["trade_id"]), missing, order_key=f"{symbol}:{p['order_id']}")
                self.store.set_state(PARKED, parked, now)
            self._log("INFO", symbol, f"交易 #{p['trade_id']}：订单 {p['order_id']} 的手续费 {missing:g} 已补记",
                      f"trade #{p['trade_id']}: the fee {missing:g} of order {p['order_id']} booked late",
                      now)
