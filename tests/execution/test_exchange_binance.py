from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import responses

from client import BinanceClient, BinanceError, OrderRejected, UnknownOrderStatus
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


# ------------------------------------------------------------------ accounting (issue 13 #10)
from urllib.parse import parse_qs, urlparse  # noqa: E402

from tests.support.fake_binance import EXCHANGE_INFO  # noqa: E402

DAY = 86_400_000
NOW_MS = 1_700_000_000_000


def _q(req) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(req.url).query).items()}


def _trade(i: int, t: int, order_id: int = 77, commission: str = "-0.02000000", asset: str = "USDT") -> dict:
    """A /fapi/v1/userTrades row as Binance's docs show it."""
    return {"buyer": False, "commission": commission, "commissionAsset": asset, "id": i, "maker": False,
            "orderId": order_id, "price": "40000.0", "qty": "0.001", "quoteQty": "40.0",
            "realizedPnl": "0.10000000", "side": "SELL", "positionSide": "BOTH", "symbol": "BTCUSDT",
            "time": t}


def _exchange(now_ms: int = NOW_MS) -> BinanceExchange:
    clock = {"t": now_ms / 1000}
    ex = BinanceExchange(BinanceClient(trade_url=BASE, api_key="k", api_secret="s", sleep=lambda s: None,
                                       now=lambda: clock["t"]))
    ex.clock = clock                                   # the tests move it
    return ex


