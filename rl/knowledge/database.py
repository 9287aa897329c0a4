"""The knowledge store's one SQLite connection and one lock, shared by its repositories.

The store, its order book and its decision log all write to the same file through this
object, so a write of one can join another's transaction (a trade's record links its orders;
a backtest batches thousands of writes of all kinds into one commit), and the dashboard's
reads wait on the same lock as the agent's writes, so they never see a half-written trade.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rl.db import connect, migrate, transaction
from rl.knowledge.schema import COMPONENT, MIGRATIONS


class KnowledgeDb:
    """The open, migrated knowledge database: `conn` guarded by `lock`.

    Repositories write through `transaction()` (one logical write, joining an open one) and
    read through `query()`; whoever keeps a cache of what the file holds registers
    `on_rollback` to drop it when a write fails, so no cache shows a value the file lacks."""

    def __init__(self, path: str | Path) -> None:
        self.lock = threading.RLock()
        self.conn: sqlite3.Connection = connect(path)
        with self.lock:
            self.schema_version = migrate(self.conn, COMPONENT, MIGRATIONS)
        self._rollback_hooks: list[Callable[[], None]] = []

    def on_rollback(self, hook: Callable[[], None]) -> None:
        """Call `hook` whenever a write (or a batch around it) fails and rolls back."""
        self._rollback_hooks.append(hook)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One logical write, all or nothing (nested ones join the outer transaction); on any
        exception the rollback hooks run, also at each nested level the exception leaves."""
        try:
            with transaction(self.conn, self.lock) as conn:
                yield conn
        except BaseException:
            for hook in self._rollback_hooks:
                hook()
            raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def integrity_check(self) -> str:
        return str(self.query("PRAGMA integrity_check")[0][0])

    def close(self) -> None:
        with self.lock:
            self.conn.close()
