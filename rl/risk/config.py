"""The risk protections' own typed, frozen settings, validated on construction.

Every limit can be turned off with 0 (a percentage of 0 or a stop-out count of 0), so a
caller that maps environment variables onto this object needs no second "enabled" switch.
A bad value raises ValueError with one line that names the field and the rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MAX_PAUSE_HOURS = 720.0       # 30 days: a longer pause is a switched-off agent, not a pause


def _fail(name: str, value: object, rule: str) -> ValueError:
    return ValueError(f"{name}={value!r} is invalid: {rule}")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(name, value, f"{name} must be a finite number")
    return float(value)


def _percent(name: str, value: object) -> None:
    v = _number(name, value)
    if not 0 <= v < 100:
        raise _fail(name, value, f"{name} must be >= 0 and < 100 (0 turns the rule off)")


def _hours(name: str, value: object) -> None:
    v = _number(name, value)
    if not 0 < v <= MAX_PAUSE_HOURS:
        raise _fail(name, value, f"{name} must be > 0 and <= {MAX_PAUSE_HOURS:g} hours")


@dataclass(frozen=True)
class ProtectionConfig:
    """Limits on opening new positions. Open positions are always still managed."""

    # A fall of 10 % from the equity peak is five full-risk losses (MAX_RISK_PERCENT 2) in a
    # row, or ten at the exploration stake: far beyond an unlucky streak, so the market is not
    # one the analysis reads; stopping there keeps a bad month from compounding into the
    # 30-40 % drawdowns the unprotected agent reaches.
    max_drawdown_percent: float = 10.0
    # The drawdown is measured from the peak of the last 30 days: MAX_DRAWDOWN_PERCENT is then
    # the most the account can lose in any 30 days (plus what the positions open at that
    # moment lose), which is what a trader who checks in once a month can live with. Entries
    # resume when equity recovers or the peak leaves the window, so a long run goes on.
    drawdown_lookback_days: float = 30.0
    # 4 % is two full-risk (2 %) stop-outs plus their fees, or four at the exploration stake:
    # a day that has lost that much is trading against the market it is in. It is less than
    # half the drawdown limit, so one bad day alone pauses the agent (until 00:00 UTC) before
    # the drawdown guard needs to, and the drawdown guard is left for slow bleeds over days.
    daily_loss_limit_percent: float = 4.0
    # Three losing stop-like exits within 6 hours: with 15m decisions and the 60-minute
    # per-symbol re-entry cooldown, one symbol fits about three trades into 6 hours, so this is
    # "every recent entry was stopped out" (a whipsaw through the levels), not the spread-out
    # losing streaks that a win rate near 40 % produces every week.
    stoploss_guard_trades: int = 3
    stoploss_guard_window_hours: float = 6.0
    # 8 hours = one 8h candle, the slowest timeframe the trend reading uses: the next entry
    # reads at least one new 8h candle. It is longer than the window, so the stop-outs that
    # caused a pause have left the window when it lifts (and they never count twice anyway).
    stoploss_guard_pause_hours: float = 8.0
    # exit kinds (rl.strategy.exits.exit_kind) that count as a stop-out when the trade lost money
    stop_exit_kinds: tuple[str, ...] = ("stop", "trailing", "break_even", "liquidation")

    def __post_init__(self) -> None:
        _percent("max_drawdown_percent", self.max_drawdown_percent)
        v = _number("drawdown_lookback_days", self.drawdown_lookback_days)
        if not 1 <= v <= 365:
            raise _fail("drawdown_lookback_days", self.drawdown_lookback_days,
                        "drawdown_lookback_days must be 1..365 days")
        _percent("daily_loss_limit_percent", self.daily_loss_limit_percent)
        n = self.stoploss_guard_trades
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 1000:
            raise _fail("stoploss_guard_trades", n,
                        "stoploss_guard_trades must be an integer 0..1000 (0 turns the rule off)")
        _hours("stoploss_guard_window_hours", self.stoploss_guard_window_hours)
        _hours("stoploss_guard_pause_hours", self.stoploss_guard_pause_hours)
        kinds = self.stop_exit_kinds
        if (not isinstance(kinds, tuple) or not kinds
                or not all(isinstance(k, str) and k.strip() for k in kinds)):
            raise _fail("stop_exit_kinds", kinds,
                        "stop_exit_kinds must be a non-empty tuple of exit kinds such as ('stop',)")

    @property
    def drawdown_lookback_ms(self) -> int:
        return round(self.drawdown_lookback_days * 24 * HOUR_MS)

    @property
    def stoploss_guard_window_ms(self) -> int:
        return round(self.stoploss_guard_window_hours * HOUR_MS)

    @property
    def stoploss_guard_pause_ms(self) -> int:
        return round(self.stoploss_guard_pause_hours * HOUR_MS)

    @property
    def equity_history_ms(self) -> int:
        """How far back equity observations matter: the drawdown window, plus a day for the
        daily loss limit's reference (the last observation before the UTC day began). Older
        ones can change no pause any more (a restart rebuilds from this much)."""
        return self.drawdown_lookback_ms + DAY_MS

    @property
    def close_history_ms(self) -> int:
        """How far back closed trades matter to a rebuild: a pause still running started at a
        stop-out at most one pause ago, and the stop-outs that made it lie one window before
        that; twice over, so the stop-outs an earlier pause consumed are consumed again (the
        equity history when it is longer: it costs nothing)."""
        return max(self.equity_history_ms,
                   2 * (self.stoploss_guard_window_ms + self.stoploss_guard_pause_ms))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe copy (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out
