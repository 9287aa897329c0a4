"""PaperExchange: fills, fees, margin arithmetic, rejects with Binance codes, stops, funding,
liquidation and restart — numbers checked by hand in the comments."""
from __future__ import annotations

import sqlite3

import pytest

from client import NetworkError, OrderRejected
from rl.paper.exchange import PaperExchange
from rl.paper.rules import default_filters, liquidation_price, maintenance_bracket

SYM = "BTCUSDT"


def make(tmp_path=None, **kw) -> PaperExchange:
    kw.setdefault("balance", 10_000.0)
    ex = PaperExchange(tmp_path / "paper.db" if tmp_path else None, **kw)
    ex.on_price(SYM, 50_000.0, 1_000)
    return ex


def test_market_buy_fee_and_margin_by_hand():
    ex = make()
    r = ex.place_order(SYM, "BUY", "MARKET", 0.1, client_order_id="m1")
    assert (r.status, r.executed_qty, r.avg_price) == ("FILLED", 0.1, 50_000.0)
    assert r.commission == pytest.approx(2.5)           # 5000 notional * 0.05 % taker
    a = ex.account()
    assert a.wallet_balance == pytest.approx(9_997.5)
    assert a.initial_margin == pytest.approx(500.0)      # 5000 / 10x
    assert a.available_balance == pytest.approx(9_497.5)
    ex.on_price(SYM, 51_000.0, 2_000)
    a = ex.account()
    assert a.unrealized_pnl == pytest.approx(100.0)      # 0.1 * 1000
    assert a.margin_balance == pytest.approx(10_097.5)
    p = ex.position(SYM)
    assert p.amount == 0.1 and p.entry_price == 50_000.0 and p.margin == pytest.approx(500.0)
    # long 10x, bracket 1 (MMR 0.4 %, cum 0): LP = (500 - 5000) / (0.1*0.004 - 0.1)
    assert p.liquidation_price == pytest.approx(4500 / 0.0996)


def test_close_realizes_pnl_minus_fees():
    ex = make()
    ex.place_order(SYM, "BUY", "MARKET", 0.1)
    ex.on_price(SYM, 51_000.0, 2_000)
    r = ex.place_order(SYM, "SELL", "MARKET", 0.1, reduce_only=True)
    assert r.commission == pytest.approx(2.55)
    assert ex.position(SYM) is None
    # 10000 - 2.5 + 100 - 2.55
    assert ex.account().wallet_balance == pytest.approx(10_094.95)
    fills = ex.fills_since(SYM, 0)
    assert [f.realized_pnl for f in fills] == [0.0, pytest.approx(100.0)]


def test_limit_ioc_marketable_fills_at_current_price_unmarketable_expires():
    ex = make()
    r = ex.place_order(SYM, "BUY", "LIMIT", 0.1, price=50_025.0, time_in_force="IOC")
    assert r.status == "FILLED" and r.avg_price == 50_000.0
    r2 = ex.place_order(SYM, "BUY", "LIMIT", 0.1, price=49_000.0, time_in_force="IOC")
    assert r2.status == "EXPIRED" and r2.executed_qty == 0
    assert ex.position(SYM).amount == pytest.approx(0.1)


def test_partial_ioc_when_quantity_limit_hit():
    ex = make(max_fill_qty=0.04)
    r = ex.place_order(SYM, "BUY", "LIMIT", 0.1, price=50_010.0, time_in_force="IOC")
    assert r.status == "EXPIRED" and r.executed_qty == pytest.approx(0.04)
    assert ex.position(SYM).amount == pytest.approx(0.04)


def test_gtc_rests_reserves_margin_and_fills_as_maker_on_bar():
    ex = make()
    r = ex.place_order(SYM, "BUY", "LIMIT", 0.1, price=49_500.0, time_in_force="GTC", client_order_id="g1")
    assert r.status == "NEW"
    assert ex.account().initial_margin == pytest.approx(495.0)
    ex.on_bar(SYM, 50_000, 50_100, 49_400, 49_800, 60_000)
    o = ex.get_order(SYM, "g1")
    assert o.status == "FILLED" and o.avg_price == 49_500.0
    assert o.commission == pytest.approx(4950 * 0.0002)
    assert ex.account().initial_margin == pytest.approx(495.0)      # now position margin


