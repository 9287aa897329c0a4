"""What the order router answers with (entry, close and sync outcomes, the resting maker
entry it follows), the recorder it reports orders to, and small shared helpers. Kept apart
from the router's logic so the entry, stop and exit modules share one vocabulary."""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from rl.execution.port import OrderResult, StopOrderInfo
from rl.execution.position import PositionState

EPS = 1e-12
STATUS_ZH = {"NEW": "已挂单", "PARTIALLY_FILLED": "部分成交", "FILLED": "已成交", "CANCELED": "已撤销",
             "EXPIRED": "已过期", "REJECTED": "被拒绝", "EXPIRED_IN_MATCH": "撮合时过期"}


def error_detail(exc: BaseException) -> str:
    """The technical part of an exchange error for a Chinese text: Binance's own msg and code
    as Binance wrote them (a trader can search them), not our English wrapper."""
    msg = getattr(exc, "msg", None)
    code = getattr(exc, "code", None)
    if msg:
        return f"{msg}, code={code}" if code is not None else str(msg)
    return str(exc)


def sequential_ids() -> Callable[[str], str]:
    """Deterministic client order ids (prefix-000001, ...) for simulated runs."""
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}-{next(counter):06d}"


class OrderRecorder(Protocol):
    def record(self, order: OrderResult | StopOrderInfo, purpose: str,
               trade_id: int | None = None) -> None: ...


@dataclass
class EntryOutcome:
    state: PositionState | None
    order: OrderResult | None
    reason: str
    pending: bool = False          # outcome unknown: `sync`/`resolve_pending` will find out
    reason_zh: str = ""            # `reason` in Chinese (run log, Chinese dashboard)
    # a maker entry rests on the book: `poll_entry` follows it; `state` is its filled part so
    # far (protected by its stop, not yet the caller's position), None while nothing filled
    resting: bool = False


@dataclass
class RestingEntry:
    """A maker (post-only) entry on the book, followed by `OrderRouter.poll_entry` until it
    ends. Read-only for callers (the agent reads side and stop to judge the setup)."""

    symbol: str
    side: str                      # "LONG" | "SHORT"
    client_order_id: str
    stop: float
    target: float | None
    trade_id: int | None
    expires_ms: int | None         # cancel the rest from this time on (None: never by time)
    placed_ms: int = 0             # when it was sent (its fills are looked for from then on)
    state: PositionState | None = None   # the filled part, protected by its own stop
    protection: str = "ok"         # the last stop placement for `state`: ok, crossed or an error
    seen: tuple[str, float] = ("", 0.0)  # (status, executed qty) last recorded
    adopted_stop: StopOrderInfo | None = None   # resumed after a restart: our stop already on
    # the exchange has shown this order at least once; an order resumed after a restart may
    # not be visible yet (Binance shows a new order with a delay), so "not found" ends an
    # unconfirmed one only after the unknown-outcome window
    confirmed: bool = True


@dataclass
class CloseOutcome:
    closed: bool                   # the whole position is gone
    qty: float                     # quantity closed now
    exit_price: float
    realized_pnl: float            # this exit, before fees
    fees: float
    reason: str
    order: OrderResult | None = None
    reason_zh: str = ""            # `reason` in Chinese


@dataclass
class SyncOutcome:
    state: PositionState | None
    closed: CloseOutcome | None = None
    notes: list[str] = field(default_factory=list)
    notes_zh: list[str] = field(default_factory=list)   # notes[i] in Chinese
    # an entry of unknown outcome that this sync resolved (filled, resting, unfilled or never
    # placed): the caller settles its intent with it, as for an entry answered at once
    entry: EntryOutcome | None = None
