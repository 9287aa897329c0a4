"""Request shape of every endpoint (method, host, path, params in order, signature last,
API-key header) against payloads shaped like the official docs' examples."""
from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

from client import BinanceClient, sign
from rl.errors import BinanceError, OrderRejected
from tests.support.exchange_info import EXCHANGE_INFO

KEY, SECRET = "test-api-key-0123456789", "test-api-secret-abcdef"
TRADE, MARKET = "https://demo-fapi.binance.com", "https://fapi.binance.com"
T0 = 1_700_000_000.0

KLINE = [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
         "148976.11427815", 1499644799999, "2434.19055334", 308, "1756.87402397",
         "28.46694368", "17928899.62484339"]
ACCOUNT = {"totalInitialMargin": "0.00000000", "totalMaintMargin": "0.00000000",
           "totalWalletBalance": "103.12345678", "totalUnrealizedProfit": "0.00000000",
           "totalMarginBalance": "103.12345678", "availableBalance": "103.12345678",
           "maxWithdrawAmount": "103.12345678", "assets": [], "positions": []}
BALANCE = [{"accountAlias": "SgsR", "asset": "USDT", "balance": "122607.35137903",
            "crossWalletBalance": "23.72469206", "crossUnPnl": "0.00000000",
            "availableBalance": "23.72469206", "maxWithdrawAmount": "23.72469206",
            "marginAvailable": True, "updateTime": 1617939110373}]
POSITION = [{"symbol": "ADAUSDT", "positionSide": "BOTH", "positionAmt": "30",
             "entryPrice": "0.385", "breakEvenPrice": "0.385077", "markPrice": "0.41047590",
             "unRealizedProfit": "0.76427700", "liquidationPrice": "0", "isolatedMargin": "0",
             "notional": "12.31427700", "marginAsset": "USDT", "isolatedWallet": "0",
             "initialMargin": "0.61571385", "maintMargin": "0.08004280",
             "positionInitialMargin": "0.61571385", "openOrderInitialMargin": "0", "adl": 2,
             "bidNotional": "0", "askNotional": "0", "updateTime": 1720736417660}]
ORDER = {"avgPrice": "0.00000", "clientOrderId": "abc", "cumQuote": "0", "executedQty": "0",
         "orderId": 1917641, "origQty": "0.40", "origType": "LIMIT", "price": "9000",
         "reduceOnly": False, "side": "BUY", "positionSide": "BOTH", "status": "NEW",
         "stopPrice": "0", "closePosition": False, "symbol": "BTCUSDT", "time": 1579276756075,
         "timeInForce": "GTC", "type": "LIMIT", "updateTime": 1579276756075,
         "workingType": "CONTRACT_PRICE", "priceProtect": False, "priceMatch": "NONE",
         "selfTradePreventionMode": "NONE", "goodTillDate": 0}
TRADE_ROW = [{"buyer": False, "commission": "-0.07819010", "commissionAsset": "USDT",
              "id": 698759, "maker": False, "orderId": 25851813, "price": "7819.01",
              "qty": "0.002", "quoteQty": "15.63802", "realizedPnl": "-0.91539999",
              "side": "SELL", "positionSide": "SHORT", "symbol": "BTCUSDT",
              "time": 1569514978020}]
ALGO = {"algoId": 2146760, "clientAlgoId": "sl-1", "algoType": "CONDITIONAL",
        "orderType": "STOP_MARKET", "symbol": "BTCUSDT", "side": "SELL", "positionSide": "BOTH",
        "timeInForce": "GTC", "quantity": "0.01", "algoStatus": "NEW", "actualOrderId": "",
        "actualPrice": "0.00000", "triggerPrice": "94000.00", "price": "0.00",
        "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": "MARK_PRICE", "priceMatch": "NONE", "closePosition": False,
        "priceProtect": False, "reduceOnly": True, "createTime": 1750485492076,
        "updateTime": 1750485492076, "triggerTime": 0, "goodTillDate": 0}