@pytest.mark.parametrize("qty,price,mark,code", [
    (0.0015, None, 50_000.0, -1111),     # 4 decimals > quantity precision 3
    (0.1, 49_000.05, 50_000.0, -1111),   # 2 decimals > price precision 1
    (0.001, None, 40_000.0, -4164),      # 0.001 * 40000 = 40 < 50 USDT min notional
    (0.1, 49_999.3, 50_000.0, None),     # valid: rests
])
def test_rejects_use_binance_codes(qty, price, mark, code):
    ex = make()
    ex.on_price(SYM, mark, 2_000)
    assert ex.filters(SYM).min_notional == 50
    if code is None:
        assert ex.place_order(SYM, "BUY", "LIMIT", qty, price=price, time_in_force="GTC").status == "NEW"
        return
    with pytest.raises(OrderRejected) as e:
        if price is None:
            ex.place_order(SYM, "BUY", "MARKET", qty)
        else:
            ex.place_order(SYM, "BUY", "LIMIT", qty, price=price, time_in_force="GTC")
    assert e.value.code == code
    assert ex.open_orders(SYM) == [] and ex.position(SYM) is None


def test_tick_and_insufficient_margin_and_reduce_only():
    from decimal import Decimal
    ex = make()
    ex2 = make(filters={SYM: default_filters(SYM, 50_000.0).__class__(
        **{**default_filters(SYM, 50_000.0).__dict__, "tick_size": Decimal("0.5")})})
    with pytest.raises(OrderRejected) as e:
        ex2.place_order(SYM, "BUY", "LIMIT", 0.1, price=50_000.2, time_in_force="GTC")
    assert e.value.code == -4014
    with pytest.raises(OrderRejected) as e:              # 3 BTC = 150k notional, 15k margin
        ex.place_order(SYM, "BUY", "MARKET", 3.0)
    assert e.value.code == -2019
    with pytest.raises(OrderRejected) as e:
        ex.place_order(SYM, "SELL", "MARKET", 0.1, reduce_only=True)
    assert e.value.code == -2022
    with pytest.raises(OrderRejected) as e:
        ex.place_order(SYM, "BUY", "MARKET", 0.1, client_order_id="dup")
        ex.place_order(SYM, "BUY", "MARKET", 0.1, client_order_id="dup")
    assert e.value.code == -4116
    with pytest.raises(ValueError, match="time_in_force"):
        ex.place_order(SYM, "BUY", "LIMIT", 0.1, price=50_000.0)


def test_no_price_is_a_network_error_and_nothing_happens():
    ex = PaperExchange(None)
    with pytest.raises(NetworkError):
        ex.place_order("ETHUSDT", "BUY", "MARKET", 1.0)
    assert ex.open_orders("ETHUSDT") == []


def _long_with_stop_and_tp(ex, stop=49_000.0, tp=52_000.0):
    ex.place_order(SYM, "BUY", "MARKET", 0.1)
    ex.place_stop(SYM, "SELL", "STOP_MARKET", stop, 0.1, "sl")
    ex.place_stop(SYM, "SELL", "TAKE_PROFIT_MARKET", tp, 0.1, "tp")


def test_stop_triggers_on_bar_low_at_trigger_price():
    ex = make()
    _long_with_stop_and_tp(ex)
    ex.on_bar(SYM, 50_000, 50_500, 48_800, 49_200, 60_000)
    assert ex.position(SYM) is None
    last = ex.fills_since(SYM, 0)[-1]
    assert last.price == 49_000.0 and last.realized_pnl == pytest.approx(-100.0)
    assert {s.client_algo_id for s in ex.open_stops(SYM)} == set()


def test_gap_through_stop_fills_at_open():
    ex = make()
    _long_with_stop_and_tp(ex)
    ex.on_bar(SYM, 48_500, 48_900, 48_000, 48_700, 60_000)
    assert ex.fills_since(SYM, 0)[-1].price == 48_500.0


