"""PaperExchange: a simulated Binance USDⓈ-M one-way, isolated-margin futures account.

It implements rl.execution.port.ExchangePort with Binance's own error codes, so the agent cannot tell
it from the real venue. Prices come from outside: `on_price` (live paper: one tick, fills at
that price) or `on_bar` (backtest: a 1m bar, fills against its open/high/low). The account
lives in memory and is written to SQLite (rl/paper/store.py) only when something changed; with
persist=False (backtests) nothing is ever written. Fill rules and the liquidation formula are
explained in docs/execution.md.

This module is the port half (reads, order/stop placement, persistence). What a price move does
(fills, stop triggers, liquidation, funding) is rl/paper/matching.py's PaperMatchingMixin; the
pure futures rules (brackets, liquidation price, default filters) are rl/paper/rules.py; the
order/stop/position records are rl/paper/records.py.
"""
from __future__ import annotations

import bisect
import logging
import threading
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Callable, Mapping

from client import (CLIENT_ID_RE, NetworkError, OrderRejected, SymbolFilters,
                    new_client_order_id)
from rl.execution.port import (AccountSnapshot, Fill, OrderResult, PositionSnapshot, StopOrderInfo,
                         check_order_args, check_stop_args)
from rl.paper.matching import PaperMatchingMixin
from rl.paper.records import PaperOrder, PaperPosition, PaperStop
from rl.paper.rules import EPS, FUNDING_INTERVAL_MS, default_filters
from rl.paper.store import PaperStore


