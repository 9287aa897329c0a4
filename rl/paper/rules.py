"""The pure USDⓈ-M futures rules the paper account follows: the maintenance-margin brackets,
Binance's isolated liquidation-price formula, the PERCENT_PRICE band and symbol filters
derived from a price.

Pure functions with no account state, kept apart from rl/paper/exchange.py so that they can be checked
by hand (tests/test_paper.py) and read next to docs/execution.md without the simulation around.
"""
from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from client import OrderRejected, SymbolFilters

FUNDING_INTERVAL_MS = 8 * 3600 * 1000   # Binance's usual funding period (00/08/16 UTC)
EPS = 1e-12                             # a quantity this small is float residue: zero
# The PERCENT_PRICE band default_filters gives (BTCUSDT's on mainnet): a BUY limit at most 5 %
# above the mark price, a SELL limit at most 5 % below it.
DEFAULT_MULTIPLIER_UP = Decimal("1.0500")
DEFAULT_MULTIPLIER_DOWN = Decimal("0.9500")
# Binance's codes for a limit price outside the band (USDⓈ-M error codes: -4016
# PRICE_HIGHTER_THAN_MULTIPLIER_UP, -4024 PRICE_LOWER_THAN_MULTIPLIER_DOWN). -4131 is the
# MARKET order's code (the book's best price is outside the band), which a paper account
# filling at the mark price never meets.
PRICE_ABOVE_BAND = -4016
PRICE_BELOW_BAND = -4024

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


def check_percent_price(filters: SymbolFilters, side: str, price: float, mark: float) -> None:
    """Refuse a LIMIT price outside the symbol's PERCENT_PRICE band as Binance does.

    Binance's futures rule is one-sided: BUY price <= mark × multiplierUp, SELL price >= mark ×
    multiplierDown (a BUY far below the market, or a SELL far above it, rests). The message
    names the bound on the tick grid, like Binance's "Limit price can't be higher than 9953.53."
    A multiplier of 0 (no PERCENT_PRICE filter in exchangeInfo) checks nothing.
    """
    p, m = Decimal(format(price, ".15g")), Decimal(format(mark, ".15g"))
    tick = filters.tick_size
    if side == "BUY" and filters.multiplier_up > 0 and p > m * filters.multiplier_up:
        cap = (m * filters.multiplier_up / tick).to_integral_value(ROUND_FLOOR) * tick
        raise OrderRejected(f"Limit price can't be higher than {cap.normalize():f}.", PRICE_ABOVE_BAND)
    if side == "SELL" and filters.multiplier_down > 0 and p < m * filters.multiplier_down:
        floor = (m * filters.multiplier_down / tick).to_integral_value(ROUND_CEILING) * tick
        raise OrderRejected(f"Limit price can't be lower than {floor.normalize():f}.", PRICE_BELOW_BAND)


def default_filters(symbol: str, price: float, min_notional: float | None = None) -> SymbolFilters:
    """Plausible Binance-like filters from the price alone (when no exchangeInfo is at hand).

    tick: price × 1e-5 floored to a power of ten (BTC ~90k → 0.1, ETH ~3k → 0.01);
    step: one step is worth about $100 or less (BTC → 0.001), never above 1;
    min notional: 5 USDT (Binance's usual), 50 for BTCUSDT and 20 for ETHUSDT as on mainnet;
    PERCENT_PRICE: DEFAULT_MULTIPLIER_UP / DEFAULT_MULTIPLIER_DOWN.
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
        quantity_precision=max(0, -step_exp), multiplier_up=DEFAULT_MULTIPLIER_UP,
        multiplier_down=DEFAULT_MULTIPLIER_DOWN)

