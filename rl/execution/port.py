"""The exchange port: what the agent may ask of an exchange, and the Binance adapter.

The agent talks only to `ExchangePort`. `PaperExchange` (rl/paper/exchange.py) and `BinanceExchange`
(here) both implement it and return the same frozen dataclasses, so the agent cannot tell a
simulated account from a real one. Errors are the classes of client.py with Binance's codes
on both sides (OrderRejected -2019, -4164, ...), so error handling is written once. A
`SimulatedExchange` (the paper exchange) must also be shown the market: a replay or live paper
agent feeds it, a backtest loop feeds it itself.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

from client import BinanceClient, BinanceError, SymbolFilters

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
    commission: float            # quote asset, positive = paid
    maker: bool
    time_ms: int

    def to_dict(self) -> dict[str, Any]:
        return flat_dict(self)


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
    def place_order(self, symbol: str, side: str, type: str, quantity: float,
                    price: float | None = None, time_in_force: str | None = None,
                    reduce_only: bool = False, client_order_id: str | None = None) -> OrderResult: ...
    def get_order(self, symbol: str, client_order_id: str) -> OrderResult | None: ...
    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult | None: ...
    def open_orders(self, symbol: str) -> list[OrderResult]: ...
    def place_stop(self, symbol: str, side: str, type: str, trigger_price: float,
                   quantity: float | None, client_algo_id: str) -> StopOrderInfo: ...
    def cancel_stop(self, symbol: str, client_algo_id: str) -> None: ...
    def open_stops(self, symbol: str) -> list[StopOrderInfo]: ...
    def fills_since(self, symbol: str, since_ms: int) -> list[Fill]: ...


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


# ----------------------------------------------------------------------------- Binance JSON
def _f(d: dict, key: str, default: float = 0.0) -> float:
    v = d.get(key)
    if v in (None, ""):
        return default
    return float(v)


def order_from_binance(d: dict) -> OrderResult:
    """/fapi/v1/order JSON → OrderResult. avgPrice may be missing: fall back to cumQuote/qty."""
    executed = _f(d, "executedQty")
    avg = _f(d, "avgPrice")
    if avg == 0.0 and executed > 0 and _f(d, "cumQuote") > 0:
        avg = _f(d, "cumQuote") / executed
    return OrderResult(
        symbol=d["symbol"], order_id=str(d.get("orderId", "")),
        client_order_id=str(d.get("clientOrderId", "")), side=d["side"],
        type=d.get("origType") or d["type"], status=d["status"], price=_f(d, "price"),
        orig_qty=_f(d, "origQty"), executed_qty=executed, avg_price=avg,
        reduce_only=bool(d.get("reduceOnly", False)), time_in_force=d.get("timeInForce"),
        update_time_ms=int(d.get("updateTime") or d.get("time") or 0))


def stop_from_binance(d: dict) -> StopOrderInfo:
    """/fapi/v1/algoOrder JSON → StopOrderInfo."""
    return StopOrderInfo(
        symbol=d["symbol"], algo_id=str(d.get("algoId", "")),
        client_algo_id=str(d.get("clientAlgoId", "")), side=d["side"],
        type=d.get("orderType") or d.get("type", ""), trigger_price=_f(d, "triggerPrice"),
        quantity=_f(d, "quantity"), close_position=bool(d.get("closePosition", False)),
        status=d.get("algoStatus", "NEW"),
        update_time_ms=int(d.get("updateTime") or d.get("createTime") or 0))


def fill_from_binance(d: dict) -> Fill:
    """/fapi/v1/userTrades row → Fill (Binance shows commission signed; we store it paid > 0)."""
    return Fill(symbol=d["symbol"], trade_id=str(d["id"]), order_id=str(d["orderId"]),
                side=d["side"], price=_f(d, "price"), qty=_f(d, "qty"),
                realized_pnl=_f(d, "realizedPnl"), commission=abs(_f(d, "commission")),
                maker=bool(d.get("maker", False)), time_ms=int(d["time"]))


class BinanceExchange:
    """ExchangePort over client.BinanceClient (testnet or live). Isolated margin, one-way mode."""

    def __init__(self, client: BinanceClient, name: str = "testnet",
                 margin_type: str = "ISOLATED") -> None:
        if name not in ("testnet", "live"):
            raise ValueError(f"name: must be 'testnet' or 'live', got {name!r}")
        self.client = client
        self.name = name
        self.margin_type = margin_type
        self._leverage: dict[str, int] = {}
        self._margin_set: set[str] = set()

    def filters(self, symbol: str) -> SymbolFilters:
        return self.client.symbol_filters(symbol)

    def account(self) -> AccountSnapshot:
        a = self.client.account()
        return AccountSnapshot(
            wallet_balance=_f(a, "totalWalletBalance"), unrealized_pnl=_f(a, "totalUnrealizedProfit"),
            margin_balance=_f(a, "totalMarginBalance"), initial_margin=_f(a, "totalInitialMargin"),
            available_balance=_f(a, "availableBalance"))

    def position(self, symbol: str) -> PositionSnapshot | None:
        for p in self.client.position_risk(symbol):
            if p.get("symbol") != symbol or p.get("positionSide", "BOTH") != "BOTH":
                continue
            amt = _f(p, "positionAmt")
            if amt == 0:
                return None
            notional = abs(_f(p, "notional"))
            pim = _f(p, "positionInitialMargin") or _f(p, "initialMargin")
            # v3 positionRisk has no leverage field: use what we set, else notional / margin.
            lev = self._leverage.get(symbol) or (max(1, round(notional / pim)) if pim else 1)
            margin = _f(p, "isolatedMargin") or _f(p, "initialMargin")
            return PositionSnapshot(symbol=symbol, amount=amt, entry_price=_f(p, "entryPrice"),
                                    mark_price=_f(p, "markPrice"),
                                    unrealized_pnl=_f(p, "unRealizedProfit"),
                                    liquidation_price=_f(p, "liquidationPrice"), leverage=int(lev),
                                    margin=margin)
        return None

    def position_amount(self, symbol: str) -> float | None:
        pos = self.position(symbol)
        return None if pos is None else pos.amount

    def set_leverage(self, symbol: str, leverage: int) -> None:
        if symbol not in self._margin_set:
            self.client.set_margin_type(symbol, self.margin_type)
            self._margin_set.add(symbol)
        self.client.set_leverage(symbol, leverage)
        self._leverage[symbol] = int(leverage)

    def place_order(self, symbol: str, side: str, type: str, quantity: float,
                    price: float | None = None, time_in_force: str | None = None,
                    reduce_only: bool = False, client_order_id: str | None = None) -> OrderResult:
        check_order_args(side, type, quantity, price, time_in_force)
        raw = self.client.new_order(symbol, side, type, quantity=quantity, price=price,
                                    time_in_force=time_in_force, reduce_only=reduce_only,
                                    new_client_order_id=client_order_id)
        return order_from_binance(raw)

    def get_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        try:
            return order_from_binance(self.client.query_order(
                symbol, orig_client_order_id=client_order_id))
        except BinanceError as exc:
            if exc.code == NOT_FOUND:
                return None
            raise

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        try:
            return order_from_binance(self.client.cancel_order(
                symbol, orig_client_order_id=client_order_id))
        except BinanceError as exc:
            if exc.code in (NOT_FOUND, -2011):
                return self.get_order(symbol, client_order_id)
            raise

    def open_orders(self, symbol: str) -> list[OrderResult]:
        return [order_from_binance(o) for o in self.client.open_orders(symbol)]

    def place_stop(self, symbol: str, side: str, type: str, trigger_price: float,
                   quantity: float | None, client_algo_id: str) -> StopOrderInfo:
        check_stop_args(side, type, trigger_price, quantity)
        if quantity is None:
            raw = self.client.new_algo_order(symbol, side, type, trigger_price,
                                             close_position=True, client_algo_id=client_algo_id)
        else:
            raw = self.client.new_algo_order(symbol, side, type, trigger_price, quantity=quantity,
                                             reduce_only=True, client_algo_id=client_algo_id)
        return stop_from_binance(raw)

    def cancel_stop(self, symbol: str, client_algo_id: str) -> None:
        """Idempotent: a stop that is already gone (triggered/cancelled) is not an error."""
        try:
            self.client.cancel_algo_order(client_algo_id=client_algo_id)
        except BinanceError as exc:
            if exc.code not in ALGO_NOT_FOUND_CODES:
                raise

    def open_stops(self, symbol: str) -> list[StopOrderInfo]:
        return [stop_from_binance(o) for o in self.client.open_algo_orders(symbol)
                if o.get("symbol") == symbol]

    def fills_since(self, symbol: str, since_ms: int) -> list[Fill]:
        rows = self.client.user_trades(symbol, start_time=int(since_ms), limit=1000)
        return sorted((fill_from_binance(r) for r in rows), key=lambda f: (f.time_ms, f.trade_id))