# (id, call, method, host, path, expected params before recvWindow/timestamp, signed, payload)
CASES = [
    ("server_time", lambda c: c.server_time(), "GET", MARKET, "/fapi/v1/time", [], False,
     {"serverTime": 1499827319559}),
    ("exchange_info", lambda c: c.exchange_info(), "GET", TRADE, "/fapi/v1/exchangeInfo", [],
     False, EXCHANGE_INFO),
    ("exchange_info_mainnet", lambda c: c.exchange_info(trade_host=False), "GET", MARKET,
     "/fapi/v1/exchangeInfo", [], False, EXCHANGE_INFO),
    ("klines", lambda c: c.klines("BTCUSDT", "15m", 1000, 1499040000000, 1499644799999),
     "GET", MARKET, "/fapi/v1/klines",
     [("symbol", "BTCUSDT"), ("interval", "15m"), ("startTime", "1499040000000"),
      ("endTime", "1499644799999"), ("limit", "1000")], False, [KLINE]),
    ("ticker_price", lambda c: c.ticker_price("BTCUSDT"), "GET", MARKET,
     "/fapi/v2/ticker/price", [("symbol", "BTCUSDT")], False,
     {"symbol": "BTCUSDT", "price": "6000.01", "time": 1589437530011}),
    ("account", lambda c: c.account(), "GET", TRADE, "/fapi/v3/account", [], True, ACCOUNT),
    ("balance", lambda c: c.balance(), "GET", TRADE, "/fapi/v3/balance", [], True, BALANCE),
    ("position_risk", lambda c: c.position_risk("ADAUSDT"), "GET", TRADE,
     "/fapi/v3/positionRisk", [("symbol", "ADAUSDT")], True, POSITION),
    ("position_risk_all", lambda c: c.position_risk(), "GET", TRADE, "/fapi/v3/positionRisk",
     [], True, POSITION),
    ("new_order", lambda c: c.new_order("BTCUSDT", "BUY", "LIMIT", 1, 9000, "GTC",
                                        new_client_order_id="abc"),
     "POST", TRADE, "/fapi/v1/order",
     [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "1"),
      ("price", "9000"), ("timeInForce", "GTC"), ("newClientOrderId", "abc"),
      ("newOrderRespType", "RESULT")], True, ORDER),
    ("new_order_reduce_extra", lambda c: c.new_order(
        "BTCUSDT", "SELL", "MARKET", 0.1 + 0.2, reduce_only=True, new_client_order_id="x.1",
        positionSide="BOTH"),
     "POST", TRADE, "/fapi/v1/order",
     [("symbol", "BTCUSDT"), ("side", "SELL"), ("type", "MARKET"), ("quantity", "0.3"),
      ("reduceOnly", "true"), ("newClientOrderId", "x.1"), ("newOrderRespType", "RESULT"),
      ("positionSide", "BOTH")], True, ORDER),
    ("query_order", lambda c: c.query_order("BTCUSDT", order_id=1917641), "GET", TRADE,
     "/fapi/v1/order", [("symbol", "BTCUSDT"), ("orderId", "1917641")], True, ORDER),
    ("cancel_order", lambda c: c.cancel_order("BTCUSDT", orig_client_order_id="abc"),
     "DELETE", TRADE, "/fapi/v1/order",
     [("symbol", "BTCUSDT"), ("origClientOrderId", "abc")], True,
     dict(ORDER, status="CANCELED")),
    ("open_orders", lambda c: c.open_orders("BTCUSDT"), "GET", TRADE, "/fapi/v1/openOrders",
     [("symbol", "BTCUSDT")], True, [ORDER]),
    ("user_trades", lambda c: c.user_trades("BTCUSDT", start_time=1569514978000, limit=100),
     "GET", TRADE, "/fapi/v1/userTrades",
     [("symbol", "BTCUSDT"), ("startTime", "1569514978000"), ("limit", "100")], True,
     TRADE_ROW),
    ("set_leverage", lambda c: c.set_leverage("BTCUSDT", 21), "POST", TRADE,
     "/fapi/v1/leverage", [("symbol", "BTCUSDT"), ("leverage", "21")], True,
     {"leverage": 21, "maxNotionalValue": "1000000", "symbol": "BTCUSDT"}),
    ("symbol_config", lambda c: c.symbol_config("BTCUSDT"), "GET", TRADE, "/fapi/v1/symbolConfig",
     [("symbol", "BTCUSDT")], True,
     [{"symbol": "BTCUSDT", "marginType": "CROSSED", "isAutoAddMargin": "false", "leverage": 21,
       "maxNotionalValue": "1000000"}]),
    ("position_mode", lambda c: c.position_mode(), "GET", TRADE, "/fapi/v1/positionSide/dual",
     [], True, {"dualSidePosition": True}),
    ("multi_assets_mode", lambda c: c.multi_assets_mode(), "GET", TRADE,
     "/fapi/v1/multiAssetsMargin", [], True, {"multiAssetsMargin": False}),
    ("set_margin_type", lambda c: c.set_margin_type("BTCUSDT", "ISOLATED"), "POST", TRADE,
     "/fapi/v1/marginType", [("symbol", "BTCUSDT"), ("marginType", "ISOLATED")], True,
     {"code": 200, "msg": "success"}),
    ("new_algo_order", lambda c: c.new_algo_order(
        "BTCUSDT", "SELL", "STOP_MARKET", 94000.0, quantity=0.01, reduce_only=True,
        client_algo_id="sl-1"),
     "POST", TRADE, "/fapi/v1/algoOrder",
     [("algoType", "CONDITIONAL"), ("symbol", "BTCUSDT"), ("side", "SELL"),
      ("type", "STOP_MARKET"), ("quantity", "0.01"), ("triggerPrice", "94000"),
      ("workingType", "MARK_PRICE"), ("reduceOnly", "true"), ("clientAlgoId", "sl-1"),
      ("newOrderRespType", "RESULT")], True, ALGO),
    ("new_algo_close_position", lambda c: c.new_algo_order(
        "BTCUSDT", "SELL", "TAKE_PROFIT_MARKET", Decimal("1.01E+5"), close_position=True,
        working_type="CONTRACT_PRICE", client_algo_id="tp-1"),
     "POST", TRADE, "/fapi/v1/algoOrder",
     [("algoType", "CONDITIONAL"), ("symbol", "BTCUSDT"), ("side", "SELL"),
      ("type", "TAKE_PROFIT_MARKET"), ("triggerPrice", "101000"),
      ("workingType", "CONTRACT_PRICE"), ("closePosition", "true"), ("clientAlgoId", "tp-1"),
      ("newOrderRespType", "RESULT")], True, dict(ALGO, closePosition=True)),
    ("query_algo_order", lambda c: c.query_algo_order(algo_id=2146760), "GET", TRADE,
     "/fapi/v1/algoOrder", [("algoId", "2146760")], True, ALGO),
    ("cancel_algo_order", lambda c: c.cancel_algo_order(client_algo_id="sl-1"), "DELETE", TRADE,
     "/fapi/v1/algoOrder", [("clientAlgoId", "sl-1")], True,
     {"algoId": 2146760, "clientAlgoId": "sl-1", "code": "200", "msg": "success"}),
    ("open_algo_orders", lambda c: c.open_algo_orders("BTCUSDT"), "GET", TRADE,
     "/fapi/v1/openAlgoOrders", [("symbol", "BTCUSDT")], True, [ALGO]),
]


