"""SQLite persistence of the paper account (component "paper" in rl/db.py's migrations).

Kept apart from the account (rl/paper/account.py, which decides what to write and when) so
that the simulation stays readable and the storage can be skipped entirely in backtests
(persist=False). Each save is ONE transaction: a kill -9 between two saves leaves the previous
consistent account, never half a fill.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rl.db import connect, migrate, transaction

COMPONENT = "paper"

MIGRATIONS = [
    """
    CREATE TABLE paper_account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        wallet REAL NOT NULL,
        next_id INTEGER NOT NULL,
        time_ms INTEGER NOT NULL
    );
    CREATE TABLE paper_leverage (
        symbol TEXT PRIMARY KEY,
        leverage INTEGER NOT NULL
    );
    CREATE TABLE paper_positions (
        symbol TEXT PRIMARY KEY,
        amount REAL NOT NULL,
        entry_price REAL NOT NULL,
        margin REAL NOT NULL,
        leverage INTEGER NOT NULL,
        funding_slot INTEGER NOT NULL,
        mark_price REAL NOT NULL
    );
    CREATE TABLE paper_orders (
        client_order_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        price REAL NOT NULL,
        orig_qty REAL NOT NULL,
        executed_qty REAL NOT NULL,
        avg_price REAL NOT NULL,
        reduce_only INTEGER NOT NULL,
        time_in_force TEXT,
        update_time_ms INTEGER NOT NULL,
        commission REAL NOT NULL,
        reserved REAL NOT NULL
    );
    CREATE INDEX paper_orders_symbol_status ON paper_orders(symbol, status);
    CREATE TABLE paper_stops (
        client_algo_id TEXT PRIMARY KEY,
        algo_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        type TEXT NOT NULL,
        trigger_price REAL NOT NULL,
        quantity REAL NOT NULL,
        close_position INTEGER NOT NULL,
        status TEXT NOT NULL,
        update_time_ms INTEGER NOT NULL
    );
    CREATE TABLE paper_fills (
        trade_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        price REAL NOT NULL,
        qty REAL NOT NULL,
        realized_pnl REAL NOT NULL,
        commission REAL NOT NULL,
        maker INTEGER NOT NULL,
        time_ms INTEGER NOT NULL
    );
    CREATE INDEX paper_fills_symbol_time ON paper_fills(symbol, time_ms);
    CREATE TABLE paper_funding (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        symbol TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        rate REAL NOT NULL,
        mark_price REAL NOT NULL,
        amount REAL NOT NULL
    );
    """,
]

ORDER_COLS = ("client_order_id", "order_id", "symbol", "side", "type", "status", "price",
              "orig_qty", "executed_qty", "avg_price", "reduce_only", "time_in_force",
              "update_time_ms", "commission", "reserved")
STOP_COLS = ("client_algo_id", "algo_id", "symbol", "side", "type", "trigger_price", "quantity",
             "close_position", "status", "update_time_ms")
FILL_COLS = ("trade_id", "order_id", "symbol", "side", "price", "qty", "realized_pnl",
             "commission", "maker", "time_ms")
POS_COLS = ("symbol", "amount", "entry_price", "margin", "leverage", "funding_slot", "mark_price")
FUNDING_COLS = ("symbol", "time_ms", "rate", "mark_price", "amount")


def _upsert(table: str, cols: tuple[str, ...], key: str) -> str:
    sets = ", ".join(f"{c}=excluded.{c}" for c in cols if c != key)
    return (f"INSERT INTO {table}({', '.join(cols)}) VALUES({', '.join('?' * len(cols))}) "
            f"ON CONFLICT({key}) DO UPDATE SET {sets}")


class PaperStore:
    """The paper account's tables in one SQLite file (may be shared with the knowledge store)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn: sqlite3.Connection = connect(self.path)
        self.lock = threading.RLock()
        migrate(self.conn, COMPONENT, MIGRATIONS)

    def close(self) -> None:
        self.conn.close()

    def load(self) -> dict[str, Any]:
        """Everything needed to rebuild the in-memory account; account is None on a fresh file."""
        c = self.conn
        acc = c.execute("SELECT wallet, next_id, time_ms FROM paper_account WHERE id=1").fetchone()
        return {
            "account": dict(acc) if acc else None,
            "leverage": {r["symbol"]: int(r["leverage"])
                         for r in c.execute("SELECT symbol, leverage FROM paper_leverage")},
            "positions": [dict(r) for r in c.execute(f"SELECT {', '.join(POS_COLS)} FROM paper_positions")],
            "orders": [dict(r) for r in c.execute(
                f"SELECT {', '.join(ORDER_COLS)} FROM paper_orders ORDER BY rowid")],
            "stops": [dict(r) for r in c.execute(
                f"SELECT {', '.join(STOP_COLS)} FROM paper_stops ORDER BY rowid")],
            "fills": [dict(r) for r in c.execute(
                f"SELECT {', '.join(FILL_COLS)} FROM paper_fills ORDER BY time_ms, rowid")],
            "funding": [dict(r) for r in c.execute(
                f"SELECT {', '.join(FUNDING_COLS)} FROM paper_funding ORDER BY id")],
        }

    def save(self, account: dict[str, Any], leverage: dict[str, int],
             positions: dict[str, dict[str, Any] | None], orders: Iterable[dict[str, Any]],
             stops: Iterable[dict[str, Any]], fills: Iterable[dict[str, Any]],
             funding: Iterable[dict[str, Any]]) -> None:
        """Write one consistent change set. positions[symbol] = None deletes that position."""
        with transaction(self.conn, self.lock) as c:
            c.execute("INSERT INTO paper_account(id, wallet, next_id, time_ms) VALUES(1, ?, ?, ?) "
                      "ON CONFLICT(id) DO UPDATE SET wallet=excluded.wallet, "
                      "next_id=excluded.next_id, time_ms=excluded.time_ms",
                      (account["wallet"], account["next_id"], account["time_ms"]))
            for sym, lev in leverage.items():
                c.execute(_upsert("paper_leverage", ("symbol", "leverage"), "symbol"), (sym, lev))
            for sym, pos in positions.items():
                if pos is None:
                    c.execute("DELETE FROM paper_positions WHERE symbol=?", (sym,))
                else:
                    c.execute(_upsert("paper_positions", POS_COLS, "symbol"),
                              tuple(pos[k] for k in POS_COLS))
            c.executemany(_upsert("paper_orders", ORDER_COLS, "client_order_id"),
                          [tuple(o[k] for k in ORDER_COLS) for o in orders])
            c.executemany(_upsert("paper_stops", STOP_COLS, "client_algo_id"),
                          [tuple(s[k] for k in STOP_COLS) for s in stops])
            c.executemany(f"INSERT OR IGNORE INTO paper_fills({', '.join(FILL_COLS)}) "
                          f"VALUES({', '.join('?' * len(FILL_COLS))})",
                          [tuple(f[k] for k in FILL_COLS) for f in fills])
            c.executemany(f"INSERT INTO paper_funding({', '.join(FUNDING_COLS)}) "
                          f"VALUES({', '.join('?' * len(FUNDING_COLS))})",
                          [tuple(f[k] for k in FUNDING_COLS) for f in funding])


def last_time_ms(path: str | Path) -> int | None:
    """The latest market time a paper account file holds (its clock, its fills, its funding),
    None when there is no such file or account: read without creating or migrating anything
    (a replay resumed on this file must not start before it, see web.world)."""
    p = Path(path)
    if not p.is_file():
        return None
    # read-write, though it only reads: after a kill -9 the WAL may need the recovery that a
    # read-only connection cannot run
    conn = sqlite3.connect(str(p), timeout=30.0)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name='paper_account'").fetchone() is None:
            return None
        row = conn.execute("SELECT MAX(t) FROM (SELECT MAX(time_ms) t FROM paper_account"
                           " UNION ALL SELECT MAX(time_ms) FROM paper_fills"
                           " UNION ALL SELECT MAX(time_ms) FROM paper_funding)").fetchone()
        return int(row[0]) if row and row[0] is not None else None
    finally:
        conn.close()
