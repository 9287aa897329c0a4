"""The three protection rules, each an incremental fold over one kind of fact.

- `DrawdownGuard` and `DailyLossGuard` read only equity observations, which must arrive in
  time order (equal times allowed; `Protections` checks it);
- `StoplossGuard` reads only closed trades, in any order: it keeps its few stop-outs sorted
  and re-derives its pauses from them, so a close recorded late lands where it belongs.

Because no rule reads the other kind of fact, the way equity observations and closes are
interleaved cannot change any rule's state. Each guard emits the events of its own pauses;
`rl.risk.protections.Protections` composes them.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, replace

from rl.risk.records import (
    DAILY_LOSS,
    DAY_MS,
    DRAWDOWN,
    RULE_NAMES_EN,
    RULE_NAMES_ZH,
    STOPLOSS_GUARD,
    ClosedTrade,
    Pause,
    ProtectionEvent,
    format_utc,
)


def _started(pause: Pause) -> ProtectionEvent:
    return ProtectionEvent("started", pause.started_ms, pause,
                           "⛔ " + pause.reason_en, "⛔ " + pause.reason_zh)


def _lifted(pause: Pause, note_en: str = "", note_zh: str = "") -> ProtectionEvent:
    """Lifted at `until_ms`. Protections appends whether entries are allowed again (another
    rule may still pause them), which no single guard knows."""
    name_en = RULE_NAMES_EN[pause.rule]
    return ProtectionEvent("lifted", pause.until_ms, pause,
                           f"✅ {name_en[0].upper()}{name_en[1:]} lifted{note_en}",
                           f"✅ {RULE_NAMES_ZH[pause.rule]}解除{note_zh}")


def _percent_below(reference: float, equity: float) -> float:
    return (reference - equity) / reference * 100.0


def _reached(reference: float, equity: float, limit_percent: float) -> bool:
    """equity is at least limit_percent below a positive reference, compared without dividing
    (10,000 -> 9,000 is exactly 10 %, with no rounding in the way)."""
    return reference > 0 and (reference - equity) * 100.0 >= limit_percent * reference


@dataclass(frozen=True)
class DrawdownView:
    limit_percent: float
    peak_equity: float | None
    equity: float | None
    drawdown_percent: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {"limit_percent": self.limit_percent, "peak_equity": self.peak_equity,
                "equity": self.equity, "drawdown_percent": self.drawdown_percent}


class DrawdownGuard:
    """Equity `limit_percent` or more below its peak of the last `lookback_ms` -> no entries
    until it no longer is: until equity recovers to within the limit, or the peak that caused
    the pause leaves the window (the earliest lift, the pause's `until_ms`; while the next
    highest equity in the window still holds the drawdown beyond the limit, the pause goes on
    and `until_ms` moves to when that one leaves). So the account never loses more than the
    limit within any `lookback_ms`, plus what the positions open at that moment lose, and a
    long backtest trades again once the old peak is out of the window.

    The window maximum is a monotonic deque: each observation enters once and leaves once."""

    def __init__(self, limit_percent: float, lookback_ms: int) -> None:
        self._limit = limit_percent
        self._lookback = lookback_ms
        self._window: deque[tuple[int, float]] = deque()   # (time, equity), equity decreasing
        self._last: float | None = None
        self._current: Pause | None = None
        self._pauses: list[Pause] = []

    @property
    def pauses(self) -> tuple[Pause, ...]:
        return tuple(self._pauses)

    def _set_current(self, p: Pause) -> None:
        if self._current is not None and self._pauses and self._pauses[-1] is self._current:
            self._pauses[-1] = p
        else:
            self._pauses.append(p)
        self._current = p

    def observe(self, t: int, equity: float) -> list[ProtectionEvent]:
        w = self._window
        while w and w[-1][1] <= equity:
            w.pop()
        w.append((t, equity))
        while w[0][0] < t - self._lookback:
            w.popleft()
        self._last = equity
        peak_t, peak = w[0]
        leaves = max(peak_t + self._lookback, t + 1)     # when this peak is out of the window
        cur = self._current
        if not _reached(peak, equity, self._limit):
            if cur is None:
                return []
            ended = replace(cur, until_ms=t)
            self._set_current(ended)
            self._current = None
            return [_lifted(ended, f": equity {equity:,.2f} is within {self._limit:g} % of the "
                                   f"window's peak {peak:,.2f}",
                            f": 权益 {equity:,.2f} 已回到窗口峰值 {peak:,.2f} 的 {self._limit:g}% 以内")]
        if cur is not None:
            if cur.until_ms != leaves:
                self._set_current(replace(cur, until_ms=leaves))
            return []
        dd = _percent_below(peak, equity)
        days = self._lookback / DAY_MS
        p = Pause(DRAWDOWN,
                  f"Drawdown guard: equity {dd:.1f} % below its {days:g}-day peak {peak:,.2f} "
                  f"(limit {self._limit:g} %), no new entries until it recovers or that peak "
                  f"leaves the window at {format_utc(leaves)}",
                  f"回撤保护: 权益较 {days:g} 日峰值 {peak:,.2f} 回撤 {dd:.1f}% ≥ {self._limit:g}%，"
                  f"暂停开仓，直到权益回升或该峰值于 {format_utc(leaves)} 移出窗口",
                  t, leaves, {"peak_equity": peak, "peak_ms": peak_t, "equity": equity,
                              "drawdown_percent": dd, "limit_percent": self._limit})
        self._set_current(p)
        return [_started(p)]

    def view(self, now_ms: int) -> DrawdownView:
        peak = self._window[0][1] if self._window else None
        dd = None if peak is None or self._last is None or peak <= 0 else _percent_below(peak, self._last)
        return DrawdownView(self._limit, peak, self._last, dd)


@dataclass(frozen=True)
class DailyLossView:
    limit_percent: float
    day_start_ms: int | None            # 00:00 UTC of the day the figures are for
    reference_equity: float | None      # what the day is measured from
    equity: float | None
    loss_percent: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"limit_percent": self.limit_percent, "day_start_ms": self.day_start_ms,
                "reference_equity": self.reference_equity, "equity": self.equity,
                "loss_percent": self.loss_percent}


class DailyLossGuard:
    """Equity `limit_percent` or more below the day's reference -> no entries until the next
    00:00 UTC. The reference is the last equity observed before the UTC day began (what the
    account carried into the day, realized and unrealized); only when there is none, on the
    very first day, the day's first observation."""

    def __init__(self, limit_percent: float) -> None:
        self._limit = limit_percent
        self._day: int | None = None
        self._reference: float | None = None
        self._last: float | None = None
        self._current: Pause | None = None
        self._pauses: list[Pause] = []

    @property
    def pauses(self) -> tuple[Pause, ...]:
        return tuple(self._pauses)

    def observe(self, t: int, equity: float) -> list[ProtectionEvent]:
        events: list[ProtectionEvent] = []
        cur = self._current
        if cur is not None and t >= cur.until_ms:
            self._current = None
            events.append(_lifted(cur, ": a new UTC day began", ": 新的 UTC 交易日开始"))
        day = t // DAY_MS
        if day != self._day:
            self._day = day
            self._reference = equity if self._last is None else self._last
        self._last = equity
        ref = self._reference
        if self._current is None and ref is not None and _reached(ref, equity, self._limit):
            loss = _percent_below(ref, equity)
            until = (day + 1) * DAY_MS
            p = Pause(DAILY_LOSS,
                      f"Daily loss limit: equity {loss:.1f} % below where the UTC day started "
                      f"(limit {self._limit:g} %), no new entries until {format_utc(until)}",
                      f"日亏损保护: 权益较今日(UTC)开始时下跌 {loss:.1f}% ≥ {self._limit:g}%，"
                      f"暂停开仓至 {format_utc(until)}",
                      t, until, {"reference_equity": ref, "equity": equity, "loss_percent": loss,
                                 "limit_percent": self._limit})
            self._current = p
            self._pauses.append(p)
            events.append(_started(p))
        return events

    def view(self, now_ms: int) -> DailyLossView:
        if self._day is None:
            return DailyLossView(self._limit, None, None, None, None)
        day = now_ms // DAY_MS
        ref = self._reference if day == self._day else self._last    # a day not observed yet
        loss = None if ref is None or self._last is None or ref <= 0 else _percent_below(ref, self._last)
        return DailyLossView(self._limit, day * DAY_MS, ref, self._last, loss)


