"""The knowledge store: SQLite as the single source of truth for what the agent did and learned.

Trades, orders, thought chains, feature values at entry, weight history, agent state and the
decision log live here, in one file, with numbered migrations (component "knowledge") and one
transaction per logical write. That is what lets the agent be SIGKILLed at any instant and
resume: a trade is either fully recorded (row + features + thought chain + linked orders) or not
at all, and every write that could be repeated after a crash is idempotent (keyed by the
exchange client order id), so a restart never duplicates a trade or an exit.

Thread model: one connection guarded by one RLock. The agent thread writes; the dashboard
threads read through the same lock, so they never see a half-written trade.
"""
from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Mapping as MappingABC
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from rl.db import connect, migrate, transaction
from rl.learning import WeightUpdate, feature_evidence, validate_weight_map

COMPONENT = "knowledge"
LOG_LIMIT = 5000
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SIDES = ("LONG", "SHORT")

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE trades (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL CHECK (side IN ('LONG','SHORT')),
        status TEXT NOT NULL CHECK (status IN ('open','closed')),
        entry_client_order_id TEXT NOT NULL UNIQUE,
        opened_ms INTEGER NOT NULL,
        closed_ms INTEGER,
        entry_price REAL NOT NULL,
        quantity REAL NOT NULL,
        remaining_qty REAL NOT NULL,
        stop_price REAL,
        target_price REAL,
        initial_stop REAL,
        leverage INTEGER NOT NULL,
        risk_amount REAL NOT NULL,
        entry_fee REAL NOT NULL DEFAULT 0,
        exit_price REAL,
        realized_pnl REAL,
        fees REAL,
        net_pnl REAL,
        r_multiple REAL,
        exit_reason TEXT,
        phase TEXT,
        long_score REAL,
        short_score REAL,
        note TEXT NOT NULL DEFAULT '',
        position_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX trades_status ON trades(status, symbol);
    CREATE INDEX trades_closed ON trades(closed_ms);
    CREATE TABLE trade_features (
        trade_id INTEGER NOT NULL REFERENCES trades(id) ON DELETE CASCADE,
        feature TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (trade_id, feature)
    );
    CREATE TABLE trade_exits (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        trade_id INTEGER NOT NULL REFERENCES trades(id) ON DELETE CASCADE,
        client_order_id TEXT NOT NULL UNIQUE,
        time_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        price REAL NOT NULL,
        quantity REAL NOT NULL,
        pnl REAL NOT NULL,
        fee REAL NOT NULL
    );
    CREATE INDEX trade_exits_trade ON trade_exits(trade_id);
    CREATE TABLE orders (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_order_id TEXT NOT NULL UNIQUE,
        trade_id INTEGER REFERENCES trades(id) ON DELETE SET NULL,
        symbol TEXT NOT NULL,
        order_id TEXT,
        purpose TEXT NOT NULL,
        side TEXT,
        type TEXT,
        status TEXT,
        price REAL,
        orig_qty REAL,
        executed_qty REAL,
        avg_price REAL,
        reduce_only INTEGER NOT NULL DEFAULT 0,
        commission REAL,
        time_ms INTEGER,
        raw_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX orders_trade ON orders(trade_id);
    CREATE TABLE thought_chains (
        trade_id INTEGER PRIMARY KEY REFERENCES trades(id) ON DELETE CASCADE,
        perception_json TEXT NOT NULL,
        action_json TEXT NOT NULL,
        reward_json TEXT,
        summary_zh TEXT NOT NULL DEFAULT '',
        summary_en TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE weight_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        trade_id INTEGER REFERENCES trades(id) ON DELETE SET NULL,
        trade_count INTEGER NOT NULL,
        weights_json TEXT NOT NULL,
        reason_zh TEXT NOT NULL,
        reason_en TEXT NOT NULL,
        evidence_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE agent_state (
        key TEXT PRIMARY KEY,
        value_json TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE decision_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        level TEXT NOT NULL,
        symbol TEXT NOT NULL DEFAULT '',
        message_zh TEXT NOT NULL,
        message_en TEXT NOT NULL
    );
    """,
]


_LOG_INSERT = "INSERT INTO decision_log(time_ms, level, symbol, message_zh, message_en) VALUES(?,?,?,?,?)"


class KnowledgeError(ValueError):
    """A write was refused: the message names the field and the rule."""


def _json_default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "item"):            # numpy scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


# = json.dumps(value, ensure_ascii=False, sort_keys=True, default=_json_default), without
# building a new encoder for every value written (json.dumps does for non-default options)
_dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=_json_default).encode


class Encoded(MappingABC):
    """A mapping together with the store's JSON text of it, encoded once for several writes:
    the agent's entry perception goes into the entry intent (`set_state`) and then into the
    thought chain (`open_trade`), and it is the bulk of both. Where a plain value is accepted
    the text written is exactly what the plain value would give; anything else sees a
    read-only mapping. Do not mutate `value` after wrapping it (the text would be stale)."""

    __slots__ = ("value", "json")

    def __init__(self, value: Mapping[str, Any]) -> None:
        self.value = dict(value)
        self.json = _dumps(self.value)

    def __getitem__(self, key: str) -> Any:
        return self.value[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def to_dict(self) -> dict:          # anywhere else (nested deeper) it encodes as its value
        return self.value


def _dumps_top(value: Any) -> str:
    """`_dumps(value)`, splicing in the text of top-level `Encoded` values of a dict with str
    keys: the encoder writes a dict as {"k": v, ...} in sorted key order with ", " and ": "
    separators, so encoding each item on its own and joining them gives the same text."""
    if (type(value) is dict and any(type(v) is Encoded for v in value.values())
            and all(type(k) is str for k in value)):
        return "{" + ", ".join(_dumps(k) + ": " + (v.json if type(v) is Encoded else _dumps(v))
                               for k, v in sorted(value.items(), key=lambda kv: kv[0])) + "}"
    return _dumps(value)


def _finite(name: str, value: Any, positive: bool = False, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise KnowledgeError(f"{name}={value!r} is invalid: it must be a number") from None
    if not math.isfinite(v) or (positive and v <= 0):
        raise KnowledgeError(f"{name}={value!r} is invalid: it must be a finite number"
                             + (" > 0" if positive else ""))
    return v


class KnowledgeStore:
    """SQLite store of trades, orders, thought chains, weights, state and the decision log."""

    def __init__(self, path: str | Path, default_weights: Mapping[str, float] | None = None,
                 log_limit: int = LOG_LIMIT) -> None:
        if int(log_limit) < 1:
            raise KnowledgeError(f"log_limit={log_limit!r} is invalid: it must be >= 1")
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection = connect(path)
        self._log_limit = int(log_limit)
        with self._lock:
            self.schema_version = migrate(self._conn, COMPONENT, MIGRATIONS)
        self._default_weights = dict(default_weights) if default_weights else None
        self._weights_cache: dict[str, float] | None = None
        self._count_cache: int | None = None
        self._samples_cache: list[tuple[dict[str, float], float]] | None = None
        # trade id -> (perception, action, features) as open_trade wrote them in THIS process,
        # until the trade closes: the close reads them from here instead of decoding the
        # thought chain it just wrote (see entry_context)
        self._entry_cache: dict[int, tuple[dict, dict, dict[str, float]]] = {}
        self._log_next: int | None = None     # id the next log line gets (learnt from the last)
        self.trade_logger = TradeLogger(self)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group many logical writes into one transaction (backtest: thousands of steps per
        commit). Nested writes join it; an exception rolls all of them back."""
        with self._tx():
            yield

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One logical write; on rollback the in-memory caches are dropped so they never show
        a value the database does not hold."""
        try:
            with transaction(self._conn, self._lock) as conn:
                yield conn
        except BaseException:
            self._weights_cache = None
            self._count_cache = None
            self._samples_cache = None
            self._entry_cache.clear()      # a rolled-back insert's id is handed out again
            raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def integrity_check(self) -> str:
        return str(self._query("PRAGMA integrity_check")[0][0])

    # ------------------------------------------------------------------ orders
    def record_order(self, order: Any, purpose: str, trade_id: int | None = None) -> None:
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
            getattr(order, "commission", None), getattr(order, "update_time_ms", None), _dumps(raw))
        with self._tx():
            self._conn.execute(
                "INSERT INTO orders(client_order_id, trade_id, symbol, order_id, purpose, side, type,"
                " status, price, orig_qty, executed_qty, avg_price, reduce_only, commission, time_ms,"
                " raw_json) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(client_order_id) DO UPDATE SET"
                " trade_id=COALESCE(excluded.trade_id, orders.trade_id), order_id=excluded.order_id,"
                " status=excluded.status, price=excluded.price, orig_qty=excluded.orig_qty,"
                " executed_qty=excluded.executed_qty, avg_price=excluded.avg_price,"
                " commission=excluded.commission, time_ms=excluded.time_ms, raw_json=excluded.raw_json",
                row)

    def link_orders(self, trade_id: int, client_order_ids: Sequence[str]) -> None:
        with self._tx():
            self._conn.executemany("UPDATE orders SET trade_id=? WHERE client_order_id=?",
                                   [(int(trade_id), c) for c in client_order_ids])

    def order(self, client_order_id: str) -> dict | None:
        rows = self._query("SELECT * FROM orders WHERE client_order_id=?", (client_order_id,))
        return self._order_dict(rows[0]) if rows else None

    def find_order(self, symbol: str, order_id: str) -> dict | None:
        """An order by the exchange's id (fills carry only that id)."""
        rows = self._query("SELECT * FROM orders WHERE symbol=? AND order_id=? ORDER BY id DESC LIMIT 1",
                           (symbol, str(order_id)))
        return self._order_dict(rows[0]) if rows else None

    def orders_for_trade(self, trade_id: int) -> list[dict]:
        return [self._order_dict(r) for r in
                self._query("SELECT * FROM orders WHERE trade_id=? ORDER BY id", (int(trade_id),))]

    @staticmethod
    def _order_dict(r: sqlite3.Row) -> dict:
        d = dict(r)
        d["raw"] = json.loads(d.pop("raw_json") or "{}")
        d["reduce_only"] = bool(d["reduce_only"])
        return d

    # ------------------------------------------------------------------ trades
    def open_trade(self, *, symbol: str, side: str, entry_client_order_id: str, opened_ms: int,
                   entry_price: float, quantity: float, stop_price: float | None,
                   target_price: float | None, leverage: int, features: Mapping[str, float],
                   perception: Mapping[str, Any] | Encoded, action: Mapping[str, Any],
                   entry_fee: float = 0.0, phase: str | None = None,
                   long_score: float | None = None, short_score: float | None = None,
                   note: str = "", position: Mapping[str, Any] | None = None,
                   order_ids: Sequence[str] = ()) -> int:
        """Record an opened trade with its features and the first half of its thought chain.

        Idempotent by `entry_client_order_id`: recording the same fill twice (a restart after a
        crash) returns the existing trade id instead of creating a duplicate."""
        if side not in SIDES:
            raise KnowledgeError(f"side={side!r} is invalid: it must be one of {SIDES}")
        if not entry_client_order_id:
            raise KnowledgeError("entry_client_order_id must be set: it makes the write idempotent")
        ep = _finite("entry_price", entry_price, positive=True)
        qty = _finite("quantity", quantity, positive=True)
        sp = _finite("stop_price", stop_price, allow_none=True)
        tp = _finite("target_price", target_price, allow_none=True)
        fee = _finite("entry_fee", entry_fee)
        if sp is not None and ((side == "LONG" and sp >= ep) or (side == "SHORT" and sp <= ep)):
            raise KnowledgeError(f"stop_price={sp} is invalid for a {side} entered at {ep}: "
                                 "it must be on the losing side of the entry")
        feats = {str(k): _finite(f"features[{k!r}]", v) for k, v in features.items()}
        risk = abs(ep - sp) * qty if sp is not None else 0.0
        with self._tx():
            row = self._conn.execute("SELECT id FROM trades WHERE entry_client_order_id=?",
                                     (entry_client_order_id,)).fetchone()
            if row:
                return int(row[0])
            cur = self._conn.execute(
                "INSERT INTO trades(symbol, side, status, entry_client_order_id, opened_ms, entry_price,"
                " quantity, remaining_qty, stop_price, target_price, initial_stop, leverage, risk_amount,"
                " entry_fee, phase, long_score, short_score, note, position_json)"
                " VALUES(?,?, 'open', ?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (symbol, side, entry_client_order_id, int(opened_ms), ep, qty, qty, sp, tp, sp,
                 int(leverage), risk, fee, phase, long_score, short_score, note,
                 _dumps(dict(position or {}))))
            tid = int(cur.lastrowid)
            self._conn.executemany("INSERT INTO trade_features(trade_id, feature, value) VALUES(?,?,?)",
                                   [(tid, k, v) for k, v in feats.items()])
            if type(perception) is Encoded:
                perception, perception_json = perception.value, perception.json
            else:
                perception = dict(perception)
                perception_json = _dumps(perception)
            action = dict(action)
            self._conn.execute(
                "INSERT INTO thought_chains(trade_id, perception_json, action_json) VALUES(?,?,?)",
                (tid, perception_json, _dumps(action)))
            ids = [entry_client_order_id, *order_ids]
            self._conn.executemany("UPDATE orders SET trade_id=? WHERE client_order_id=?",
                                   [(tid, c) for c in ids])
            self._entry_cache[tid] = (perception, action, feats)
        return tid

    def update_trade(self, trade_id: int, *, stop_price: float | None = None,
                     target_price: float | None = None, position: Mapping[str, Any] | None = None,
                     note: str | None = None) -> None:
        """Move the stop/target or save the position state (break-even, trailing, partials)."""
        sets: list[str] = []
        params: list[Any] = []
        if stop_price is not None:
            sets.append("stop_price=?")
            params.append(_finite("stop_price", stop_price, positive=True))
        if target_price is not None:
            sets.append("target_price=?")
            params.append(_finite("target_price", target_price, positive=True))
        if position is not None:
            sets.append("position_json=?")
            params.append(_dumps(dict(position)))
        if note is not None:
            sets.append("note=?")
            params.append(note)
        if not sets:
            return
        with self._tx():
            self._conn.execute(f"UPDATE trades SET {', '.join(sets)} WHERE id=?", (*params, int(trade_id)))

    def record_exit(self, trade_id: int, *, client_order_id: str, time_ms: int, kind: str,
                    price: float, quantity: float, pnl: float, fee: float,
                    position: Mapping[str, Any] | None = None) -> bool:
        """Record one (partial) exit fill; returns False when it was already recorded."""
        p = _finite("price", price, positive=True)
        q = _finite("quantity", quantity, positive=True)
        with self._tx():
            t = self._conn.execute("SELECT remaining_qty, status FROM trades WHERE id=?",
                                   (int(trade_id),)).fetchone()
            if t is None:
                raise KnowledgeError(f"trade_id={trade_id} is invalid: no such trade")
            if self._conn.execute("SELECT 1 FROM trade_exits WHERE client_order_id=?",
                                  (client_order_id,)).fetchone():
                return False
            self._conn.execute(
                "INSERT INTO trade_exits(trade_id, client_order_id, time_ms, kind, price, quantity, pnl, fee)"
                " VALUES(?,?,?,?,?,?,?,?)",
                (int(trade_id), client_order_id, int(time_ms), kind, p, q,
                 _finite("pnl", pnl), _finite("fee", fee)))
            remaining = max(0.0, float(t["remaining_qty"]) - q)
            self._conn.execute("UPDATE trades SET remaining_qty=? WHERE id=?", (remaining, int(trade_id)))
            if position is not None:
                self._conn.execute("UPDATE trades SET position_json=? WHERE id=?",
                                   (_dumps(dict(position)), int(trade_id)))
        return True

    def close_trade(self, trade_id: int, *, closed_ms: int, exit_reason: str,
                    reward: Mapping[str, Any], summary_zh: str, summary_en: str,
                    weight_update: WeightUpdate | None = None) -> dict:
        """Close a trade in ONE transaction: totals from its exits, the reward and summary of its
        thought chain, and (when learning ran) the new weights with their evidence.

        Returns the closed trade. Closing an already closed trade changes nothing (idempotent)."""
        with self._tx():
            t = self._conn.execute("SELECT * FROM trades WHERE id=?", (int(trade_id),)).fetchone()
            if t is None:
                raise KnowledgeError(f"trade_id={trade_id} is invalid: no such trade")
            if t["status"] == "closed":
                return self._trade_dict(t)
            totals = self._exit_totals(int(trade_id))
            fees = float(t["entry_fee"]) + totals["fee"]
            net = totals["pnl"] - fees
            risk = float(t["risk_amount"])
            r_mult = net / risk if risk > 0 else 0.0
            self._conn.execute(
                "UPDATE trades SET status='closed', closed_ms=?, exit_price=?, realized_pnl=?, fees=?,"
                " net_pnl=?, r_multiple=?, exit_reason=?, remaining_qty=0 WHERE id=?",
                (int(closed_ms), totals["avg_price"], totals["pnl"], fees, net, r_mult, exit_reason,
                 int(trade_id)))
            full_reward = {**dict(reward), "realized_pnl": totals["pnl"], "fees": fees,
                           "net_pnl": net, "r_multiple": r_mult, "exit_reason": exit_reason,
                           "exit_price": totals["avg_price"], "exits": totals["exits"]}
            if weight_update is not None:
                full_reward["weight_change"] = weight_update.to_dict()
                if weight_update.applied:
                    self._write_weights(weight_update.new, int(closed_ms), weight_update.reason_zh,
                                        weight_update.reason_en,
                                        {k: v.to_dict() for k, v in weight_update.evidence.items()},
                                        weight_update.trade_count, int(trade_id))
            self._conn.execute(
                "UPDATE thought_chains SET reward_json=?, summary_zh=?, summary_en=? WHERE trade_id=?",
                (_dumps(full_reward), summary_zh, summary_en, int(trade_id)))
            self._count_cache = None
            self._entry_cache.pop(int(trade_id), None)
            if self._samples_cache is not None:
                feats = {r["feature"]: float(r["value"]) for r in self._conn.execute(
                    "SELECT feature, value FROM trade_features WHERE trade_id=?", (int(trade_id),))}
                self._samples_cache.append((feats, r_mult))
            return self._trade_dict(self._conn.execute("SELECT * FROM trades WHERE id=?",
                                                       (int(trade_id),)).fetchone())

    def entry_context(self, trade_id: int) -> tuple[dict, dict, dict[str, float]] | None:
        """(perception, action, features) of an open trade that `open_trade` recorded in this
        process, as it wrote them; None otherwise (read `thought_chain`/`features` then).

        The agent's perceptions and actions are plain JSON data (rl.thought cleans them), so
        these hold the values `thought_chain` would decode, and the features the values
        `features` would read (its key order may differ). Closing a trade needs them once;
        this spares decoding the perception it wrote minutes ago. Treat them as read-only."""
        with self._lock:
            return self._entry_cache.get(int(trade_id))

    def exit_totals(self, trade_id: int) -> dict:
        with self._lock:
            return self._exit_totals(int(trade_id))

    def _exit_totals(self, trade_id: int) -> dict:
        rows = self._conn.execute("SELECT * FROM trade_exits WHERE trade_id=? ORDER BY id",
                                  (trade_id,)).fetchall()
        qty = sum(float(r["quantity"]) for r in rows)
        return {"pnl": sum(float(r["pnl"]) for r in rows), "fee": sum(float(r["fee"]) for r in rows),
                "quantity": qty,
                "avg_price": (sum(float(r["price"]) * float(r["quantity"]) for r in rows) / qty) if qty else None,
                "exits": [{k: r[k] for k in ("time_ms", "kind", "price", "quantity", "pnl", "fee",
                                             "client_order_id")} for r in rows]}

    def trade(self, trade_id: int) -> dict | None:
        """One trade with its features, exits, orders and thought chain (what the dashboard shows)."""
        rows = self._query("SELECT * FROM trades WHERE id=?", (int(trade_id),))
        if not rows:
            return None
        d = self._trade_dict(rows[0])
        d["features"] = self.features(int(trade_id))
        d["exits"] = self.exit_totals(int(trade_id))["exits"]
        d["orders"] = self.orders_for_trade(int(trade_id))
        d["thought_chain"] = self.thought_chain(int(trade_id))
        return d

    def trade_row(self, trade_id: int, with_position: bool = True) -> dict | None:
        """The trade's own row only (as trade() has it, without features, exits, orders or the
        thought chain): what the agent's reconcile and close paths read, without decoding the
        rest on every exit. with_position=False also leaves out the saved position (its JSON,
        tens of KB for a long trailing trade, is what those paths never read)."""
        rows = self._query("SELECT * FROM trades WHERE id=?", (int(trade_id),))
        if not rows:
            return None
        if with_position:
            return self._trade_dict(rows[0])
        d = dict(rows[0])
        del d["position_json"]
        return d

    def trades(self, limit: int = 100, status: str | None = None) -> list[dict]:
        """Newest first."""
        if status is not None and status not in ("open", "closed"):
            raise KnowledgeError(f"status={status!r} is invalid: it must be 'open' or 'closed'")
        sql = "SELECT * FROM trades" + (" WHERE status=?" if status else "") + " ORDER BY id DESC LIMIT ?"
        params = ((status,) if status else ()) + (max(0, int(limit)),)
        return [self._trade_dict(r) for r in self._query(sql, params)]

    def open_trades(self, symbol: str | None = None) -> list[dict]:
        sql = "SELECT * FROM trades WHERE status='open'" + (" AND symbol=?" if symbol else "") + " ORDER BY id"
        return [self._trade_dict(r) for r in self._query(sql, (symbol,) if symbol else ())]

    def last_closed_ms(self, symbol: str) -> int | None:
        """When the newest closed trade of `symbol` closed (the re-entry cooldown starts there)."""
        rows = self._query("SELECT MAX(closed_ms) FROM trades WHERE symbol=? AND status='closed'", (symbol,))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def open_trade_for(self, symbol: str) -> dict | None:
        rows = self.open_trades(symbol)
        return rows[-1] if rows else None

    def features(self, trade_id: int) -> dict[str, float]:
        return {r["feature"]: float(r["value"]) for r in
                self._query("SELECT feature, value FROM trade_features WHERE trade_id=?", (int(trade_id),))}

    @staticmethod
    def _trade_dict(r: sqlite3.Row) -> dict:
        d = dict(r)
        d["position"] = json.loads(d.pop("position_json") or "{}")
        return d

    def closed_samples(self) -> list[tuple[dict[str, float], float]]:
        """(feature values at entry, R multiple) for every closed trade: the learner's input.

        Cached between closes (the learner asks after every close; re-reading every trade
        each time would make a long backtest quadratic)."""
        with self._lock:
            if self._samples_cache is None:
                self._samples_cache = self._read_samples()
            return [(dict(f), r) for f, r in self._samples_cache]

    def _read_samples(self) -> list[tuple[dict[str, float], float]]:
        rows = self._query(
            "SELECT t.id, t.r_multiple, f.feature, f.value FROM trades t"
            " LEFT JOIN trade_features f ON f.trade_id=t.id WHERE t.status='closed' ORDER BY t.id")
        by_id: dict[int, tuple[dict[str, float], float]] = {}
        for r in rows:
            feats, _ = by_id.setdefault(int(r["id"]), ({}, float(r["r_multiple"] or 0.0)))
            if r["feature"] is not None:
                feats[r["feature"]] = float(r["value"])
        return list(by_id.values())

    # ------------------------------------------------------------------ thought chains
    def thought_chain(self, trade_id: int) -> dict | None:
        rows = self._query("SELECT * FROM thought_chains WHERE trade_id=?", (int(trade_id),))
        if not rows:
            return None
        r = rows[0]
        return {"trade_id": int(r["trade_id"]), "perception": json.loads(r["perception_json"]),
                "action": json.loads(r["action_json"]),
                "reward": json.loads(r["reward_json"]) if r["reward_json"] else None,
                "summary_zh": r["summary_zh"], "summary_en": r["summary_en"]}

    # ------------------------------------------------------------------ weights
    def current_weights(self) -> dict[str, float]:
        """The newest weights (what the level finder uses next cycle); survives restarts."""
        with self._lock:
            if self._weights_cache is None:
                row = self._conn.execute("SELECT weights_json FROM weight_history ORDER BY id DESC LIMIT 1"
                                         ).fetchone()
                if row is not None:
                    self._weights_cache = json.loads(row[0])
                elif self._default_weights is not None:
                    self._weights_cache = dict(self._default_weights)
                else:
                    raise KnowledgeError("no weights stored and no default_weights given to KnowledgeStore")
            return dict(self._weights_cache)

    def set_weights(self, weights: Mapping[str, float], time_ms: int, reason_zh: str, reason_en: str,
                    evidence: Mapping[str, Any] | None = None, trade_id: int | None = None) -> None:
        w = validate_weight_map(weights)
        with self._tx():
            self._write_weights(w, int(time_ms), reason_zh, reason_en, dict(evidence or {}),
                                self.get_trade_count(), trade_id)

    def ensure_initial_weights(self, time_ms: int) -> dict[str, float]:
        """Write the default weights as history row 1 if none exists, so the history has a start."""
        with self._tx():
            if self._conn.execute("SELECT 1 FROM weight_history LIMIT 1").fetchone() is None:
                if self._default_weights is None:
                    raise KnowledgeError("no weights stored and no default_weights given to KnowledgeStore")
                self._write_weights(validate_weight_map(self._default_weights), int(time_ms),
                                    "初始权重（设计默认值）", "initial weights (design defaults)", {}, 0, None)
        return self.current_weights()

    def _write_weights(self, weights: Mapping[str, float], time_ms: int, reason_zh: str, reason_en: str,
                       evidence: Mapping[str, Any], trade_count: int, trade_id: int | None) -> None:
        self._conn.execute(
            "INSERT INTO weight_history(time_ms, trade_id, trade_count, weights_json, reason_zh, reason_en,"
            " evidence_json) VALUES(?,?,?,?,?,?,?)",
            (time_ms, trade_id, trade_count, _dumps(dict(weights)), reason_zh, reason_en, _dumps(evidence)))
        self._weights_cache = dict(weights)

    def weight_history(self, limit: int = 1000) -> list[dict]:
        """Oldest first: [{time_ms, weights, reason_zh, reason_en, reason, evidence, trade_count}]."""
        rows = self._query("SELECT * FROM (SELECT * FROM weight_history ORDER BY id DESC LIMIT ?)"
                           " ORDER BY id", (max(0, int(limit)),))
        return [{"id": r["id"], "time_ms": r["time_ms"], "trade_id": r["trade_id"],
                 "trade_count": r["trade_count"], "weights": json.loads(r["weights_json"]),
                 "reason": r["reason_en"], "reason_zh": r["reason_zh"], "reason_en": r["reason_en"],
                 "evidence": json.loads(r["evidence_json"])} for r in rows]

    # ------------------------------------------------------------------ agent state
    def get_state(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value_json FROM agent_state WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_state(self, key: str, value: Any, time_ms: int = 0) -> None:
        with self._tx():
            self._conn.execute(
                "INSERT INTO agent_state(key, value_json, updated_ms) VALUES(?,?,?)"
                " ON CONFLICT(key) DO UPDATE SET value_json=excluded.value_json, updated_ms=excluded.updated_ms",
                (key, _dumps_top(value), int(time_ms)))

    def delete_state(self, key: str) -> None:
        with self._tx():
            self._conn.execute("DELETE FROM agent_state WHERE key=?", (key,))

    def state_keys(self, prefix: str = "") -> list[str]:
        return [r[0] for r in self._query("SELECT key FROM agent_state WHERE key LIKE ? ORDER BY key",
                                          (prefix.replace("%", r"\%") + "%",))]

    # ------------------------------------------------------------------ decision log
    def log(self, time_ms: int, level: str, symbol: str, message_zh: str, message_en: str) -> int:
        """Append one decision-log line; only the newest `log_limit` lines are kept."""
        lvl = level.upper()
        if lvl not in LOG_LEVELS:
            raise KnowledgeError(f"level={level!r} is invalid: it must be one of {LOG_LEVELS}")
        row = (int(time_ms), lvl, symbol or "", message_zh, message_en)
        with self._lock:
            nxt = self._log_next
            # Nothing to trim yet (ids start at 1): the INSERT alone is the whole write, and one
            # statement is atomic by itself (or joins an open batch), so it needs no BEGIN/COMMIT
            # of its own. A backtest month writes ~2,000 lines this way.
            alone = nxt is not None and nxt <= self._log_limit
            with nullcontext() if alone else self._tx():
                new_id = int(self._conn.execute(_LOG_INSERT, row).lastrowid)
                if new_id > self._log_limit:    # (when alone: another writer took ids meanwhile)
                    self._conn.execute("DELETE FROM decision_log WHERE id<=?", (new_id - self._log_limit,))
            self._log_next = new_id + 1
        return new_id

    def logs(self, limit: int = 200, after_id: int | None = None) -> list[dict]:
        """Newest first; `after_id` returns only lines newer than it (dashboard polling)."""
        if after_id is None:
            rows = self._query("SELECT * FROM decision_log ORDER BY id DESC LIMIT ?", (max(0, int(limit)),))
        else:
            rows = self._query("SELECT * FROM decision_log WHERE id>? ORDER BY id DESC LIMIT ?",
                               (int(after_id), max(0, int(limit))))
        return [dict(r) for r in rows]

    def log_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM decision_log")[0][0])

    # ------------------------------------------------------------------ statistics
    def get_trade_count(self) -> int:
        """Closed trades: the number the phases and the learner count."""
        with self._lock:
            if self._count_cache is None:
                self._count_cache = int(self._conn.execute(
                    "SELECT COUNT(*) FROM trades WHERE status='closed'").fetchone()[0])
            return self._count_cache


class TradeLogger:
    """The statistics view over the store that the learner, the phases and the dashboard read."""

    def __init__(self, store: KnowledgeStore) -> None:
        self._store = store

    def get_trade_count(self) -> int:
        return self._store.get_trade_count()

    def summary(self) -> dict:
        """Win rate, PnL and R statistics over closed trades."""
        rows = self._store._query("SELECT net_pnl, r_multiple, fees FROM trades WHERE status='closed'")
        n = len(rows)
        wins = [r for r in rows if (r["net_pnl"] or 0) > 0]
        losses = [r for r in rows if (r["net_pnl"] or 0) <= 0]
        gross_win = sum(r["net_pnl"] for r in wins)
        gross_loss = -sum(r["net_pnl"] or 0 for r in losses)
        return {
            "trades": n,
            "open_trades": len(self._store.open_trades()),
            "wins": len(wins), "losses": len(losses),
            "win_rate": (len(wins) / n) if n else 0.0,
            "net_pnl": sum(r["net_pnl"] or 0 for r in rows),
            "fees": sum(r["fees"] or 0 for r in rows),
            "avg_r": (sum(r["r_multiple"] or 0 for r in rows) / n) if n else 0.0,
            "avg_win": (gross_win / len(wins)) if wins else 0.0,
            "avg_loss": (-gross_loss / len(losses)) if losses else 0.0,
            "profit_factor": (gross_win / gross_loss) if gross_loss > 0 else None,
        }

    def win_rate(self) -> float:
        return float(self.summary()["win_rate"])

    def total_pnl(self) -> float:
        return float(self.summary()["net_pnl"])

    def feature_stats(self, features: Sequence[str] | None = None) -> dict[str, dict]:
        """Per feature: correlation of its entry value with R, and its mean in wins vs losses."""
        samples = self._store.closed_samples()
        names = list(features) if features is not None else sorted({k for s, _ in samples for k in s})
        return {k: v.to_dict() for k, v in feature_evidence(samples, names).items()}

    def equity_curve(self, initial_balance: float | None = None) -> list[dict]:
        """[{time_ms, equity}]: the starting balance, then one point per closed trade (net PnL)."""
        start = initial_balance if initial_balance is not None else self._store.get_state("initial_balance")
        start = float(start) if start is not None else 0.0
        rows = self._store._query("SELECT opened_ms, closed_ms, net_pnl FROM trades WHERE status='closed'"
                                  " ORDER BY closed_ms, id")
        if not rows:
            return [{"time_ms": int(self._store.get_state("initial_balance_ms", 0) or 0), "equity": start}]
        out = [{"time_ms": int(min(r["opened_ms"] for r in rows)), "equity": start}]
        eq = start
        for r in rows:
            eq += float(r["net_pnl"] or 0.0)
            out.append({"time_ms": int(r["closed_ms"]), "equity": eq})
        return out
