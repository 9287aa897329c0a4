"""Risk protections: whether a new entry is allowed now, and if not, why and until when.

Pure: no I/O, no clock. Time comes in with the facts and the `now_ms` of a question.

Rules (defaults and their reasons: rl/risk/config.py; docs/risk.md):
- **Drawdown guard.** Equity (wallet + unrealized) `max_drawdown_percent` or more below its
  peak of the last `drawdown_lookback_days` -> no entries until equity recovers to within the
  limit or that peak leaves the window. The limit is then the most the account loses in any
  window (plus what the positions open at that moment lose), and a long run trades again
  once the old peak is out of the window. A pause's `until_ms` is its earliest end (when the
  peak leaves); while a lower peak still in the window holds the drawdown beyond the limit,
  the pause goes on and `until_ms` moves, without an event; its lift is an event.
- **Daily loss limit.** Equity `daily_loss_limit_percent` or more below the day's reference
  -> no entries until the next 00:00 UTC. The reference is the last equity observed before
  the UTC day began (what the account carried into the day, realized and unrealized: an
  open position's loss is a loss even before its stop fills); only on the very first day,
  without an earlier observation, the day's first one. Measuring from the carried equity
  works for a dense series (one point per minute) and a sparse one (one point per close)
  alike, and a loss while the agent was down after midnight still counts for that day.
- **Stop-loss guard.** `stoploss_guard_trades` stop-outs closed within
  `stoploss_guard_window_hours` -> no entries for `stoploss_guard_pause_hours` from the last
  of them. A stop-out is a closed trade whose exit kind is in `stop_exit_kinds` and whose net
  PnL is below 0. A pause consumes the stop-outs up to its start, so none counts twice.
A rule set to 0 is off. Open positions are not this module's business: the agent keeps
managing them while entries are paused. (The per-symbol re-entry cooldown after any close is
the agent's own rule, REENTRY_COOLDOWN_MINUTES.)

Restart by construction: the state is a pure function of two kinds of facts the agent
records anyway, closed trades and equity observations. `Protections` folds them one at a time
(the live agent and the backtest); `Protections.rebuild` / `evaluate` fold them from scratch
(after a restart or kill -9), and both give the same `ProtectionState` and, from then on, the
same events. The drawdown and daily rules read only equity observations (in time order), the
stop-loss guard only closes (any order: it keeps them sorted), so how the two kinds were
interleaved cannot matter, and asking (`state`, `allows_entry`) changes nothing.
Events are returned by the `observe_*` calls that discover them: a pause's start at the fact
that triggers it, its lift at the first fact at or after `until_ms` (a caller observing
equity every minute hears of a lift within the minute). A rebuilt `Protections` does not
repeat the events its facts already produced.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from rl.risk.config import ProtectionConfig
from rl.risk.guards import DailyLossGuard, DailyLossView, DrawdownGuard, DrawdownView, StoplossGuard, StoplossView
from rl.risk.records import (
    RULE_NAMES_EN,
    RULE_NAMES_ZH,
    RULES,
    ClosedTrade,
    EquityPoint,
    Pause,
    ProtectionEvent,
    finite,
    format_utc,
    time_ms,
)

__all__ = ["ClosedTrade", "EquityPoint", "Pause", "ProtectionConfig", "ProtectionEvent",
           "ProtectionState", "Protections", "evaluate"]


def _active(pauses: tuple[Pause, ...], now_ms: int) -> list[Pause]:
    """The pauses covering now_ms. One rule's pauses never overlap and come oldest first, so
    the scan from the newest stops at the first one already over."""
    out = []
    for p in reversed(pauses):
        if p.until_ms <= now_ms:
            break
        if p.started_ms <= now_ms:
            out.append(p)
    return out


def _history_key(p: Pause) -> tuple[int, int]:
    return (p.started_ms, RULES.index(p.rule))


@dataclass(frozen=True)
class ProtectionState:
    """Every pause so far and each rule's figures, as of `as_of_ms`."""

    as_of_ms: int
    history: tuple[Pause, ...]                 # every pause so far, oldest first
    drawdown: DrawdownView | None              # None: the rule is off
    daily_loss: DailyLossView | None
    stoploss_guard: StoplossView | None

    @property
    def active(self) -> tuple[Pause, ...]:
        return tuple(p for p in self.history if p.active_at(self.as_of_ms))

    def allows_entry(self, now_ms: int | None = None) -> bool:
        """No pause covers now_ms (default as_of_ms). Later facts may add pauses; ask the
        `Protections` that receives them for a time past the newest fact."""
        t = self.as_of_ms if now_ms is None else now_ms
        return not any(p.active_at(t) for p in self.history)

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: for /api/agent/status and the backtest's JSON report."""
        return {"as_of_ms": self.as_of_ms, "allows_entry": self.allows_entry(),
                "active": [p.to_dict() for p in self.active],
                "history": [{**p.to_dict(), "active": p.active_at(self.as_of_ms)} for p in self.history],
                "drawdown": None if self.drawdown is None else self.drawdown.to_dict(),
                "daily_loss": None if self.daily_loss is None else self.daily_loss.to_dict(),
                "stoploss_guard": None if self.stoploss_guard is None else self.stoploss_guard.to_dict()}