def test_stop_and_target_in_one_bar_assumes_stop_first():
    ex = make()
    _long_with_stop_and_tp(ex)
    ex.on_bar(SYM, 50_000, 52_500, 48_500, 52_000, 60_000)
    last = ex.fills_since(SYM, 0)[-1]
    assert last.price == 49_000.0                        # not 52000
    assert ex.position(SYM) is None


def test_target_triggers_on_high_and_short_side_mirror():
    ex = make()
    _long_with_stop_and_tp(ex)
    ex.on_bar(SYM, 50_000, 52_100, 49_900, 52_000, 60_000)
    assert ex.fills_since(SYM, 0)[-1].price == 52_000.0
    ex.place_order(SYM, "SELL", "MARKET", 0.1)
    ex.place_stop(SYM, "BUY", "STOP_MARKET", 53_000.0, 0.1, "ssl")
    with pytest.raises(OrderRejected) as e:             # buy stop below price: would trigger
        ex.place_stop(SYM, "BUY", "STOP_MARKET", 51_000.0, 0.1, "bad")
    assert e.value.code == -2021
    ex.on_price(SYM, 53_100.0, 70_000)                   # live tick through the stop
    assert ex.position(SYM) is None
    assert ex.fills_since(SYM, 0)[-1].price == 53_100.0


def test_funding_every_8h_long_pays_positive_rate():
    h8 = 8 * 3600 * 1000
    ex = PaperExchange(None, funding_rate=0.0001)
    ex.on_price(SYM, 50_000.0, h8 - 120_000)
    ex.place_order(SYM, "BUY", "MARKET", 0.1)
    w = ex.account().wallet_balance
    ex.on_bar(SYM, 50_000, 50_100, 49_900, 50_000, h8 - 60_000)      # before 08:00: nothing
    assert ex.account().wallet_balance == w
    ex.on_bar(SYM, 50_000, 50_100, 49_900, 50_000, h8)               # crosses 08:00
    assert ex.account().wallet_balance == pytest.approx(w - 0.5)     # 5000 * 0.0001
    assert ex.position(SYM).margin == pytest.approx(499.5)
    ex.on_bar(SYM, 50_000, 50_100, 49_900, 50_000, h8 + 60_000)      # same slot: once only
    assert ex.account().wallet_balance == pytest.approx(w - 0.5)
    calls = []
    ex2 = PaperExchange(None, funding_rate=lambda s, t: calls.append(t) or -0.001)
    ex2.on_price(SYM, 50_000.0, 1)
    ex2.place_order(SYM, "SELL", "MARKET", 0.1)
    w2 = ex2.account().wallet_balance
    ex2.on_price(SYM, 50_000.0, h8 + 5)
    assert calls == [h8]
    assert ex2.account().wallet_balance == pytest.approx(w2 - 5.0)   # short pays a negative rate


def test_liquidation_loses_isolated_margin_only():
    ex = make()
    ex.set_leverage(SYM, 20)
    ex.place_order(SYM, "BUY", "MARKET", 0.1)
    p = ex.position(SYM)
    assert p.margin == pytest.approx(250.0)
    lp = liquidation_price(0.1, 50_000.0, 250.0)
    assert lp == pytest.approx(p.liquidation_price) and 47_000 < lp < 48_000
    w = ex.account().wallet_balance
    ex.on_bar(SYM, 49_000, 49_100, 47_000, 47_500, 60_000)
    assert ex.position(SYM) is None
    assert ex.account().wallet_balance == pytest.approx(w - 250.0)
    last = ex.fills_since(SYM, 0)[-1]                 # the liquidation order is recorded, by
    o = ex.get_order(SYM, f"autoclose-{last.order_id}")  # Binance's autoclose- client id
    assert (o.type, o.status, o.side, o.executed_qty) == ("LIQUIDATION", "FILLED", "SELL", 0.1)
    assert o.avg_price == last.price == pytest.approx(lp)


def test_stop_above_liquidation_fires_before_it():
    ex = make()
    ex.set_leverage(SYM, 20)
    ex.place_order(SYM, "BUY", "MARKET", 0.1)
    ex.place_stop(SYM, "SELL", "STOP_MARKET", 48_500.0, 0.1, "sl")
    ex.on_bar(SYM, 49_000, 49_100, 47_000, 47_500, 60_000)
    assert ex.fills_since(SYM, 0)[-1].price == 48_500.0


