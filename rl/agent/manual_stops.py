"""The stop-loss and take-profit a trader set on a manual order, and nothing else.

A manual trade is not the agent's: it gets no stop of the agent's. When the trader gives a
stop-loss and/or a take-profit with the order, they go on the exchange as reduce-only Algo
orders (POST /fapi/v1/algoOrder, the path the router's stops use: STOP_MARKET for the stop,
TAKE_PROFIT_MARKET for the target) for the size the order filled, as soon as it filled:
- a MARKET order (or a LIMIT that filled at once): right after the fill;
- a resting LIMIT: the request is remembered by the order's client id and placed when the
  reconciler finds the fill (ManualTrades.adopt);
- when the manual trade is flat again (one of them fired, or a manual close) the other is
  cancelled, so no reduce-only order is left behind.
Their client ids start "man-" so the open-orders panel shows them as the trader's.
"""
from __future__ import annotations

import math
import uuid
from typing import Any

from client import BinanceError
from rl.execution.port import ExchangePort
from rl.execution.position import PositionState
from rl.knowledge.store import KnowledgeStore

PENDING = "manual_stops_pending:"      # + the order's client id: what a resting LIMIT asked for
PLACED = "manual_stops:"               # + trade id: the client algo ids placed for that trade
Note = tuple[str, str]


def check_manual_stops(side: str, reference: float | None, stop_loss: float | None,
                       take_profit: float | None, *, reduce_only: bool = False) -> None:
    """ValueError naming the field and the rule when a stop-loss or take-profit cannot belong
    to a `side` order entered near `reference` (a BUY: stop below, target above)."""
    for name, v in (("stopLoss", stop_loss), ("takeProfit", take_profit)):
        if v is None:
            continue
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name}={v!r} is invalid: it must be a price > 0")
        if reduce_only:
            raise ValueError(f"{name}={v!r} is invalid: a reduce-only order opens nothing to protect; "
                             "leave it empty")
    if reference is None or reference <= 0:
        return
    below, above = ("stopLoss", "takeProfit") if side == "BUY" else ("takeProfit", "stopLoss")
    low = stop_loss if side == "BUY" else take_profit
    high = take_profit if side == "BUY" else stop_loss
    if low is not None and not low < reference:
        raise ValueError(f"{below}={low!r} is invalid: for a {side} order it must be below the "
                         f"entry price {reference:g}")
    if high is not None and not high > reference:
        raise ValueError(f"{above}={high!r} is invalid: for a {side} order it must be above the "
                         f"entry price {reference:g}")


def remember(store: KnowledgeStore, client_order_id: str, stop_loss: float | None,
             take_profit: float | None, now: int) -> None:
    """A resting LIMIT's stops, placed when it fills (see `pending`)."""
    if stop_loss is not None or take_profit is not None:
        store.set_state(PENDING + client_order_id, {"stop_loss": stop_loss, "take_profit": take_profit}, now)


def pending(store: KnowledgeStore, client_order_ids: list[str]) -> tuple[float | None, float | None]:
    for cid in client_order_ids:
        req = store.get_state(PENDING + cid)
        if req:
            return req.get("stop_loss"), req.get("take_profit")
    return None, None


def place(exchange: ExchangePort, store: KnowledgeStore, st: PositionState, stop_loss: float | None,
          take_profit: float | None, now: int) -> list[Note]:
    """Put the trader's stop-loss / take-profit on for the manual trade `st` (its whole size).
    Sets `st.stop` (and its algo ids) for the stop; returns what happened as (zh, en) notes -
    a refusal (-2021: the price is already through it) is said, not raised: the fill stands."""
    notes: list[Note] = []
    f = exchange.filters(st.symbol)
    long = st.side == "LONG"
    placed: list[str] = []
    for kind, price in (("STOP_MARKET", stop_loss), ("TAKE_PROFIT_MARKET", take_profit)):
        if price is None:
            continue
        is_stop = kind == "STOP_MARKET"
        # round away from the entry: never tighter than the trader asked
        mode = ("down" if long else "up") if is_stop else ("up" if long else "down")
        trigger = f.round_price(float(price), mode)
        cid = f"man-{'s' if is_stop else 't'}-{uuid.uuid4().hex[:20]}"
        zh_kind, en_kind = ("止损", "stop-loss") if is_stop else ("止盈", "take-profit")
        try:
            info = exchange.place_stop(st.symbol, st.close_side, kind, trigger, st.qty, cid)
        except BinanceError as exc:
            notes.append((f"{st.symbol}：手动{zh_kind} {trigger:g} 未能挂出：{exc}",
                          f"{st.symbol}: the manual {en_kind} at {trigger:g} was not placed: {exc}"))
            continue
        store.orders.record(info, "manual_stop" if is_stop else "manual_take_profit", st.trade_id)
        placed.append(cid)
        if is_stop:
            st.stop = st.initial_stop = trigger
            st.stop_client_algo_id = cid
            st.stop_algo_id = info.algo_id
        else:
            st.target = trigger
        notes.append((f"{st.symbol}：手动{zh_kind}已挂出 {trigger:g}（只减仓，数量 {st.qty:g}）",
                      f"{st.symbol}: manual {en_kind} placed at {trigger:g} (reduce-only, {st.qty:g})"))
    if placed and st.trade_id is not None:
        store.set_state(PLACED + str(st.trade_id), placed, now)
    return notes


def cancel_left(exchange: ExchangePort, store: KnowledgeStore, symbol: str, trade_id: Any) -> None:
    """The manual trade is flat: cancel whichever of its stop / take-profit is still open (one
    already gone is not an error; a failure is harmless: reduce-only, nothing to reduce)."""
    for cid in store.get_state(PLACED + str(trade_id)) or []:
        try:
            exchange.cancel_stop(symbol, str(cid))
        except BinanceError:
            pass
