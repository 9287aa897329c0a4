"""What the order router can be asked to do to an open position (the exit rules of
rl.strategy.exits decide which), and the exit kinds it records: one vocabulary for the strategy
that decides and the execution that acts, so the dependency runs one way (strategy ->
execution)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PartialClose:
    qty: float
    reason: str
    reason_zh: str = field(default="", compare=False)   # the same reason for the Chinese page


@dataclass(frozen=True)
class MoveStop:
    new_stop: float
    reason: str
    reason_zh: str = field(default="", compare=False)


@dataclass(frozen=True)
class CloseAll:
    reason: str
    reason_zh: str = field(default="", compare=False)


ExitAction = PartialClose | MoveStop | CloseAll

# An English exit reason -> the exit key stored with trades, first match wins ("stop to
# break-even" is a break-even exit, not a plain stop, so the order matters).
_REASON_KEYWORDS = (("manual", "manual"), ("opposite", "signal"), ("target", "target"),
                    ("partial", "partial"), ("trailing", "trailing"), ("break-even", "break_even"),
                    ("liquidat", "liquidation"), ("stop", "stop"))
EXIT_KIND_ZH = {"manual": "手动平仓", "signal": "反向信号", "target": "止盈", "partial": "分批止盈",
                "trailing": "移动止损", "break_even": "保本止损", "liquidation": "强平", "stop": "止损",
                "target_loss": "止盈价（扣费后亏损）"}
EXIT_KIND_EN = {"manual": "manual close", "signal": "reverse signal", "target": "take-profit",
                "partial": "partial take-profit", "trailing": "trailing stop", "break_even": "break-even stop",
                "liquidation": "liquidation", "stop": "stop",
                "target_loss": "take-profit price, net loss after fees"}
# the kinds that claim a profit: an exit stored under one of them must not have lost money
TAKE_PROFIT_KINDS = ("target", "partial")


def exit_kind(reason: str) -> str:
    """The stored exit key for a reason text; "reconcile" when none is recognisable."""
    r = reason.lower()
    for key, kind in _REASON_KEYWORDS:
        if key in r:
            return kind
    return "reconcile"


def honest_exit_kind(kind: str, net_pnl: float) -> str:
    """`kind`, unless it claims a profit ("target", "partial") that the fees (or funding, or a
    slipped fill) turned into a loss: then "target_loss", so no losing exit reads as a win."""
    return "target_loss" if kind in TAKE_PROFIT_KINDS and net_pnl < 0 else kind


def fee_clear_price(entry_price: float, sign: float, fee_rate: float) -> float:
    """The exit price at which closing pays back the entry and both legs' fees at `fee_rate`
    (the taker rate: no exit pays more). A take-profit must lie beyond it to be one."""
    return entry_price * (1 + sign * 2 * fee_rate)


def reason_zh_for(reason_en: str) -> str:
    """Chinese for an English-only reason (an older caller of `close`/`move_stop`): the exit
    key's name when one is recognisable, else a neutral word; never English."""
    return EXIT_KIND_ZH.get(exit_kind(reason_en), "平仓")