class PaperExchange(PaperMatchingMixin):
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
        self._price: dict[str, float] = {}
        self._time = 0
        self._wallet = float(balance)
        self._next_id = 1
        self._leverage: dict[str, int] = {}
        self._positions: dict[str, PaperPosition] = {}
        self._orders: dict[str, PaperOrder] = {}
        self._open: dict[str, list[PaperOrder]] = {}
        self._stops: dict[str, PaperStop] = {}
        self._open_stops: dict[str, list[PaperStop]] = {}
        self._fills: list[Fill] = []
        # fills_since bisects these times while fills arrive in time order (always in a
        # backtest; a live clock stepping back turns it off and the full scan returns)
        self._fill_times: list[int] = []
        self._fills_sorted = True
        self._funding: list[dict] = []
        self._busy: set[str] = set()       # symbols with a position, open order or open stop
        # symbol -> (amount, entry, margin, liquidation price): the bracket lookup runs on every
        # price step of a bar in a position, while the three inputs change only on fills/funding
        self._lp_cache: dict[str, tuple[float, float, float, float]] = {}
        self._bands: dict[str, tuple[float, float]] = {}    # symbol -> _trigger_band, until _touch
        self._store = PaperStore(db_path) if (db_path is not None and persist) else None
        self._dirty_orders: dict[str, PaperOrder] = {}
        self._dirty_stops: dict[str, PaperStop] = {}
        self._dirty_pos: dict[str, PaperPosition | None] = {}
        self._dirty_lev: dict[str, int] = {}
        self._new_fills: list[Fill] = []
        self._new_funding: list[dict] = []
        self._dirty = False
        if self._store is not None:
            self._load()

    # ------------------------------------------------------------------ persistence
    def _load(self) -> None:
        data = self._store.load()
        if data["account"] is None:
            self._dirty = True
            self._commit()
            return
        acc = data["account"]
        self._wallet, self._next_id, self._time = float(acc["wallet"]), int(acc["next_id"]), int(acc["time_ms"])
        self._leverage = dict(data["leverage"])
        for p in data["positions"]:
            pos = PaperPosition(**p)
            self._positions[pos.symbol] = pos
            self._price.setdefault(pos.symbol, pos.mark_price)
            self._busy.add(pos.symbol)
        for o in data["orders"]:
            order = PaperOrder(**{**o, "reduce_only": bool(o["reduce_only"])})
            self._orders[order.client_order_id] = order
            if order.status in ("NEW", "PARTIALLY_FILLED"):
                self._open.setdefault(order.symbol, []).append(order)
                self._busy.add(order.symbol)
        for s in data["stops"]:
            stop = PaperStop(**{**s, "close_position": bool(s["close_position"])})
            self._stops[stop.client_algo_id] = stop
            if stop.status == "NEW":
                self._open_stops.setdefault(stop.symbol, []).append(stop)
                self._busy.add(stop.symbol)
        for f in data["fills"]:
            self._add_fill(Fill(**{**f, "maker": bool(f["maker"])}))
        self._funding = data["funding"]

    def _commit(self) -> None:
        """Write what changed since the last commit, in one transaction (nothing if unchanged)."""
        if self._store is None or not self._dirty:
            return
        self._store.save(
            {"wallet": self._wallet, "next_id": self._next_id, "time_ms": self._time},
            self._dirty_lev, {k: (None if p is None else asdict(p)) for k, p in self._dirty_pos.items()},
            [asdict(o) for o in self._dirty_orders.values()],
            [asdict(s) for s in self._dirty_stops.values()],
            [asdict(f) for f in self._new_fills], self._new_funding)
        self._dirty_orders, self._dirty_stops, self._dirty_pos, self._dirty_lev = {}, {}, {}, {}
        self._new_fills, self._new_funding, self._dirty = [], [], False

    def _touch(self, order: PaperOrder | None = None, stop: PaperStop | None = None,
               pos_symbol: str | None = None) -> None:
        """Every change of an order, a stop, a position or the wallet comes through here: it
        marks what to persist and drops the cached trigger bands (see `_trigger_band`)."""
        if self._bands:
            self._bands.clear()
        if self._store is None:
            return
        self._dirty = True
        if order is not None:
            self._dirty_orders[order.client_order_id] = order
        if stop is not None:
            self._dirty_stops[stop.client_algo_id] = stop
        if pos_symbol is not None:
            self._dirty_pos[pos_symbol] = self._positions.get(pos_symbol)

    def close(self) -> None:
        with self._lock:
            self._commit()
            if self._store is not None:
                self._store.close()

    # ------------------------------------------------------------------ helpers
    def _now(self) -> int:
        return int(self._clock()) if self._clock is not None else self._time

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id - 1)

    def _mark(self, symbol: str) -> float:
        px = self._price.get(symbol)
        if px is None and self._price_source is not None:
            px = float(self._price_source(symbol))
            self._price[symbol] = px
        if px is None:
            raise NetworkError(f"paper: no market price known for {symbol} yet (feed on_price/on_bar "
                               f"or give price_source); nothing was done")
        return px

    def _lev(self, symbol: str) -> int:
        return self._leverage.get(symbol, self.default_leverage)

    def _fill_cap(self, symbol: str) -> float | None:
        cap = self.max_fill_qty
        if isinstance(cap, Mapping):
            return cap.get(symbol)
        return cap

    def _refresh_busy(self, symbol: str) -> None:
        if symbol in self._positions or self._open.get(symbol) or self._open_stops.get(symbol):
            self._busy.add(symbol)
        else:
            self._busy.discard(symbol)

    def _order_margin(self) -> float:
        return sum(o.reserved for lst in self._open.values() for o in lst)

    def _available(self) -> float:
        return self._wallet - sum(p.margin for p in self._positions.values()) - self._order_margin()

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
            # one plain loop, summing in the same order (from int 0) as sum() would
            upnl = used = 0
            prices = self._price
            for s, p in self._positions.items():
                upnl += p.amount * (prices.get(s, p.mark_price) - p.entry_price)
                used += p.margin
            used += self._order_margin()
            return AccountSnapshot(wallet_balance=self._wallet, unrealized_pnl=upnl,
                                   margin_balance=self._wallet + upnl, initial_margin=used,
                                   available_balance=self._wallet - used)

    def margin_balance(self) -> float:
        """account().margin_balance without building the snapshot (the backtest reads it after
        every bar in a position): the same loop, so the same float to the last bit."""
        with self._lock:
            upnl = 0
            prices = self._price
            for s, p in self._positions.items():
                upnl += p.amount * (prices.get(s, p.mark_price) - p.entry_price)
            return self._wallet + upnl

    def position(self, symbol: str) -> PositionSnapshot | None:
        with self._lock:
            p = self._positions.get(symbol)
            if p is None:
                return None
            mark = self._price.get(symbol, p.mark_price)
            return PositionSnapshot(symbol=symbol, amount=p.amount, entry_price=p.entry_price,
                                    mark_price=mark, unrealized_pnl=p.amount * (mark - p.entry_price),
                                    liquidation_price=self._liq(p),
                                    leverage=p.leverage, margin=p.margin)

    def position_amount(self, symbol: str) -> float | None:
        """`position(symbol).amount` (None when flat) without building the snapshot: an
        optional extra of this exchange, which the agent compares with its memory on every bar
        in a position (other exchanges only have `position`)."""
        with self._lock:
            p = self._positions.get(symbol)
            return None if p is None else p.amount

    def get_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        with self._lock:
            o = self._orders.get(client_order_id)
            return o.result() if o is not None and o.symbol == symbol else None

    def open_orders(self, symbol: str) -> list[OrderResult]:
        with self._lock:
            return [o.result() for o in self._open.get(symbol, [])]

    def open_stops(self, symbol: str) -> list[StopOrderInfo]:
        with self._lock:
            return [s.info() for s in self._open_stops.get(symbol, [])]

    def fills_since(self, symbol: str, since_ms: int) -> list[Fill]:
        with self._lock:
            fills = self._fills
            if self._fills_sorted:       # the ones from since_ms on are a tail: skip the rest
                fills = fills[bisect.bisect_left(self._fill_times, since_ms):]
            return [f for f in fills if f.symbol == symbol and f.time_ms >= since_ms]

    def funding_since(self, symbol: str, since_ms: int) -> list[dict]:
        """Funding payments (amount > 0 received, < 0 paid): paper-only extra for reports."""
        with self._lock:
            return [dict(f) for f in self._funding if f["symbol"] == symbol and f["time_ms"] >= since_ms]

    # ------------------------------------------------------------------ port: writes
    def set_leverage(self, symbol: str, leverage: int) -> None:
        if isinstance(leverage, bool) or not isinstance(leverage, int) or not 1 <= leverage <= 125:
            raise ValueError(f"leverage: must be an integer in 1..125, got {leverage!r}")
        with self._lock:
            if symbol in self._positions and self._positions[symbol].leverage > leverage:
                # Lowering leverage under an isolated position would need more margin: Binance
                # refuses when the wallet cannot cover it; the paper account simply refuses.
                raise OrderRejected("Leverage reduction is not supported in Isolated Margin Mode "
                                    "with open positions.", -4161)
            self._leverage[symbol] = leverage
            if self._store is not None:
                self._dirty, self._dirty_lev[symbol] = True, leverage
            self._commit()

    def place_order(self, symbol: str, side: str, type: str, quantity: float,
                    price: float | None = None, time_in_force: str | None = None,
                    reduce_only: bool = False, client_order_id: str | None = None) -> OrderResult:
        check_order_args(side, type, quantity, price, time_in_force)
        cid = client_order_id or new_client_order_id("paper")
        if not CLIENT_ID_RE.match(cid):
            raise ValueError(f"client_order_id: must match ^[.A-Z:/a-z0-9_-]{{1,36}}$, got {cid!r}")
        with self._lock:
            if cid in self._orders:
                raise OrderRejected("Duplicate clientOrderId.", -4116)
            px = self._mark(symbol)
            f = self.filters(symbol)
            market = type == "MARKET"
            try:
                f.validate(px if market else price, quantity, market=market)
            except OrderRejected as exc:
                if not (exc.code == -4164 and reduce_only):   # Binance waives notional for reduce-only
                    raise
            sign = 1.0 if side == "BUY" else -1.0
            pos = self._positions.get(symbol)
            if reduce_only and (pos is None or pos.amount * sign >= 0):
                raise OrderRejected("ReduceOnly Order is rejected.", -2022)
            marketable = market or (price >= px if side == "BUY" else price <= px)
            now = self._now()
            order = PaperOrder(client_order_id=cid, order_id=self._new_id(), symbol=symbol, side=side,
                               type=type, status="NEW", price=0.0 if market else float(price),
                               orig_qty=float(quantity), executed_qty=0.0, avg_price=0.0,
                               reduce_only=bool(reduce_only), time_in_force=time_in_force,
                               update_time_ms=now, commission=0.0)
            fill_qty = 0.0
            if marketable:
                fill_qty = float(quantity)
                cap = self._fill_cap(symbol)
                if cap is not None and not market:
                    fill_qty = min(fill_qty, f.floor_qty(cap))
                if reduce_only:
                    fill_qty = min(fill_qty, abs(pos.amount))
            rest = 0.0 if (market or time_in_force == "IOC") else float(quantity) - fill_qty
            self._check_margin(symbol, sign, fill_qty, px, rest, float(price or px), reduce_only)
            self._orders[cid] = order
            if fill_qty > 0:
                self._execute(order, fill_qty, px, maker=False, time_ms=now)
            if order.executed_qty >= order.orig_qty - EPS:
                order.status = "FILLED"
            elif rest > EPS:
                order.status = "PARTIALLY_FILLED" if order.executed_qty > 0 else "NEW"
                if not reduce_only:
                    order.reserved = rest * order.price / self._lev(symbol)
                self._open.setdefault(symbol, []).append(order)
            else:
                order.status = "EXPIRED"      # IOC (partly) unfilled: Binance reports EXPIRED
            self._touch(order=order)
            self._refresh_busy(symbol)
            self._commit()
            return order.result()

    def _check_margin(self, symbol: str, sign: float, fill_qty: float, px: float, rest: float,
                      rest_price: float, reduce_only: bool) -> None:
        """-2019 when the opening part's margin + fee exceeds what the account can free."""
        if reduce_only:
            return
        lev = self._lev(symbol)
        pos = self._positions.get(symbol)
        amt = pos.amount if pos else 0.0
        closing = min(fill_qty, abs(amt)) if amt * sign < 0 else 0.0
        opening = fill_qty - closing
        freed = 0.0
        if closing > 0:
            freed = pos.margin * closing / abs(amt) + closing * (px - pos.entry_price) * (1 if amt > 0 else -1)
        need = opening * px / lev + fill_qty * px * self.taker_fee + rest * rest_price / lev
        if need > self._available() + freed + 1e-9:
            raise OrderRejected("Margin is insufficient.", -2019)

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        with self._lock:
            o = self._orders.get(client_order_id)
            if o is None or o.symbol != symbol:
                return None
            if o.status in ("NEW", "PARTIALLY_FILLED"):
                o.status, o.reserved, o.update_time_ms = "CANCELED", 0.0, self._now()
                self._open[symbol].remove(o)
                self._touch(order=o)
                self._refresh_busy(symbol)
                self._commit()
            return o.result()

    def place_stop(self, symbol: str, side: str, type: str, trigger_price: float,
                   quantity: float | None, client_algo_id: str) -> StopOrderInfo:
        check_stop_args(side, type, trigger_price, quantity)
        if not CLIENT_ID_RE.match(client_algo_id or ""):
            raise ValueError(f"client_algo_id: must match ^[.A-Z:/a-z0-9_-]{{1,36}}$, got {client_algo_id!r}")
        with self._lock:
            if client_algo_id in self._stops:
                raise OrderRejected("Duplicate clientAlgoId.", -4116)
            px = self._mark(symbol)
            f = self.filters(symbol)
            if Decimal(format(trigger_price, ".15g")) % f.tick_size != 0:
                raise OrderRejected("Price not increased by tick size.", -4014)
            if quantity is not None:
                f.validate(None, quantity, market=True)
            pos = self._positions.get(symbol)
            sign = 1.0 if side == "BUY" else -1.0
            if pos is None or pos.amount * sign >= 0:
                raise OrderRejected("ReduceOnly Order is rejected.", -2022)
            stop = PaperStop(client_algo_id, self._new_id(), symbol, side, type, float(trigger_price),
                         float(quantity or 0.0), quantity is None, "NEW", self._now())
            if stop.hit(px):
                raise OrderRejected("Order would immediately trigger.", -2021)
            if stop.close_position and any(s.close_position and s.side == side and s.type == type
                                           for s in self._open_stops.get(symbol, [])):
                raise OrderRejected("An open stop or take profit order with GTE and closePosition "
                                    "in the direction is existing.", -4130)
            self._stops[client_algo_id] = stop
            self._open_stops.setdefault(symbol, []).append(stop)
            self._busy.add(symbol)
            self._touch(stop=stop)
            self._commit()
            return stop.info()

    def cancel_stop(self, symbol: str, client_algo_id: str) -> None:
        with self._lock:
            s = self._stops.get(client_algo_id)
            if s is None or s.symbol != symbol or s.status != "NEW":
                return                       # already gone: idempotent like the adapter
            s.status, s.update_time_ms = "CANCELED", self._now()
            self._open_stops[symbol].remove(s)
            self._touch(stop=s)
            self._refresh_busy(symbol)
            self._commit()
