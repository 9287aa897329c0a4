from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import responses

from client import BinanceClient, BinanceError, UnknownOrderStatus
from rl.execution.binance import BinanceExchange
from rl.execution.port import SymbolMode
from tests.support.fake_binance import BASE, FakeBinance

ACCOUNT = {"totalInitialMargin": "0.00000000", "totalMaintMargin": "0.00000000",
           "totalWalletBalance": "126.72469206", "totalUnrealizedProfit": "0.00000000",
           "totalMarginBalance": "126.72469206", "totalPositionInitialMargin": "0.00000000",
           "totalOpenOrderInitialMargin": "0.00000000", "totalCrossWalletBalance": "126.72469206",
           "totalCrossUnPnl": "0.00000000", "availableBalance": "126.72469206",
           "maxWithdrawAmount": "126.72469206", "assets": [], "positions": []}


@responses.activate
def test_adapter_maps_account_position_orders_and_fills():
    FakeBinance(responses.mock)
    responses.add(responses.GET, BASE + "/fapi/v3/account", json=ACCOUNT)
    ex = BinanceExchange(BinanceClient(trade_url=BASE, api_key="k", api_secret="s",
                                       sleep=lambda s: None))
    a = ex.account()
    assert a.wallet_balance == pytest.approx(126.72469206) and a.available_balance == a.wallet_balance
    assert ex.position("BTCUSDT") is None
    o = ex.place_order("BTCUSDT", "BUY", "LIMIT", 0.1, 50_025.0, "IOC", client_order_id="e-1")
    assert (o.status, o.executed_qty, o.avg_price, o.client_order_id) == ("FILLED", 0.1, 50_000.0, "e-1")
    p = ex.position("BTCUSDT")
    assert p.amount == pytest.approx(0.1) and p.leverage == 10 and p.margin == pytest.approx(500.0)
    s = ex.place_stop("BTCUSDT", "SELL", "STOP_MARKET", 49_000.0, 0.1, "s-1")
    assert (s.status, s.trigger_price, s.type) == ("NEW", 49_000.0, "STOP_MARKET")
    assert [x.client_algo_id for x in ex.open_stops("BTCUSDT")] == ["s-1"]
    ex.cancel_stop("BTCUSDT", "s-1")
    ex.cancel_stop("BTCUSDT", "s-1")                  # -2011 on the second: idempotent
    assert ex.open_stops("BTCUSDT") == []
    fills = ex.fills_since("BTCUSDT", 0)
    assert fills[0].commission == pytest.approx(2.5) and fills[0].order_id == o.order_id
    assert ex.get_order("BTCUSDT", "nope") is None
    with pytest.raises(ValueError, match="type"):
        ex.place_order("BTCUSDT", "BUY", "STOP_MARKET", 0.1)


@responses.activate
def test_account_mode_reads_position_mode_multi_assets_and_symbol_config():
    fake = FakeBinance(responses.mock)
    fake.multi_assets = True
    fake.symbol_cfg = {"marginType": "CROSSED", "leverage": 20}
    ex = BinanceExchange(BinanceClient(trade_url=BASE, api_key="k", api_secret="s",
                                       sleep=lambda s: None))
    mode = ex.account_mode(["BTCUSDT", "ETHUSDT"])
    assert (mode.hedge_mode, mode.multi_assets) == (False, True)
    assert mode.symbol("BTCUSDT") == SymbolMode("BTCUSDT", "CROSSED", 20)
    assert mode.symbol("ETHUSDT") is None                  # no row for it: not verified
    paths = [urlsplit(c.request.url).path for c in responses.calls]
    assert paths.count("/fapi/v1/positionSide/dual") == paths.count("/fapi/v1/multiAssetsMargin") == 1
    assert paths.count("/fapi/v1/symbolConfig") == 2
    with pytest.raises(BinanceError) as refused:           # multi-assets mode: cross only
        ex.set_margin_type("BTCUSDT", "ISOLATED")
    assert refused.value.code == -4168
    fake.multi_assets = False
    ex.set_margin_type("BTCUSDT", "ISOLATED")
    assert ex.account_mode(["BTCUSDT"]).symbol("BTCUSDT").margin_type == "ISOLATED"


