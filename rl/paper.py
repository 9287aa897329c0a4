"""PaperExchange: a simulated Binance USDⓈ-M one-way, isolated-margin futures account.

It implements rl.exchange.ExchangePort with Binance's own error codes, so the agent cannot tell
it from the real venue. Prices come from outside: `on_price` (live paper: one tick, fills at
that price) or `on_bar` (backtest: a 1m bar, fills against its open/high/low). The account
lives in memory and is written to SQLite (rl/paper_store.py) only when something changed; with
persist=False (backtests) nothing is ever written. Fill rules and the liquidation formula are
explained in docs/execution.md.
"""
from __future__ import annotations

import bisect
import math
import logging
import threading
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Callable, Mapping

from client import (CLIENT_ID_RE, NetworkError, OrderRejected, SymbolFilters,
                    new_client_order_id)
from rl.exchange import (AccountSnapshot, Fill, OrderResult, PositionSnapshot, StopOrderInfo,
                         check_order_args, check_stop_args, flat_dict)
from rl.paper_store import PaperStore

FUNDING_INTERVAL_MS = 8 * 3600 * 1000
EPS = 1e-12

# Simplified maintenance-margin brackets (BTCUSDT's table, used for every symbol):
# (notional floor, maintenance margin rate). The maintenance amount `cum` of each bracket is
# derived so the requirement is continuous: cum_i = cum_{i-1} + floor_i * (mmr_i - mmr_{i-1}).
MMR_BRACKETS: tuple[tuple[float, float], ...] = (
    (0.0, 0.004), (50_000.0, 0.005), (250_000.0, 0.01), (3_000_000.0, 0.025),
    (15_000_000.0, 0.05), (30_000_000.0, 0.10), (80_000_000.0, 0.125),
    (100_000_000.0, 0.15), (200_000_000.0, 0.25), (300_000_000.0, 0.50),
)


def _bracket_table() -> tuple[tuple[float, float, float], ...]:
    out, cum, prev = [], 0.0, 0.0
    for floor, mmr in MMR_BRACKETS:
        cum += floor * (mmr - prev)
        out.append((floor, mmr, cum))
        prev = mmr
    return tuple(out)


_BRACKETS = _bracket_table()


def maintenance_bracket(notional: float) -> tuple[float, float]:
    """(MMR, cum) of the bracket that holds |notional|."""
    n = abs(notional)
    mmr, cum = _BRACKETS[0][1], _BRACKETS[0][2]
    for floor, rate, c in _BRACKETS:
        if n >= floor:
            mmr, cum = rate, c
    return mmr, cum


def liquidation_price(amount: float, entry_price: float, isolated_margin: float) -> float:
    """Binance's one-way isolated formula LP = (WB + cum - s*Q*EP) / (Q*MMR - s*Q); 0 = never."""
    if amount == 0:
        return 0.0
    side = 1.0 if amount > 0 else -1.0
    q = abs(amount)
    mmr, cum = maintenance_bracket(q * entry_price)
    lp = (isolated_margin + cum - side * q * entry_price) / (q * mmr - side * q)
    return max(lp, 0.0)


def default_filters(symbol: str, price: float, min_notional: float | None = None) -> SymbolFilters:
    """Plausible Binance-like filters from the price alone (when no exchangeInfo is at hand).

    tick: price × 1e-5 floored to a power of ten (BTC ~90k → 0.1, ETH ~3k → 0.01);
    step: one step is worth about $100 or less (BTC → 0.001), never above 1;
    min notional: 5 USDT (Binance's usual), 50 for BTCUSDT and 20 for ETHUSDT as on mainnet.
    """
    if not price or price <= 0 or price != price:
        raise ValueError(f"price: must be > 0 to derive default filters, got {price!r}")
    tick_exp = math.floor(math.log10(price)) - 5
    step_exp = min(0, math.floor(math.log10(100.0 / price)))
    tick = Decimal(1).scaleb(tick_exp)
    step = Decimal(1).scaleb(step_exp)
    if min_notional is None:
        min_notional = {"BTCUSDT": 50.0, "ETHUSDT": 20.0}.get(symbol, 5.0)
    max_qty = step * Decimal(10_000_000)
    return SymbolFilters(
        symbol=symbol, tick_size=tick, step_size=step, min_qty=step, max_qty=max_qty,
        market_step_size=step, market_min_qty=step, market_max_qty=max_qty / 10,
        min_notional=Decimal(str(min_notional)), price_precision=max(0, -tick_exp),
        quantity_precision=max(0, -step_exp))


