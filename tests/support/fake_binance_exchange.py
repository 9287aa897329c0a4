"""The fake Binance server's exchange: its ledger and the USDⓈ-M endpoints' answers.

Wallet, one-way position per symbol, orders, conditional (algo) stops that trigger on the
market's 1m bars, fills with commission, funding at every `funding_interval_ms`, the income
history; every answer in the shape of Binance's official docs. The server
(tests/support/fake_binance_server.py) owns transport, signatures, faults, kill hooks and the
protection watch, and hands each request here with the fault that applies to its processing
(partial_ioc, no_avgprice) if any. `now` is the world's time the server learned from the
signed requests' timestamps.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any

from tests.support.exchange_info import EXCHANGE_INFO

if TYPE_CHECKING:
    from tests.support.fake_binance_server import Fault

EIGHT_HOURS = 8 * 3_600_000
Bar = tuple[int, float, float, float, float]      # open_time_ms, open, high, low, close


def _on_fall(a: dict) -> bool:
    """Does this conditional order trigger when the price falls to it? A SELL stop and a BUY
    take-profit do; a BUY stop and a SELL take-profit trigger on a rise."""
    return (a["side"] == "SELL") != str(a.get("orderType", "")).startswith("TAKE_PROFIT")


@dataclass
class _Position:
    amount: float = 0.0
    entry: float = 0.0


def _s(x: float, nd: int = 8) -> str:
    return f"{x:.{nd}f}".rstrip("0").rstrip(".") if "." in f"{x:.{nd}f}" else f"{x:.{nd}f}"


@dataclass
class Ledger:
    """What the exchange knows: the truth the agent's store is compared with."""

    wallet: float
    positions: dict[str, _Position] = field(default_factory=dict)
    orders: dict[int, dict] = field(default_factory=dict)
    algos: dict[int, dict] = field(default_factory=dict)
    trades: list[dict] = field(default_factory=list)      # userTrades rows
    income: list[dict] = field(default_factory=list)      # /fapi/v1/income rows