@responses.activate
def test_position_reads_one_way_rows_and_refuses_hedge_legs():
    """A hedge-mode leg (positionSide LONG/SHORT) is neither flat nor a one-way position: reading
    it raises, so reconcile never takes the account for flat and cancels the legs' stops."""
    fake = FakeBinance(responses.mock)
    ex = BinanceExchange(BinanceClient(trade_url=BASE, api_key="k", api_secret="s",
                                       sleep=lambda s: None))
    fake.dual_side = True
    fake.hedge_legs = [FakeBinance.hedge_leg("LONG", 0.0, 0.0, 50_000.0),
                       FakeBinance.hedge_leg("SHORT", -0.2, 51_000.0, 50_000.0)]
    with pytest.raises(BinanceError, match=r"hedge-mode positions \(SHORT\)"):
        ex.position("BTCUSDT")
    with pytest.raises(BinanceError, match="hedge-mode"):
        ex.position_amount("BTCUSDT")
    fake.hedge_legs = [FakeBinance.hedge_leg("LONG", 0.0, 0.0, 50_000.0)]
    assert ex.position("BTCUSDT") is None                  # both legs flat: flat
    fake.dual_side, fake.amount, fake.entry = False, 0.1, 50_000.0
    fake.symbol_cfg = {"marginType": "ISOLATED", "leverage": 20}
    ex.account_mode(["BTCUSDT"])                           # symbolConfig: the real leverage
    p = ex.position("BTCUSDT")
    assert p.amount == pytest.approx(0.1) and p.leverage == 20
def _exchange():
    return BinanceExchange(BinanceClient(trade_url=BASE, api_key="k", api_secret="s", sleep=lambda s: None))


@responses.activate
def test_cancel_stop_answered_unknown_is_confirmed_with_the_algo_order():
    fake = FakeBinance(responses.mock)
    ex = _exchange()
    ex.place_stop("BTCUSDT", "SELL", "STOP_MARKET", 49_000.0, 0.1, "s-1")
    fake.cancel_algo_unknown = 1                   # -2011, but GET algoOrder shows it NEW
    with pytest.raises(BinanceError, match="the stop is NEW"):
        ex.cancel_stop("BTCUSDT", "s-1")
    assert "s-1" in fake.algos
    ex.cancel_stop("BTCUSDT", "s-1")               # cancelled now
    ex.cancel_stop("BTCUSDT", "s-1")               # -2011 again: GET algoOrder says CANCELED
    ex.cancel_stop("BTCUSDT", "never-placed")      # -2011, and GET algoOrder -2013: nothing there
    assert fake.algos == {}
    assert [c.request.method for c in responses.calls if "/fapi/v1/algoOrder" in c.request.url].count("GET") == 3


@responses.activate
def test_a_minus_1006_on_an_order_is_an_unknown_outcome_not_a_rejection():
    FakeBinance(responses.mock)
    responses.replace(responses.POST, BASE + "/fapi/v1/order", status=400, json={
        "code": -1006, "msg": "An unexpected response was received from the message bus. "
                              "Execution status unknown."})
    with pytest.raises(UnknownOrderStatus) as err:
        _exchange().place_order("BTCUSDT", "BUY", "LIMIT", 0.1, 50_025.0, "IOC", client_order_id="e-1")
    assert err.value.client_order_id == "e-1"


@responses.activate
def test_a_lookup_that_answers_not_found_after_a_503_is_still_an_unknown_outcome():
    fake = FakeBinance(responses.mock)
    fake.late_next_order = True                    # 503, and the client's lookup answers -2013
    with pytest.raises(UnknownOrderStatus):
        _exchange().place_order("BTCUSDT", "BUY", "LIMIT", 0.1, 50_025.0, "IOC", client_order_id="e-1")


@responses.activate
def test_an_order_answer_without_avg_price_is_priced_from_the_order_or_its_fills():
    fake = FakeBinance(responses.mock)
    ex = _exchange()
    fake.omit_avg_next_order = True
    o = ex.place_order("BTCUSDT", "BUY", "LIMIT", 0.1, 50_025.0, "IOC", client_order_id="e-1")
    assert o.avg_price == 50_000.0                 # from GET /fapi/v1/order
    fake.omit_avg_next_order = fake.omit_avg_in_query = True
    o = ex.place_order("BTCUSDT", "BUY", "LIMIT", 0.1, 50_025.0, "IOC", client_order_id="e-2")
    assert o.avg_price == 50_000.0 and o.commission == pytest.approx(2.5)    # from userTrades