def test_bracket_table_is_continuous():
    mmr1, cum1 = maintenance_bracket(49_999.0)
    mmr2, cum2 = maintenance_bracket(50_000.0)
    assert (mmr1, cum1, mmr2, cum2) == (0.004, 0.0, 0.005, pytest.approx(50.0))
    n = 50_000.0
    assert n * mmr2 - cum2 == pytest.approx(n * mmr1 - cum1)


def test_restart_from_same_db_file(tmp_path):
    ex = make(tmp_path)
    ex.set_leverage(SYM, 5)
    ex.place_order(SYM, "BUY", "MARKET", 0.1, client_order_id="a1")
    ex.place_stop(SYM, "SELL", "STOP_MARKET", 49_000.0, 0.1, "sl1")
    ex.place_order(SYM, "SELL", "LIMIT", 0.05, price=51_000.0, time_in_force="GTC",
                   reduce_only=True, client_order_id="tp1")
    before = (ex.account(), ex.position(SYM), ex.open_orders(SYM), ex.open_stops(SYM),
              ex.fills_since(SYM, 0))
    ex.close()
    ex2 = PaperExchange(tmp_path / "paper.db", balance=1.0)   # balance ignored: account exists
    after = (ex2.account(), ex2.position(SYM), ex2.open_orders(SYM), ex2.open_stops(SYM),
             ex2.fills_since(SYM, 0))
    assert after == before
    assert ex2.get_order(SYM, "a1").status == "FILLED"
    ex2.on_bar(SYM, 50_000, 50_100, 48_900, 49_000, 120_000)     # the stop still works
    assert ex2.position(SYM) is None
    ex3 = PaperExchange(tmp_path / "paper.db")
    assert ex3.position(SYM) is None and ex3.open_stops(SYM) == []
    assert ex3.account().wallet_balance == pytest.approx(ex2.account().wallet_balance)


def test_idle_bars_write_nothing(tmp_path):
    ex = make(tmp_path)
    # SQLite's data_version changes for this connection whenever another one commits
    watcher = sqlite3.connect(tmp_path / "paper.db")
    version = watcher.execute("PRAGMA data_version").fetchone()[0]
    for i in range(1000):
        ex.on_bar("ETHUSDT", 3000, 3001, 2999, 3000, 10_000 + i)
        ex.on_bar(SYM, 50_000, 50_001, 49_999, 50_000, 10_000 + i)
    assert watcher.execute("PRAGMA data_version").fetchone()[0] == version
    assert ex.account().wallet_balance == 10_000.0
    ex.place_order(SYM, "BUY", "MARKET", 0.1)            # a change is written (the probe works)
    assert watcher.execute("PRAGMA data_version").fetchone()[0] != version
    watcher.close()
    ex.close()


def test_default_filters_sensible():
    f = default_filters("BTCUSDT", 90_000.0)
    assert (float(f.tick_size), float(f.step_size), float(f.min_notional)) == (0.1, 0.001, 50.0)
    e = default_filters("ETHUSDT", 3_000.0)
    assert float(e.tick_size) == 0.01
    d = default_filters("DOGEUSDT", 0.1)
    assert float(d.step_size) == 1.0 and float(d.min_notional) == 5.0
    with pytest.raises(ValueError, match="price"):
        default_filters("X", 0)


def test_filters_source_used_and_offline_falls_back_to_price_defaults():
    from client import NetworkError, parse_symbol_filters
    info = {"symbols": [{"symbol": "BTCUSDT", "pricePrecision": 2, "quantityPrecision": 3, "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
        {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000", "minQty": "0.001"},
        {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "maxQty": "120", "minQty": "0.001"},
        {"filterType": "MIN_NOTIONAL", "notional": "100"}]}]}
    real = parse_symbol_filters(info)
    ex = PaperExchange(None, filters_source=lambda s: real[s])
    ex.on_price("BTCUSDT", 50_000.0, 1_000)
    assert ex.filters("BTCUSDT") is real["BTCUSDT"]

    def offline(symbol):
        raise NetworkError("GET /fapi/v1/exchangeInfo: ConnectionError")

    ex2 = PaperExchange(None, filters_source=offline)
    ex2.on_price("BTCUSDT", 50_000.0, 1_000)
    assert ex2.filters("BTCUSDT") == default_filters("BTCUSDT", 50_000.0)