class FakeExchange:
    """The exchange behind the fake server (see the module doc)."""

    def __init__(self, price_at: Callable[[int], float],
                 bars_between: Callable[[int, int], Iterable[Bar]] | None = None, *,
                 balance: float = 10_000.0, taker_fee: float = 0.0005, maker_fee: float = 0.0002,
                 funding_rate: float = 0.0001, funding_interval_ms: int = EIGHT_HOURS,
                 start_ms: int = 0, symbols: Iterable[str] = ("BTCUSDT",)) -> None:
        self.price_at = price_at
        self.bars_between = bars_between or (lambda a, b: ())
        self.taker_fee, self.maker_fee, self.funding_rate = taker_fee, maker_fee, funding_rate
        self.symbols = tuple(symbols)
        self.ledger = Ledger(wallet=balance)
        self.start_balance = balance
        self.now = int(start_ms)                  # the world's time: newest signed timestamp
        self._bars_done = int(start_ms)           # bars with open time < this were applied
        self.funding_interval_ms = int(funding_interval_ms)
        self._funded = int(start_ms) // self.funding_interval_ms
        self.leverage = {s: 20 for s in self.symbols}
        self.margin_type = {s: "CROSSED" for s in self.symbols}
        self.dual_side = False
        self.multi_assets = False
        self.duplicate_entries = 0                # entry fills added to an open position
        self.stale_stops_at_entry = 0             # entries sent while flat with a stop still live
        self.hidden: set[str] = set()             # client ids of orders lookups cannot see yet
        self._next_id = 8_000_000

    def advance(self, ts: int) -> None:
        """The world's time moved on to `ts`: the bars closed since and the funding due, in the
        order they happened, then the stops the current price triggers."""
        if ts <= self.now:
            return
        for bar in self.bars_between(self._bars_done, ts):
            self._fund_until(bar[0])
            self._on_bar(bar)
        self._bars_done = max(self._bars_done, ts - ts % 60_000)
        self._fund_until(ts)
        self.now = ts
        self._trigger_stops(self.price(), None)

    def price(self, symbol: str = "") -> float:
        return float(self.price_at(self.now))

    def protected(self, symbol: str) -> bool:
        """Does a live reduce-only stop for the whole open size sit on the close side?"""
        pos = self.ledger.positions.get(symbol)
        if pos is None or pos.amount == 0:
            return True
        close_side = "SELL" if pos.amount > 0 else "BUY"
        for a in self.ledger.algos.values():
            if a["symbol"] == symbol and a["algoStatus"] == "NEW" and a["side"] == close_side \
                    and a["orderType"] == "STOP_MARKET" and (
                        a["closePosition"] or float(a["quantity"]) >= abs(pos.amount) - 1e-9):
                return True
        return False

    def _on_bar(self, bar: Bar) -> None:
        t, o, h, lo, c = bar
        for od in list(self.ledger.orders.values()):        # resting limits (GTC/GTX)
            if od["status"] not in ("NEW", "PARTIALLY_FILLED"):
                continue
            px = float(od["price"])
            if (od["side"] == "BUY" and lo < px) or (od["side"] == "SELL" and h > px):
                self._fill(od, float(od["origQty"]) - float(od["executedQty"]), px, True, t + 59_999)
        for a in list(self.ledger.algos.values()):
            if a["algoStatus"] != "NEW":
                continue
            trig = float(a["triggerPrice"])
            if _on_fall(a) and lo <= trig:
                self._trigger(a, min(trig, o), t + 59_999)
            elif not _on_fall(a) and h >= trig:
                self._trigger(a, max(trig, o), t + 59_999)

    def _trigger_stops(self, price: float, at: int | None) -> None:
        for a in list(self.ledger.algos.values()):
            if a["algoStatus"] != "NEW":
                continue
            trig = float(a["triggerPrice"])
            if (price <= trig) if _on_fall(a) else (price >= trig):
                self._trigger(a, price, at or self.now)

    def _trigger(self, a: dict, price: float, at: int) -> None:
        """A conditional order triggers: a reduce-only MARKET order for its size (or the
        whole position) fills at `price`; with nothing to reduce it expires."""
        sym = a["symbol"]
        pos = self.ledger.positions.setdefault(sym, _Position())
        a.update(algoStatus="TRIGGERED", triggerTime=at, updateTime=at)
        reducing = (pos.amount > 0 and a["side"] == "SELL") or (pos.amount < 0 and a["side"] == "BUY")
        qty = abs(pos.amount) if a["closePosition"] else min(float(a["quantity"]), abs(pos.amount))
        oid = self._id()
        od = self._order_row(oid, sym, a["side"], "MARKET", f"autoclose-{a['clientAlgoId']}"[:36],
                             qty if reducing else float(a["quantity"]), 0.0, None, True, at)
        od["origType"] = "STOP_MARKET"
        self.ledger.orders[oid] = od
        a["actualOrderId"] = str(oid)
        if reducing and qty > 0:
            self._fill(od, qty, price, False, at)
            a.update(algoStatus="FINISHED", actualPrice=_s(price), updateTime=at)
        else:
            od["status"] = "EXPIRED"
            a.update(algoStatus="EXPIRED", updateTime=at)

    def _fund_until(self, ts: int) -> None:
        while (self._funded + 1) * self.funding_interval_ms <= ts:
            self._funded += 1
            self._fund(self._funded * self.funding_interval_ms)

    def _fund(self, at: int) -> None:
        for sym, pos in self.ledger.positions.items():
            if pos.amount == 0:
                continue
            amount = -pos.amount * float(self.price_at(at)) * self.funding_rate
            self.ledger.wallet += amount
            self._income(sym, "FUNDING_FEE", amount, at)

    def _income(self, sym: str, kind: str, amount: float, at: int, trade_id: str = "") -> None:
        self.ledger.income.append({"symbol": sym, "incomeType": kind, "income": _s(amount),
                                   "asset": "USDT", "info": kind, "time": at,
                                   "tranId": self._id(), "tradeId": trade_id})

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # ------------------------------------------------------------------ ledger changes
    def _order_row(self, oid: int, sym: str, side: str, type_: str, cid: str, qty: float,
                   price: float, tif: str | None, reduce_only: bool, at: int) -> dict:
        return {"avgPrice": "0.00", "clientOrderId": cid, "cumQuote": "0", "executedQty": "0",
                "orderId": oid, "origQty": _s(qty), "origType": type_, "price": _s(price),
                "reduceOnly": reduce_only, "side": side, "positionSide": "BOTH", "status": "NEW",
                "stopPrice": "0", "closePosition": False, "symbol": sym,
                "time": at, "timeInForce": tif or "GTC", "type": type_,
                "activatePrice": "0", "priceRate": "0", "updateTime": at,
                "workingType": "CONTRACT_PRICE", "priceProtect": False, "priceMatch": "NONE",
                "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0}

    def _fill(self, od: dict, qty: float, price: float, maker: bool, at: int) -> None:
        """`qty` of order `od` trades at `price`: position, wallet, userTrades and income."""
        if qty <= 0:
            return
        sym, side = od["symbol"], od["side"]
        sign = 1.0 if side == "BUY" else -1.0
        pos = self.ledger.positions.setdefault(sym, _Position())
        pnl = 0.0
        if pos.amount == 0 or pos.amount * sign > 0:
            if pos.amount != 0 and not od["reduceOnly"]:
                self.duplicate_entries += 1
            new = pos.amount + sign * qty
            pos.entry = (abs(pos.amount) * pos.entry + qty * price) / abs(new)
            pos.amount = round(new, 9)
        else:
            closing = min(qty, abs(pos.amount))
            pnl = closing * (price - pos.entry) * (1.0 if pos.amount > 0 else -1.0)
            pos.amount = round(pos.amount + sign * qty, 9)
            if pos.amount == 0:
                pos.entry = 0.0
            elif pos.amount * sign > 0:        # flipped through zero
                pos.entry = price
        fee = qty * price * (self.maker_fee if maker else self.taker_fee)
        self.ledger.wallet += pnl - fee
        tid = self._id()
        self.ledger.trades.append({
            "buyer": side == "BUY", "commission": _s(-fee), "commissionAsset": "USDT", "id": tid,
            "maker": maker, "orderId": od["orderId"], "price": _s(price), "qty": _s(qty),
            "quoteQty": _s(qty * price), "realizedPnl": _s(pnl), "side": side,
            "positionSide": "BOTH", "symbol": sym, "time": at})
        if pnl:
            self._income(sym, "REALIZED_PNL", pnl, at, str(tid))
        self._income(sym, "COMMISSION", -fee, at, str(tid))
        done = float(od["executedQty"]) + qty
        cum = float(od["cumQuote"]) + qty * price
        od.update(executedQty=_s(done), cumQuote=_s(cum), avgPrice=_s(cum / done), updateTime=at,
                  status="FILLED" if done >= float(od["origQty"]) - 1e-9 else "PARTIALLY_FILLED")

    def _floor(self, qty: float, step: str = "0.001") -> float:
        d = Decimal(str(qty)) / Decimal(step)
        return float(d.to_integral_value(ROUND_FLOOR) * Decimal(step))

    # ------------------------------------------------------------------ endpoints
    def route(self, endpoint: str, p: dict, fault: Fault | None) -> tuple[int, Any]:
        routes: dict[str, Callable[[dict, Fault | None], tuple[int, Any]]] = {
            "GET /fapi/v1/time": lambda p, f: (200, {"serverTime": self.now}),
            "GET /fapi/v1/ping": lambda p, f: (200, {}),
            "GET /fapi/v1/exchangeInfo": lambda p, f: (200, {**EXCHANGE_INFO, "serverTime": self.now}),
            "GET /fapi/v1/ticker/price": self._ticker,
            "GET /fapi/v2/ticker/price": self._ticker,
            "GET /fapi/v3/account": self._account,
            "GET /fapi/v2/account": self._account,
            "GET /fapi/v3/balance": self._balance,
            "GET /fapi/v2/balance": self._balance,
            "GET /fapi/v3/positionRisk": self._position_risk,
            "POST /fapi/v1/leverage": self._set_leverage,
            "POST /fapi/v1/marginType": self._set_margin_type,
            "GET /fapi/v1/symbolConfig": self._symbol_config,
            "GET /fapi/v1/positionSide/dual": lambda p, f: (200, {"dualSidePosition": self.dual_side}),
            "POST /fapi/v1/positionSide/dual": self._set_dual,
            "GET /fapi/v1/multiAssetsMargin": lambda p, f: (200, {"multiAssetsMargin": self.multi_assets}),
            "POST /fapi/v1/order": self.new_order,
            "GET /fapi/v1/order": self._query_order,
            "DELETE /fapi/v1/order": self._cancel_order,
            "GET /fapi/v1/openOrders": self._open_orders,
            "GET /fapi/v1/userTrades": self._user_trades,
            "POST /fapi/v1/algoOrder": self._new_algo,
            "GET /fapi/v1/algoOrder": self._query_algo,
            "DELETE /fapi/v1/algoOrder": self._cancel_algo,
            "GET /fapi/v1/openAlgoOrders": self._open_algos,
            "GET /fapi/v1/income": self._income_history,
        }
        fn = routes.get(endpoint)
        if fn is None:
            return 404, {"code": -1000, "msg": f"fake server: {endpoint} is not implemented"}
        return fn(p, fault)

    def _sym(self, p: dict) -> str | None:
        s = p.get("symbol")
        return s if s in self.symbols else None

    def _ticker(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        sym = p.get("symbol") or self.symbols[0]
        return 200, {"symbol": sym, "price": _s(self.price(sym)), "time": self.now}

    def _upnl(self, sym: str) -> float:
        pos = self.ledger.positions.get(sym)
        return 0.0 if pos is None or pos.amount == 0 else pos.amount * (self.price(sym) - pos.entry)

    def _margin(self, sym: str) -> float:
        pos = self.ledger.positions.get(sym)
        return 0.0 if pos is None else abs(pos.amount) * self.price(sym) / self.leverage[sym]

    def _account(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        w = self.ledger.wallet
        upnl = sum(self._upnl(s) for s in self.symbols)
        im = sum(self._margin(s) for s in self.symbols)
        avail = w + upnl - im
        return 200, {
            "totalInitialMargin": _s(im), "totalMaintMargin": "0", "totalWalletBalance": _s(w),
            "totalUnrealizedProfit": _s(upnl), "totalMarginBalance": _s(w + upnl),
            "totalPositionInitialMargin": _s(im), "totalOpenOrderInitialMargin": "0",
            "totalCrossWalletBalance": _s(w), "totalCrossUnPnl": _s(upnl),
            "availableBalance": _s(avail), "maxWithdrawAmount": _s(avail),
            "assets": [{"asset": "USDT", "walletBalance": _s(w), "unrealizedProfit": _s(upnl),
                        "marginBalance": _s(w + upnl), "maintMargin": "0", "initialMargin": _s(im),
                        "positionInitialMargin": _s(im), "openOrderInitialMargin": "0",
                        "crossWalletBalance": _s(w), "crossUnPnl": _s(upnl),
                        "availableBalance": _s(avail), "maxWithdrawAmount": _s(avail),
                        "updateTime": self.now}],
            "positions": [{"symbol": s, "positionSide": "BOTH",
                           "positionAmt": _s(self.ledger.positions.get(s, _Position()).amount),
                           "unrealizedProfit": _s(self._upnl(s)), "isolatedMargin": "0",
                           "notional": "0", "isolatedWallet": "0", "initialMargin": "0",
                           "maintMargin": "0", "updateTime": self.now} for s in self.symbols]}

    def _balance(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        w, upnl = self.ledger.wallet, sum(self._upnl(s) for s in self.symbols)
        return 200, [{"accountAlias": "SgsR", "asset": "USDT", "balance": _s(w),
                      "crossWalletBalance": _s(w), "crossUnPnl": _s(upnl),
                      "availableBalance": _s(w + upnl - sum(self._margin(s) for s in self.symbols)),
                      "maxWithdrawAmount": _s(w), "marginAvailable": True, "updateTime": self.now}]

    def _position_risk(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        rows = []
        for sym in ([p["symbol"]] if p.get("symbol") else self.symbols):
            pos = self.ledger.positions.get(sym)
            if pos is None or pos.amount == 0:
                continue         # v3 lists only symbols with a position or open orders
            mark = self.price(sym)
            im = self._margin(sym)
            rows.append({"symbol": sym, "positionSide": "BOTH", "positionAmt": _s(pos.amount),
                         "entryPrice": _s(pos.entry), "breakEvenPrice": _s(pos.entry),
                         "markPrice": _s(mark), "unRealizedProfit": _s(self._upnl(sym)),
                         "liquidationPrice": "0", "isolatedMargin": _s(im) if self.margin_type[sym] == "ISOLATED" else "0",
                         "notional": _s(pos.amount * mark), "marginAsset": "USDT",
                         "isolatedWallet": _s(im), "initialMargin": _s(im), "maintMargin": "0",
                         "positionInitialMargin": _s(im), "openOrderInitialMargin": "0",
                         "adl": 0, "bidNotional": "0", "askNotional": "0", "updateTime": self.now})
        return 200, rows

    def _set_leverage(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        sym = self._sym(p)
        if sym is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        self.leverage[sym] = int(p["leverage"])
        return 200, {"leverage": self.leverage[sym], "maxNotionalValue": "1000000", "symbol": sym}

    def _set_margin_type(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        sym = self._sym(p)
        if sym is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        want = p.get("marginType")
        if self.margin_type[sym] == want:
            return 400, {"code": -4046, "msg": "No need to change margin type."}
        self.margin_type[sym] = str(want)
        return 200, {"code": 200, "msg": "success"}

    def _set_dual(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        want = p.get("dualSidePosition") == "true"
        if want == self.dual_side:
            return 400, {"code": -4059, "msg": "No need to change position side."}
        self.dual_side = want
        return 200, {"code": 200, "msg": "success"}

    def _symbol_config(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        syms = [p["symbol"]] if p.get("symbol") else list(self.symbols)
        return 200, [{"symbol": s, "marginType": self.margin_type.get(s, "CROSSED"),
                      "isAutoAddMargin": "false", "leverage": self.leverage.get(s, 20),
                      "maxNotionalValue": "1000000"} for s in syms]

    def _new_order_row(self, p: dict, f: Fault | None) -> dict | tuple[int, Any]:
        sym = str(p["symbol"])
        side, type_ = p["side"], p["type"]
        qty = float(p["quantity"])
        reduce_only = p.get("reduceOnly") == "true"
        tif = p.get("timeInForce")
        limit = float(p.get("price") or 0)
        price = self.price(sym)
        pos = self.ledger.positions.setdefault(sym, _Position())
        sign = 1.0 if side == "BUY" else -1.0
        if reduce_only:
            if pos.amount == 0 or pos.amount * sign > 0:
                return 400, {"code": -2022, "msg": "ReduceOnly Order is rejected."}
            qty = min(qty, abs(pos.amount))
        else:
            if pos.amount == 0 and any(a["symbol"] == sym and a["algoStatus"] == "NEW"
                                       for a in self.ledger.algos.values()):
                self.stale_stops_at_entry += 1     # an old reduce-only stop could close the new one
            need = qty * price / self.leverage[sym]
            _, acct = self._account({}, None)
            if need > float(acct["availableBalance"]):
                return 400, {"code": -2019, "msg": "Margin is insufficient."}
        crosses = type_ == "MARKET" or (limit >= price if side == "BUY" else limit <= price)
        if tif == "GTX" and crosses:
            return 400, {"code": -5022, "msg": "Due to the order could not be executed as maker, "
                                               "the Post Only order will be rejected."}
        oid = self._id()
        od = self._order_row(oid, sym, side, type_, p.get("newClientOrderId", ""), float(p["quantity"]),
                             limit, tif if type_ == "LIMIT" else None, reduce_only, self.now)
        self.ledger.orders[oid] = od
        if crosses:
            fill = qty
            if f is not None and f.kind == "partial_ioc" and tif == "IOC":
                fill = self._floor(qty * f.fraction)
            self._fill(od, fill, price, False, self.now)
            if tif == "IOC" and od["status"] != "FILLED":
                od["status"] = "EXPIRED"
        elif tif == "IOC":
            od["status"] = "EXPIRED"
        return od

    def new_order(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        sym = self._sym(p)
        if sym is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        cid = p.get("newClientOrderId", "")
        if any(o["clientOrderId"] == cid for o in self.ledger.orders.values()) or cid in self.hidden:
            return 400, {"code": -4116, "msg": "ClientOrderId is duplicated."}
        od = self._new_order_row(p, f)
        if isinstance(od, tuple):
            return od
        reply = dict(od)
        if f is not None and f.kind == "no_avgprice":
            reply.pop("avgPrice", None)
            reply.pop("cumQuote", None)
        return 200, reply

    def _find_order(self, p: dict) -> dict | None:
        oid, cid = p.get("orderId"), p.get("origClientOrderId")
        if cid in self.hidden:
            return None
        for o in self.ledger.orders.values():
            if (oid and str(o["orderId"]) == oid) or (cid and o["clientOrderId"] == cid):
                return o
        return None

    def _query_order(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        o = self._find_order(p)
        if o is None:
            return 400, {"code": -2013, "msg": "Order does not exist."}
        return 200, o

    def _cancel_order(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        o = self._find_order(p)
        if o is None or o["status"] not in ("NEW", "PARTIALLY_FILLED"):
            return 400, {"code": -2011, "msg": "Unknown order sent."}
        o.update(status="CANCELED", updateTime=self.now)
        return 200, {k: v for k, v in o.items() if k != "avgPrice"}

    def _open_orders(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        return 200, [o for o in self.ledger.orders.values()
                     if o["status"] in ("NEW", "PARTIALLY_FILLED")
                     and (not p.get("symbol") or o["symbol"] == p["symbol"])]

    def _user_trades(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        rows = [t for t in self.ledger.trades if t["symbol"] == p.get("symbol")]
        if p.get("orderId"):
            rows = [t for t in rows if str(t["orderId"]) == p["orderId"]]
        start, end = p.get("startTime"), p.get("endTime")
        if start and not end:
            end = str(int(start) + 7 * 86_400_000)
        if start:
            rows = [t for t in rows if t["time"] >= int(start)]
        if end:
            rows = [t for t in rows if t["time"] <= int(end)]
        return 200, rows[: int(p.get("limit") or 500)]

    def _new_algo(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        sym = self._sym(p)
        if sym is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        cid = p.get("clientAlgoId", "")
        if any(a["clientAlgoId"] == cid for a in self.ledger.algos.values()):
            return 400, {"code": -4116, "msg": "ClientOrderId is duplicated."}
        trig, price = float(p["triggerPrice"]), self.price(sym)
        if (price <= trig) if _on_fall({"side": p["side"], "orderType": p["type"]}) else (price >= trig):
            return 400, {"code": -2021, "msg": "Order would immediately trigger."}
        aid = self._id()
        a = {"algoId": aid, "clientAlgoId": cid, "algoType": "CONDITIONAL", "orderType": p["type"],
             "symbol": sym, "side": p["side"], "positionSide": "BOTH", "timeInForce": "GTC",
             "quantity": p.get("quantity", "0"), "algoStatus": "NEW", "triggerPrice": p["triggerPrice"],
             "price": "0", "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
             "workingType": p.get("workingType", "CONTRACT_PRICE"), "priceMatch": "NONE",
             "closePosition": p.get("closePosition") == "true", "priceProtect": False,
             "reduceOnly": p.get("reduceOnly") == "true", "activatePrice": "", "callbackRate": "",
             "createTime": self.now, "updateTime": self.now, "triggerTime": 0, "goodTillDate": 0}
        self.ledger.algos[aid] = a
        return 200, a

    def _find_algo(self, p: dict) -> dict | None:
        aid, cid = p.get("algoId"), p.get("clientAlgoId")
        for a in self.ledger.algos.values():
            if (aid and str(a["algoId"]) == aid) or (cid and a["clientAlgoId"] == cid):
                return a
        return None

    def _query_algo(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        a = self._find_algo(p)
        if a is None:
            return 400, {"code": -2013, "msg": "Order does not exist."}
        return 200, a

    def _cancel_algo(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        a = self._find_algo(p)
        if a is None or a["algoStatus"] != "NEW":
            return 400, {"code": -2011, "msg": "Unknown order sent."}
        a.update(algoStatus="CANCELED", updateTime=self.now)
        return 200, {"algoId": a["algoId"], "clientAlgoId": a["clientAlgoId"], "code": "200",
                     "msg": "success"}

    def _open_algos(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        return 200, [a for a in self.ledger.algos.values() if a["algoStatus"] == "NEW"
                     and (not p.get("symbol") or a["symbol"] == p["symbol"])]

    def _income_history(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        rows = self.ledger.income
        if p.get("symbol"):
            rows = [r for r in rows if r["symbol"] == p["symbol"]]
        if p.get("incomeType"):
            rows = [r for r in rows if r["incomeType"] == p["incomeType"]]
        if p.get("startTime"):
            rows = [r for r in rows if r["time"] >= int(p["startTime"])]
        if p.get("endTime"):
            rows = [r for r in rows if r["time"] <= int(p["endTime"])]
        return 200, rows[: int(p.get("limit") or 100)]

    # ------------------------------------------------------------------ test actions
    def add_foreign_stop(self, symbol: str, side: str, trigger: float, qty: float) -> dict:
        """A reduce-only STOP_MARKET someone else placed (the trader in the app, an old run)."""
        _, a = self._new_algo({"symbol": symbol, "side": side, "type": "STOP_MARKET",
                               "triggerPrice": _s(trigger), "quantity": _s(qty), "reduceOnly": "true",
                               "clientAlgoId": f"web_{self._id()}", "workingType": "MARK_PRICE"}, None)
        return a

    # ------------------------------------------------------------------ test views
    def funding_total(self) -> float:
        return sum(float(r["income"]) for r in self.ledger.income if r["incomeType"] == "FUNDING_FEE")

    def entry_orders(self) -> list[dict]:
        """Filled (or partly filled) orders that opened or added to a position."""
        return [o for o in self.ledger.orders.values() if not o["reduceOnly"]
                and float(o["executedQty"]) > 0]
