"""The order book of the knowledge store: every exchange order the router sends or learns
about, upserted by client order id, and linked to its trade when the trade is recorded.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from rl.execution.port import OrderResult, StopOrderInfo
from rl.knowledge.codec import dumps
from rl.knowledge.database import KnowledgeDb
from rl.knowledge.schema import KnowledgeError


class OrderBook:
    """The `orders` table: `record` is the router's OrderRecorder; the reads are what the
    reconciler and the dashboard look orders up by."""

    def __init__(self, db: KnowledgeDb) -> None:
        self._db = db

    def record(self, order: OrderResult | StopOrderInfo, purpose: str, trade_id: int | None = None) -> None:
        """OrderRecorder: upsert an exchange order (OrderResult or StopOrderInfo) by client id.

        Called by the router for every order it sends or learns about, so the store holds each
        order's latest known state even if the agent dies before it records the trade."""
        if not purpose:
            raise KnowledgeError("purpose must be a non-empty string (entry, stop, exit, ...)")
        cid = getattr(order, "client_order_id", None) or getattr(order, "client_algo_id", None)
        if not cid:
            raise KnowledgeError("order.client_order_id must be set: orders are keyed by it")
        raw = order.to_dict() if hasattr(order, "to_dict") else (
            dict(order.__dict__) if hasattr(order, "__dict__") else {})
        row = (
            str(cid), trade_id, str(order.symbol),
            str(getattr(order, "order_id", None) or getattr(order, "algo_id", "") or ""),
            purpose, getattr(order, "side", None), getattr(order, "type", None),
            getattr(order, "status", None),
            getattr(order, "price", None) if getattr(order, "price", None) is not None
            else getattr(order, "trigger_price", None),
            getattr(order, "orig_qty", None) if hasattr(order, "orig_qty") else getattr(order, "quantity", None),
            getattr(order, "executed_qty", None), getattr(order, "avg_price", None),
            1 if getattr(order, "reduce_only", False) or getattr(order, "close_position", False) else 0,
            getattr(order, "commission", None), getattr(order, "update_time_ms", None), dumps(raw))
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO orders(client_order_id, trade_id, symbol, order_id, purpose, side, type,"
                " status, price, orig_qty, executed_qty, avg_price, reduce_only, commission, time_ms,"
                " raw_json) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(client_order_id) DO UPDATE SET"
                " trade_id=COALESCE(excluded.trade_id, orders.trade_id), order_id=excluded.order_id,"
                " status=excluded.status, price=excluded.price, orig_qty=excluded.orig_qty,"
                " executed_qty=excluded.executed_qty, avg_price=excluded.avg_price,"
                " commission=excluded.commission, time_ms=excluded.time_ms, raw_json=excluded.raw_json",
                row)

    def link(self, trade_id: int, client_order_ids: Sequence[str]) -> None:
        """Point these orders at their trade (one transaction, or part of the caller's)."""
        with self._db.transaction() as conn:
            conn.executemany("UPDATE orders SET trade_id=? WHERE client_order_id=?",
                             [(int(trade_id), c) for c in client_order_ids])

    def get(self, client_order_id: str) -> dict | None:
        rows = self._db.query("SELECT * FROM orders WHERE client_order_id=?", (client_order_id,))
        return _order_dict(rows[0]) if rows else None

    def find(self, symbol: str, order_id: str) -> dict | None:
        """An order by the exchange's id (fills carry only that id)."""
        rows = self._db.query("SELECT * FROM orders WHERE symbol=? AND order_id=? ORDER BY id DESC LIMIT 1",
                              (symbol, str(order_id)))
        return _order_dict(rows[0]) if rows else None

    def recent(self, limit: int = 100) -> list[dict]:
        """The newest orders the store knows (any status), newest first: the order history."""
        return [_order_dict(r) for r in
                self._db.query("SELECT * FROM orders ORDER BY COALESCE(time_ms, 0) DESC, id DESC LIMIT ?",
                               (int(limit),))]

    def for_trade(self, trade_id: int) -> list[dict]:
        return [_order_dict(r) for r in
                self._db.query("SELECT * FROM orders WHERE trade_id=? ORDER BY id", (int(trade_id),))]


def _order_dict(r: sqlite3.Row) -> dict:
    d = dict(r)
    d["raw"] = json.loads(d.pop("raw_json") or "{}")
    d["reduce_only"] = bool(d["reduce_only"])
    return d