# ------------------------------------------------------------------ post-only (GTX) orders
POST_ONLY_MSG = "Due to the order could not be executed as maker, the Post Only order will be rejected."


def test_post_only_fills_only_when_traded_through_never_at_a_touch():
    ex = make()
    r = ex.place_order(SYM, "BUY", "LIMIT", 0.1, price=49_500.0, time_in_force="GTX", client_order_id="px1")
    assert (r.status, r.executed_qty, r.time_in_force) == ("NEW", 0.0, "GTX")
    ex.on_bar(SYM, 50_000, 50_100, 49_500, 49_800, 60_000)       # low touches 49_500: no fill
    ex.on_price(SYM, 49_500.0, 61_000)                           # a tick at the price: no fill
    assert ex.get_order(SYM, "px1").status == "NEW" and ex.position(SYM) is None
    ex.on_bar(SYM, 49_800, 49_900, 49_499.9, 49_700, 120_000)     # strictly through
    o = ex.get_order(SYM, "px1")
    assert (o.status, o.executed_qty, o.avg_price) == ("FILLED", 0.1, 49_500.0)
    assert o.commission == pytest.approx(4950 * 0.0002)           # maker fee
    assert ex.fills_since(SYM, 0)[-1].maker is True
    # a sell mirrors it; a gap through fills at the limit price, not at the better open
    r = ex.place_order(SYM, "SELL", "LIMIT", 0.1, price=50_500.0, time_in_force="GTX", client_order_id="px2")
    ex.on_bar(SYM, 49_700, 50_500, 49_600, 50_400, 180_000)       # high touches: no fill
    assert ex.get_order(SYM, "px2").status == "NEW"
    ex.on_bar(SYM, 51_000, 51_200, 50_900, 51_000, 240_000)       # opens above it
    o = ex.get_order(SYM, "px2")
    assert (o.status, o.avg_price) == ("FILLED", 50_500.0)
    assert ex.position(SYM) is None                               # the sell closed the long


def test_post_only_live_tick_must_be_strictly_beyond():
    ex = make()
    ex.place_order(SYM, "SELL", "LIMIT", 0.1, price=50_100.0, time_in_force="GTX", client_order_id="p")
    ex.on_price(SYM, 50_100.0, 2_000)
    assert ex.get_order(SYM, "p").status == "NEW"
    ex.on_price(SYM, 50_100.1, 3_000)
    o = ex.get_order(SYM, "p")
    assert (o.status, o.avg_price) == ("FILLED", 50_100.0)       # at its price, not the tick's
    assert ex.position(SYM).amount == pytest.approx(-0.1)


def test_post_only_that_would_take_is_rejected_with_5022_and_not_kept():
    ex = make()
    for side, price in (("BUY", 50_000.1), ("SELL", 49_999.9)):
        with pytest.raises(OrderRejected) as e:
            ex.place_order(SYM, side, "LIMIT", 0.1, price=price, time_in_force="GTX", client_order_id=f"x{side}")
        assert e.value.code == -5022 and e.value.msg == POST_ONLY_MSG
        assert ex.get_order(SYM, f"x{side}") is None             # Binance keeps no record of it
    assert ex.open_orders(SYM) == [] and ex.account().initial_margin == 0.0
    # at the last price it joins the book (the paper account has one price, no spread)
    assert ex.place_order(SYM, "BUY", "LIMIT", 0.1, price=50_000.0, time_in_force="GTX").status == "NEW"


