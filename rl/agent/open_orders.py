"""What the account has resting on the exchange, and cancelling one of it from the dashboard.

A resting limit order holds margin while the position list says "flat", so the trader must
see every open order (maker entries, resting targets, manual limits) and every open stop
(the Algo Order API's STOP_MARKET / TAKE_PROFIT_MARKET) with who placed it. Cancelling is
refused for a protective stop while its position is open, unless the trader confirms: a
position is never left unprotected silently.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rl.errors import CancelRefused, OrderNotOpen
from rl.execution.port import ExchangePort, Fill, OrderResult, StopOrderInfo
from rl.knowledge.orders import OrderBook

LogFn = Callable[[str, str, str, str], None]      # (level, symbol, zh, en)
PROTECTIVE_TYPE = "STOP_MARKET"


def _placed_by(book: OrderBook, client_id: str) -> str:
    """"manual" for the dashboard's orders, "agent" for the agent's, "unknown" for an order
    neither of them sent (placed on the exchange's own site, say)."""
    row = book.get(client_id) if client_id else None
    if row is not None:
        return "manual" if str(row.get("purpose") or "").startswith("manual") else "agent"
    if client_id.startswith("man-"):
        return "manual"
    return "agent" if client_id.startswith("ag") else "unknown"


def _purpose(book: OrderBook, client_id: str) -> str | None:
    row = book.get(client_id) if client_id else None
    return None if row is None else row.get("purpose")


def order_view(o: OrderResult, book: OrderBook) -> dict[str, Any]:
    return {"kind": "order", "symbol": o.symbol, "order_id": o.order_id,
            "client_order_id": o.client_order_id, "side": o.side, "type": o.type,
            "status": o.status, "price": o.price, "stop_price": None, "qty": o.orig_qty,
            "filled_qty": o.executed_qty, "reduce_only": o.reduce_only,
            "time_in_force": o.time_in_force, "time_ms": o.update_time_ms,
            "placed_by": _placed_by(book, o.client_order_id),
            "purpose": _purpose(book, o.client_order_id), "protective": False}


def stop_view(s: StopOrderInfo, book: OrderBook, has_position: bool) -> dict[str, Any]:
    return {"kind": "stop", "symbol": s.symbol, "order_id": s.algo_id,
            "client_order_id": s.client_algo_id, "side": s.side, "type": s.type,
            "status": s.status, "price": None, "stop_price": s.trigger_price,
            "qty": s.quantity, "filled_qty": 0.0, "reduce_only": True,
            "close_position": s.close_position, "time_in_force": None,
            "time_ms": s.update_time_ms, "placed_by": _placed_by(book, s.client_algo_id),
            "purpose": _purpose(book, s.client_algo_id),
            # a stop-loss of an open position: cancelling it leaves the position unprotected
            "protective": has_position and s.type == PROTECTIVE_TYPE}


def open_orders(exchange: ExchangePort, book: OrderBook, symbols: Sequence[str]) -> list[dict[str, Any]]:
    """Every open order and open stop of `symbols`, newest first."""
    out: list[dict[str, Any]] = []
    for sym in symbols:
        has_position = exchange.position_amount(sym) is not None
        out += [order_view(o, book) for o in exchange.open_orders(sym)]
        out += [stop_view(s, book, has_position) for s in exchange.open_stops(sym)]
    out.sort(key=lambda d: d["time_ms"] or 0, reverse=True)
    return out


def cancel(exchange: ExchangePort, book: OrderBook, symbol: str, order_id: str, *,
           confirm_unprotected: bool, log: LogFn) -> dict[str, Any]:
    """Cancel the open order or stop `order_id` (the exchange's id, or the client id).

    OrderNotOpen when nothing open has that id; CancelRefused for the stop-loss of an open
    position unless `confirm_unprotected`. The cancel is logged in both languages."""
    oid = str(order_id)
    has_position = exchange.position_amount(symbol) is not None
    order = next((o for o in exchange.open_orders(symbol) if oid in (o.order_id, o.client_order_id)), None)
    if order is not None:
        done = exchange.cancel_order(symbol, order.client_order_id)
        if done is None:
            raise OrderNotOpen(f"order_id={oid!r} of {symbol} is no longer known to the exchange "
                               "(filled or cancelled meanwhile): reload the list")
        book.record(done, _purpose(book, done.client_order_id) or "unknown")
        cancelled = done.status == "CANCELED"
        view = order_view(done, book)
        if cancelled:
            log("INFO", symbol, f"已撤销挂单 {done.side} {done.type} {done.orig_qty:g} @ {done.price:g}"
                f"（订单 {done.order_id}，已成交 {done.executed_qty:g}）",
                f"cancelled open order {done.side} {done.type} {done.orig_qty:g} @ {done.price:g} "
                f"(order {done.order_id}, filled {done.executed_qty:g})")
        return {"cancelled": cancelled, "status": done.status, "order": view}
    stop = next((s for s in exchange.open_stops(symbol) if oid in (s.algo_id, s.client_algo_id)), None)
    if stop is None:
        raise OrderNotOpen(f"order_id={oid!r} is not an open order or stop of {symbol} "
                           "(filled, cancelled or never placed): reload the list")
    view = stop_view(stop, book, has_position)
    if view["protective"] and not confirm_unprotected:
        raise CancelRefused(f"order {oid} is the stop-loss of the open {symbol} position: cancelling "
                            "it leaves the position unprotected; close the position first, or send "
                            "confirm_unprotected=true to cancel it anyway")
    exchange.cancel_stop(symbol, stop.client_algo_id)
    if view["protective"]:
        # the agent re-places the stop of a position it manages at its next check (reconcile):
        # say so, rather than let the trader believe the stop is gone for good
        again_zh = "；Agent 管理的持仓会在下次检查时重新挂出止损" if view["placed_by"] == "agent" else ""
        again_en = "; the agent places it again at its next check" if view["placed_by"] == "agent" else ""
        log("WARNING", symbol, f"应交易者确认撤销止损单 {stop.side} @ {stop.trigger_price:g}（{stop.algo_id}）："
            f"持仓现在没有止损保护{again_zh}",
            f"stop-loss {stop.side} @ {stop.trigger_price:g} ({stop.algo_id}) cancelled on the "
            f"trader's confirmation: the position is now unprotected{again_en}")
    else:
        log("INFO", symbol, f"已撤销条件单 {stop.type} {stop.side} @ {stop.trigger_price:g}（{stop.algo_id}）",
            f"cancelled stop order {stop.type} {stop.side} @ {stop.trigger_price:g} ({stop.algo_id})")
    return {"cancelled": True, "status": "CANCELED", "order": {**view, "status": "CANCELED"}}


def fills(exchange: ExchangePort, book: OrderBook, symbols: Sequence[str], since_ms: int,
          limit: int) -> list[dict[str, Any]]:
    """The account's fills of `symbols` since `since_ms`, newest first, at most `limit`, each
    with who placed its order."""
    rows: list[tuple[Fill, dict | None]] = []
    for sym in symbols:
        rows += [(f, book.find(sym, f.order_id)) for f in exchange.fills_since(sym, since_ms)]
    # newest first; fills of one millisecond by the exchange's (increasing) trade id
    rows.sort(key=lambda r: (r[0].time_ms, int(r[0].trade_id) if str(r[0].trade_id).isdigit() else 0),
              reverse=True)
    out = []
    for f, order in rows[:limit]:
        cid = order["client_order_id"] if order else ""
        out.append({**f.to_dict(), "client_order_id": cid or None,
                    "purpose": order.get("purpose") if order else None,
                    # the order's type and the agent's trade it belongs to (the history's columns)
                    "order_type": order.get("type") if order else None,
                    "agent_trade_id": order.get("trade_id") if order else None,
                    "placed_by": _placed_by(book, cid) if cid else "unknown"})
    return out