@dataclass(frozen=True)
class StoplossView:
    limit: int
    window_hours: float
    stop_outs_in_window: int            # those that would count toward the next pause

    def to_dict(self) -> dict[str, float | int]:
        return {"limit": self.limit, "window_hours": self.window_hours,
                "stop_outs_in_window": self.stop_outs_in_window}


class _StopTally:
    """The stop-loss guard's left fold over stop-outs in `order_key` order: the stop-outs
    counting toward the next pause, and the pauses so far."""

    def __init__(self, limit: int, window_ms: int, pause_ms: int, window_hours: float) -> None:
        self._limit, self._window_ms, self._pause_ms = limit, window_ms, pause_ms
        self._window_hours = window_hours
        self._window: deque[ClosedTrade] = deque()
        self._consumed_to: int | None = None      # stop-outs up to here started a pause
        self._paused_to: int | None = None
        self.pauses: list[Pause] = []

    def add(self, s: ClosedTrade) -> None:
        t = s.closed_ms
        if self._consumed_to is not None and t <= self._consumed_to:
            return                                  # a tie with the stop-out that started a pause
        window = self._window
        window.append(s)
        while window[0].closed_ms <= t - self._window_ms:
            window.popleft()
        if (self._paused_to is not None and t < self._paused_to) or len(window) < self._limit:
            return
        until = t + self._pause_ms
        hours, n = self._window_hours, len(window)
        self.pauses.append(Pause(
            STOPLOSS_GUARD,
            f"Stop-loss guard: {n} stop-outs within {hours:g} h (limit {self._limit}), "
            f"no new entries until {format_utc(until)}",
            f"止损保护: {hours:g} 小时内止损 {n} 次 (上限 {self._limit} 次)，暂停开仓至 {format_utc(until)}",
            t, until, {"stop_outs": n, "limit": self._limit, "window_hours": hours,
                       "first_stop_ms": window[0].closed_ms,
                       "symbols": tuple(sorted({w.symbol for w in window if w.symbol})),
                       "trade_ids": tuple(w.trade_id for w in window if w.trade_id is not None)}))
        self._consumed_to, self._paused_to = t, until
        window.clear()