def test_post_only_reserves_margin_and_cancel_releases_it():
    ex = make()
    ex.place_order(SYM, "BUY", "LIMIT", 0.1, price=49_000.0, time_in_force="GTX", client_order_id="m")
    a = ex.account()
    assert a.initial_margin == pytest.approx(490.0)              # 4900 notional / 10x, as GTC
    assert a.available_balance == pytest.approx(10_000.0 - 490.0)
    with pytest.raises(OrderRejected) as e:                      # the rest of the wallet is what is free
        ex.place_order(SYM, "BUY", "LIMIT", 2.0, price=49_000.0, time_in_force="GTX")   # 9800 > 9510
    assert e.value.code == -2019
    c = ex.cancel_order(SYM, "m")
    assert c.status == "CANCELED" and c.executed_qty == 0.0
    assert ex.account().initial_margin == 0.0 and ex.account().available_balance == 10_000.0
    assert ex.open_orders(SYM) == []
    ex.on_bar(SYM, 50_000, 50_000, 48_000, 48_500, 60_000)       # a cancelled order never fills
    assert ex.position(SYM) is None


def test_post_only_partial_fills_per_bar_under_max_fill_qty_then_cancel():
    ex = make(max_fill_qty=0.04)
    ex.place_order(SYM, "BUY", "LIMIT", 0.1, price=49_500.0, time_in_force="GTX", client_order_id="pp")
    ex.on_bar(SYM, 50_000, 50_000, 49_000, 49_200, 60_000)       # one fill per order per bar
    o = ex.get_order(SYM, "pp")
    assert (o.status, o.executed_qty, o.avg_price) == ("PARTIALLY_FILLED", pytest.approx(0.04), 49_500.0)
    a = ex.account()
    # position 0.04 * 49500 / 10 = 198; the 0.06 still resting keeps 0.06 * 49500 / 10 = 297
    assert ex.position(SYM).margin == pytest.approx(198.0)
    assert a.initial_margin == pytest.approx(198.0 + 297.0)
    ex.on_bar(SYM, 49_200, 49_400, 49_100, 49_300, 120_000)
    assert ex.get_order(SYM, "pp").executed_qty == pytest.approx(0.08)
    assert [f.qty for f in ex.fills_since(SYM, 0)] == [pytest.approx(0.04)] * 2
    c = ex.cancel_order(SYM, "pp")                               # the filled part stays the position
    assert (c.status, c.executed_qty) == ("CANCELED", pytest.approx(0.08))
    assert ex.position(SYM).amount == pytest.approx(0.08)
    assert ex.account().initial_margin == pytest.approx(0.08 * 49_500 / 10)


def test_resting_post_only_order_survives_a_restart(tmp_path):
    ex = make(tmp_path, max_fill_qty=0.04)
    ex.place_order(SYM, "BUY", "LIMIT", 0.1, price=49_500.0, time_in_force="GTX", client_order_id="r1")
    ex.on_bar(SYM, 50_000, 50_000, 49_000, 49_200, 60_000)
    before = (ex.account(), ex.open_orders(SYM), ex.position(SYM))
    ex.close()
    ex2 = PaperExchange(tmp_path / "paper.db", max_fill_qty=0.04)
    assert (ex2.account(), ex2.open_orders(SYM), ex2.position(SYM)) == before
    ex2.on_bar(SYM, 49_500, 49_600, 49_500, 49_550, 120_000)     # a touch after the restart: nothing
    assert ex2.get_order(SYM, "r1").executed_qty == pytest.approx(0.04)
    ex2.on_bar(SYM, 49_500, 49_500, 49_400, 49_450, 180_000)
    assert ex2.get_order(SYM, "r1").executed_qty == pytest.approx(0.08)
    ex2.close()


def test_max_fill_qty_caps_a_resting_gtc_order_per_bar_too():
    ex = make(max_fill_qty=0.04)
    ex.place_order(SYM, "BUY", "LIMIT", 0.1, price=49_500.0, time_in_force="GTC", client_order_id="g")
    ex.on_bar(SYM, 50_000, 50_000, 49_500, 49_600, 60_000)       # GTC fills at a touch, capped
    assert ex.get_order(SYM, "g").executed_qty == pytest.approx(0.04)
    ex.on_bar(SYM, 49_600, 49_600, 49_400, 49_500, 120_000)
    ex.on_bar(SYM, 49_500, 49_600, 49_400, 49_500, 180_000)
    o = ex.get_order(SYM, "g")
    assert (o.status, o.executed_qty) == ("FILLED", pytest.approx(0.1))
    assert ex.account().initial_margin == pytest.approx(0.1 * 49_500 / 10)


