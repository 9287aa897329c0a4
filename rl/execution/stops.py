"""StopKeeper: the protective stops of the router's positions.

- `protect` places a reduce-only STOP_MARKET for the whole open size, then cancels the old one:
  there is never a moment without a stop.
- A cancel that fails (5xx, timeout, 429, or a "not found" the exchange could not confirm) is
  logged and remembered; every later `sweep` (each sync, each entry) tries again, so a failed cancel never
  stops the caller and never leaves a stale stop behind for good.
- `clear_for_entry` makes sure no stale reduce-only stop of an earlier position remains on a
  flat symbol before a new entry: a stale SELL stop would close the new long at the old price.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from client import BinanceError, OrderRejected, UnknownOrderStatus
from rl.execution.outcomes import error_detail
from rl.execution.port import ExchangePort, OrderResult, StopOrderInfo
from rl.execution.position import PositionState

log = logging.getLogger(__name__)
WOULD_TRIGGER = -2021


class StopKeeper:
    def __init__(self, exchange: ExchangePort, record: Callable[[OrderResult | StopOrderInfo, str, int | None], None],
                 new_cid: Callable[[str], str]) -> None:
        self.exchange = exchange
        self._record = record
        self._cid = new_cid
        self._stale: dict[str, set[str]] = {}       # symbol -> client_algo_ids still to cancel

    def stale(self, symbol: str) -> frozenset[str]:
        """Stops of `symbol` whose cancel failed and is retried."""
        return frozenset(self._stale.get(symbol, ()))

    def protect(self, state: PositionState, trigger: float) -> str:
        """Place a stop for the whole open size at `trigger`, then cancel the old one.

        Returns "ok", "crossed" (the price is already beyond: -2021) or an error text."""
        f = self.exchange.filters(state.symbol)
        trigger = f.round_price(trigger, "down" if state.side == "LONG" else "up")
        cid = self._cid("s")
        try:
            info = self.exchange.place_stop(state.symbol, state.close_side, "STOP_MARKET",
                                            trigger, state.qty, cid)
        except OrderRejected as exc:
            if exc.code == WOULD_TRIGGER:
                return "crossed"
            return str(exc)
        except UnknownOrderStatus as exc:
            try:
                found = [s for s in self.exchange.open_stops(state.symbol) if s.client_algo_id == cid]
            except BinanceError:
                found = []
            if not found:
                return f"stop outcome unknown: {exc}"
            info = found[0]
        except BinanceError as exc:
            return str(exc)
        old = state.stop_client_algo_id
        state.stop_client_algo_id, state.stop_algo_id = info.client_algo_id, info.algo_id
        state.stop, state.unprotected_cycles = trigger, 0
        self._record(info, "stop", state.trade_id)
        if old and old != cid:
            self.cancel(state.symbol, old)
        return "ok"

    def cancel(self, symbol: str, client_algo_id: str) -> bool:
        """Cancel one stop; never raises. True when the exchange confirmed it gone; else it is
        remembered and `sweep` tries again (a stale extra stop is reduce-only: harmless to the
        position it protected, but not to the next one)."""
        try:
            self.exchange.cancel_stop(symbol, client_algo_id)
        except BinanceError as exc:
            log.warning("cancel stop %s failed (retried): %s", client_algo_id, exc)
            self._stale.setdefault(symbol, set()).add(client_algo_id)
            return False
        left = self._stale.get(symbol)
        if left is not None:
            left.discard(client_algo_id)
            if not left:
                del self._stale[symbol]
        return True

    def cancel_each(self, symbol: str, client_algo_ids: tuple[str, ...] | list[str]) -> list[str]:
        """Cancel these stops one by one, each guarded; returns the ids not confirmed gone."""
        return [c for c in client_algo_ids if not self.cancel(symbol, c)]

    def sweep(self, symbol: str, listed: tuple[str, ...] | list[str] = (), keep: str | None = None) -> list[str]:
        """Cancel the stops `listed` (that protect nothing) and retry the failed cancels of
        `symbol`, each once, never `keep` (the stop protecting it now); returns the ids still
        not confirmed gone."""
        if keep is not None and keep in self._stale.get(symbol, ()):
            self._stale[symbol].discard(keep)
        ids = [c for c in listed if c != keep]
        ids += [c for c in sorted(self._stale.get(symbol, ())) if c not in ids and c != keep]
        return self.cancel_each(symbol, ids)

    def cancel_all(self, symbol: str) -> None:
        """Cancel every open stop of a symbol just closed (each guarded)."""
        try:
            live = [s.client_algo_id for s in self.exchange.open_stops(symbol)]
        except BinanceError as exc:
            log.warning("listing stops of %s failed: %s", symbol, exc)
            return           # clear_for_entry lists them again before the next entry
        self.cancel_each(symbol, live)

    def clear_for_entry(self, symbol: str) -> tuple[str, str] | None:
        """Before a new entry on a flat `symbol`: cancel the stops left from earlier positions
        (whatever the exchange lists, and the cancels that failed before). None when the symbol is
        clear; else why not, (English, Chinese): the entry must wait, a stale stop could close
        the new position."""
        try:
            live = [s.client_algo_id for s in self.exchange.open_stops(symbol) if s.status == "NEW"]
        except BinanceError as exc:
            return (f"cannot list the open stops ({exc})", f"无法查询当前止损单（{error_detail(exc)}）")
        if live:
            try:
                held = self.exchange.position_amount(symbol) is not None
            except BinanceError as exc:
                return (f"cannot read the position ({exc})", f"无法查询持仓（{error_detail(exc)}）")
            if held:
                return None     # they protect a position: not stale (sync deals with it)
        failed = self.sweep(symbol, live)
        if failed:
            ids = ", ".join(failed)
            return (f"stale stop(s) {ids} could not be cancelled", f"旧止损单 {ids} 未能撤销")
        return None