class StoplossGuard:
    """`limit` stop-outs within `window_ms` -> no entries for `pause_ms` from the last of them.

    A stop-out is a closed trade whose exit kind is one of `kinds` and whose net PnL is below
    0 (a trailing stop that locked in a profit is the plan working). Every stop-out counts
    toward one pause at most: a pause consumes the stop-outs up to its start. Stop-outs while
    a pause runs (positions opened before it) count toward the next one.

    Closes may come in any order: the stop-outs are kept sorted by `ClosedTrade.order_key`
    and the pauses are their fold in that order; a stop-out that sorts last (the usual case)
    extends the fold, one that sorts earlier (recorded late) refolds them all."""

    def __init__(self, limit: int, window_ms: int, pause_ms: int, kinds: tuple[str, ...],
                 window_hours: float) -> None:
        self._limit = limit
        self._window_ms = window_ms
        self._window_hours = window_hours
        self._pause_ms = pause_ms
        self._kinds = frozenset(kinds)
        self._stop_outs: list[tuple[tuple[int, int, str], ClosedTrade]] = []   # sorted by order_key
        self._tally = self._new_tally()
        # event reporting (not part of the state): what was already said about which pause
        self._reported_start: set[int] = set()
        self._reported_lift: set[int] = set()
        self._unreported: tuple[Pause, ...] = ()  # pauses whose start or lift is still to be said
        self._clock: int | None = None            # the newest fact time seen

    def _new_tally(self) -> _StopTally:
        return _StopTally(self._limit, self._window_ms, self._pause_ms, self._window_hours)

    @property
    def pauses(self) -> tuple[Pause, ...]:
        return tuple(self._tally.pauses)

    def is_stop_out(self, trade: ClosedTrade) -> bool:
        return trade.exit_kind in self._kinds and trade.net_pnl < 0

    def observe(self, trade: ClosedTrade) -> list[ProtectionEvent]:
        if self.is_stop_out(trade):
            key = trade.order_key
            i = bisect.bisect_right(self._stop_outs, key, key=lambda e: e[0])
            self._stop_outs.insert(i, (key, trade))
            if i == len(self._stop_outs) - 1:
                self._tally.add(trade)
            else:
                self._tally = self._new_tally()
                for _, s in self._stop_outs:
                    self._tally.add(s)
            self._unreported = tuple(p for p in self._tally.pauses if p.started_ms not in self._reported_lift)
        return self.advance(trade.closed_ms)

    def advance(self, t: int) -> list[ProtectionEvent]:
        """Events of pauses that started or lifted by `t` (any fact's time: a lift needs no
        stop-out to be noticed) and were not reported yet."""
        self._clock = t if self._clock is None else max(self._clock, t)
        if not self._unreported:
            return []
        events: list[ProtectionEvent] = []
        for p in self._unreported:
            if p.started_ms not in self._reported_start:
                self._reported_start.add(p.started_ms)
                events.append(_started(p))
            if p.until_ms <= self._clock and p.started_ms not in self._reported_lift:
                self._reported_lift.add(p.started_ms)
                events.append(_lifted(p))
        self._unreported = tuple(p for p in self._unreported if p.started_ms not in self._reported_lift)
        return events

    def view(self, now_ms: int) -> StoplossView:
        consumed_to = max((p.started_ms for p in self._tally.pauses if p.started_ms <= now_ms), default=None)
        lo = now_ms - self._window_ms if consumed_to is None else max(now_ms - self._window_ms, consumed_to)
        # the stop-outs with lo < closed_ms <= now_ms: two bisections of the sorted list (a
        # long run asks after every observation, and the list keeps every stop-out)
        first = bisect.bisect_right(self._stop_outs, lo, key=lambda e: e[0][0])
        last = bisect.bisect_right(self._stop_outs, now_ms, key=lambda e: e[0][0])
        return StoplossView(self._limit, self._window_hours, max(0, last - first))