# ------------------------------------------------------------------ PERCENT_PRICE band
def _exchange_info_filters():
    from client import parse_symbol_filters
    from tests.support.exchange_info import EXCHANGE_INFO
    return parse_symbol_filters(EXCHANGE_INFO)          # BTCUSDT: multiplierUp 1.05, Down 0.95


@pytest.mark.parametrize("side,price,code,msg", [
    # mark 50,000: a BUY at most 52,500, a SELL at least 47,500 (Binance's futures rule)
    ("BUY", 52_500.1, -4016, "Limit price can't be higher than 52500."),
    ("BUY", 100_000.0, -4016, "Limit price can't be higher than 52500."),
    ("SELL", 47_499.9, -4024, "Limit price can't be lower than 47500."),
    ("SELL", 1_000.0, -4024, "Limit price can't be lower than 47500."),
])
def test_limit_outside_percent_price_band_is_refused_and_not_kept(side, price, code, msg):
    ex = make(filters=_exchange_info_filters())
    with pytest.raises(OrderRejected) as e:
        ex.place_order(SYM, side, "LIMIT", 0.1, price=price, time_in_force="GTC", client_order_id="b1")
    assert (e.value.code, e.value.msg) == (code, msg)
    assert ex.get_order(SYM, "b1") is None and ex.open_orders(SYM) == [] and ex.position(SYM) is None
    assert ex.account().wallet_balance == 10_000.0
    # The rule is one-sided: on the bound it passes, and the other direction has no bound
    # (a BUY far below the market rests, a SELL far above it too).
    on_bound = 52_500.0 if side == "BUY" else 47_500.0
    assert ex.place_order(SYM, side, "LIMIT", 0.1, price=on_bound, time_in_force="IOC").status == "FILLED"
    far_side = 1_000.0 if side == "BUY" else 100_000.0
    assert ex.place_order(SYM, side, "LIMIT", 0.1, price=far_side, time_in_force="GTC").status == "NEW"


def test_band_follows_the_mark_and_default_filters_carry_one():
    ex = make()                                          # default filters: 1.05 / 0.95 too
    assert (float(ex.filters(SYM).multiplier_up), float(ex.filters(SYM).multiplier_down)) == (1.05, 0.95)
    with pytest.raises(OrderRejected) as e:
        ex.place_order(SYM, "BUY", "LIMIT", 0.01, price=53_000.0, time_in_force="GTC")
    assert e.value.code == -4016
    ex.on_price(SYM, 51_000.0, 2_000)                    # cap now 53,550
    assert ex.place_order(SYM, "BUY", "LIMIT", 0.01, price=53_000.0, time_in_force="IOC").status == "FILLED"


def test_no_percent_price_filter_means_no_band():
    import dataclasses
    plain = dataclasses.replace(default_filters(SYM, 50_000.0), multiplier_up=0, multiplier_down=0)
    ex = make(filters={SYM: plain})
    assert ex.place_order(SYM, "BUY", "LIMIT", 0.01, price=90_000.0, time_in_force="IOC").status == "FILLED"


