"""SQLite plumbing shared by the stores: one way to open a database and to migrate it.

WAL mode so the dashboard can read while the agent writes; synchronous=FULL so a power cut or
kill -9 never loses a committed transaction; numbered migrations per component so each store
(knowledge, paper account) evolves its own tables without stepping on the others.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating folders) a SQLite file tuned for one writer thread and many readers."""
    p = Path(path)
    if str(p) != ":memory:":
        p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), timeout=30.0, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, lock: threading.RLock | None = None) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception: one logical write, all or nothing.

    Connections are opened in autocommit mode (isolation_level=None) so this is the only
    place transactions start; nesting is allowed and joins the outer transaction.
    """
    guard = lock if lock is not None else threading.RLock()
    with guard:
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


# A migration step: an SQL script, or a function of the connection for a change plain SQL
# cannot say (one that needs a value read from the file, e.g. PRAGMA schema_version).
Migration = str | Callable[[sqlite3.Connection], None]


def migrate(conn: sqlite3.Connection, component: str, migrations: Sequence[Migration]) -> int:
    """Apply the numbered migrations of `component` that have not run yet; return the version.

    migrations[i] is the SQL script (or function) that takes the component from version i to
    i+1. Each runs in its own transaction together with the version bump, so a crash
    mid-migration leaves the previous version intact.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS schema_versions ("
                 "component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_versions WHERE component=?", (component,)).fetchone()
    current = int(row[0]) if row else 0
    if current > len(migrations):
        raise RuntimeError(f"database schema for {component!r} is version {current}, newer than this "
                           f"program knows ({len(migrations)}): update the program or use another DB_PATH")
    for version in range(current, len(migrations)):
        step = migrations[version]
        with transaction(conn):
            if callable(step):
                step(conn)
            else:
                for statement in _split_sql(step):
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_versions(component, version) VALUES(?, ?) "
                         "ON CONFLICT(component) DO UPDATE SET version=excluded.version",
                         (component, version + 1))
    return len(migrations)


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (executescript would COMMIT implicitly).

    Pieces are joined at ';' until sqlite3 says the statement is complete, so a ';' inside a
    string literal or trigger body does not split it.
    """
    out: list[str] = []
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                out.append(buf.strip())
            buf = ""
    return out
