"""PaperAccount: the state of the simulated futures account and every change made to it.

Wallet, leverage settings, isolated positions, orders (resting and done), conditional stops,
the fill and funding logs, the last price per symbol and the account clock. Both halves of the
paper exchange work on it through the methods below: rl/paper/exchange.py (the port: checks a
request, then hands the account what to record) and rl/paper/matching.py (decides what a price
move fires and at which price, then tells the account). Each method leaves the account
consistent; the caller ends its unit of work with `commit`, which writes what changed since the
last commit in ONE SQLite transaction (rl/paper/store.py): a kill -9 between two commits leaves
the previous consistent account. Without a store (backtests) nothing is tracked or written.

Not locked itself: the exchange holds its lock around every unit of work. Fill rules and the
liquidation formula are explained in docs/execution.md.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import asdict

from rl.execution.port import AccountSnapshot, Fill, PositionSnapshot
from rl.paper.records import PaperOrder, PaperPosition, PaperStop
from rl.paper.rules import EPS, liquidation_price
from rl.paper.store import PaperStore


class PaperAccount:
    """One isolated-margin, one-way USDⓈ-M account: its records and their bookkeeping."""

    def __init__(self, balance: float, *, maker_fee: float, taker_fee: float,
                 default_leverage: int, funding_interval_ms: int,
                 store: PaperStore | None) -> None:
        self.maker_fee, self.taker_fee = maker_fee, taker_fee
        self.default_leverage = default_leverage
        self.funding_interval_ms = funding_interval_ms
        self._store = store
        self._prices: dict[str, float] = {}
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
        self._revision = 0
        self._dirty_orders: dict[str, PaperOrder] = {}
        self._dirty_stops: dict[str, PaperStop] = {}
        self._dirty_pos: dict[str, PaperPosition | None] = {}
        self._dirty_lev: dict[str, int] = {}
        self._new_fills: list[Fill] = []
        self._new_funding: list[dict] = []
        self._dirty = False
        if store is not None:
            self._load(store)

    # ------------------------------------------------------------------ persistence
    def _load(self, store: PaperStore) -> None:
        data = store.load()
        if data["account"] is None:        # a fresh file: write the opening balance
            self._dirty = True
            self.commit()
            return
        acc = data["account"]
        self._wallet, self._next_id, self._time = float(acc["wallet"]), int(acc["next_id"]), int(acc["time_ms"])
        self._leverage = dict(data["leverage"])
        for p in data["positions"]:
            pos = PaperPosition(**p)
            self._positions[pos.symbol] = pos
            self._prices.setdefault(pos.symbol, pos.mark_price)
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

    def commit(self) -> None:
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

    def close(self) -> None:
        """Commit what is pending and close the store."""
        self.commit()
        if self._store is not None:
            self._store.close()

    def _touch(self, order: PaperOrder | None = None, stop: PaperStop | None = None,
               pos_symbol: str | None = None) -> None:
        """Every change of an order, a stop, a position or the wallet comes through here: it
        bumps `revision` and marks what to persist."""
        self._revision += 1
        if self._store is None:
            return
        self._dirty = True
        if order is not None:
            self._dirty_orders[order.client_order_id] = order
        if stop is not None:
            self._dirty_stops[stop.client_algo_id] = stop
        if pos_symbol is not None:
            self._dirty_pos[pos_symbol] = self._positions.get(pos_symbol)

    # ------------------------------------------------------------------ reads
    @property
    def wallet(self) -> float:
        return self._wallet

    @property
    def time_ms(self) -> int:
        """The latest market time seen (on_price/on_bar), persisted with the account."""
        return self._time

    @property
    def revision(self) -> int:
        """Changes with every change of an order, a stop or a position (not with mark prices or
        leverage settings): what the matcher keys its trigger-band cache on."""
        return self._revision

    def price(self, symbol: str) -> float | None:
        """The last known market price of symbol (None before any)."""
        return self._prices.get(symbol)

    def is_busy(self, symbol: str) -> bool:
        """Whether symbol has a position, an open order or an open stop (a price can fire)."""
        return symbol in self._busy

    def position(self, symbol: str) -> PaperPosition | None:
        return self._positions.get(symbol)

    def open_orders(self, symbol: str) -> Sequence[PaperOrder]:
        return self._open.get(symbol, ())

    def open_stops(self, symbol: str) -> Sequence[PaperStop]:
        return self._open_stops.get(symbol, ())

    def order(self, client_order_id: str) -> PaperOrder | None:
        return self._orders.get(client_order_id)

    def stop(self, client_algo_id: str) -> PaperStop | None:
        return self._stops.get(client_algo_id)

    def leverage(self, symbol: str) -> int:
        return self._leverage.get(symbol, self.default_leverage)

    def liquidation_price(self, pos: PaperPosition) -> float:
        """liquidation_price(pos), recomputed only when amount, entry or margin changed."""
        c = self._lp_cache.get(pos.symbol)
        if c is not None and c[0] == pos.amount and c[1] == pos.entry_price and c[2] == pos.margin:
            return c[3]
        lp = liquidation_price(pos.amount, pos.entry_price, pos.margin)
        self._lp_cache[pos.symbol] = (pos.amount, pos.entry_price, pos.margin, lp)
        return lp

    def _order_margin(self) -> float:
        return sum(o.reserved for lst in self._open.values() for o in lst)

    def available(self) -> float:
        """Wallet minus the margin of positions and resting orders."""
        return self._wallet - sum(p.margin for p in self._positions.values()) - self._order_margin()

    def snapshot(self) -> AccountSnapshot:
        # one plain loop, summing in the same order (from int 0) as sum() would
        upnl: float = 0
        used: float = 0
        prices = self._prices
        for s, p in self._positions.items():
            upnl += p.amount * (prices.get(s, p.mark_price) - p.entry_price)
            used += p.margin
        used += self._order_margin()
        return AccountSnapshot(wallet_balance=self._wallet, unrealized_pnl=upnl,
                               margin_balance=self._wallet + upnl, initial_margin=used,
                               available_balance=self._wallet - used)

    def margin_balance(self) -> float:
        """snapshot().margin_balance without building the snapshot: the same loop, so the same
        float to the last bit."""
        upnl: float = 0
        prices = self._prices
        for s, p in self._positions.items():
            upnl += p.amount * (prices.get(s, p.mark_price) - p.entry_price)
        return self._wallet + upnl

    def position_snapshot(self, symbol: str) -> PositionSnapshot | None:
        p = self._positions.get(symbol)
        if p is None:
            return None
        mark = self._prices.get(symbol, p.mark_price)
        return PositionSnapshot(symbol=symbol, amount=p.amount, entry_price=p.entry_price,
                                mark_price=mark, unrealized_pnl=p.amount * (mark - p.entry_price),
                                liquidation_price=self.liquidation_price(p),
                                leverage=p.leverage, margin=p.margin)

    def fills_since(self, symbol: str, since_ms: int) -> list[Fill]:
        fills = self._fills
        if self._fills_sorted:       # the ones from since_ms on are a tail: skip the rest
            fills = fills[bisect.bisect_left(self._fill_times, since_ms):]
        return [f for f in fills if f.symbol == symbol and f.time_ms >= since_ms]

    def funding_since(self, symbol: str, since_ms: int) -> list[dict]:
        return [dict(f) for f in self._funding if f["symbol"] == symbol and f["time_ms"] >= since_ms]

    # ------------------------------------------------------------------ market view
    def observe(self, symbol: str, price: float, time_ms: int) -> None:
        """A market price at time_ms: the last price of symbol; the clock only moves forward."""
        self._prices[symbol] = price
        if time_ms > self._time:
            self._time = time_ms

    def set_price(self, symbol: str, price: float) -> None:
        """A price fetched on demand (no market time attached)."""
        self._prices[symbol] = price

    def set_mark_price(self, symbol: str, price: float) -> None:
        """The position's mark price (not a change to persist on its own)."""
        pos = self._positions.get(symbol)
        if pos is not None:
            pos.mark_price = price

    # ------------------------------------------------------------------ changes
    def new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id - 1)

    def set_leverage(self, symbol: str, leverage: int) -> None:
        self._leverage[symbol] = leverage
        if self._store is not None:
            self._dirty, self._dirty_lev[symbol] = True, leverage

    def accept_order(self, order: PaperOrder, fill_qty: float, price: float, rest_qty: float,
                     time_ms: int) -> None:
        """A new order: fill_qty of it fills now at price as taker; rest_qty rests on the book
        (reserving its margin unless reduce-only); a remainder that may not rest expires."""
        symbol = order.symbol
        self._orders[order.client_order_id] = order
        if fill_qty > 0:
            self._fill(order, fill_qty, price, maker=False, time_ms=time_ms)
        if order.executed_qty >= order.orig_qty - EPS:
            order.status = "FILLED"
        elif rest_qty > EPS:
            order.status = "PARTIALLY_FILLED" if order.executed_qty > 0 else "NEW"
            if not order.reduce_only:
                order.reserved = rest_qty * order.price / self.leverage(symbol)
            self._open.setdefault(symbol, []).append(order)
        else:
            order.status = "EXPIRED"      # IOC (partly) unfilled: Binance reports EXPIRED
        self._touch(order=order)
        self._refresh_busy(symbol)

    def cancel_order(self, order: PaperOrder, time_ms: int) -> None:
        """Cancel an open (NEW or PARTIALLY_FILLED) order; its reserved margin is freed."""
        order.status, order.reserved, order.update_time_ms = "CANCELED", 0.0, time_ms
        self._open[order.symbol].remove(order)
        self._touch(order=order)
        self._refresh_busy(order.symbol)

    def add_stop(self, stop: PaperStop) -> None:
        self._stops[stop.client_algo_id] = stop
        self._open_stops.setdefault(stop.symbol, []).append(stop)
        self._busy.add(stop.symbol)
        self._touch(stop=stop)

    def cancel_stop(self, stop: PaperStop, time_ms: int) -> None:
        """Cancel an open (NEW) stop."""
        stop.status, stop.update_time_ms = "CANCELED", time_ms
        self._open_stops[stop.symbol].remove(stop)
        self._touch(stop=stop)
        self._refresh_busy(stop.symbol)

    def trigger_stop(self, stop: PaperStop, price: float, time_ms: int) -> None:
        """The stop fired at price: a reduce-only market order closes (part of) the position as
        taker; with no position to reduce the stop expires."""
        symbol = stop.symbol
        self._open_stops[symbol].remove(stop)
        pos = self._positions.get(symbol)
        sign = 1.0 if stop.side == "BUY" else -1.0
        stop.update_time_ms = time_ms
        if pos is None or pos.amount * sign >= 0:
            stop.status = "EXPIRED"
            self._touch(stop=stop)
            self._refresh_busy(symbol)
            return
        qty = abs(pos.amount) if stop.close_position else min(stop.quantity, abs(pos.amount))
        order = PaperOrder(client_order_id=f"algo-{stop.algo_id}", order_id=self.new_id(), symbol=symbol,
                           side=stop.side, type="MARKET", status="NEW", price=0.0, orig_qty=qty,
                           executed_qty=0.0, avg_price=0.0, reduce_only=True, time_in_force=None,
                           update_time_ms=time_ms, commission=0.0)
        self._orders[order.client_order_id] = order
        self._fill(order, qty, price, maker=False, time_ms=time_ms)
        order.status = "FILLED"
        stop.status = "FINISHED"
        self._touch(stop=stop, order=order)
        self._refresh_busy(symbol)

    def fill_resting(self, order: PaperOrder, price: float, time_ms: int,
                     cap: float | None = None) -> bool:
        """The price reached a resting order: its rest fills at price as maker, at most `cap`
        of it (a reduce-only one with no position left to reduce expires). Returns whether the
        order is done; a capped fill leaves it PARTIALLY_FILLED and resting, its reserved
        margin shrunk to what still rests."""
        symbol = order.symbol
        qty = order.orig_qty - order.executed_qty
        if order.reduce_only:
            pos = self._positions.get(symbol)
            sign = 1.0 if order.side == "BUY" else -1.0
            if pos is None or pos.amount * sign >= 0:
                self._open[symbol].remove(order)
                order.status, order.reserved, order.update_time_ms = "EXPIRED", 0.0, time_ms
                self._touch(order=order)
                self._refresh_busy(symbol)
                return True
            qty = min(qty, abs(pos.amount))
        if cap is not None and cap < qty - EPS:
            # a part: cap < what it may reduce, so the position cannot go flat on it (nothing
            # of this symbol expires under it) and the order keeps resting
            if cap > EPS:
                self._fill(order, cap, price, maker=True, time_ms=time_ms)
                order.status = "PARTIALLY_FILLED"
                if not order.reduce_only:
                    order.reserved = (order.orig_qty - order.executed_qty) * order.price / self.leverage(symbol)
            return False
        self._open[symbol].remove(order)
        order.reserved = 0.0
        self._fill(order, qty, price, maker=True, time_ms=time_ms)
        order.status = "FILLED"
        self._refresh_busy(symbol)
        return True

    def liquidate(self, symbol: str, price: float, time_ms: int) -> None:
        """Close the position at its liquidation price; the isolated margin is lost (what is
        left of it is the clearance fee)."""
        pos = self._positions[symbol]
        side_of_pos = 1.0 if pos.amount > 0 else -1.0
        qty = abs(pos.amount)
        realized = qty * (price - pos.entry_price) * side_of_pos
        clearance = max(pos.margin + realized, 0.0)
        order = PaperOrder(client_order_id=f"autoclose-{self._next_id}", order_id=self.new_id(), symbol=symbol,
                           side="SELL" if pos.amount > 0 else "BUY", type="LIQUIDATION", status="FILLED",
                           price=price, orig_qty=qty, executed_qty=qty, avg_price=price, reduce_only=True,
                           time_in_force="IOC", update_time_ms=time_ms, commission=clearance)
        self._orders[order.client_order_id] = order
        self._wallet += realized - clearance
        del self._positions[symbol]
        self._record_fill(Fill(symbol, self.new_id(), order.order_id, order.side, price, qty, realized,
                               clearance, False, time_ms))
        self._touch(order=order, pos_symbol=symbol)
        self._expire_stops(symbol, time_ms)
        self._refresh_busy(symbol)

    def pay_funding(self, symbol: str, slot: int, rate: float, mark: float) -> None:
        """The funding of period `slot` at rate (longs pay a positive rate), on the open position."""
        pos = self._positions[symbol]
        pos.funding_slot = slot
        t = slot * self.funding_interval_ms
        amount = -pos.amount * mark * rate
        self._wallet += amount
        pos.margin += amount                        # isolated: funding moves the position's margin
        event = {"symbol": symbol, "time_ms": t, "rate": rate, "mark_price": mark, "amount": amount}
        self._funding.append(event)
        if self._store is not None:
            self._new_funding.append(event)
        self._touch(pos_symbol=symbol)

    # ------------------------------------------------------------------ bookkeeping
    def _fill(self, order: PaperOrder, qty: float, price: float, maker: bool, time_ms: int) -> None:
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
            if pos is None:
                pos = PaperPosition(symbol, 0.0, price, 0.0, self.leverage(symbol),
                                    time_ms // self.funding_interval_ms, price)
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
        self._record_fill(Fill(symbol, self.new_id(), order.order_id, order.side, price, qty, realized,
                               fee, maker, time_ms))
        self._touch(order=order, pos_symbol=symbol)

    def _record_fill(self, fill: Fill) -> None:
        self._add_fill(fill)
        if self._store is not None:
            self._new_fills.append(fill)

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

    def _refresh_busy(self, symbol: str) -> None:
        if symbol in self._positions or self._open.get(symbol) or self._open_stops.get(symbol):
            self._busy.add(symbol)
        else:
            self._busy.discard(symbol)