def test_trades_net_pnl_adds_up_to_the_wallet_across_funding_times(tmp_path):
    """The agent's trades on a paper account that pays funding every 2 minutes: each closed
    trade carries the funding its position saw, so the store's trades add up to the wallet's
    change exactly (before, the trades left out the funding and the two drifted apart)."""
    from tests.support.scripted_world import ENTRY_PARTIAL_TARGET_STOP_PATH, SYMBOL, World

    w = World(tmp_path, ENTRY_PARTIAL_TARGET_STOP_PATH,
              paper={"funding_rate": 0.002, "funding_interval_ms": 120_000})
    w.script.long = 60.0
    w.cycle()                                     # enter long at 100
    w.script.long = 0.0
    w.cycle(6)                                    # partial, break-even, target: closed
    w.to_15m_close()
    w.script.support, w.script.resistance, w.script.long = 102.5, 110.0, 60.0
    w.cycle()                                     # second long at 103.2
    w.script.long = 0.0
    w.cycle(4)                                    # stopped out on the exchange
    trades = w.store.trades(status="closed")
    assert len(trades) == 2 and w.state is None
    paid = [f.amount for f in w.exchange.funding_since(SYMBOL, 0)]
    assert len(paid) >= 3 and sum(paid) < 0       # longs pay a positive rate
    for t in trades:                              # each trade carries the funding of its own time
        own = sum(f.amount for f in w.exchange.funding_since(SYMBOL, t["opened_ms"])
                  if f.time_ms <= t["closed_ms"])
        assert t["funding"] == pytest.approx(own, abs=1e-12)
        assert t["net_pnl"] == pytest.approx(t["realized_pnl"] - t["fees"] + t["funding"], abs=1e-12)
    assert sum(t["funding"] for t in trades) == pytest.approx(sum(paid), abs=1e-12)
    wallet_change = w.exchange.account().wallet_balance - 10_000.0
    assert abs(wallet_change - sum(t["net_pnl"] for t in trades)) < 1e-9
    assert w.store.trade_logger.summary()["funding"] == pytest.approx(sum(paid), abs=1e-12)
    w.close()


# ------------------------------------------------------------------ resting maker take-profits
def test_reduce_only_post_only_take_profit_fills_only_through_at_the_maker_fee():
    ex = make()
    ex.place_order(SYM, "BUY", "MARKET", 0.1)                         # long 0.1 @ 50_000
    with pytest.raises(OrderRejected) as err:                         # already through: would take
        ex.place_order(SYM, "SELL", "LIMIT", 0.05, price=49_900.0, time_in_force="GTX",
                       reduce_only=True, client_order_id="tp0")
    assert err.value.code == -5022 and ex.get_order(SYM, "tp0") is None
    tp = ex.place_order(SYM, "SELL", "LIMIT", 0.05, price=51_000.0, time_in_force="GTX",
                        reduce_only=True, client_order_id="tp1")
    assert (tp.status, tp.reduce_only, tp.time_in_force) == ("NEW", True, "GTX")
    assert ex.account().initial_margin == pytest.approx(0.1 * 50_000 / 10)   # no margin reserved
    wallet = ex.account().wallet_balance
    ex.on_bar(SYM, 50_500.0, 51_000.0, 50_500.0, 50_900.0, 60_000)   # a touch: no fill
    assert ex.get_order(SYM, "tp1").executed_qty == 0 and ex.position(SYM).amount == pytest.approx(0.1)
    ex.on_bar(SYM, 50_900.0, 51_300.0, 50_900.0, 51_200.0, 120_000)   # through: at its price
    o = ex.get_order(SYM, "tp1")
    assert (o.status, o.executed_qty, o.avg_price) == ("FILLED", pytest.approx(0.05), 51_000.0)
    fill = ex.fills_since(SYM, 0)[-1]
    assert fill.maker and fill.commission == pytest.approx(0.05 * 51_000 * 0.0002)
    assert fill.realized_pnl == pytest.approx(0.05 * 1_000)
    assert ex.account().wallet_balance - wallet == pytest.approx(50.0 - 0.05 * 51_000 * 0.0002)
    assert ex.position(SYM).amount == pytest.approx(0.05)


def test_a_resting_take_profit_expires_when_the_stop_closes_the_position_first():
    ex = make()
    ex.place_order(SYM, "BUY", "MARKET", 0.1)
    ex.place_stop(SYM, "SELL", "STOP_MARKET", 49_000.0, 0.1, "st")
    ex.place_order(SYM, "SELL", "LIMIT", 0.1, price=51_000.0, time_in_force="GTX",
                   reduce_only=True, client_order_id="tp")
    ex.on_bar(SYM, 50_000.0, 51_500.0, 48_500.0, 50_000.0, 60_000)   # both in one bar: stop first
    assert ex.position(SYM) is None
    assert ex.get_order(SYM, "tp").status == "EXPIRED" and ex.get_order(SYM, "tp").executed_qty == 0
    assert ex.open_orders(SYM) == []
