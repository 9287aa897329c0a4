"""A scripted Binance futures API for `responses`: one symbol, orders fill at `price`, algo
(stop) orders rest until cancelled, answers in the shapes of Binance's docs. The account's
modes (hedge / multi-assets, the symbol's margin type and leverage) are scripted too, and in
hedge mode positionRisk answers the `hedge_legs` (positionSide LONG / SHORT rows).

Fault switches (all off by default, each a count of answers to spoil unless said otherwise):
`fail_algo` (POST algoOrder 503), `fail_cancel_algo` (DELETE algoOrder 503),
`cancel_algo_unknown` (DELETE algoOrder answers -2011 but the stop stays live),
`fail_open_algos` / `fail_user_trades` (GET 503; the client retries GETs 3 times, so 4 fail a
call), `late_next_order` (POST order answers 503 and the order only executes at
`execute_late()`; until then lookups answer -2013), `hide_orders` (bool: GET order answers
-2013 although the order exists), `omit_avg_next_order` (the answer lacks avgPrice and
cumQuote), `omit_avg_in_query` (bool: GET order answers lack them too)."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import responses

SYM = "BTCUSDT"
BASE = "https://demo-fapi.binance.com"
EXCHANGE_INFO = {"timezone": "UTC", "serverTime": 1, "rateLimits": [], "symbols": [{
    "symbol": SYM, "status": "TRADING", "pricePrecision": 2, "quantityPrecision": 3,
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
        {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000", "minQty": "0.001"},
        {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "maxQty": "120", "minQty": "0.001"},
        {"filterType": "MIN_NOTIONAL", "notional": "100"}]}]}


class FakeBinance:
    """Just enough of the futures API for the scenario, answering in the documented shapes."""

    def __init__(self, rs: responses.RequestsMock, price: float = 50_000.0):
        self.price, self.amount, self.entry = price, 0.0, 0.0
        self.orders, self.algos, self.trades = {}, {}, []
        self.next_id = 1000
        self.fail_algo = 0
        self.timeout_next_order = False
        self.order_posts = 0
        self.dual_side = False                      # GET /fapi/v1/positionSide/dual
        self.multi_assets = False                   # GET /fapi/v1/multiAssetsMargin
        self.symbol_cfg = {"marginType": "ISOLATED", "leverage": 10}   # GET /fapi/v1/symbolConfig
        self.hedge_legs: list[dict] = []            # positionRisk rows in hedge mode
        self.config_changes: list[tuple[str, str]] = []    # (endpoint, value) accepted
        self.wallet = 10_000.0
        rs.add_callback(responses.GET, BASE + "/fapi/v1/positionSide/dual", callback=self.position_mode)
        rs.add_callback(responses.GET, BASE + "/fapi/v1/multiAssetsMargin", callback=self.multi_assets_mode)
        rs.add_callback(responses.GET, BASE + "/fapi/v1/symbolConfig", callback=self.symbol_config)
        rs.add_callback(responses.POST, BASE + "/fapi/v1/leverage", callback=self.set_leverage)
        rs.add_callback(responses.POST, BASE + "/fapi/v1/marginType", callback=self.set_margin_type)
        self.fail_cancel_algo = 0
        self.cancel_algo_unknown = 0
        self.fail_open_algos = 0
        self.fail_user_trades = 0
        self.late_next_order = False
        self.late: list[dict] = []
        self.hide_orders = False
        self.omit_avg_next_order = False
        self.omit_avg_in_query = False
        self.algos_done: dict = {}          # cancelled stops, as GET algoOrder shows them
        rs.add(responses.GET, BASE + "/fapi/v1/exchangeInfo", json=EXCHANGE_INFO)
        rs.add_callback(responses.POST, BASE + "/fapi/v1/order", callback=self.new_order)
        rs.add_callback(responses.GET, BASE + "/fapi/v1/order", callback=self.query_order)
        rs.add_callback(responses.DELETE, BASE + "/fapi/v1/order", callback=self.cancel_order)
        rs.add_callback(responses.GET, BASE + "/fapi/v1/openOrders", callback=self.open_orders)
        rs.add_callback(responses.POST, BASE + "/fapi/v1/algoOrder", callback=self.new_algo)
        rs.add_callback(responses.DELETE, BASE + "/fapi/v1/algoOrder", callback=self.cancel_algo)
        rs.add_callback(responses.GET, BASE + "/fapi/v1/algoOrder", callback=self.query_algo)
        rs.add_callback(responses.GET, BASE + "/fapi/v1/openAlgoOrders", callback=self.open_algos)
        rs.add_callback(responses.GET, BASE + "/fapi/v3/positionRisk", callback=self.position_risk)
        rs.add_callback(responses.GET, BASE + "/fapi/v1/userTrades", callback=self.user_trades)

    @staticmethod
    def q(req):
        return {k: v[0] for k, v in parse_qs(urlparse(req.url).query).items()}

    @staticmethod
    def server_error():
        return (503, {}, json.dumps({"code": -1001, "msg": "Internal error; unable to process your "
                                     "request. Please try again."}))

    def new_order(self, req):
        p = self.q(req)
        self.order_posts += 1
        if self.late_next_order:
            self.late_next_order = False
            self.late.append(p)
            return self.server_error()
        if p.get("timeInForce") == "GTX":
            return self.new_post_only(p)
        return self.execute(p)

    def execute_late(self):
        """The orders answered with a 503 reach the matching engine now."""
        while self.late:
            self.execute(self.late.pop(0))

    def execute(self, p):
        qty = float(p["quantity"])
        sign = 1 if p["side"] == "BUY" else -1
        if p.get("reduceOnly") == "true":
            qty = min(qty, abs(self.amount))
        self.next_id += 1
        oid = self.next_id
        if self.amount == 0 or self.amount * sign > 0:
            new = self.amount + sign * qty
            self.entry = (abs(self.amount) * self.entry + qty * self.price) / abs(new)
            pnl = 0.0
        else:
            pnl = qty * (self.price - self.entry) * (1 if self.amount > 0 else -1)
            new = round(self.amount + sign * qty, 9)
        self.amount = round(new, 9)
        self.trades.append({"buyer": sign > 0, "commission": f"{-qty * self.price * 0.0005:.8f}",
                            "commissionAsset": "USDT", "id": oid + 500000, "maker": False,
                            "orderId": oid, "price": f"{self.price}", "qty": f"{qty}",
                            "quoteQty": f"{qty * self.price}", "realizedPnl": f"{pnl:.8f}",
                            "side": p["side"], "positionSide": "BOTH", "symbol": SYM, "time": 1000 + oid})
        body = {"clientOrderId": p["newClientOrderId"], "cumQty": f"{qty}",
                "cumQuote": f"{qty * self.price}", "executedQty": f"{qty}", "orderId": oid,
                "avgPrice": f"{self.price:.5f}", "origQty": p["quantity"], "price": p.get("price", "0"),
                "reduceOnly": p.get("reduceOnly") == "true", "side": p["side"], "positionSide": "BOTH",
                "status": "FILLED", "stopPrice": "0", "closePosition": False, "symbol": SYM,
                "timeInForce": p.get("timeInForce", "GTC"), "type": p["type"], "origType": p["type"],
                "updateTime": 1000 + oid, "workingType": "CONTRACT_PRICE", "priceProtect": False,
                "priceMatch": "NONE", "selfTradePreventionMode": "NONE", "goodTillDate": 0}
        self.orders[p["newClientOrderId"]] = body
        if self.omit_avg_next_order:
            self.omit_avg_next_order = False
            return (200, {}, json.dumps({k: v for k, v in body.items() if k not in ("avgPrice", "cumQuote")}))
        if self.timeout_next_order:
            self.timeout_next_order = False
            return (503, {}, json.dumps({"code": -1007, "msg": "Timeout waiting for response from "
                                         "backend server. Send status unknown; execution status unknown."}))
        return (200, {}, json.dumps(body))

    def new_post_only(self, p):
        """A GTX order: refused if it would take (-5022, no record kept), else it rests. A
        reduce-only one (a resting take-profit) needs a position on the other side (-2022)."""
        price = float(p["price"])
        if (price > self.price) if p["side"] == "BUY" else (price < self.price):
            return (400, {}, json.dumps({"code": -5022, "msg": "Due to the order could not be executed "
                                         "as maker, the Post Only order will be rejected."}))
        reduce_only = p.get("reduceOnly") == "true"
        if reduce_only and self.amount * (1 if p["side"] == "BUY" else -1) >= 0:
            return (400, {}, json.dumps({"code": -2022, "msg": "ReduceOnly Order is rejected."}))
        self.next_id += 1
        body = {"clientOrderId": p["newClientOrderId"], "cumQty": "0", "cumQuote": "0.00000",
                "executedQty": "0", "orderId": self.next_id, "avgPrice": "0.00", "origQty": p["quantity"],
                "price": p["price"], "reduceOnly": reduce_only, "side": p["side"], "positionSide": "BOTH",
                "status": "NEW", "stopPrice": "0", "closePosition": False, "symbol": SYM,
                "timeInForce": "GTX", "type": "LIMIT", "origType": "LIMIT", "updateTime": 1000 + self.next_id,
                "workingType": "CONTRACT_PRICE", "priceProtect": False, "priceMatch": "NONE",
                "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0}
        self.orders[p["newClientOrderId"]] = body
        return (200, {}, json.dumps(body))

    def maker_fill(self, cid, qty):
        """The market trades through a resting order: `qty` of it fills at its price as maker."""
        o = self.orders[cid]
        price, sign = float(o["price"]), 1 if o["side"] == "BUY" else -1
        done = float(o["executedQty"]) + qty
        new = self.amount + sign * qty
        pnl = 0.0
        if self.amount * sign < 0:            # a reduce-only take-profit: the position shrinks
            pnl = qty * (price - self.entry) * (1 if self.amount > 0 else -1)
        else:
            self.entry = (abs(self.amount) * self.entry + qty * price) / abs(new)
        self.amount = round(new, 9)
        self.next_id += 1
        self.trades.append({"buyer": sign > 0, "commission": f"{-qty * price * 0.0002:.8f}",
                            "commissionAsset": "USDT", "id": self.next_id + 500000, "maker": True,
                            "orderId": o["orderId"], "price": f"{price}", "qty": f"{qty}",
                            "quoteQty": f"{qty * price}", "realizedPnl": f"{pnl:.8f}", "side": o["side"],
                            "positionSide": "BOTH", "symbol": SYM, "time": 1000 + self.next_id})
        o.update(executedQty=f"{done:.3f}", cumQty=f"{done:.3f}", cumQuote=f"{done * price:.5f}",
                 avgPrice=f"{price:.5f}", updateTime=1000 + self.next_id,
                 status="FILLED" if done >= float(o["origQty"]) - 1e-9 else "PARTIALLY_FILLED")

    def cancel_order(self, req):
        """DELETE /fapi/v1/order: the documented answer has no avgPrice (cumQuote does)."""
        cid = self.q(req).get("origClientOrderId")
        o = self.orders.get(cid)
        if o is None or o["status"] not in ("NEW", "PARTIALLY_FILLED"):
            return (400, {}, json.dumps({"code": -2011, "msg": "Unknown order sent."}))
        self.next_id += 1
        o.update(status="CANCELED", updateTime=1000 + self.next_id)
        return (200, {}, json.dumps({k: v for k, v in o.items() if k != "avgPrice"}))

    def open_orders(self, req):
        """GET /fapi/v1/openOrders: the orders still resting, as the order query shows them."""
        return (200, {}, json.dumps([o for o in self.orders.values()
                                     if o["status"] in ("NEW", "PARTIALLY_FILLED")]))

    def query_order(self, req):
        p = self.q(req)
        cid = p.get("origClientOrderId")
        if cid is None and "orderId" in p:
            cid = next((c for c, o in self.orders.items() if str(o["orderId"]) == p["orderId"]), None)
        if cid not in self.orders or self.hide_orders:
            return (400, {}, json.dumps({"code": -2013, "msg": "Order does not exist."}))
        body = self.orders[cid]
        if self.omit_avg_in_query:
            body = {k: v for k, v in body.items() if k not in ("avgPrice", "cumQuote")}
        return (200, {}, json.dumps(body))

    def new_algo(self, req):
        p = self.q(req)
        if self.fail_algo:
            self.fail_algo -= 1
            return (503, {}, json.dumps({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}))
        self.next_id += 1
        body = {"algoId": self.next_id, "clientAlgoId": p["clientAlgoId"], "algoType": "CONDITIONAL",
                "orderType": p["type"], "symbol": SYM, "side": p["side"], "positionSide": "BOTH",
                "timeInForce": "GTC", "quantity": p.get("quantity", "0"), "algoStatus": "NEW",
                "triggerPrice": p["triggerPrice"], "price": "0.00", "icebergQuantity": None,
                "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": p["workingType"],
                "priceMatch": "NONE", "closePosition": p.get("closePosition") == "true",
                "priceProtect": False, "reduceOnly": p.get("reduceOnly") == "true",
                "activatePrice": "", "callbackRate": "", "createTime": 1750485492076,
                "updateTime": 1750485492076, "triggerTime": 0, "goodTillDate": 0}
        self.algos[p["clientAlgoId"]] = body
        return (200, {}, json.dumps(body))

    def cancel_algo(self, req):
        cid = self.q(req)["clientAlgoId"]
        if self.fail_cancel_algo:
            self.fail_cancel_algo -= 1
            return self.server_error()
        if self.cancel_algo_unknown:
            self.cancel_algo_unknown -= 1
            return (400, {}, json.dumps({"code": -2011, "msg": "Unknown order sent."}))
        body = self.algos.pop(cid, None)
        if body is None:
            return (400, {}, json.dumps({"code": -2011, "msg": "Unknown order sent."}))
        self.algos_done[cid] = {**body, "algoStatus": "CANCELED", "updateTime": body["updateTime"] + 1}
        return (200, {}, json.dumps({"algoId": body["algoId"], "clientAlgoId": cid, "code": "200", "msg": "success"}))

    def query_algo(self, req):
        cid = self.q(req).get("clientAlgoId")
        body = self.algos.get(cid) or self.algos_done.get(cid)
        if body is None:
            return (400, {}, json.dumps({"code": -2013, "msg": "Order does not exist."}))
        return (200, {}, json.dumps({**body, "actualOrderId": "", "actualPrice": "0.00000"}))

    def open_algos(self, req):
        if self.fail_open_algos:
            self.fail_open_algos -= 1
            return self.server_error()
        return (200, {}, json.dumps(list(self.algos.values())))

    # ------------------------------------------------------------------ account modes
    def position_mode(self, req):
        return (200, {}, json.dumps({"dualSidePosition": self.dual_side}))

    def multi_assets_mode(self, req):
        return (200, {}, json.dumps({"multiAssetsMargin": self.multi_assets}))

    def symbol_config(self, req):
        row = {"symbol": SYM, "marginType": self.symbol_cfg["marginType"], "isAutoAddMargin": "false",
               "leverage": self.symbol_cfg["leverage"], "maxNotionalValue": "1000000"}
        sym = self.q(req).get("symbol")
        return (200, {}, json.dumps([row] if sym in (None, SYM) else []))

    def _has_position(self) -> bool:
        return bool(self.amount) or any(float(r["positionAmt"]) for r in self.hedge_legs)

    def set_leverage(self, req):
        lev = int(self.q(req)["leverage"])
        self.symbol_cfg["leverage"] = lev
        self.config_changes.append(("leverage", str(lev)))
        return (200, {}, json.dumps({"leverage": lev, "maxNotionalValue": "1000000", "symbol": SYM}))

    def set_margin_type(self, req):
        want = self.q(req)["marginType"]
        if want == self.symbol_cfg["marginType"]:
            return (400, {}, json.dumps({"code": -4046, "msg": "No need to change margin type."}))
        if self._has_position():
            return (400, {}, json.dumps({"code": -4048, "msg": "Margin type cannot be changed if "
                                         "there exists position."}))
        if self.multi_assets and want == "ISOLATED":
            return (400, {}, json.dumps({"code": -4168, "msg": "Unable to adjust to isolated-margin "
                                         "mode under the Multi-Assets mode."}))
        self.symbol_cfg["marginType"] = want
        self.config_changes.append(("marginType", want))
        return (200, {}, json.dumps({"code": 200, "msg": "success"}))

    def serve_account(self, rs: responses.RequestsMock) -> None:
        """Answer GET /fapi/v3/account with a flat account holding `wallet` USDT."""
        rs.add_callback(responses.GET, BASE + "/fapi/v3/account", callback=self.account)

    def account(self, req):
        w = f"{self.wallet:.8f}"
        return (200, {}, json.dumps({
            "totalInitialMargin": "0.00000000", "totalMaintMargin": "0.00000000", "totalWalletBalance": w,
            "totalUnrealizedProfit": "0.00000000", "totalMarginBalance": w,
            "totalPositionInitialMargin": "0.00000000", "totalOpenOrderInitialMargin": "0.00000000",
            "totalCrossWalletBalance": w, "totalCrossUnPnl": "0.00000000", "availableBalance": w,
            "maxWithdrawAmount": w, "assets": [], "positions": []}))

    @staticmethod
    def hedge_leg(side: str, amount: float, entry: float, mark: float) -> dict:
        """A positionRisk row of a hedge-mode leg (positionSide LONG or SHORT)."""
        return {"symbol": SYM, "positionSide": side, "positionAmt": f"{amount}", "entryPrice": f"{entry}",
                "breakEvenPrice": f"{entry}", "markPrice": f"{mark}",
                "unRealizedProfit": f"{amount * (mark - entry)}", "liquidationPrice": "0",
                "isolatedMargin": "0", "notional": f"{amount * mark}", "marginAsset": "USDT",
                "isolatedWallet": "0", "initialMargin": f"{abs(amount) * mark / 10}", "maintMargin": "0",
                "positionInitialMargin": f"{abs(amount) * mark / 10}", "openOrderInitialMargin": "0",
                "adl": 1, "bidNotional": "0", "askNotional": "0", "updateTime": 1720736417660}

    def position_risk(self, req):
        if self.dual_side:
            return (200, {}, json.dumps([r for r in self.hedge_legs if float(r["positionAmt"])]))
        row = {"symbol": SYM, "positionSide": "BOTH", "positionAmt": f"{self.amount}",
               "entryPrice": f"{self.entry}", "breakEvenPrice": f"{self.entry}",
               "markPrice": f"{self.price}", "unRealizedProfit": f"{self.amount * (self.price - self.entry)}",
               "liquidationPrice": "45180.7", "isolatedMargin": f"{abs(self.amount) * self.entry / 10}",
               "notional": f"{self.amount * self.price}", "marginAsset": "USDT",
               "isolatedWallet": f"{abs(self.amount) * self.entry / 10}",
               "initialMargin": f"{abs(self.amount) * self.price / 10}", "maintMargin": "0",
               "positionInitialMargin": f"{abs(self.amount) * self.price / 10}",
               "openOrderInitialMargin": "0", "adl": 2, "bidNotional": "0", "askNotional": "0",
               "updateTime": 1720736417660}
        return (200, {}, json.dumps([row] if self.amount else []))

    def user_trades(self, req):
        if self.fail_user_trades:
            self.fail_user_trades -= 1
            return self.server_error()
        return (200, {}, json.dumps(self.trades))
