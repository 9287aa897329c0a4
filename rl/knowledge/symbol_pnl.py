"""Per-symbol PnL of the one account: what each configured symbol has made so far.

One row per symbol: the realized net PnL of its closed trades (after fees, with the funding
they paid or received: the store's `net_pnl`), the unrealized PnL of its open position, the
number of closed trades and their win rate; plus one total row for the account. Every trade
counts (the agent's, manual and mixed ones): this is the account's money per symbol, not the
learner's statistics (those are in rl.knowledge.stats).

A pure function over the store's closed-trade rows and the exchange's positions, so the
dashboard only serves it and the figures can be checked without HTTP or SQLite.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

# Everything the store holds: closed_between takes a closed_ms range (SQLite INTEGER bounds).
_ALL_TIME = (0, 2**63 - 1)


class ClosedTrades(Protocol):
    """The store read this needs (KnowledgeStore.closed_between)."""

    def closed_between(self, from_ms: int, to_ms: int) -> list[dict]: ...


def _row(symbol: str, nets: Sequence[float], unrealized: float, open_positions: int) -> dict[str, Any]:
    wins = sum(1 for n in nets if n > 0)
    realized = float(sum(nets))
    return {
        "symbol": symbol,
        "realized_net": realized,
        "unrealized": float(unrealized),
        "total": realized + float(unrealized),
        "trades": len(nets),
        "wins": wins,
        "losses": len(nets) - wins,
        # no closed trade yet: no rate (the page shows a dash, not a misleading 0 %)
        "win_rate": (wins / len(nets)) if nets else None,
        "open_positions": open_positions,
    }


def symbol_pnl(symbols: Sequence[str], closed: Iterable[Mapping[str, Any]],
               positions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """{"symbols": [one row per symbol, in `symbols`' order], "total": the account's row}.

    `closed`: closed-trade rows with `symbol` and `net_pnl` (a win is net_pnl > 0; a null
    net_pnl, which a closed trade never has, counts as 0). `positions`: the exchange's
    positions with `symbol`, `amount` and `unrealized_pnl`. A symbol outside `symbols` (one
    traded before SYMBOLS changed) still gets its row, after the configured ones, so the total
    is the whole account's."""
    nets: dict[str, list[float]] = {s: [] for s in symbols}
    unrealized: dict[str, float] = {s: 0.0 for s in symbols}
    held: dict[str, int] = {s: 0 for s in symbols}
    for t in closed:
        sym = str(t["symbol"])
        nets.setdefault(sym, []).append(float(t.get("net_pnl") or 0.0))
    for p in positions:
        if float(p.get("amount") or 0.0) == 0.0:
            continue
        sym = str(p["symbol"])
        unrealized[sym] = unrealized.get(sym, 0.0) + float(p.get("unrealized_pnl") or 0.0)
        held[sym] = held.get(sym, 0) + 1
    order = list(symbols) + sorted(s for s in set(nets) | set(unrealized) if s not in symbols)
    rows = [_row(s, nets.get(s, []), unrealized.get(s, 0.0), held.get(s, 0)) for s in order]
    every = [n for s in order for n in nets.get(s, [])]
    total = _row("", every, sum(unrealized.values()), sum(held.values()))
    return {"symbols": rows, "total": total}


def store_symbol_pnl(store: ClosedTrades, symbols: Sequence[str],
                     positions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """symbol_pnl over every closed trade in `store`."""
    return symbol_pnl(symbols, store.closed_between(*_ALL_TIME), positions)
