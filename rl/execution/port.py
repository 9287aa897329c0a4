"""The exchange port: what the agent may ask of an exchange, and the data types it answers with.

The agent talks only to `ExchangePort`. `PaperExchange` (rl/paper/exchange.py) and `BinanceExchange`
(rl/execution/binance.py) both implement it and return the same frozen dataclasses, so the agent cannot tell a
simulated account from a real one. Errors are the classes of client.py with Binance's codes
on both sides (OrderRejected -2019, -4164, ...), so error handling is written once. A
`SimulatedExchange` (the paper exchange) must also be shown the market: a replay or live paper
agent feeds it, a backtest loop feeds it itself.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

from client import SymbolFilters

SIDES = ("BUY", "SELL")
ORDER_TYPES = ("LIMIT", "MARKET")
STOP_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET")
TIME_IN_FORCE = ("GTC", "IOC", "GTX")      # GTX = post-only: rests as maker or is refused
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
NOT_FOUND = -2013          # Binance: "Order does not exist."
POST_ONLY_REJECTED = -5022  # Binance: a GTX order that would take liquidity is refused, not kept
ALGO_NOT_FOUND_CODES = (-2013, -2011)


def flat_dict(obj: Any) -> dict[str, Any]:
    """`dataclasses.asdict` for flat dataclasses (these and the paper exchange's own records)
    whose fields all hold immutable scalars (str, int, float, bool, None): the same dict
    without asdict's recursion and per-value deepcopy, which returns those values unchanged
    anyway. ~10x cheaper; the store serializes every order the router sends through it."""
    return {name: getattr(obj, name) for name in _field_names(type(obj))}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True)
class AccountSnapshot:
    wallet_balance: float
    unrealized_pnl: float
    margin_balance: float        # total = wallet + uPnL
    initial_margin: float        # "used"
    available_balance: float     # "available"

    def to_dict(self) -> dict[str, float]:
        return flat_dict(self)


@dataclass(frozen=True)
class PositionSnapshot:
    symbol: str
    amount: float                # signed: > 0 long, < 0 short
    entry_price: float
    mark_price: float
    unrealized_pnl: float
    liquidation_price: float
    leverage: int
    margin: float                # isolated margin of the position

    @property
    def side(self) -> str:
        return "LONG" if self.amount > 0 else "SHORT"

    def to_dict(self) -> dict[str, Any]:
        return {**flat_dict(self), "side": self.side}


@dataclass(frozen=True)
class OrderResult:
    symbol: str
    order_id: str
    client_order_id: str
    side: str
    type: str
    status: str                  # NEW PARTIALLY_FILLED FILLED CANCELED EXPIRED REJECTED
    price: float
    orig_qty: float
    executed_qty: float
    avg_price: float
    reduce_only: bool
    time_in_force: str | None
    update_time_ms: int
    commission: float = 0.0      # quote asset; 0 when the venue's order answer does not say

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return flat_dict(self)


@dataclass(frozen=True)
class StopOrderInfo:
    symbol: str
    algo_id: str
    client_algo_id: str
    side: str
    type: str                    # STOP_MARKET | TAKE_PROFIT_MARKET
    trigger_price: float
    quantity: float              # 0 with close_position
    close_position: bool
    status: str                  # NEW TRIGGERED CANCELED FINISHED EXPIRED (REJECTED)
    update_time_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return flat_dict(self)


@dataclass(frozen=True)
class Fill:
    """One trade execution: what the account really paid and earned."""

    symbol: str
    trade_id: str
    order_id: str
    side: str
    price: float
    qty: float
    realized_pnl: float          # closing part only, before fees
    commission: float            # in the quote asset, positive = paid (converted if paid in BNB)
    maker: bool
    time_ms: int
    commission_asset: str = "USDT"   # what the exchange charged it in (BNB with the BNB discount)
    asset_commission: float | None = None   # ... and how much of it, when that is not the quote

    def to_dict(self) -> dict[str, Any]:
        return flat_dict(self)


@dataclass(frozen=True)
class FundingPayment:
    """One funding settlement of a position: what the account received (amount > 0) or paid
    (amount < 0), in `asset` (the symbol's margin asset, USDT for USDT-M)."""

    symbol: str
    time_ms: int
    amount: float
    asset: str = "USDT"

    def to_dict(self) -> dict[str, Any]:
        return flat_dict(self)


@dataclass(frozen=True)
class SymbolMode:
    """One symbol's settings on the account (Binance: GET /fapi/v1/symbolConfig)."""

    symbol: str
    margin_type: str             # ISOLATED | CROSSED
    leverage: int


@dataclass(frozen=True)
class AccountMode:
    """How the account is set up, as the exchange reports it: what the agent's orders (one-way,
    positionSide BOTH) and its risk maths (isolated margin at LEVERAGE) assume."""

    hedge_mode: bool             # dualSidePosition: True = LONG and SHORT legs per symbol
    multi_assets: bool           # multiAssetsMargin: True = shared margin across assets
    symbols: tuple[SymbolMode, ...]

    def symbol(self, symbol: str) -> SymbolMode | None:
        return next((m for m in self.symbols if m.symbol == symbol), None)


@runtime_checkable
class ExchangePort(Protocol):
    name: str

    def filters(self, symbol: str) -> SymbolFilters: ...
    def account(self) -> AccountSnapshot: ...
    def position(self, symbol: str) -> PositionSnapshot | None: ...
    def position_amount(self, symbol: str) -> float | None:
        """`position(symbol).amount`, None when flat: the agent compares it with its memory on
        every bar in a position, so a simulated exchange answers without a snapshot."""
        ...
    def set_leverage(self, symbol: str, leverage: int) -> None: ...
    def account_mode(self, symbols: Sequence[str]) -> AccountMode:
        """Position mode, multi-assets mode and each symbol's margin type and leverage."""
        ...
    def set_margin_type(self, symbol: str, margin_type: str) -> None: ...
    def place_order(self, symbol: str, side: str, type: str, quantity: float,
                    price: float | None = None, time_in_force: str | None = None,
                    reduce_only: bool = False, client_order_id: str | None = None) -> OrderResult:
        """The order as the venue answered it. UnknownOrderStatus: it may have reached the
        venue (look it up by `client_order_id`, never re-send); NetworkError: it did not."""
        ...
    def get_order(self, symbol: str, client_order_id: str) -> OrderResult | None: ...
    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult | None: ...
    def open_orders(self, symbol: str) -> list[OrderResult]: ...
    def place_stop(self, symbol: str, side: str, type: str, trigger_price: float,
                   quantity: float | None, client_algo_id: str) -> StopOrderInfo: ...
    def cancel_stop(self, symbol: str, client_algo_id: str) -> None:
        """Cancel a stop; one already gone is not an error. Raises BinanceError while the stop
        may still be live (the caller retries)."""
        ...
    def open_stops(self, symbol: str) -> list[StopOrderInfo]: ...
    def fills_since(self, symbol: str, since_ms: int) -> list[Fill]: ...
    def funding_since(self, symbol: str, since_ms: int) -> list[FundingPayment]:
        """The funding settlements of `symbol` from since_ms on, oldest first."""
        ...


class SimulatedExchange(ExchangePort, Protocol):
    """An exchange that knows only the market it is shown (rl.paper.exchange.PaperExchange):
    whoever drives it shows it each closed 1m bar and, between bars, the last price; resting
    orders and stops fill against those."""

    def on_bar(self, symbol: str, open: float, high: float, low: float, close: float,
               time_ms: int) -> None: ...
    def on_price(self, symbol: str, price: float, time_ms: int) -> None: ...


def check_order_args(side: str, type: str, quantity: float, price: float | None,
                     time_in_force: str | None) -> None:
    """Caller mistakes (not exchange rejections) fail fast with the field and the rule."""
    if side not in SIDES:
        raise ValueError(f"side: must be BUY or SELL, got {side!r}")
    if type not in ORDER_TYPES:
        raise ValueError(f"type: must be LIMIT or MARKET (stops go through place_stop), got {type!r}")
    if not isinstance(quantity, (int, float)) or isinstance(quantity, bool) or quantity != quantity:
        raise ValueError(f"quantity: must be a number, got {quantity!r}")
    if type == "LIMIT":
        if price is None:
            raise ValueError("price: required for LIMIT orders")
        if time_in_force not in TIME_IN_FORCE:
            raise ValueError(f"time_in_force: LIMIT orders need GTC, IOC or GTX, got {time_in_force!r}")
    elif time_in_force is not None:
        raise ValueError(f"time_in_force: not allowed for MARKET orders, got {time_in_force!r}")


def check_stop_args(side: str, type: str, trigger_price: float, quantity: float | None) -> None:
    if side not in SIDES:
        raise ValueError(f"side: must be BUY or SELL, got {side!r}")
    if type not in STOP_TYPES:
        raise ValueError(f"type: must be STOP_MARKET or TAKE_PROFIT_MARKET, got {type!r}")
    if not trigger_price or trigger_price <= 0:
        raise ValueError(f"trigger_price: must be > 0, got {trigger_price!r}")
    if quantity is not None and quantity <= 0:
        raise ValueError(f"quantity: must be > 0 or None (close position), got {quantity!r}")
