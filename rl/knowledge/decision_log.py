"""The decision log of the knowledge store: the agent's bilingual running commentary, bounded
to the newest `limit` lines so a long run never grows the file without end.
"""
from __future__ import annotations

from contextlib import nullcontext

from rl.knowledge.database import KnowledgeDb
from rl.knowledge.schema import KnowledgeError

LOG_LIMIT = 5000
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_LOG_INSERT = "INSERT INTO decision_log(time_ms, level, symbol, message_zh, message_en) VALUES(?,?,?,?,?)"


def checked_log_limit(limit: int) -> int:
    """`limit` as an int, or KnowledgeError: a log keeps at least its newest line."""
    if int(limit) < 1:
        raise KnowledgeError(f"log_limit={limit!r} is invalid: it must be >= 1")
    return int(limit)


class DecisionLog:
    """The `decision_log` table: `log` appends a line, `recent` and `count` read them."""

    def __init__(self, db: KnowledgeDb, limit: int = LOG_LIMIT) -> None:
        self._db = db
        self._limit = checked_log_limit(limit)
        self._next: int | None = None     # id the next line gets (learnt from the last)

    def log(self, time_ms: int, level: str, symbol: str, message_zh: str, message_en: str) -> int:
        """Append one decision-log line; only the newest `limit` lines are kept."""
        lvl = level.upper()
        if lvl not in LOG_LEVELS:
            raise KnowledgeError(f"level={level!r} is invalid: it must be one of {LOG_LEVELS}")
        row = (int(time_ms), lvl, symbol or "", message_zh, message_en)
        db = self._db
        with db.lock:
            nxt = self._next
            # Nothing to trim yet (ids start at 1): the INSERT alone is the whole write, and one
            # statement is atomic by itself (or joins an open batch), so it needs no BEGIN/COMMIT
            # of its own. A backtest month writes ~2,000 lines this way.
            alone = nxt is not None and nxt <= self._limit
            with nullcontext(db.conn) if alone else db.transaction() as conn:
                new_id = conn.execute(_LOG_INSERT, row).lastrowid
                assert new_id is not None   # an INSERT sets it (a cursor has None before one)
                if new_id > self._limit:    # (when alone: another writer took ids meanwhile)
                    conn.execute("DELETE FROM decision_log WHERE id<=?", (new_id - self._limit,))
            self._next = new_id + 1
        return new_id

    def recent(self, limit: int = 200, after_id: int | None = None) -> list[dict]:
        """Newest first; `after_id` returns only lines newer than it (dashboard polling)."""
        if after_id is None:
            rows = self._db.query("SELECT * FROM decision_log ORDER BY id DESC LIMIT ?", (max(0, int(limit)),))
        else:
            rows = self._db.query("SELECT * FROM decision_log WHERE id>? ORDER BY id DESC LIMIT ?",
                                  (int(after_id), max(0, int(limit))))
        return [dict(r) for r in rows]

    def count(self) -> int:
        return int(self._db.query("SELECT COUNT(*) FROM decision_log")[0][0])
