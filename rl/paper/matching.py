"""The paper account's matching engine: how a price move or a 1m bar fills resting orders,
triggers stops and take-profits, liquidates and charges funding.

PaperExchange (rl/paper/exchange.py) inherits `PaperMatchingMixin`. The split follows the account's two
halves: rl/paper/exchange.py answers the port's calls (reads, order/stop placement, persistence); this
module is what happens when the market moves (`on_price`, `on_bar`). It is a mixin rather than
functions because every step mutates the account's state and it is the backtest's hot path (a
method of the class costs no extra call). Fill rules and the liquidation formula are explained
in docs/execution.md.
"""
from __future__ import annotations

import math

from rl.execution.port import Fill
from rl.paper.records import PaperOrder, PaperPosition, PaperStop
from rl.paper.rules import EPS, liquidation_price


class PaperMatchingMixin:
    """Fills, stop triggers, liquidation, funding and the bar/price walk of PaperExchange. Uses
    its state (`_positions`, `_open`, `_open_stops`, `_orders`, `_wallet`, `_fills`, the
    `_lp_cache`/`_bands` caches), its fee/funding settings and its `_lock`, `_touch`, `_commit`,
    `_new_id`, `_lev` and `_refresh_busy`."""

    def _liq(self, pos: PaperPosition) -> float:
        """liquidation_price(pos), recomputed only when amount, entry or margin changed."""
        c = self._lp_cache.get(pos.symbol)
        if c is not None and c[0] == pos.amount and c[1] == pos.entry_price and c[2] == pos.margin:
            return c[3]
        lp = liquidation_price(pos.amount, pos.entry_price, pos.margin)
        self._lp_cache[pos.symbol] = (pos.amount, pos.entry_price, pos.margin, lp)
        return lp

    # ------------------------------------------------------------------ fills
    def _execute(self, order: PaperOrder, qty: float, price: float, maker: bool, time_ms: int) -> None:
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
                pos = PaperPosition(symbol, 0.0, price, 0.0, lev, time_ms // self.funding_interval_ms, price)
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

    def _trigger_stop(self, stop: PaperStop, price: float, time_ms: int) -> None:
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
        order = PaperOrder(client_order_id=f"algo-{stop.algo_id}", order_id=self._new_id(), symbol=symbol,
                           side=stop.side, type="MARKET", status="NEW", price=0.0, orig_qty=qty,
                           executed_qty=0.0, avg_price=0.0, reduce_only=True, time_in_force=None,
                           update_time_ms=time_ms, commission=0.0)
        self._orders[order.client_order_id] = order
        self._execute(order, qty, price, maker=False, time_ms=time_ms)
        order.status = "FILLED"
        stop.status = "FINISHED"
        self._touch(stop=stop, order=order)

    def _fill_resting(self, order: PaperOrder, price: float, time_ms: int) -> None:
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
        order = PaperOrder(client_order_id=f"autoclose-{self._next_id}", order_id=self._new_id(), symbol=symbol,
                           side="SELL" if pos.amount > 0 else "BUY", type="LIQUIDATION", status="FILLED",
                           price=lp, orig_qty=qty, executed_qty=qty, avg_price=lp, reduce_only=True,
                           time_in_force="IOC", update_time_ms=time_ms, commission=clearance)
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
