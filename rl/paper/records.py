"""The paper account's records: a resting/filled order, a conditional (stop/take-profit) order
and an isolated position, as the account (rl/paper/account.py) mutates them in place.

Plain mutable dataclasses because fills update them field by field on the backtest's hot path;
rl/paper/store.py writes them with `asdict`, so their field names are the SQLite column names.
`result()` / `info()` turn them into the immutable snapshots of the ExchangePort (rl/execution/port.py).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from rl.execution.port import OrderResult, StopOrderInfo, flat_dict


@dataclass
class PaperOrder:
    """The mutable twin of OrderResult: its fields, by the same names and in the same order
    (so `result()` and the SQLite columns follow OrderResult's definition; checked below),
    plus the initial margin held for the resting part."""

    symbol: str
    order_id: str
    client_order_id: str
    side: str
    type: str
    status: str
    price: float
    orig_qty: float
    executed_qty: float
    avg_price: float
    reduce_only: bool
    time_in_force: str | None
    update_time_ms: int
    commission: float = 0.0
    reserved: float = 0.0

    def result(self) -> OrderResult:
        """The immutable ExchangePort view of this order (every field but `reserved`)."""
        return OrderResult(**{f.name: getattr(self, f.name) for f in fields(OrderResult)})


# the twin must stay one: OrderResult's fields (names, types, defaults), then `reserved`
if [(f.name, f.type, f.default) for f in fields(PaperOrder)] != \
        [(f.name, f.type, f.default) for f in fields(OrderResult)] + [("reserved", "float", 0.0)]:
    raise TypeError("PaperOrder's fields no longer follow OrderResult's (rl/execution/port.py)")


@dataclass
class PaperStop:
    client_algo_id: str
    algo_id: str
    symbol: str
    side: str
    type: str
    trigger_price: float
    quantity: float
    close_position: bool
    status: str
    update_time_ms: int

    def info(self) -> StopOrderInfo:
        return StopOrderInfo(**flat_dict(self))         # the same fields by the same names

    def hit(self, price: float) -> bool:
        """Trigger rule: a sell stop fires at or below its trigger, a sell take-profit at or above."""
        below = (self.side == "SELL") == (self.type == "STOP_MARKET")
        return price <= self.trigger_price if below else price >= self.trigger_price


@dataclass
class PaperPosition:
    symbol: str
    amount: float
    entry_price: float
    margin: float
    leverage: int
    funding_slot: int
    mark_price: float

