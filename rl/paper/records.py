"""The paper account's records: a resting/filled order, a conditional (stop/take-profit) order
and an isolated position, as the account (rl/paper/account.py) mutates them in place.

Plain mutable dataclasses because fills update them field by field on the backtest's hot path;
rl/paper/store.py writes them with `asdict`, so their field names are the SQLite column names.
`result()` / `info()` turn them into the immutable snapshots of the ExchangePort (rl/execution/port.py).
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, make_dataclass

from rl.execution.port import OrderResult, StopOrderInfo, flat_dict


def _order_result(self) -> OrderResult:
    """The immutable ExchangePort view of this order (every field but `reserved`)."""
    return OrderResult(**{f.name: getattr(self, f.name) for f in fields(OrderResult)})


# The mutable twin of OrderResult: its fields, by the same names (so `result()` and the SQLite
# columns follow OrderResult's definition), plus the initial margin held for the resting part.
PaperOrder = make_dataclass(
    "PaperOrder",
    [(f.name, f.type, field(default=f.default)) if f.default is not MISSING else (f.name, f.type)
     for f in fields(OrderResult)] + [("reserved", float, field(default=0.0))],
    namespace={"result": _order_result, "__module__": __name__})


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

