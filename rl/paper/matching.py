"""The paper account's matching engine: what a price move or a 1m bar fires — resting orders,
stops and take-profits, liquidation — in which order and at which price, and when funding is due.

`Matcher` decides; the account (rl/paper/account.py) applies each event (a fill, a stop
trigger, a liquidation, a funding payment) and persists it. PaperExchange (rl/paper/exchange.py)
builds one over its account and forwards `on_price`/`on_bar` to it. This is the backtest's hot
path (on_bar runs for every 1m bar): an idle symbol returns at once, and a bar whose range stays
inside the trigger band (see `trigger_band`) is skipped without walking it. Fill rules and the
liquidation formula are explained in docs/execution.md.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import cast

from rl.paper.account import PaperAccount
from rl.paper.records import PaperOrder, PaperStop

# ((distance, rank), kind, the order/stop or the liquidation price, fill price)
Event = tuple[tuple[float, int], str, PaperStop | PaperOrder | float, float]


class Matcher:
    """Fills, stop triggers, liquidation and funding of one paper account as prices arrive.

    `lock` is the exchange's lock: a bar or tick that fires something holds it while it works
    on the account. `funding_rate` is a fixed rate or rate(symbol, funding time ms)."""

    def __init__(self, account: PaperAccount, funding_rate: float | Callable[[str, int], float],
                 lock: threading.RLock, *,
                 fill_cap: Callable[[str], float | None] | None = None) -> None:
        self._account = account
        self._funding_rate = funding_rate
        self._lock = lock
        # fill_cap(symbol): the most one resting LIMIT order fills per market event (None: all)
        self._fill_cap = fill_cap
        # symbol -> (account revision, trigger band): valid while the account's revision is
        # unchanged (every change of an order, a stop or a position bumps it)
        self._bands: dict[str, tuple[int, tuple[float, float]]] = {}

    # ------------------------------------------------------------------ market events
    def on_price(self, symbol: str, price: float, time_ms: int) -> None:
        """Live paper: a new last/mark price. Anything it crosses fills at this price."""
        account = self._account
        account.observe(symbol, price, time_ms)
        if account.is_busy(symbol):
            self._process(symbol, (price,), price, time_ms)

    def on_bar(self, symbol: str, open: float, high: float, low: float, close: float,
               time_ms: int) -> None:
        """Backtest: one finished bar (time_ms = its close time). Fast no-op when idle.

        The price is assumed to go open → adverse extreme → favourable extreme → close for the
        open position (open → low → high → close when flat), so when a stop and a target both lie
        inside one bar the stop fills first; anything already crossed at the open (a gap) fills
        at the open.
        """
        account = self._account
        account.observe(symbol, close, time_ms)
        if not account.is_busy(symbol):
            return
        pos = account.position(symbol)
        path = (open, high, low, close) if (pos is not None and pos.amount < 0) else (open, low, high, close)
        self._process(symbol, path, close, time_ms)

    def trigger_band(self, symbol: str) -> tuple[float, float]:
        """(below, above): a price p fires one of `symbol`'s orders, stops or its liquidation
        iff p <= below or p >= above (the comparisons `_next_event` makes; -inf/inf when
        nothing fires on that side). Cached until the account's next change of an order, a stop
        or a position (mark-price updates do not move the band)."""
        account = self._account
        below, above = -math.inf, math.inf
        for s in account.open_stops(symbol):
            trig = s.trigger_price
            if (s.side == "SELL") == (s.type == "STOP_MARKET"):      # fires at or below
                if trig > below:
                    below = trig
            elif trig < above:
                above = trig
        for o in account.open_orders(symbol):
            p = o.price
            if o.time_in_force == "GTX":        # post-only: fires only strictly beyond its price
                p = math.nextafter(p, -math.inf if o.side == "BUY" else math.inf)
            if o.side == "BUY":
                if p > below:
                    below = p
            elif p < above:
                above = p
        pos = account.position(symbol)
        if pos is not None:
            lp = account.liquidation_price(pos)
            if lp > 0:
                if pos.amount > 0:
                    if lp > below:
                        below = lp
                elif lp < above:
                    above = lp
        band = (below, above)
        self._bands[symbol] = (account.revision, band)
        return band

    # ------------------------------------------------------------------ the walk
    def _process(self, symbol: str, path: tuple[float, ...], close: float, time_ms: int) -> None:
        account = self._account
        with self._lock:
            pos = account.position(symbol)
            if pos is not None and pos.funding_slot < time_ms // account.funding_interval_ms:
                self._apply_funding(symbol, path[0], time_ms)
            # `_walk` fires something as soon as one path point lies on a trigger's side, so
            # when the bar's range stays strictly inside the band it would meet nothing: skip
            # it (most bars in a position). A NaN first point makes min/max untrustworthy.
            cached = self._bands.get(symbol)
            band = cached[1] if cached is not None and cached[0] == account.revision \
                else self.trigger_band(symbol)
            lo = min(path)
            hi = max(path)
            if lo <= band[0] or hi >= band[1] or lo != lo or hi != hi:
                self._walk(symbol, path, time_ms)
            account.set_mark_price(symbol, close)
            account.commit()

    def _apply_funding(self, symbol: str, mark: float, time_ms: int) -> None:
        """Every funding period that ended since the position's last one, at the mark price."""
        account = self._account
        pos = account.position(symbol)
        if pos is None:
            return
        interval = account.funding_interval_ms
        rate_of = self._funding_rate
        for slot in range(pos.funding_slot + 1, time_ms // interval + 1):
            t = slot * interval
            rate = float(rate_of(symbol, t)) if callable(rate_of) else float(rate_of)
            account.pay_funding(symbol, slot, rate, mark)

    def _next_event(self, symbol: str, cur: float, target: float,
                    filled: set[int]) -> Event | None:
        """The first thing the price meets moving from cur to target, as (key, kind, obj, price).

        Anything already crossed at `cur` (a gap at the open, or a live tick) fires at `cur`;
        otherwise at its own level, nearest first. Ties: stop before take-profit and limit, those
        before liquidation (a stop placed at the liquidation price closes as a stop) — except that
        a gap already beyond the liquidation price liquidates first (isolated loss is capped).
        A post-only (GTX) order fires only when the price goes strictly beyond it, and always at
        its own price: no queue position is known, so a touch is not taken as a fill. Orders
        whose ids are in `filled` already filled in part in this market event and wait for the
        next one.
        """
        # (one plain loop per kind, no closure: this runs several times per bar in a position)
        # best = ((dist, rank), kind, obj, price); a candidate replaces it only if strictly
        # nearer, or equally near with a lower rank, so the first one considered wins a full tie
        account = self._account
        best: Event | None = None
        bd = br = 0.0
        for s in account.open_stops(symbol):
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
        for o in account.open_orders(symbol):
            if filled and id(o) in filled:
                continue
            buy = o.side == "BUY"
            lim = o.price
            if o.time_in_force == "GTX":
                if (cur < lim) if buy else (cur > lim):
                    d, px = 0.0, lim
                elif (target < lim) if buy else (target > lim):
                    d, px = abs(lim - cur), lim
                else:
                    continue
            elif (cur <= lim) if buy else (cur >= lim):
                d, px = 0.0, cur
            elif (target <= lim) if buy else (target >= lim):
                d, px = abs(lim - cur), lim
            else:
                continue
            if best is None or d < bd or (d == bd and 1 < br):
                best, bd, br = ((d, 1), "limit", o, px), d, 1
        pos = account.position(symbol)
        if pos is not None:
            lp = account.liquidation_price(pos)
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
        account = self._account
        cur = path[0]
        filled: set[int] = set()     # ids of orders a capped fill left open: once per event
        for target in path:
            # each event removes an order/stop or the position, or puts an order in `filled`:
            # terminates
            while True:
                ev = self._next_event(symbol, cur, target, filled)
                if ev is None:
                    break
                (dist, _), kind, obj, price = ev
                if dist > 0:
                    cur = price
                # `kind` names what obj is (see Event); mypy cannot tie one tuple item to another
                if kind == "stop":
                    account.trigger_stop(cast(PaperStop, obj), price, time_ms)
                elif kind == "limit":
                    cap = self._fill_cap(symbol) if self._fill_cap is not None else None
                    if not account.fill_resting(cast(PaperOrder, obj), price, time_ms, cap):
                        filled.add(id(obj))
                else:
                    account.liquidate(symbol, cast(float, obj), time_ms)
            cur = target
