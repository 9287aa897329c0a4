"""AccountProtections: the agent's one set of risk protections, account-wide, kept across restarts.

rl.risk is pure: it folds equity observations and closed trades into pauses on new entries.
This is where the agent's facts come in and its lines go out:
- `mark_equity(now, equity)` at every 15m close (before the entry decision): observed,
  written to the store's `equity_marks` (pruned to what the rules can still use);
- `trade_closed(row)` after every close transaction (the TradeJournal calls it);
- `restore(now)` at start-up: the same fold from the store (marks and closes), so a pause that
  ran before a restart or a kill -9 runs after it, without its events being told twice;
- the events each fact brings (a pause started, a pause lifted) go to the decision log once
  each, in both languages;
- `blocking(now)` answers the entry gate; `context(now)` is what the next trade's thought chain
  notes; the newest `ProtectionState` is published (frozen) for the dashboard's threads.
Open positions are none of this class's business: the agent keeps managing them.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

from rl.agent.journal import LogFn
from rl.knowledge.store import KnowledgeStore
from rl.risk import ClosedTrade, EquityPoint, Pause, ProtectionConfig, ProtectionEvent, Protections, ProtectionState


class AccountProtections:
    """The agent's `Protections` with its persistence and its log (see the module doc).

    `publish(state)` is called with the newest state after every fact (the StatusBoard keeps
    it for readers on other threads); `log` writes the decision log."""

    def __init__(self, config: ProtectionConfig, store: KnowledgeStore, *, log: LogFn,
                 publish: Callable[[ProtectionState], None], now_ms: int) -> None:
        self._config = config
        self._store = store
        self._log = log
        self._publish = publish
        self._protections = Protections(config)
        self._last_mark_ms: int | None = None
        publish(self._protections.state(now_ms))

    @property
    def config(self) -> ProtectionConfig:
        return self._config

    # ------------------------------------------------------------------ facts
    def restore(self, now_ms: int) -> None:
        """Rebuild from the store: the equity marks and the closed trades the rules can still
        use, up to now_ms. Marks after now_ms (a replay started over from an earlier time)
        are dropped: they belong to a future this clock has not reached."""
        marks = self._store.equity_marks
        marks.discard_after(now_ms)
        points = [EquityPoint(t, e) for t, e in
                  marks.between(now_ms - self._config.equity_history_ms, now_ms)]
        closes = [ClosedTrade.from_row(r) for r in
                  self._store.closed_between(now_ms - self._config.close_history_ms, now_ms)]
        self._protections = Protections.rebuild(self._config, points, closes)
        self._last_mark_ms = points[-1].time_ms if points else None
        self._publish(self._protections.state(max(now_ms, self._last_mark_ms or now_ms)))

    def needs_mark(self, now_ms: int) -> bool:
        """No equity observed at or after now_ms yet: with several symbols closing the same 15m
        candle, the account is observed once, by the first."""
        return self._last_mark_ms is None or now_ms > self._last_mark_ms

    def mark_equity(self, now_ms: int, equity: float) -> None:
        """The account's equity (wallet + unrealized) at the 15m close now_ms: observed, logged,
        recorded. Ignored unless `needs_mark(now_ms)`."""
        if not self.needs_mark(now_ms):
            return
        events = self._protections.observe_equity(now_ms, equity)
        self._last_mark_ms = now_ms
        self._store.equity_marks.record(now_ms, equity, keep_from_ms=now_ms - self._config.equity_history_ms)
        self._told(events, now_ms)

    def trade_closed(self, row: Mapping[str, object]) -> None:
        """A trade the store just closed (its row as close_trade returns it)."""
        trade = ClosedTrade.from_row(row)
        self._told(self._protections.observe_close(trade), trade.closed_ms)

    def _told(self, events: tuple[ProtectionEvent, ...], fact_ms: int) -> None:
        for ev in events:
            self._log("WARNING" if ev.kind == "started" else "INFO", "", ev.message_zh, ev.message_en,
                      ev.time_ms)
        self._publish(self._protections.state(max(fact_ms, self._last_mark_ms or fact_ms)))

    # ------------------------------------------------------------------ questions
    def blocking(self, now_ms: int) -> tuple[Pause, ...]:
        """The pauses that forbid an entry at now_ms, earliest lift first (empty: allowed)."""
        return self._protections.active(now_ms)

    def state(self, now_ms: int) -> ProtectionState:
        return self._protections.state(now_ms)

    def context(self, now_ms: int) -> dict[str, object]:
        """What a trade entered at now_ms notes of the protections (JSON-safe): the pauses
        active then (none, when the entry was allowed) and the one lifted last."""
        last = self._protections.last_lifted(now_ms)
        return {"active": [p.to_dict() for p in self._protections.active(now_ms)],
                "last_lifted": None if last is None else last.to_dict()}