@pytest.fixture
def client() -> BinanceClient:
    return BinanceClient(api_key=KEY, api_secret=SECRET, sleep=lambda s: None, now=lambda: T0)


@pytest.mark.parametrize("name,call,method,host,path,params,signed,payload", CASES,
                         ids=[c[0] for c in CASES])
@responses.activate
def test_request_shape(client, name, call, method, host, path, params, signed, payload):
    responses.add(method, host + path, json=payload)
    result = call(client)
    assert len(responses.calls) == 1
    req = responses.calls[0].request
    parts = urlsplit(req.url)
    assert req.method == method and f"{parts.scheme}://{parts.netloc}" == host
    assert parts.path == path
    sent = parse_qsl(parts.query)
    if signed:
        assert sent[:-3] == params
        assert sent[-3:-1] == [("recvWindow", "5000"), ("timestamp", str(int(T0 * 1000)))]
        assert sent[-1][0] == "signature"
        unsigned = parts.query.rsplit("&signature=", 1)[0]
        assert sent[-1][1] == sign(unsigned, SECRET)
        assert req.headers["X-MBX-APIKEY"] == KEY
    else:
        assert sent == params
        assert "X-MBX-APIKEY" not in req.headers
    if name == "server_time":
        assert result == 1499827319559
    elif name == "ticker_price":
        assert result == 6000.01
    elif name == "set_margin_type":
        assert result is None
    elif name == "position_mode":
        assert result is True
    elif name == "multi_assets_mode":
        assert result is False
    else:
        assert result == payload


@responses.activate
def test_margin_type_no_need_to_change_is_success(client):
    responses.post(f"{TRADE}/fapi/v1/marginType", status=400,
                   json={"code": -4046, "msg": "No need to change margin type."})
    assert client.set_margin_type("BTCUSDT", "CROSSED") is None
    responses.replace(responses.POST, f"{TRADE}/fapi/v1/marginType", status=400,
                      json={"code": -4047, "msg": "Margin type cannot be changed if there "
                                                  "exists open orders."})
    with pytest.raises(BinanceError) as info:
        client.set_margin_type("BTCUSDT", "CROSSED")
    assert info.value.code == -4047


@responses.activate
def test_cancel_rejection_is_order_rejected(client):
    responses.delete(f"{TRADE}/fapi/v1/order", status=400,
                     json={"code": -2011, "msg": "Unknown order sent."})
    with pytest.raises(OrderRejected) as info:
        client.cancel_order("BTCUSDT", order_id=1)
    assert info.value.code == -2011


@responses.activate
def test_symbol_filters_cached_from_trade_host(client):
    responses.get(f"{TRADE}/fapi/v1/exchangeInfo", json=EXCHANGE_INFO)
    assert client.symbol_filters("BTCUSDT").tick_size == Decimal("0.1")
    assert client.symbol_filters("ETHUSDT").step_size == Decimal("0.1")
    assert len(responses.calls) == 1
    with pytest.raises(BinanceError) as info:       # unknown: refetched once, then an error
        client.symbol_filters("NOPEUSDT")
    assert info.value.code == -1121 and len(responses.calls) == 2


@responses.activate
def test_numbers_sent_plain(client):
    responses.post(f"{TRADE}/fapi/v1/order", json=ORDER)
    client.new_order("SHIBUSDT", "BUY", "LIMIT", quantity=1e7, price=0.00001234,
                     time_in_force="GTC", new_client_order_id="n1")
    sent = dict(parse_qsl(urlsplit(responses.calls[0].request.url).query))
    assert (sent["quantity"], sent["price"]) == ("10000000", "0.00001234")
