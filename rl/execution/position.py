"""PositionState: the agent's memory of one open position, and reconciliation with the exchange.

The exchange knows size and entry; only the agent knows why it entered, where its stop and
target are, which partial exits it took and which stop order protects it. This object holds
that, serializes to a dict for the knowledge store, and `reconcile` says what to fix when the
agent restarts and finds the exchange disagreeing (stop hit while it was down, a position it
does not remember, a missing protective stop).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rl.execution.port import PositionSnapshot, StopOrderInfo


@dataclass
class PositionState:
    symbol: str
    side: str                          # "LONG" | "SHORT"
    entry_price: float
    qty: float                         # open size now (> 0)
    initial_qty: float
    stop: float                        # the protective stop's trigger now
    initial_stop: float                # defines 1R
    target: float | None = None
    opened_ms: int = 0
    trade_id: int | None = None
    realized_pnl: float = 0.0          # from partial exits, before fees
    fees: float = 0.0                  # all commissions paid so far
    partial_exits: list[dict[str, Any]] = field(default_factory=list)
    stop_client_algo_id: str | None = None
    stop_algo_id: str | None = None
    best_price: float = 0.0            # most favourable price seen (trailing)
    breakeven_done: bool = False
    unprotected_cycles: int = 0        # cycles the position spent without a live stop
    entry_client_order_id: str | None = None
    exit_reasons: list[str] = field(default_factory=list)
    exit_reasons_zh: list[str] = field(default_factory=list)   # the same reasons in Chinese
    # a position a dashboard order opened (trade source "manual"): the agent records its
    # fills but neither protects nor manages it (stop 0: none asked for)
    manual: bool = False
    # orders of this position whose commission could not be read when they filled (the fills
    # read failed: reads rate limited, 5xx): exchange order id -> the fee already counted for
    # it; the reconciler reads them later and adds what is missing to the trade's record
    unpriced_fees: dict[str, float] = field(default_factory=dict)
    # take-profits resting on the exchange (TAKE_PROFIT_ORDER=maker, rl.execution.targets):
    # one dict per level (kind, client_order_id, price, qty, filled, status); replaced, never
    # changed in place (readers hold shallow copies)
    take_profits: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.side not in ("LONG", "SHORT"):
            raise ValueError(f"side: must be LONG or SHORT, got {self.side!r}")
        if self.qty <= 0 or self.entry_price <= 0:
            raise ValueError(f"qty/entry_price: must be > 0, got {self.qty!r}/{self.entry_price!r}")
        if not self.best_price:
            self.best_price = self.entry_price

    @property
    def sign(self) -> float:
        return 1.0 if self.side == "LONG" else -1.0

    @property
    def close_side(self) -> str:
        return "SELL" if self.side == "LONG" else "BUY"

    @property
    def risk_per_unit(self) -> float:
        return abs(self.entry_price - self.initial_stop)

    def r_multiple(self, price: float) -> float:
        """How many R the price is in profit (negative = loss)."""
        r = self.risk_per_unit
        return (price - self.entry_price) * self.sign / r if r > 0 else 0.0

    def observe(self, high: float, low: float) -> None:
        """Remember the most favourable price (the trailing stop follows it)."""
        self.best_price = max(self.best_price, high) if self.side == "LONG" else min(self.best_price, low)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PositionState:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Reconciliation:
    """What the router must do so memory, position and stops agree again."""

    adopt: bool = False                # exchange has a position we do not remember: adopt it
    drop: bool = False                 # we remember a position the exchange no longer has
    new_qty: float | None = None       # size differs: take the exchange's
    place_stop: bool = False           # position open without our protective stop
    cancel_stops: tuple[str, ...] = ()  # client_algo_ids of stops that protect nothing
    reasons: tuple[str, ...] = ()
    reasons_zh: tuple[str, ...] = ()    # reasons[i] in Chinese (same order, same length)


def reconcile(state: PositionState | None, exchange_position: PositionSnapshot | None,
              open_stops: list[StopOrderInfo]) -> Reconciliation:
    """Compare memory with the exchange (pure); the exchange is the truth about size.
    Every reason is written in English and Chinese (the run log shows either language)."""
    reasons: list[str] = []
    zh: list[str] = []
    live = [s for s in open_stops if s.status == "NEW"]
    if exchange_position is None or exchange_position.amount == 0:
        cancel = tuple(s.client_algo_id for s in live)
        if state is not None:
            reasons.append(f"{state.symbol}: position gone on the exchange (stop, liquidation or "
                           f"manual close while away): drop it")
            zh.append(f"{state.symbol}：交易所上已无此持仓（止损、强平或离线期间手动平仓），移除记录")
        if cancel:
            reasons.append(f"{len(cancel)} stop(s) protect no position: cancel")
            zh.append(f"{len(cancel)} 个止损单没有对应持仓：撤销")
        return Reconciliation(drop=state is not None, cancel_stops=cancel, reasons=tuple(reasons),
                              reasons_zh=tuple(zh))
    side = "LONG" if exchange_position.amount > 0 else "SHORT"
    size = abs(exchange_position.amount)
    close_side = "SELL" if side == "LONG" else "BUY"
    known = state if state is not None and state.side == side else None    # None: adopt
    adopt = known is None
    if adopt:
        reasons.append(f"{exchange_position.symbol}: exchange holds {side} {size:g} not in memory: adopt")
        zh.append(f"{exchange_position.symbol}：交易所持有未记录的{'多单' if side == 'LONG' else '空单'} "
                  f"{size:g}：接管")
    new_qty = None
    if known is not None and abs(known.qty - size) > 1e-12:
        new_qty = size
        reasons.append(f"{known.symbol}: size {known.qty:g} in memory, {size:g} on the exchange: "
                       f"take the exchange's")
        zh.append(f"{known.symbol}：记录数量 {known.qty:g}，交易所数量 {size:g}：以交易所为准")
    ours = None if known is None else known.stop_client_algo_id
    protecting = [s for s in live if s.side == close_side and s.type == "STOP_MARKET"]
    covered = any(s.client_algo_id == ours for s in protecting) if ours else False
    wrong_side = tuple(s.client_algo_id for s in live if s.side != close_side)
    extra = tuple(s.client_algo_id for s in protecting if ours and s.client_algo_id != ours
                  and covered)
    if not covered:
        reasons.append(f"{exchange_position.symbol}: no protective stop of ours is live: place one")
        zh.append(f"{exchange_position.symbol}：交易所上没有我方的保护性止损单：补挂一张")
    if wrong_side:
        reasons.append(f"{len(wrong_side)} stop(s) on the wrong side: cancel")
        zh.append(f"{len(wrong_side)} 个止损单方向错误：撤销")
    if extra:
        reasons.append(f"{len(extra)} stale stop(s) besides ours: cancel")
        zh.append(f"除我方止损单外还有 {len(extra)} 个旧止损单：撤销")
    return Reconciliation(adopt=adopt, new_qty=new_qty, place_stop=not covered,
                          cancel_stops=wrong_side + extra, reasons=tuple(reasons),
                          reasons_zh=tuple(zh))
