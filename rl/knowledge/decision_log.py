"""The decision log part of KnowledgeStore: the agent's bilingual running commentary, bounded
to the newest `log_limit` lines so a long run never grows the file without end.
"""
from __future__ import annotations

from contextlib import nullcontext

from rl.knowledge.schema import KnowledgeError

LOG_LIMIT = 5000
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_LOG_INSERT = "INSERT INTO decision_log(time_ms, level, symbol, message_zh, message_en) VALUES(?,?,?,?,?)"


class DecisionLogMixin:
    """`log`, `logs` and `log_count` of KnowledgeStore; it uses the store's connection, lock,
    `_tx`, `_query`, `_log_limit` and `_log_next` (set in KnowledgeStore.__init__)."""

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
