"""The pure USDⓈ-M futures rules the paper account follows: the maintenance-margin brackets,
Binance's isolated liquidation-price formula and symbol filters derived from a price.

Pure functions with no account state, kept apart from rl/paper/exchange.py so that they can be checked
by hand (tests/test_paper.py) and read next to docs/execution.md without the simulation around.
"""
from __future__ import annotations

import math
from decimal import Decimal

from client import SymbolFilters

FUNDING_INTERVAL_MS = 8 * 3600 * 1000   # Binance's usual funding period (00/08/16 UTC)
EPS = 1e-12                             # a quantity this small is float residue: zero

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

