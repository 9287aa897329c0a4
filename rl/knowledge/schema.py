"""The knowledge store's tables and the rules a value must meet before it is written there.

The schema evolves by numbered migrations under the component name "knowledge" (rl.db.migrate
applies the ones a file has not seen yet), so a store file written by an older version opens
and upgrades in place. A migration is appended, never edited: files in the field already ran it.
"""
from __future__ import annotations

import math
import sqlite3
from typing import Any, Literal, overload

from rl.db import Migration
from rl.errors import KnowledgeError

COMPONENT = "knowledge"
SIDES = ("LONG", "SHORT")
SOURCES = ("agent", "manual", "mixed")   # who made a trade (see migration 3)
# 'unreconciled': the position is gone on the exchange but the fills that closed it were not
# found, so its PnL is unknown; it is neither open (no position) nor closed (no result to
# learn from) until its fills turn up (rl.agent.reconciler)
TRADE_STATUSES = ("open", "closed", "unreconciled")
_STATUS_CHECK_V1 = "CHECK (status IN ('open','closed'))"
_STATUS_CHECK_V3 = "CHECK (status IN ('open','closed','unreconciled'))"


def _allow_unreconciled(conn: sqlite3.Connection) -> None:
    """Migration 3: widen the trades.status CHECK by the value 'unreconciled'.

    SQLite cannot ALTER a CHECK, and rebuilding `trades` would cascade-delete its features,
    exits and thought chains (foreign keys are on). Loosening a constraint leaves every stored
    row valid, which is the case SQLite documents for editing the schema text in place
    (sqlite.org/lang_altertable.html, "other kinds of table schema changes"): the table's SQL
    is edited and the schema version bumped so every connection re-reads it."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='trades'").fetchone()
    if row is None or _STATUS_CHECK_V3 in row[0]:
        return
    if _STATUS_CHECK_V1 not in row[0]:
        raise RuntimeError("trades.status has an unknown CHECK constraint: cannot add 'unreconciled'")
    version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
    conn.execute("PRAGMA writable_schema=ON")
    try:
        conn.execute("UPDATE sqlite_master SET sql=replace(sql, ?, ?) WHERE type='table' AND name='trades'",
                     (_STATUS_CHECK_V1, _STATUS_CHECK_V3))
        conn.execute(f"PRAGMA schema_version={version + 1}")
    finally:
        conn.execute("PRAGMA writable_schema=OFF")


MIGRATIONS: list[Migration] = [
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
    # 2: the account equity the risk protections read (rl.knowledge.equity_marks), one row
    # per 15m close; the trades table already holds the closes they read
    """
    CREATE TABLE equity_marks (
        time_ms INTEGER PRIMARY KEY,
        equity REAL NOT NULL
    );
    """,
    # 3: the funding a trade paid or received while open (net_pnl = realized - fees + funding,
    # so the trades add up to the wallet), and who made the trade: 'agent', 'manual' (a
    # dashboard order on a symbol the agent was flat in) or 'mixed' (an agent trade a manual
    # order changed). Only 'agent' trades feed the learner and the agent's R statistics.
    # Rows written before this migration are the agent's, with their funding unknown (0).
    # trade_additions: the manual add-ons a trade took in (one net position on the exchange).
    """
    ALTER TABLE trades ADD COLUMN funding REAL NOT NULL DEFAULT 0;
    ALTER TABLE trades ADD COLUMN source TEXT NOT NULL DEFAULT 'agent'
        CHECK (source IN ('agent','manual','mixed'));
    CREATE INDEX trades_source ON trades(source, status);
    CREATE TABLE trade_additions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        trade_id INTEGER NOT NULL REFERENCES trades(id) ON DELETE CASCADE,
        client_order_id TEXT NOT NULL UNIQUE,
        time_ms INTEGER NOT NULL,
        price REAL NOT NULL,
        quantity REAL NOT NULL,
        fee REAL NOT NULL
    );
    """,
    # 4: trades.status may be 'unreconciled' (see TRADE_STATUSES)
    _allow_unreconciled,
    # 5: the learned trade filter's state (rl.strategy.trade_filter), one row, written in the
    # transaction of the close it learned from
    """
    CREATE TABLE trade_filter (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        state_json TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    """,
]


@overload
def finite(name: str, value: Any, positive: bool = ..., allow_none: Literal[False] = ...) -> float: ...


@overload
def finite(name: str, value: Any, positive: bool = ..., *, allow_none: bool) -> float | None: ...


def finite(name: str, value: Any, positive: bool = False, allow_none: bool = False) -> float | None:
    """`value` as a float, or KnowledgeError naming `name`: NaN or inf in a price or PnL column
    would poison every sum the statistics and the learner take over it."""
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