# ----------------------------------------------------------------------------- internal state
@dataclass
class _Order:
    client_order_id: str
    order_id: str
    symbol: str
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
    commission: float
    reserved: float = 0.0            # initial margin held for the resting part

    def result(self) -> OrderResult:
        return OrderResult(symbol=self.symbol, order_id=self.order_id,
                           client_order_id=self.client_order_id, side=self.side, type=self.type,
                           status=self.status, price=self.price, orig_qty=self.orig_qty,
                           executed_qty=self.executed_qty, avg_price=self.avg_price,
                           reduce_only=self.reduce_only, time_in_force=self.time_in_force,
                           update_time_ms=self.update_time_ms, commission=self.commission)


@dataclass
class _Stop:
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
class _Pos:
    symbol: str
    amount: float
    entry_price: float
    margin: float
    leverage: int
    funding_slot: int
    mark_price: float


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
        self._positions: dict[str, _Pos] = {}
        self._orders: dict[str, _Order] = {}
        self._open: dict[str, list[_Order]] = {}
        self._stops: dict[str, _Stop] = {}
        self._open_stops: dict[str, list[_Stop]] = {}
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
        self._dirty_orders: dict[str, _Order] = {}
        self._dirty_stops: dict[str, _Stop] = {}
        self._dirty_pos: dict[str, _Pos | None] = {}
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
            pos = _Pos(**p)
            self._positions[pos.symbol] = pos
            self._price.setdefault(pos.symbol, pos.mark_price)
            self._busy.add(pos.symbol)
        for o in data["orders"]:
            order = _Order(**{**o, "reduce_only": bool(o["reduce_only"])})
            self._orders[order.client_order_id] = order
            if order.status in ("NEW", "PARTIALLY_FILLED"):
                self._open.setdefault(order.symbol, []).append(order)
                self._busy.add(order.symbol)
        for s in data["stops"]:
            stop = _Stop(**{**s, "close_position": bool(s["close_position"])})
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

    def _touch(self, order: _Order | None = None, stop: _Stop | None = None,
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

    def _liq(self, pos: _Pos) -> float:
        """liquidation_price(pos), recomputed only when amount, entry or margin changed."""
        c = self._lp_cache.get(pos.symbol)
        if c is not None and c[0] == pos.amount and c[1] == pos.entry_price and c[2] == pos.margin:
            return c[3]
        lp = liquidation_price(pos.amount, pos.entry_price, pos.margin)
        self._lp_cache[pos.symbol] = (pos.amount, pos.entry_price, pos.margin, lp)
        return lp

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
            order = _Order(cid, self._new_id(), symbol, side, type, "NEW",
                           0.0 if market else float(price), float(quantity), 0.0, 0.0,
                           bool(reduce_only), time_in_force, now, 0.0)
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
            stop = _Stop(client_algo_id, self._new_id(), symbol, side, type, float(trigger_price),
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

    # ------------------------------------------------------------------ fills
    def _execute(self, order: _Order, qty: float, price: float, maker: bool, time_ms: int) -> None:
        """Apply one fill of `order` to position, wallet, order and fill log."""
        symbol = order.symbol
        sign = 1.0 if order.side == "BUY" else -1.0
        fee = qty * price * (self.maker_fee if maker else self.taker_fee)
        pos = self._positions.get(symbol)
        realized = 0.0
        remaining = qty
        if pos is not None and pos.amount * sign < 0:                  # reduce / close / flip
            closing = min(qty, abs(pos.amount))
            side_of_pos = 1.0 if pos.amount > 0 else -1.0
            realized = closing * (price - pos.entry_price) * side_of_pos
            pos.margin -= pos.margin * closing / abs(pos.amount)
            pos.amount = round(pos.amount + sign * closing, 12)
            remaining = qty - closing
            if abs(pos.amount) < EPS:
                del self._positions[symbol]
                self._expire_stops(symbol, time_ms)
                pos = None
        if remaining > EPS:                                            # open / increase
            lev = self._lev(symbol)
            if pos is None:
                pos = _Pos(symbol, 0.0, price, 0.0, lev, time_ms // self.funding_interval_ms, price)
                self._positions[symbol] = pos
            new_amt = round(pos.amount + sign * remaining, 12)
            pos.entry_price = (abs(pos.amount) * pos.entry_price + remaining * price) / abs(new_amt)
            pos.amount = new_amt
            pos.margin += remaining * price / pos.leverage
        if pos is not None:
            pos.mark_price = price
        self._wallet += realized - fee
        total = order.executed_qty + qty
        order.avg_price = (order.avg_price * order.executed_qty + price * qty) / total
        order.executed_qty = round(total, 12)
        order.commission += fee
        order.update_time_ms = time_ms
        fill = Fill(symbol, self._new_id(), order.order_id, order.side, price, qty, realized, fee,
                    maker, time_ms)
        self._add_fill(fill)
        if self._store is not None:
            self._new_fills.append(fill)
        self._touch(order=order, pos_symbol=symbol)

    def _add_fill(self, fill: Fill) -> None:
        times = self._fill_times
        if times and fill.time_ms < times[-1]:
            self._fills_sorted = False
        self._fills.append(fill)
        times.append(fill.time_ms)

    def _expire_stops(self, symbol: str, time_ms: int) -> None:
        """Flat → conditional close orders expire (Binance does so for GTE_GTC/closePosition)."""
        for s in self._open_stops.pop(symbol, []):
            s.status, s.update_time_ms = "EXPIRED", time_ms
            self._touch(stop=s)
        for o in list(self._open.get(symbol, [])):
            if o.reduce_only:
                o.status, o.update_time_ms = "EXPIRED", time_ms
                self._open[symbol].remove(o)
                self._touch(order=o)

    def _trigger_stop(self, stop: _Stop, price: float, time_ms: int) -> None:
        symbol = stop.symbol
        self._open_stops[symbol].remove(stop)
        pos = self._positions.get(symbol)
        sign = 1.0 if stop.side == "BUY" else -1.0
        stop.update_time_ms = time_ms
        if pos is None or pos.amount * sign >= 0:
            stop.status = "EXPIRED"
            self._touch(stop=stop)
            return
        qty = abs(pos.amount) if stop.close_position else min(stop.quantity, abs(pos.amount))
        order = _Order(f"algo-{stop.algo_id}", self._new_id(), symbol, stop.side, "MARKET",
                       "NEW", 0.0, qty, 0.0, 0.0, True, None, time_ms, 0.0)
        self._orders[order.client_order_id] = order
        self._execute(order, qty, price, maker=False, time_ms=time_ms)
        order.status = "FILLED"
        stop.status = "FINISHED"
        self._touch(stop=stop, order=order)

    def _fill_resting(self, order: _Order, price: float, time_ms: int) -> None:
        symbol = order.symbol
        qty = order.orig_qty - order.executed_qty
        self._open[symbol].remove(order)
        order.reserved = 0.0
        if order.reduce_only:
            pos = self._positions.get(symbol)
            sign = 1.0 if order.side == "BUY" else -1.0
            if pos is None or pos.amount * sign >= 0:
                order.status, order.update_time_ms = "EXPIRED", time_ms
                self._touch(order=order)
                return
            qty = min(qty, abs(pos.amount))
        self._execute(order, qty, price, maker=True, time_ms=time_ms)
        order.status = "FILLED"

    def _liquidate(self, symbol: str, lp: float, time_ms: int) -> None:
        """Close at the liquidation price; the isolated margin is lost (rest = clearance fee)."""
        pos = self._positions[symbol]
        side_of_pos = 1.0 if pos.amount > 0 else -1.0
        qty = abs(pos.amount)
        realized = qty * (lp - pos.entry_price) * side_of_pos
        clearance = max(pos.margin + realized, 0.0)
        order = _Order(f"autoclose-{self._next_id}", self._new_id(), symbol,
                       "SELL" if pos.amount > 0 else "BUY", "LIQUIDATION", "FILLED", lp, qty, qty,
                       lp, True, "IOC", time_ms, clearance)
        self._orders[order.client_order_id] = order
        self._wallet += realized - clearance
        del self._positions[symbol]
        fill = Fill(symbol, self._new_id(), order.order_id, order.side, lp, qty, realized,
                    clearance, False, time_ms)
        self._add_fill(fill)
        if self._store is not None:
            self._new_fills.append(fill)
        self._touch(order=order, pos_symbol=symbol)
        self._expire_stops(symbol, time_ms)

    # ------------------------------------------------------------------ market events
    def _apply_funding(self, symbol: str, mark: float, time_ms: int) -> None:
        pos = self._positions.get(symbol)
        if pos is None:
            return
        slot = time_ms // self.funding_interval_ms
        while pos.funding_slot < slot:
            pos.funding_slot += 1
            t = pos.funding_slot * self.funding_interval_ms
            rate = (float(self.funding_rate(symbol, t)) if callable(self.funding_rate)
                    else float(self.funding_rate))
            amount = -pos.amount * mark * rate          # longs pay a positive rate
            self._wallet += amount
            pos.margin += amount                        # isolated: funding moves the position's margin
            event = {"symbol": symbol, "time_ms": t, "rate": rate, "mark_price": mark, "amount": amount}
            self._funding.append(event)
            if self._store is not None:
                self._new_funding.append(event)
            self._touch(pos_symbol=symbol)

    def _next_event(self, symbol: str, cur: float, target: float):
        """The first thing the price meets moving from cur to target, as (key, kind, obj, price).

        Anything already crossed at `cur` (a gap at the open, or a live tick) fires at `cur`;
        otherwise at its own level, nearest first. Ties: stop before take-profit and limit, those
        before liquidation (a stop placed at the liquidation price closes as a stop) — except that
        a gap already beyond the liquidation price liquidates first (isolated loss is capped).
        """
        # (one plain loop per kind, no closure: this runs several times per bar in a position)
        # best = ((dist, rank), kind, obj, price); a candidate replaces it only if strictly
        # nearer, or equally near with a lower rank, so the first one considered wins a full tie
        best = None
        bd = br = 0.0
        for s in self._open_stops.get(symbol, ()):
            trig = s.trigger_price
            if (s.side == "SELL") == (s.type == "STOP_MARKET"):      # fires at or below trigger
                if cur <= trig:
                    d, r, px = 0.0, 0, cur
                elif target <= trig:
                    d, r, px = abs(trig - cur), 0 if s.type == "STOP_MARKET" else 1, trig
                else:
                    continue
            elif cur >= trig:
                d, r, px = 0.0, 0, cur
            elif target >= trig:
                d, r, px = abs(trig - cur), 0 if s.type == "STOP_MARKET" else 1, trig
            else:
                continue
            if best is None or d < bd or (d == bd and r < br):
                best, bd, br = ((d, r), "stop", s, px), d, r
        for o in self._open.get(symbol, ()):
            buy = o.side == "BUY"
            if (cur <= o.price) if buy else (cur >= o.price):
                d, px = 0.0, cur
            elif (target <= o.price) if buy else (target >= o.price):
                d, px = abs(o.price - cur), o.price
            else:
                continue
            if best is None or d < bd or (d == bd and 1 < br):
                best, bd, br = ((d, 1), "limit", o, px), d, 1
        pos = self._positions.get(symbol)
        if pos is not None:
            lp = self._liq(pos)
            if lp > 0:
                long = pos.amount > 0
                if (cur <= lp) if long else (cur >= lp):
                    d, r = 0.0, -1
                elif (target <= lp) if long else (target >= lp):
                    d, r = abs(lp - cur), 2
                else:
                    return best
                if best is None or d < bd or (d == bd and r < br):
                    best = ((d, r), "liq", lp, lp)
        return best

    def _walk(self, symbol: str, path: tuple[float, ...], time_ms: int) -> None:
        """Move the price along path, firing every order, stop and liquidation it meets, in order."""
        cur = path[0]
        for target in path:
            while True:          # each event removes an order/stop or the position: terminates
                ev = self._next_event(symbol, cur, target)
                if ev is None:
                    break
                (dist, _), kind, obj, price = ev
                if dist > 0:
                    cur = price
                if kind == "stop":
                    self._trigger_stop(obj, price, time_ms)
                elif kind == "limit":
                    self._fill_resting(obj, price, time_ms)
                else:
                    self._liquidate(symbol, obj, time_ms)
            cur = target

    def _trigger_band(self, symbol: str) -> tuple[float, float]:
        """(below, above): a price p fires one of `symbol`'s orders, stops or its liquidation
        iff p <= below or p >= above (the comparisons `_next_event` makes; -inf/inf when
        nothing fires on that side). Cached until the next `_touch`, which every change of an
        order, a stop or a position goes through (mark-price updates do not move the band)."""
        below, above = -math.inf, math.inf
        for s in self._open_stops.get(symbol, ()):
            trig = s.trigger_price
            if (s.side == "SELL") == (s.type == "STOP_MARKET"):      # fires at or below
                if trig > below:
                    below = trig
            elif trig < above:
                above = trig
        for o in self._open.get(symbol, ()):
            if o.side == "BUY":
                if o.price > below:
                    below = o.price
            elif o.price < above:
                above = o.price
        pos = self._positions.get(symbol)
        if pos is not None:
            lp = self._liq(pos)
            if lp > 0:
                if pos.amount > 0:
                    if lp > below:
                        below = lp
                elif lp < above:
                    above = lp
        band = self._bands[symbol] = (below, above)
        return band

    def _process(self, symbol: str, path: tuple[float, ...], close: float, time_ms: int) -> None:
        with self._lock:
            pos = self._positions.get(symbol)
            if pos is not None and pos.funding_slot < time_ms // self.funding_interval_ms:
                self._apply_funding(symbol, path[0], time_ms)
            # `_walk` fires something as soon as one path point lies on a trigger's side, so
            # when the bar's range stays strictly inside the band it would meet nothing: skip
            # it (most bars in a position). A NaN first point makes min/max untrustworthy.
            band = self._bands.get(symbol) or self._trigger_band(symbol)
            lo = min(path)
            hi = max(path)
            if lo <= band[0] or hi >= band[1] or lo != lo or hi != hi:
                self._walk(symbol, path, time_ms)
                pos = self._positions.get(symbol)
                self._refresh_busy(symbol)
            if pos is not None:
                pos.mark_price = close
            self._commit()

    def on_price(self, symbol: str, price: float, time_ms: int) -> None:
        """Live paper: a new last/mark price. Anything it crosses fills at this price."""
        self._price[symbol] = price
        if time_ms > self._time:
            self._time = time_ms
        if symbol in self._busy:
            self._process(symbol, (price,), price, time_ms)

    def on_bar(self, symbol: str, open: float, high: float, low: float, close: float,
               time_ms: int) -> None:
        """Backtest: one finished bar (time_ms = its close time). Fast no-op when idle.

        The price is assumed to go open → adverse extreme → favourable extreme → close for the
        open position (open → low → high → close when flat), so when a stop and a target both lie
        inside one bar the stop fills first; anything already crossed at the open (a gap) fills
        at the open.
        """
        self._price[symbol] = close
        if time_ms > self._time:
            self._time = time_ms
        if symbol not in self._busy:
            return
        pos = self._positions.get(symbol)
        path = (open, high, low, close) if (pos is not None and pos.amount < 0) else (open, low, high, close)
        self._process(symbol, path, close, time_ms)
