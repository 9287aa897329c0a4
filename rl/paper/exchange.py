"""PaperExchange: a simulated Binance USDⓈ-M one-way, isolated-margin futures account.

It implements rl.execution.port.ExchangePort with Binance's own error codes, so the agent cannot tell
it from the real venue. Prices come from outside: `on_price` (live paper: one tick, fills at
that price) or `on_bar` (backtest: a 1m bar, fills against its open/high/low). The account
lives in memory and is written to SQLite (rl/paper/store.py) only when something changed; with
persist=False (backtests) nothing is ever written. Fill rules and the liquidation formula are
explained in docs/execution.md.

This module is the port: it checks each request as Binance would, then hands the account
(rl/paper/account.py, the state and its persistence) what to record. What a price move fires
is rl/paper/matching.py's Matcher; the pure futures rules (brackets, liquidation price, default
filters) are rl/paper/rules.py; the order/stop/position records are rl/paper/records.py.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

from client import CLIENT_ID_RE, NetworkError, OrderRejected, SymbolFilters, new_client_order_id
from rl.execution.port import (
    POST_ONLY_REJECTED,
    AccountMode,
    AccountSnapshot,
    Fill,
    FundingPayment,
    OrderResult,
    PositionSnapshot,
    StopOrderInfo,
    SymbolMode,
    check_order_args,
    check_stop_args,
)
from rl.paper.account import PaperAccount
from rl.paper.matching import Matcher
from rl.paper.records import PaperOrder, PaperStop
from rl.paper.rules import FUNDING_INTERVAL_MS, check_percent_price, default_filters
from rl.paper.store import PaperStore


class PaperExchange:
    """Simulated futures account. Thread-safe: one lock around every public call."""

    name = "paper"

    def __init__(self, db_path: str | Path | None = None, *, balance: float = 10_000.0,
                 maker_fee: float = 0.0002, taker_fee: float = 0.0005,
                 filters: Mapping[str, SymbolFilters] | None = None, default_leverage: int = 10,
                 funding_rate: float | Callable[[str, int], float] = 0.0001,
                 funding_interval_ms: int = FUNDING_INTERVAL_MS,
                 max_fill_qty: float | Mapping[str, float] | None = None,
                 clock: Callable[[], int] | None = None,
                 price_source: Callable[[str], float] | None = None,
                 filters_source: Callable[[str], SymbolFilters] | None = None,
                 persist: bool = True) -> None:
        if balance <= 0:
            raise ValueError(f"balance: must be > 0, got {balance!r}")
        if not -0.01 <= maker_fee <= taker_fee <= 0.01:
            raise ValueError(f"maker_fee/taker_fee: need -0.01 <= maker <= taker <= 0.01, "
                             f"got {maker_fee!r}/{taker_fee!r}")
        if not 1 <= int(default_leverage) <= 125:
            raise ValueError(f"default_leverage: must be 1..125, got {default_leverage!r}")
        # the account's terms, as given (the account and the matcher work with these values)
        self.maker_fee, self.taker_fee = float(maker_fee), float(taker_fee)
        self.default_leverage = int(default_leverage)
        self.funding_rate = funding_rate
        self.funding_interval_ms = int(funding_interval_ms)
        self.max_fill_qty = max_fill_qty
        self._clock, self._price_source = clock, price_source
        self._filters: dict[str, SymbolFilters] = dict(filters or {})
        # live paper: the real exchangeInfo filters (so paper rejects what Binance would);
        # when they cannot be had (offline), filters derived from the price
        self._filters_source = filters_source
        self._lock = threading.RLock()
        store = PaperStore(db_path) if (db_path is not None and persist) else None
        self._account = PaperAccount(balance, maker_fee=self.maker_fee, taker_fee=self.taker_fee,
                                     default_leverage=self.default_leverage,
                                     funding_interval_ms=self.funding_interval_ms, store=store)
        self._matcher = Matcher(self._account, funding_rate, self._lock,
                                fill_cap=None if max_fill_qty is None else self._step_fill_cap)

    # ------------------------------------------------------------------ market events
    def on_price(self, symbol: str, price: float, time_ms: int) -> None:
        """Live paper: a new last/mark price. Anything it crosses fills at this price."""
        self._matcher.on_price(symbol, price, time_ms)

    def on_bar(self, symbol: str, open: float, high: float, low: float, close: float,
               time_ms: int) -> None:
        """Backtest: one finished bar (time_ms = its close time); see Matcher.on_bar."""
        self._matcher.on_bar(symbol, open, high, low, close, time_ms)

    def close(self) -> None:
        with self._lock:
            self._account.close()

    # ------------------------------------------------------------------ helpers
    def _now(self) -> int:
        return int(self._clock()) if self._clock is not None else self._account.time_ms

    def _mark(self, symbol: str) -> float:
        px = self._account.price(symbol)
        if px is None and self._price_source is not None:
            px = float(self._price_source(symbol))
            self._account.set_price(symbol, px)
        if px is None:
            raise NetworkError(f"paper: no market price known for {symbol} yet (feed on_price/on_bar "
                               f"or give price_source); nothing was done")
        return px

    def _fill_cap(self, symbol: str) -> float | None:
        cap = self.max_fill_qty
        if isinstance(cap, Mapping):
            return cap.get(symbol)
        return cap

    def _step_fill_cap(self, symbol: str) -> float | None:
        """The most one LIMIT order fills in one market event (a bar, a tick), on the step."""
        cap = self._fill_cap(symbol)
        return None if cap is None else self.filters(symbol).floor_qty(cap)

    # ------------------------------------------------------------------ port: reads
    def filters(self, symbol: str) -> SymbolFilters:
        f = self._filters.get(symbol)
        if f is None and self._filters_source is not None:
            try:
                f = self._filters_source(symbol)
            except Exception as exc:    # offline or unknown symbol: keep trading on defaults
                logging.getLogger(__name__).warning(
                    "paper %s: exchange filters unavailable (%s); using filters derived from the price",
                    symbol, exc)
        if f is None:
            f = default_filters(symbol, self._mark(symbol))
        self._filters[symbol] = f
        return f

    def account(self) -> AccountSnapshot:
        with self._lock:
            return self._account.snapshot()

    def margin_balance(self) -> float:
        """account().margin_balance without building the snapshot (the backtest reads it after
        every bar in a position), to the last bit."""
        with self._lock:
            return self._account.margin_balance()

    def position(self, symbol: str) -> PositionSnapshot | None:
        with self._lock:
            return self._account.position_snapshot(symbol)

    def position_amount(self, symbol: str) -> float | None:
        """`position(symbol).amount` (None when flat) without building the snapshot: an
        optional extra of this exchange, which the agent compares with its memory on every bar
        in a position (other exchanges only have `position`)."""
        with self._lock:
            p = self._account.position(symbol)
            return None if p is None else p.amount

    def get_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        with self._lock:
            o = self._account.order(client_order_id)
            return o.result() if o is not None and o.symbol == symbol else None

    def open_orders(self, symbol: str) -> list[OrderResult]:
        with self._lock:
            return [o.result() for o in self._account.open_orders(symbol)]

    def open_stops(self, symbol: str) -> list[StopOrderInfo]:
        with self._lock:
            return [s.info() for s in self._account.open_stops(symbol)]

    def fills_since(self, symbol: str, since_ms: int) -> list[Fill]:
        with self._lock:
            return self._account.fills_since(symbol, since_ms)

    def funding_since(self, symbol: str, since_ms: int) -> list[FundingPayment]:
        """Funding payments (amount > 0 received, < 0 paid) at their funding times, oldest
        first: the ledger the trades' funding is taken from (rl.agent.journal)."""
        with self._lock:
            return [FundingPayment(symbol, int(f["time_ms"]), float(f["amount"]))
                    for f in self._account.funding_since(symbol, since_ms)]

    def account_mode(self, symbols: Sequence[str]) -> AccountMode:
        """The simulated account: one-way, single-asset, isolated, at its leverage settings."""
        with self._lock:
            return AccountMode(hedge_mode=False, multi_assets=False, symbols=tuple(
                SymbolMode(s, "ISOLATED", self._account.leverage(s)) for s in symbols))

    # ------------------------------------------------------------------ port: writes
    def set_margin_type(self, symbol: str, margin_type: str) -> None:
        if margin_type != "ISOLATED":
            raise OrderRejected(f"paper account: margin type {margin_type} is not simulated "
                                f"(isolated margin only)")

    def set_leverage(self, symbol: str, leverage: int) -> None:
        if isinstance(leverage, bool) or not isinstance(leverage, int) or not 1 <= leverage <= 125:
            raise ValueError(f"leverage: must be an integer in 1..125, got {leverage!r}")
        with self._lock:
            pos = self._account.position(symbol)
            if pos is not None and pos.leverage > leverage:
                # Lowering leverage under an isolated position would need more margin: Binance
                # refuses when the wallet cannot cover it; the paper account simply refuses.
                raise OrderRejected("Leverage reduction is not supported in Isolated Margin Mode "
                                    "with open positions.", -4161)
            self._account.set_leverage(symbol, leverage)
            self._account.commit()

    def place_order(self, symbol: str, side: str, type: str, quantity: float,
                    price: float | None = None, time_in_force: str | None = None,
                    reduce_only: bool = False, client_order_id: str | None = None) -> OrderResult:
        check_order_args(side, type, quantity, price, time_in_force)
        cid = client_order_id or new_client_order_id("paper")
        if not CLIENT_ID_RE.match(cid):
            raise ValueError(f"client_order_id: must match ^[.A-Z:/a-z0-9_-]{{1,36}}$, got {cid!r}")
        with self._lock:
            account = self._account
            if account.order(cid) is not None:
                raise OrderRejected("Duplicate clientOrderId.", -4116)
            px = self._mark(symbol)
            f = self.filters(symbol)
            market = type == "MARKET"
            try:
                f.validate(px if market else price, quantity, market=market)
            except OrderRejected as exc:
                if not (exc.code == -4164 and reduce_only):   # Binance waives notional for reduce-only
                    raise
            if not market:
                check_percent_price(f, side, float(price or 0.0), px)
            sign = 1.0 if side == "BUY" else -1.0
            pos = account.position(symbol)
            if reduce_only and (pos is None or pos.amount * sign >= 0):
                raise OrderRejected("ReduceOnly Order is rejected.", -2022)
            limit = 0.0 if price is None else float(price)    # a LIMIT has one (check_order_args)
            if time_in_force == "GTX":
                # Post-only: one priced beyond the last price would take liquidity; Binance
                # refuses it and keeps no record of it. The paper account has one price and no
                # book, so an order AT the last price is taken to join our side of the touch and
                # rests (its fills are the conservative part: strictly through only, see Matcher).
                if (limit > px) if side == "BUY" else (limit < px):
                    raise OrderRejected("Due to the order could not be executed as maker, the Post "
                                        "Only order will be rejected.", POST_ONLY_REJECTED)
                marketable = False
            else:
                marketable = market or (limit >= px if side == "BUY" else limit <= px)
            now = self._now()
            order = PaperOrder(client_order_id=cid, order_id=account.new_id(), symbol=symbol, side=side,
                               type=type, status="NEW", price=0.0 if market else limit,
                               orig_qty=float(quantity), executed_qty=0.0, avg_price=0.0,
                               reduce_only=bool(reduce_only), time_in_force=time_in_force,
                               update_time_ms=now, commission=0.0)
            fill_qty = 0.0
            if marketable:
                fill_qty = float(quantity)
                cap = self._fill_cap(symbol)
                if cap is not None and not market:
                    fill_qty = min(fill_qty, f.floor_qty(cap))
                if reduce_only and pos is not None:     # (a reduce-only order without one was refused)
                    fill_qty = min(fill_qty, abs(pos.amount))
            rest = 0.0 if (market or time_in_force == "IOC") else float(quantity) - fill_qty
            self._check_margin(symbol, sign, fill_qty, px, rest, limit or px, reduce_only)
            account.accept_order(order, fill_qty, px, rest, now)
            account.commit()
            return order.result()

    def _check_margin(self, symbol: str, sign: float, fill_qty: float, px: float, rest: float,
                      rest_price: float, reduce_only: bool) -> None:
        """-2019 when the opening part's margin + fee exceeds what the account can free."""
        if reduce_only:
            return
        account = self._account
        lev = account.leverage(symbol)
        pos = account.position(symbol)
        amt = pos.amount if pos else 0.0
        closing = min(fill_qty, abs(amt)) if amt * sign < 0 else 0.0
        opening = fill_qty - closing
        freed = 0.0
        if closing > 0 and pos is not None:
            freed = pos.margin * closing / abs(amt) + closing * (px - pos.entry_price) * (1 if amt > 0 else -1)
        need = opening * px / lev + fill_qty * px * self.taker_fee + rest * rest_price / lev
        if need > account.available() + freed + 1e-9:
            raise OrderRejected("Margin is insufficient.", -2019)

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        with self._lock:
            o = self._account.order(client_order_id)
            if o is None or o.symbol != symbol:
                return None
            if o.status in ("NEW", "PARTIALLY_FILLED"):
                self._account.cancel_order(o, self._now())
                self._account.commit()
            return o.result()

    def place_stop(self, symbol: str, side: str, type: str, trigger_price: float,
                   quantity: float | None, client_algo_id: str) -> StopOrderInfo:
        check_stop_args(side, type, trigger_price, quantity)
        if not CLIENT_ID_RE.match(client_algo_id or ""):
            raise ValueError(f"client_algo_id: must match ^[.A-Z:/a-z0-9_-]{{1,36}}$, got {client_algo_id!r}")
        with self._lock:
            account = self._account
            if account.stop(client_algo_id) is not None:
                raise OrderRejected("Duplicate clientAlgoId.", -4116)
            px = self._mark(symbol)
            f = self.filters(symbol)
            if Decimal(format(trigger_price, ".15g")) % f.tick_size != 0:
                raise OrderRejected("Price not increased by tick size.", -4014)
            if quantity is not None:
                f.validate(None, quantity, market=True)
            pos = account.position(symbol)
            sign = 1.0 if side == "BUY" else -1.0
            if pos is None or pos.amount * sign >= 0:
                raise OrderRejected("ReduceOnly Order is rejected.", -2022)
            stop = PaperStop(client_algo_id, account.new_id(), symbol, side, type, float(trigger_price),
                             float(quantity or 0.0), quantity is None, "NEW", self._now())
            if stop.hit(px):
                raise OrderRejected("Order would immediately trigger.", -2021)
            if stop.close_position and any(s.close_position and s.side == side and s.type == type
                                           for s in account.open_stops(symbol)):
                raise OrderRejected("An open stop or take profit order with GTE and closePosition "
                                    "in the direction is existing.", -4130)
            account.add_stop(stop)
            account.commit()
            return stop.info()

    def cancel_stop(self, symbol: str, client_algo_id: str) -> None:
        with self._lock:
            s = self._account.stop(client_algo_id)
            if s is None or s.symbol != symbol or s.status != "NEW":
                return                       # already gone: idempotent like the adapter
            self._account.cancel_stop(s, self._now())
            self._account.commit()
