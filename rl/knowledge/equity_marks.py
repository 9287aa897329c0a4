"""The account's equity at each decision time, as the risk protections observed it.

The drawdown guard and the daily loss limit (rl.risk) read nothing but equity observations, so
keeping them is what lets a restarted agent (or one killed with -9) rebuild its pauses exactly:
one row per 15m close, written in the same commit as nothing else (a lost row costs one
observation, never a half-written trade). Rows older than the protections can use are pruned
as new ones come, so a live store holds about a month of them (96 a day).
"""
from __future__ import annotations

import math

from rl.knowledge.database import KnowledgeDb
from rl.knowledge.schema import KnowledgeError


class EquityMarks:
    """The `equity_marks` table: time_ms (ms since the epoch, unique) -> equity (USDT)."""

    def __init__(self, db: KnowledgeDb) -> None:
        self._db = db

    def record(self, time_ms: int, equity: float, keep_from_ms: int | None = None) -> None:
        """Write the equity observed at `time_ms` (a second write at the same time replaces
        it) and delete the rows before `keep_from_ms`, in one transaction."""
        e = float(equity)
        if not math.isfinite(e):
            raise KnowledgeError(f"equity={equity!r} is invalid: it must be a finite number")
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO equity_marks(time_ms, equity) VALUES(?,?)"
                         " ON CONFLICT(time_ms) DO UPDATE SET equity=excluded.equity", (int(time_ms), e))
            if keep_from_ms is not None:
                conn.execute("DELETE FROM equity_marks WHERE time_ms<?", (int(keep_from_ms),))

    def between(self, from_ms: int, to_ms: int) -> list[tuple[int, float]]:
        """(time_ms, equity) with from_ms <= time_ms <= to_ms, oldest first."""
        rows = self._db.query("SELECT time_ms, equity FROM equity_marks WHERE time_ms>=? AND time_ms<=?"
                              " ORDER BY time_ms", (int(from_ms), int(to_ms)))
        return [(int(r[0]), float(r[1])) for r in rows]

    def discard_after(self, time_ms: int) -> int:
        """Delete the rows after `time_ms` (a replay restarted from an earlier time left them
        in a future the clock has not reached); returns how many."""
        with self._db.transaction() as conn:
            return int(conn.execute("DELETE FROM equity_marks WHERE time_ms>?", (int(time_ms),)).rowcount)

    def count(self) -> int:
        return int(self._db.query("SELECT COUNT(*) FROM equity_marks")[0][0])
