"""Symbol filters: parsing the official exchangeInfo shape and Decimal-exact rounding."""
from __future__ import annotations

from decimal import Decimal

import pytest

from client import SymbolFilters, parse_symbol_filters
from rl.errors import OrderRejected
from tests.support.exchange_info import EXCHANGE_INFO, symbol_entry


@pytest.fixture(scope="module")
def filters() -> dict[str, SymbolFilters]:
    return parse_symbol_filters(EXCHANGE_INFO)


def test_parse_reads_every_field_as_decimal(filters):
    btc = filters["BTCUSDT"]
    assert btc.tick_size == Decimal("0.1") and btc.step_size == Decimal("0.001")
    assert btc.min_qty == Decimal("0.001") and btc.max_qty == Decimal("1000")
    assert btc.market_max_qty == Decimal("120") and btc.min_notional == Decimal("100")
    assert (btc.price_precision, btc.quantity_precision) == (2, 3)
    assert filters["TENUSDT"].market_step_size == Decimal("100")
    assert set(filters) == {"BTCUSDT", "ETHUSDT", "BLZUSDT", "TENUSDT"}


def test_parse_rejects_missing_lot_size_naming_symbol_and_filter():
    bad = symbol_entry("XUSDT", "0.1", "1", "1", "10", "5", 1, 0)
    bad["filters"] = [f for f in bad["filters"] if f["filterType"] != "LOT_SIZE"]
    with pytest.raises(ValueError, match=r"XUSDT.*LOT_SIZE"):
        parse_symbol_filters({"symbols": [bad]})
    with pytest.raises(ValueError, match="symbols"):
        parse_symbol_filters({})


@pytest.mark.parametrize("symbol,qty,market,expected", [
    ("BTCUSDT", 0.0019999, False, 0.001),
    ("BTCUSDT", 0.1 + 0.2, False, 0.3),          # float noise must not lose a step
    ("BTCUSDT", 1.0, False, 1.0),
    ("ETHUSDT", 0.7 + 0.1, False, 0.8),          # 0.7999999999999999 in binary
    ("ETHUSDT", 2.39, False, 2.3),
    ("BLZUSDT", 12.99, False, 12.0),
    ("TENUSDT", 129.0, False, 120.0),
    ("TENUSDT", 129.0, True, 100.0),             # MARKET_LOT_SIZE step 100
    ("TENUSDT", 9.0, False, 0.0),
])
def test_floor_qty_steps(filters, symbol, qty, market, expected):
    assert filters[symbol].floor_qty(qty, market=market) == expected


@pytest.mark.parametrize("symbol,price,direction,expected", [
    ("BTCUSDT", 96123.456, "nearest", 96123.5),
    ("BTCUSDT", 96123.44, "nearest", 96123.4),
    ("BTCUSDT", 96123.45, "nearest", 96123.5),   # half up on the decimal value
    ("BTCUSDT", 96123.41, "up", 96123.5),
    ("BTCUSDT", 96123.49, "down", 96123.4),
    ("BLZUSDT", 0.12345, "nearest", 0.1235),
    ("BLZUSDT", 0.12345, "down", 0.1234),
    ("BLZUSDT", 0.1 + 0.2, "up", 0.3),
])
def test_round_price_ticks(filters, symbol, price, direction, expected):
    assert filters[symbol].round_price(price, direction) == expected


def test_round_price_bad_direction_names_field(filters):
    with pytest.raises(ValueError, match="direction"):
        filters["BTCUSDT"].round_price(1.0, "sideways")


def test_check_notional_is_exact(filters):
    btc = filters["BTCUSDT"]
    assert btc.check_notional(100000.0, 0.001)          # exactly 100
    assert not btc.check_notional(99999.9, 0.001)
    assert filters["BLZUSDT"].check_notional(0.05, 100)  # exactly 5.0


