"""What the protections read (facts) and what they answer (pauses, events), all immutable.

Facts are what the store keeps anyway: closed trades and equity observations. A `Pause` is
one interval during which a rule forbids new entries; a `ProtectionEvent` is the moment a
pause starts or lifts, with the line the agent logs in English and in Chinese.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, SupportsFloat, SupportsIndex

DAY_MS = 86_400_000

DRAWDOWN = "drawdown"
DAILY_LOSS = "daily_loss"
STOPLOSS_GUARD = "stoploss_guard"
RULES = (DRAWDOWN, DAILY_LOSS, STOPLOSS_GUARD)
RULE_NAMES_EN = {DRAWDOWN: "drawdown guard", DAILY_LOSS: "daily loss limit",
                 STOPLOSS_GUARD: "stop-loss guard"}
RULE_NAMES_ZH = {DRAWDOWN: "回撤保护", DAILY_LOSS: "日亏损保护", STOPLOSS_GUARD: "止损保护"}

DetailValue = int | float | str | None | tuple[int | float | str, ...]


def time_ms(name: str, value: object) -> int:
    """`value` as an int of ms (numpy integers too), or ValueError naming `name`."""
    if type(value) is int:          # the usual case, without the Protocol check's cost
        return value
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise ValueError(f"{name}={value!r} is invalid: it must be an integer of ms since the epoch")
    return operator.index(value)


def finite(name: str, value: object) -> float:
    """`value` as a finite float, or ValueError naming `name`."""
    if type(value) is float and math.isfinite(value):      # the usual case, cheaply
        return value
    v = float(value) if isinstance(value, SupportsFloat) and not isinstance(value, bool) else math.nan
    if not math.isfinite(v):
        raise ValueError(f"{name}={value!r} is invalid: it must be a finite number")
    return v


def format_utc(ms: int) -> str:
    """'2023-09-04 12:00 UTC' (seconds only when the moment is not on a whole minute)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC" if ms % 60_000 else "%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class EquityPoint:
    """The account's equity (wallet + unrealized PnL of every open position) at `time_ms`."""

    time_ms: int
    equity: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_ms", time_ms("time_ms", self.time_ms))
        object.__setattr__(self, "equity", finite("equity", self.equity))


@dataclass(frozen=True)
class ClosedTrade:
    """A closed trade as the stop-loss guard reads it: when, how it ended, what it made net."""

    closed_ms: int
    exit_kind: str                   # rl.strategy.exits.exit_kind: "stop", "trailing", "target", ...
    net_pnl: float
    symbol: str = ""
    trade_id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "closed_ms", time_ms("closed_ms", self.closed_ms))
        object.__setattr__(self, "net_pnl", finite("net_pnl", self.net_pnl))
        if not isinstance(self.exit_kind, str):
            raise ValueError(f"exit_kind={self.exit_kind!r} is invalid: it must be a string")

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> ClosedTrade:
        """From a closed trade of the knowledge store (`KnowledgeStore.trades(status="closed")`)."""
        tid = row.get("id")
        return cls(closed_ms=time_ms("closed_ms", row.get("closed_ms")),
                   exit_kind=str(row.get("exit_reason") or ""),
                   net_pnl=finite("net_pnl", row.get("net_pnl")), symbol=str(row.get("symbol") or ""),
                   trade_id=None if tid is None else time_ms("id", tid))

    @property
    def order_key(self) -> tuple[int, int, str]:
        """Closes at the same millisecond are taken in this order, whatever order they came in."""
        return (self.closed_ms, -1 if self.trade_id is None else self.trade_id, self.symbol)


@dataclass(frozen=True)
class Pause:
    """No new entries from `started_ms` (inclusive) to `until_ms` (exclusive) because of `rule`."""

    rule: str
    reason_en: str
    reason_zh: str
    started_ms: int
    until_ms: int
    # the numbers behind the reason (peak, equity, percentages, stop-out count ...)
    details: Mapping[str, DetailValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def active_at(self, now_ms: int) -> bool:
        return self.started_ms <= now_ms < self.until_ms

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "reason_en": self.reason_en, "reason_zh": self.reason_zh,
                "started_ms": self.started_ms, "until_ms": self.until_ms,
                "details": {k: list(v) if isinstance(v, tuple) else v for k, v in self.details.items()}}


@dataclass(frozen=True)
class ProtectionEvent:
    """A pause started or lifted: what the agent writes to its decision log."""

    kind: Literal["started", "lifted"]
    time_ms: int
    pause: Pause
    message_en: str
    message_zh: str

    @property
    def rule(self) -> str:
        return self.pause.rule

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "rule": self.rule, "time_ms": self.time_ms,
                "message_en": self.message_en, "message_zh": self.message_zh,
                "pause": self.pause.to_dict()}
