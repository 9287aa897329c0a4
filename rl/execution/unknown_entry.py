"""An entry whose outcome is unknown, and how it is found out without blocking the caller.

An entry answered with a 5xx, a timeout, -1006 or -1007 may have reached the matching engine,
and Binance may show a new order only after a while: one lookup that answers "does not exist"
(-2013) proves nothing. So the entry stays pending, with its plan (stop, target), across the
caller's cycles. Each call looks it up when a lookup is due (the first at once, then backoff
2, 4, 8, 16 s: time from the router's clock, never a sleep). Every lookup asks for the order by
its client id and, when that finds nothing, for the position and the account's fills since it
was sent: a fill that turns up is matched to the plan and protected with the PLANNED stop.
Only after MIN_LOOKUPS lookups spread over at least WINDOW_MS that all found nothing is it
declared never placed. While it is pending no other entry is sent in that symbol.
"""
from __future__ import annotations

from dataclasses import dataclass

from client import BinanceError
from rl.execution.port import ExchangePort, OrderResult

EPS = 1e-12
LOOKUP_GAPS_MS = (2_000, 4_000, 8_000, 16_000)   # wait after the 1st, 2nd, ... lookup that found nothing
MIN_LOOKUPS = 5             # freqtrade also retries a not-found order lookup 5 times
WINDOW_MS = 30_000          # and never declare "not placed" sooner than this after sending
FILL_SKEW_MS = 5_000        # the exchange's clock may run a little behind ours


@dataclass
class PendingEntry:
    symbol: str
    client_order_id: str | None    # None: sent by a process killed before the answer came
    side: str                      # "LONG" | "SHORT"
    qty: float                     # asked for (0: not known, after a restart)
    limit: float                   # its limit price (0: not known)
    stop: float                    # the plan: the stop a fill gets
    target: float | None
    trade_id: int | None
    entry_type: str                # "ioc" | "maker"
    expires_ms: int | None
    sent_ms: int
    lookups: int = 0               # lookups that found nothing so far
    next_ms: int = 0               # the next lookup is due from then on (the first: at once)

    @property
    def open_side(self) -> str:
        return "BUY" if self.side == "LONG" else "SELL"

    def due(self, now_ms: int) -> bool:
        return now_ms >= self.next_ms

    def found_nothing(self, now_ms: int) -> None:
        self.lookups += 1
        self.next_ms = now_ms + LOOKUP_GAPS_MS[min(self.lookups - 1, len(LOOKUP_GAPS_MS) - 1)]

    def may_be_declared_unplaced(self, now_ms: int) -> bool:
        return self.lookups >= MIN_LOOKUPS and now_ms - self.sent_ms >= WINDOW_MS


@dataclass(frozen=True)
class FillEvidence:
    """A fill of the pending entry seen in the account although its order was not found."""

    order: OrderResult             # the entry as its fills (or the position) show it
    held: float                    # the exchange's position on the entry's side now (0: flat)


def find_fill(exchange: ExchangePort, p: PendingEntry) -> FillEvidence | None:
    """The entry's fill in positionRisk and userTrades, None when neither shows one. Raises
    BinanceError when the account could not be read (then nothing can be concluded).

    The caller was flat and sent no other entry in the symbol meanwhile, so an opening fill
    on the entry's side (no realized PnL: it closes nothing) since the entry was sent is the
    entry's; the first such order is it."""
    pos = exchange.position(p.symbol)
    held = abs(pos.amount) if pos is not None and pos.side == p.side else 0.0
    try:
        fills = [f for f in exchange.fills_since(p.symbol, max(0, p.sent_ms - FILL_SKEW_MS))
                 if f.side == p.open_side and f.realized_pnl == 0]
    except BinanceError:
        if held <= EPS:
            raise
        fills = []
    if fills:
        oid = fills[0].order_id
        mine = [f for f in fills if f.order_id == oid]
        qty = sum(f.qty for f in mine)
        price = sum(f.price * f.qty for f in mine) / qty
        fee, t = sum(f.commission for f in mine), max(f.time_ms for f in mine)
    elif held > EPS and pos is not None:
        oid, qty, price, fee, t = "", held, pos.entry_price, 0.0, p.sent_ms
    else:
        return None
    orig = p.qty if p.qty > 0 else qty
    order = OrderResult(symbol=p.symbol, order_id=oid, client_order_id=p.client_order_id or "",
                        side=p.open_side, type="LIMIT",
                        status="FILLED" if qty >= orig - EPS else "EXPIRED",
                        price=p.limit or price, orig_qty=orig, executed_qty=qty, avg_price=price,
                        reduce_only=False, time_in_force="GTX" if p.entry_type == "maker" else "IOC",
                        update_time_ms=t, commission=fee)
    return FillEvidence(order, held)