@pytest.mark.parametrize("symbol,price,qty,market,code", [
    ("BTCUSDT", 96000.123, 0.01, False, -1111),   # 3 decimals > pricePrecision 2
    ("BTCUSDT", 96000.05, 0.01, False, -4014),    # 2 decimals but off the 0.10 grid
    ("BTCUSDT", 96000.0, 0.0015, False, -1111),   # 4 decimals > quantityPrecision 3
    ("ETHUSDT", 3000.0, 0.15, False, -1111),
    ("TENUSDT", 0.5, 15, False, -4023),           # not a multiple of step 10
    ("TENUSDT", 0.5, 110, True, -4023),           # market step is 100
    ("BTCUSDT", 96000.0, 0, False, -4003),
    ("BTCUSDT", 96000.0, 1000.001, False, -4005),
    ("BTCUSDT", None, 121, True, -4005),          # MARKET_LOT_SIZE max 120
    ("BTCUSDT", 96000.0, 0.001, False, -4164),    # 96 < 100
    ("BTCUSDT", 96000.0, 0.001, True, -4164),     # market: price only for notional
])
def test_validate_raises_binance_codes(filters, symbol, price, qty, market, code):
    with pytest.raises(OrderRejected) as info:
        filters[symbol].validate(price, qty, market=market)
    assert info.value.code == code


def test_validate_notional_message_matches_binance(filters):
    with pytest.raises(OrderRejected) as info:
        filters["BLZUSDT"].validate(0.0100, 100)
    assert info.value.msg == ("Order's notional must be no smaller than 5 "
                              "(unless you choose reduce only).")


def test_validate_accepts_rounded_values(filters):
    btc = filters["BTCUSDT"]
    price = btc.round_price(96123.456)
    qty = btc.floor_qty(0.1 + 0.2)
    btc.validate(price, qty)
    btc.validate(None, qty, market=True)
    filters["TENUSDT"].validate(0.5, 100, market=True)


def test_filters_are_frozen(filters):
    with pytest.raises(AttributeError):
        filters["BTCUSDT"].tick_size = Decimal("1")  # type: ignore[misc]


# ------------------------------------------------------------------ huge and odd values
@pytest.mark.parametrize("symbol,price,qty,market,code", [
    # The old validate took q % step first: the 28-digit Decimal context raised
    # InvalidOperation (DivisionImpossible), a 500 in the API, instead of Binance's -4005.
    ("BTCUSDT", 96000.0, 1e28, False, -4005),
    ("BTCUSDT", None, 1e28, True, -4005),
    ("BTCUSDT", 96000.0, 1e300, False, -4005),
    ("BTCUSDT", 1e300, 0.01, False, None),       # no maxPrice known: on the grid, accepted
])
def test_validate_bounds_before_dividing(filters, symbol, price, qty, market, code):
    if code is None:
        filters[symbol].validate(price, qty, market=market)
        return
    with pytest.raises(OrderRejected) as info:
        filters[symbol].validate(price, qty, market=market)
    assert info.value.code == code


def test_validate_tick_grid_is_exact_for_huge_prices(filters):
    # 30 integer digits and 2 decimals: off the 0.10 grid by 0.05. Dividing in the default
    # 28-digit context raised InvalidOperation; the grid check now has the digits it needs.
    btc = filters["BTCUSDT"]
    with pytest.raises(OrderRejected) as info:
        btc.validate("1" + "0" * 29 + ".05", 0.01)               # type: ignore[arg-type]
    assert info.value.code == -4014
    btc.validate("1" + "0" * 29 + ".10", 0.01)                   # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        btc.validate(float("inf"), 0.01)
    with pytest.raises(ValueError, match="finite"):
        btc.validate(96000.0, float("nan"))


def test_parse_reads_percent_price_band(filters):
    btc = filters["BTCUSDT"]
    assert (btc.multiplier_up, btc.multiplier_down) == (Decimal("1.05"), Decimal("0.95"))
    bare = symbol_entry("XUSDT", "0.1", "1", "1", "10", "5", 1, 0)
    bare["filters"] = [f for f in bare["filters"] if f["filterType"] != "PERCENT_PRICE"]
    x = parse_symbol_filters({"symbols": [bare]})["XUSDT"]
    assert (x.multiplier_up, x.multiplier_down) == (0, 0)          # no filter: no band
    bad = symbol_entry("YUSDT", "0.1", "1", "1", "10", "5", 1, 0)
    next(f for f in bad["filters"] if f["filterType"] == "PERCENT_PRICE")["multiplierDown"] = "-0.1"
    with pytest.raises(ValueError, match=r"YUSDT.*PERCENT_PRICE"):
        parse_symbol_filters({"symbols": [bad]})