@responses.activate
def test_fills_since_asks_userTrades_in_windows_of_at_most_7_days():
    """Binance refuses a userTrades window over 7 days and, given only a start, answers 7 days:
    fills older than that were lost. Now the span is asked window by window, each paged."""
    since = NOW_MS - 20 * DAY
    rows = [_trade(i, since + i * (DAY // 2)) for i in range(40)]        # one every 12 h for 20 days
    asked = []

    def user_trades(req):
        p = _q(req)
        start = int(p["startTime"])
        end = int(p.get("endTime", start + 7 * DAY))                      # Binance: 7 days without one
        if end - start > 7 * DAY:
            return 400, {}, json.dumps({"code": -1127, "msg": "More than 7 days between startTime and endTime."})
        asked.append((start, end))
        hit = [r for r in rows if start <= r["time"] <= end][: int(p["limit"])]
        return 200, {}, json.dumps(hit)

    responses.add_callback(responses.GET, BASE + "/fapi/v1/userTrades", callback=user_trades)
    fills = _exchange().fills_since("BTCUSDT", since)
    assert [f.trade_id for f in fills] == [str(r["id"]) for r in rows]
    assert len(asked) == 3 and all(e - s < 7 * DAY for s, e in asked)
    assert asked[0][0] == since and asked[-1][1] == NOW_MS


@responses.activate
def test_fills_since_pages_a_full_window_on_by_time():
    rows = [_trade(i, NOW_MS - DAY + i // 2) for i in range(1500)]      # two fills per ms

    def user_trades(req):
        p = _q(req)
        hit = [r for r in rows if int(p["startTime"]) <= r["time"] <= int(p["endTime"])]
        return 200, {}, json.dumps(hit[: int(p["limit"])])

    responses.add_callback(responses.GET, BASE + "/fapi/v1/userTrades", callback=user_trades)
    fills = _exchange().fills_since("BTCUSDT", NOW_MS - DAY)
    assert sorted(int(f.trade_id) for f in fills) == list(range(1500))


@responses.activate
def test_a_commission_paid_in_bnb_is_counted_at_the_bnb_price_of_its_minute():
    t = NOW_MS - 3_600_000 + 12_345
    responses.add(responses.GET, BASE + "/fapi/v1/userTrades",
                  json=[_trade(1, t, commission="-0.00005000", asset="BNB"), _trade(2, t + 1)])
    minute = t // 60_000 * 60_000
    responses.add(responses.GET, "https://fapi.binance.com/fapi/v1/klines",
                  match=[responses.matchers.query_param_matcher(
                      {"symbol": "BNBUSDT", "interval": "1m", "startTime": str(minute), "limit": "1"})],
                  json=[[minute, "600.00", "601.00", "599.00", "600.50", "100", minute + 59_999, "60000",
                         10, "50", "30000", "0"]])
    bnb, usdt = _exchange().fills_since("BTCUSDT", t - 1000)
    assert (bnb.commission_asset, bnb.asset_commission) == ("BNB", pytest.approx(0.00005))
    assert bnb.commission == pytest.approx(0.00005 * 600.0)            # in USDT, not 0.00005
    assert (usdt.commission_asset, usdt.asset_commission, usdt.commission) == ("USDT", None, pytest.approx(0.02))


@responses.activate
def test_a_stops_fills_are_found_by_its_actual_order_id():
    algo = {"algoId": 2146760, "clientAlgoId": "s-1", "algoType": "CONDITIONAL", "orderType": "STOP_MARKET",
            "symbol": "BTCUSDT", "side": "SELL", "positionSide": "BOTH", "timeInForce": "GTC",
            "quantity": "0.002", "algoStatus": "FINISHED", "actualOrderId": "991", "actualPrice": "39990.00",
            "triggerPrice": "40000.00", "price": "0.00", "closePosition": False, "reduceOnly": True,
            "createTime": NOW_MS - DAY, "updateTime": NOW_MS - 10, "triggerTime": NOW_MS - 20}
    responses.add(responses.GET, BASE + "/fapi/v1/algoOrder", json=algo)
    responses.add(responses.GET, BASE + "/fapi/v1/userTrades",
                  match=[responses.matchers.query_param_matcher({"symbol": "BTCUSDT", "orderId": "991",
                                                                 "limit": "1000"}, strict_match=False)],
                  json=[_trade(5, NOW_MS - 20, order_id=991), _trade(6, NOW_MS - 19, order_id=991)])
    ex = _exchange()
    fills = ex.stop_fills("BTCUSDT", "s-1")
    assert [(f.trade_id, f.order_id) for f in fills] == [("5", "991"), ("6", "991")]
    responses.replace(responses.GET, BASE + "/fapi/v1/algoOrder", json={**algo, "algoStatus": "NEW",
                                                                       "actualOrderId": ""})
    assert ex.stop_fills("BTCUSDT", "s-1") == []                        # not triggered: no fills


@responses.activate
def test_funding_since_reads_the_funding_fees_of_the_income_history():
    """/fapi/v1/income FUNDING_FEE rows, paged on by time while full (the journal folds them
    into the closing trade's net PnL)."""
    start = NOW_MS - 400 * 8 * 3_600_000
    rows = [{"symbol": "BTCUSDT", "incomeType": "FUNDING_FEE", "income": "-0.01000000", "asset": "USDT",
             "info": "FUNDING_FEE", "time": start + i * 8 * 3_600_000, "tranId": 9689322392 + i, "tradeId": ""}
            for i in range(1200)]
    asked = []

    def income(req):
        p = _q(req)
        asked.append(p)
        hit = [r for r in rows if int(p["startTime"]) <= r["time"] <= int(p["endTime"])]
        return 200, {}, json.dumps(hit[: int(p["limit"])])

    responses.add_callback(responses.GET, BASE + "/fapi/v1/income", callback=income)
    got = _exchange().funding_since("BTCUSDT", start)
    assert len(got) == len([r for r in rows if r["time"] <= NOW_MS]) == 401
    assert sum(f.amount for f in got) == pytest.approx(-4.01) and got[0].time_ms == start
    assert all(p["incomeType"] == "FUNDING_FEE" and p["symbol"] == "BTCUSDT" for p in asked)
    assert len(asked) == 1                                               # 401 rows: one page


@responses.activate
def test_exchange_info_is_read_again_hourly_and_after_a_tick_size_reject():
    reads = []
    new_tick = {**EXCHANGE_INFO, "symbols": [{**EXCHANGE_INFO["symbols"][0], "filters": [
        {**f, "tickSize": "1.00"} if f["filterType"] == "PRICE_FILTER" else f
        for f in EXCHANGE_INFO["symbols"][0]["filters"]]}]}

    def info(req):
        reads.append(1)
        return 200, {}, json.dumps(EXCHANGE_INFO if len(reads) < 3 else new_tick)

    responses.add_callback(responses.GET, BASE + "/fapi/v1/exchangeInfo", callback=info)
    responses.add(responses.POST, BASE + "/fapi/v1/order", status=400,
                  json={"code": -4014, "msg": "Price not increased by tick size."})
    ex = _exchange()
    ex.filters("BTCUSDT")
    ex.clock["t"] += 1800
    ex.filters("BTCUSDT")
    assert len(reads) == 1                                               # cached within the hour
    ex.clock["t"] += 1801
    ex.filters("BTCUSDT")
    assert len(reads) == 2                                               # an hour old: read again
    with pytest.raises(OrderRejected):
        ex.place_order("BTCUSDT", "BUY", "LIMIT", 0.1, 50_000.1, "GTC", client_order_id="e-2")
    assert str(ex.filters("BTCUSDT").tick_size) == "1.00" and len(reads) == 3
    ex.filters("BTCUSDT")
    assert len(reads) == 3