class Protections:
    """The incremental fold over closes and equity observations."""

    def __init__(self, config: ProtectionConfig | None = None) -> None:
        cfg = ProtectionConfig() if config is None else config
        self._config = cfg
        self._drawdown = (DrawdownGuard(cfg.max_drawdown_percent, cfg.drawdown_lookback_ms)
                          if cfg.max_drawdown_percent > 0 else None)
        self._daily = (DailyLossGuard(cfg.daily_loss_limit_percent)
                       if cfg.daily_loss_limit_percent > 0 else None)
        self._stoploss = (StoplossGuard(cfg.stoploss_guard_trades, cfg.stoploss_guard_window_ms,
                                        cfg.stoploss_guard_pause_ms, cfg.stop_exit_kinds,
                                        cfg.stoploss_guard_window_hours)
                          if cfg.stoploss_guard_trades > 0 else None)
        self._last_equity_ms: int | None = None

    @classmethod
    def rebuild(cls, config: ProtectionConfig | None, equity_points: Iterable[EquityPoint],
                closed_trades: Iterable[ClosedTrade]) -> Protections:
        """The fold from scratch over recorded facts (equity points in the order recorded,
        closes in any order): what an agent restarted after kill -9 continues from."""
        p = cls(config)
        for e in equity_points:
            p.observe_equity(e.time_ms, e.equity)
        for c in sorted(closed_trades, key=lambda c: c.order_key):   # the guard's own order: no refolds
            p.observe_close(c)
        if p._last_equity_ms is not None and p._stoploss is not None:
            p._stoploss.advance(p._last_equity_ms)      # its lifts are news already told
        return p

    @property
    def config(self) -> ProtectionConfig:
        return self._config

    def observe_equity(self, time_ms_: int, equity: float) -> tuple[ProtectionEvent, ...]:
        """Account equity (wallet + unrealized) at time_ms_, in time order. Returns the pauses
        this observation started or found lifted."""
        t = time_ms("time_ms", time_ms_)
        e = finite("equity", equity)
        if self._last_equity_ms is not None and t < self._last_equity_ms:
            raise ValueError(f"time_ms={t} is invalid: equity observations must come in time order "
                             f"(the last one was at {self._last_equity_ms})")
        self._last_equity_ms = t
        events: list[ProtectionEvent] = []
        if self._drawdown is not None:
            events += self._drawdown.observe(t, e)
        if self._daily is not None:
            events += self._daily.observe(t, e)
        if self._stoploss is not None:
            events += self._stoploss.advance(t)
        return self._told(events)

    def observe_close(self, trade: ClosedTrade) -> tuple[ProtectionEvent, ...]:
        """A closed trade (any order). Returns the pauses it started or found lifted."""
        if self._stoploss is None:
            return ()
        return self._told(self._stoploss.observe(trade))

    @property
    def pauses(self) -> tuple[Pause, ...]:
        """Every pause so far, oldest first."""
        out: list[Pause] = []
        for g in (self._drawdown, self._daily, self._stoploss):
            if g is not None:
                out += g.pauses
        return tuple(sorted(out, key=_history_key))

    def allows_entry(self, now_ms: int) -> bool:
        """True when no pause covers now_ms (the agent asks before each entry)."""
        t = time_ms("now_ms", now_ms)
        return not any(g is not None and _active(g.pauses, t)
                       for g in (self._drawdown, self._daily, self._stoploss))

    def active(self, now_ms: int) -> tuple[Pause, ...]:
        """The pauses covering now_ms, earliest lift first (empty: entries allowed). As cheap
        as `allows_entry` when nothing is paused, so the agent asks it at every decision."""
        t = time_ms("now_ms", now_ms)
        out: list[Pause] = []
        for g in (self._drawdown, self._daily, self._stoploss):
            if g is not None:
                out += _active(g.pauses, t)
        return tuple(sorted(out, key=lambda p: (p.until_ms, RULES.index(p.rule))))

    def last_lifted(self, now_ms: int) -> Pause | None:
        """The pause that ended last by now_ms (what the next trade's thought chain notes)."""
        t = time_ms("now_ms", now_ms)
        ended = [p for p in self.pauses if p.until_ms <= t]
        return max(ended, key=lambda p: (p.until_ms, RULES.index(p.rule))) if ended else None

    def state(self, now_ms: int) -> ProtectionState:
        """The pauses and figures as of now_ms (which should not precede the newest fact)."""
        t = time_ms("now_ms", now_ms)
        return ProtectionState(t, self.pauses,
                               None if self._drawdown is None else self._drawdown.view(t),
                               None if self._daily is None else self._daily.view(t),
                               None if self._stoploss is None else self._stoploss.view(t))

    def _told(self, events: list[ProtectionEvent]) -> tuple[ProtectionEvent, ...]:
        """Events in time order (a lift before a start at the same moment), each lift saying
        whether entries are allowed again or which other pause still holds them."""
        if not events:
            return ()
        events.sort(key=lambda ev: (ev.time_ms, ev.kind != "lifted", RULES.index(ev.rule)))
        return tuple(self._with_outcome(ev) if ev.kind == "lifted" else ev for ev in events)

    def _with_outcome(self, ev: ProtectionEvent) -> ProtectionEvent:
        others = [p for p in self.pauses if p.rule != ev.rule and p.active_at(ev.time_ms)]
        if not others:
            return replace(ev, message_en=ev.message_en + ", entries allowed again",
                           message_zh=ev.message_zh + "，恢复开仓")
        last = max(others, key=lambda p: p.until_ms)
        return replace(ev, message_en=ev.message_en + f"; the {RULE_NAMES_EN[last.rule]} still "
                                                      f"holds entries until {format_utc(last.until_ms)}",
                       message_zh=ev.message_zh + f"；{RULE_NAMES_ZH[last.rule]}仍暂停开仓至 "
                                                  f"{format_utc(last.until_ms)}")


def evaluate(config: ProtectionConfig | None, now_ms: int, equity_points: Iterable[EquityPoint],
             closed_trades: Iterable[ClosedTrade]) -> ProtectionState:
    """The state as of now_ms from scratch, from the facts up to now_ms (later ones ignored)."""
    t = time_ms("now_ms", now_ms)
    return Protections.rebuild(config, (e for e in equity_points if e.time_ms <= t),
                               (c for c in closed_trades if c.closed_ms <= t)).state(t)
