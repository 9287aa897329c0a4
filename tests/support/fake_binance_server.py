"""A fake Binance USDⓈ-M futures server on loopback, for driving the real client and agent.

A real HTTP server (stdlib `http.server` in a thread) on 127.0.0.1 answering the endpoints the
client and `BinanceExchange` use, in the shapes of Binance's official docs, with its own ledger:
wallet, one-way position per symbol, orders, conditional (algo) stops that trigger on the
market's bars, fills with commission, funding every 8 hours, and the income history.

Time: the server has no clock of its own. It takes the world's time from the `timestamp` of the
signed requests (the agent runs on a ManualClock and signs with it), so fills and funding carry
the agent's own times whether the agent runs in this process or in a child process. The price
at a time comes from `price_at(ms)` and the 1m bars from `bars_between(from, to)` (both given
by the test: usually the same candles the agent's market port replays), so the exchange and the
agent see one market.

Faults (`Fault`): a rule matches requests by "METHOD /path" (and optionally a predicate on the
parameters), lets `skip` matching requests pass, then injects its `kind` on the next `count`:
timeout_before / timeout_after (hang past the client's timeout, before or after processing),
5xx_before / 5xx_after, late (-1007: the order executes, but order lookups answer -2013 for
the next `delay` requests, as a new order Binance does not show at once), 429 / 418 with Retry-After, -1021, -2019, partial_ioc (an IOC fills
`fraction` of its size), reject (400 with `code`/`msg`), no_avgprice (the reply lacks avgPrice
and cumQuote; GET answers have them), cancel_unknown (a DELETE answers -2011 but the order
stays). `injected` counts what was injected, per kind.

Kill hooks (`KillHook`): when a matching request arrives ("before" processing), was processed
("after", no reply is sent), or on the first request after a matching one was answered
("next"), the server calls `callback` (a test SIGKILLs the agent's process there) and drops the
connection (with drop=False the request goes on: a callback that changes the exchange). That is how a kill lands at an exact point of the entry sequence.

Protection watch: after every request the server notes since when each open position has been
without a reduce-only stop for its whole size on the close side, and every time the world's
time moves on (a new timestamp: the agent's next cycle) it records a position still without
one (`unprotected_events`; `max_unprotected`: the longest such time in ms). `stop_missing`
counts the boundaries at which a position had gone without its stop for more than `cycle_ms`
(one agent cycle): time is measured, not requests, so an agent that sends nothing (blocked by
a rate limit) is not excused.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.exchange_info import EXCHANGE_INFO

API_KEY = "fake-test-key-0123456789"
API_SECRET = "fake-test-secret-9876543210"
EIGHT_HOURS = 8 * 3_600_000
FAULT_KINDS = ("timeout_before", "timeout_after", "5xx_before", "5xx_after", "late", "429", "418",
               "-1021", "-2019", "partial_ioc", "reject", "no_avgprice", "cancel_unknown")
Bar = tuple[int, float, float, float, float]      # open_time_ms, open, high, low, close


@dataclass
class Fault:
    endpoint: str                       # "POST /fapi/v1/order"
    kind: str
    count: int = 1
    skip: int = 0                       # matching requests let through first
    when: Callable[[dict], bool] | None = None    # predicate on the request's parameters
    code: int = -4131
    msg: str = "The counterparty's best price does not meet the PERCENT_PRICE filter limit."
    retry_after: int = 30               # seconds (429/418)
    fraction: float = 0.4               # partial_ioc
    delay: int = 3                      # late: requests until the order executes
    hang: float = 0.0                   # timeouts: seconds (default: client timeout + 0.3)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind: must be one of {FAULT_KINDS}, got {self.kind!r}")


@dataclass
class KillHook:
    endpoint: str
    phase: str                          # before | after | next
    callback: Callable[[], None]
    when: Callable[[dict], bool] | None = None
    nth: int = 1                        # fire on the nth matching request
    drop: bool = True                   # False: after the callback the request goes on
    fired: bool = False
    _seen: int = 0
    _armed_next: bool = False


class _Drop(Exception):
    """Close the connection without an answer (timeout fault, kill hook)."""


@dataclass
class _Position:
    amount: float = 0.0
    entry: float = 0.0
    unprotected_since: int | None = None     # world time it was first seen without its stop


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


class FakeBinanceServer:
    """See the module doc. Use as a context manager or call start()/stop()."""

    def __init__(self, price_at: Callable[[int], float],
                 bars_between: Callable[[int, int], Iterable[Bar]] | None = None, *,
                 balance: float = 10_000.0, taker_fee: float = 0.0005, maker_fee: float = 0.0002,
                 funding_rate: float = 0.0001, funding_interval_ms: int = EIGHT_HOURS,
                 start_ms: int = 0, client_timeout: float = 1.0, cycle_ms: int = 60_000,
                 faults: list[Fault] | None = None, hooks: list[KillHook] | None = None,
                 symbols: Iterable[str] = ("BTCUSDT",)) -> None:
        self.price_at = price_at
        self.bars_between = bars_between or (lambda a, b: ())
        self.taker_fee, self.maker_fee, self.funding_rate = taker_fee, maker_fee, funding_rate
        self.client_timeout = client_timeout
        self.faults = list(faults or [])
        self.hooks = list(hooks or [])
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
        self.injected: dict[str, int] = {}
        self.requests: list[str] = []             # "METHOD /path" of every request
        self.duplicate_entries = 0                # entry fills added to an open position
        self.stale_stops_at_entry = 0             # entries sent while flat with a stop still live
        self.cycle_ms = int(cycle_ms)
        self.max_unprotected = 0                  # longest a position went without its stop (ms)
        self.stop_missing = 0                     # boundaries crossed more than a cycle unprotected
        self.unprotected_events: list[tuple[int, str]] = []    # (time_ms, symbol)
        self._late: list[tuple[int, dict]] = []   # (requests to go, params) of late orders
        self._hidden: set[str] = set()            # client ids of late orders lookups cannot see
        self._next_id = 8_000_000
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeBinanceServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True     # one answer = one write: no 40 ms delayed ACKs
            wbufsize = -1

            def log_message(self, *args: Any) -> None:    # quiet
                pass

            def _any(self) -> None:
                server._serve(self)

            do_GET = do_POST = do_DELETE = do_PUT = _any

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-binance",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> FakeBinanceServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ transport
    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length).decode() if length else ""
        query = parts.query or body
        params = dict(parse_qsl(query, keep_blank_values=True))
        endpoint = f"{h.command} {parts.path}"
        try:
            status, payload, headers = self._handle(endpoint, query, params, h.headers)
        except _Drop:
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass
            return
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, endpoint: str, query: str, params: dict, hdrs: Any) -> tuple[int, Any, dict]:
        with self._lock:
            self.requests.append(endpoint)
            self._fire_next_hooks()
            signed = "signature" in params
            if signed:
                err = self._check_signature(query, params, hdrs)
                if err is not None:
                    return err
                self._advance(int(params["timestamp"]))
            self._tick_late()
            hook_before = self._hook(endpoint, params, "before")
            if hook_before is not None:
                hook_before.callback()
                if hook_before.drop:
                    raise _Drop()
            fault = self._fault(endpoint, params)
        kind = fault.kind if fault is not None else None
        if kind == "timeout_before":
            time.sleep(fault.hang or self.client_timeout + 0.3)
            raise _Drop()
        with self._lock:
            pre = self._pre_fault(fault, endpoint, params)
            if pre is not None:
                return pre
            status, payload = self._route(endpoint, params, fault)
            self._note_protection()
            hook_after = self._hook(endpoint, params, "after")
            if hook_after is not None:
                hook_after.callback()
                if hook_after.drop:
                    raise _Drop()
            self._arm_next_hooks(endpoint, params)
        if kind == "timeout_after":
            time.sleep(fault.hang or self.client_timeout + 0.3)
            raise _Drop()
        if kind == "5xx_after":
            return 503, {"code": -1001, "msg": "Internal error; unable to process your request. "
                                               "Please try again."}, {}
        return status, payload, {"X-MBX-USED-WEIGHT-1M": "10"}

    def _pre_fault(self, fault: Fault | None, endpoint: str, params: dict) -> tuple[int, Any, dict] | None:
        """Faults answered without processing the request."""
        if fault is None:
            return None
        k = fault.kind
        if k == "5xx_before":
            return 503, {"code": -1001, "msg": "Internal error; unable to process your request. "
                                               "Please try again."}, {}
        if k in ("429", "418"):
            msg = ("Too many requests; current limit of IP is 2400 requests per minute."
                   if k == "429" else "Way too many requests; IP banned until later.")
            return int(k), {"code": -1003, "msg": msg}, {"Retry-After": str(fault.retry_after)}
        if k == "-1021":
            return 400, {"code": -1021, "msg": "Timestamp for this request is outside of the "
                                               "recvWindow."}, {}
        if k == "-2019":
            return 400, {"code": -2019, "msg": "Margin is insufficient."}, {}
        if k == "reject":
            return 400, {"code": fault.code, "msg": fault.msg}, {}
        if k == "cancel_unknown":
            return 400, {"code": -2011, "msg": "Unknown order sent."}, {}
        if k == "late" and endpoint == "POST /fapi/v1/order":
            self._new_order(params, None)
            self._late.append((fault.delay, dict(params)))
            self._hidden.add(params.get("newClientOrderId", ""))
            return 503, {"code": -1007, "msg": "Timeout waiting for response from backend server. "
                                               "Send status unknown; execution status unknown."}, {}
        return None

    def _check_signature(self, query: str, params: dict, hdrs: Any) -> tuple[int, Any, dict] | None:
        if hdrs.get("X-MBX-APIKEY") != API_KEY:
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}, {}
        unsigned, _, sig = query.rpartition("&signature=")
        want = hmac.new(API_SECRET.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig, want):
            return 400, {"code": -1022, "msg": "Signature for this request is not valid."}, {}
        if "timestamp" not in params:
            return 400, {"code": -1102, "msg": "Mandatory parameter 'timestamp' was not sent."}, {}
        return None

    # ------------------------------------------------------------------ faults and hooks
    def _fault(self, endpoint: str, params: dict) -> Fault | None:
        for f in self.faults:
            if f.count <= 0 or f.endpoint != endpoint or (f.when is not None and not f.when(params)):
                continue
            if f.skip > 0:
                f.skip -= 1
                continue
            f.count -= 1
            self.injected[f.kind] = self.injected.get(f.kind, 0) + 1
            return f
        return None

    def _hook(self, endpoint: str, params: dict, phase: str) -> KillHook | None:
        for k in self.hooks:
            if k.fired or k.phase != phase or k.endpoint != endpoint:
                continue
            if k.when is not None and not k.when(params):
                continue
            k._seen += 1
            if k._seen == k.nth:
                k.fired = True
                return k
        return None

    def _arm_next_hooks(self, endpoint: str, params: dict) -> None:
        for k in self.hooks:
            if not k.fired and k.phase == "next" and k.endpoint == endpoint and (
                    k.when is None or k.when(params)):
                k._seen += 1
                if k._seen == k.nth:
                    k._armed_next = True

    def _fire_next_hooks(self) -> None:
        for k in self.hooks:
            if k._armed_next and not k.fired:
                k.fired = True
                k.callback()
                raise _Drop()

    def _tick_late(self) -> None:
        still = []
        for left, params in self._late:
            if left <= 1:
                self._hidden.discard(params.get("newClientOrderId", ""))
            else:
                still.append((left - 1, params))
        self._late = still

    # ------------------------------------------------------------------ time and market
    def _advance(self, ts: int) -> None:
        """The world's time moved to `ts`: apply the bars closed since, funding, protection watch."""
        if ts <= self.now:
            return
        self._watch_protection(ts)
        for bar in self.bars_between(self._bars_done, ts):
            self._fund_until(bar[0])            # funding and bars in the order they happened
            self._on_bar(bar)
        self._bars_done = max(self._bars_done, ts - ts % 60_000)
        self._fund_until(ts)
        self.now = ts
        self._trigger_stops(self.price(), None)
        self._note_protection()

    def price(self, symbol: str = "") -> float:
        return float(self.price_at(self.now))

    def _note_protection(self) -> None:
        """After every request: since when has each open position been without its stop?"""
        for sym, pos in self.ledger.positions.items():
            if pos.amount == 0 or self.protected(sym):
                pos.unprotected_since = None
            elif pos.unprotected_since is None:
                pos.unprotected_since = self.now

    def _watch_protection(self, ts: int) -> None:
        """The world's time moves from `now` to `ts` (the agent's next cycle)."""
        self._note_protection()
        for sym, pos in self.ledger.positions.items():
            if pos.unprotected_since is None:
                continue
            self.unprotected_events.append((self.now, sym))
            self.max_unprotected = max(self.max_unprotected, ts - pos.unprotected_since)
            if ts - pos.unprotected_since > self.cycle_ms:
                self.stop_missing += 1

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
            if a["side"] == "SELL" and lo <= trig:
                self._trigger(a, min(trig, o), t + 59_999)
            elif a["side"] == "BUY" and h >= trig:
                self._trigger(a, max(trig, o), t + 59_999)

    def _trigger_stops(self, price: float, at: int | None) -> None:
        for a in list(self.ledger.algos.values()):
            if a["algoStatus"] != "NEW":
                continue
            trig = float(a["triggerPrice"])
            if (a["side"] == "SELL" and price <= trig) or (a["side"] == "BUY" and price >= trig):
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
    def _route(self, endpoint: str, p: dict, fault: Fault | None) -> tuple[int, Any]:
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
            "POST /fapi/v1/order": self._new_order,
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

    def _new_order(self, p: dict, f: Fault | None) -> tuple[int, Any]:
        sym = self._sym(p)
        if sym is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        cid = p.get("newClientOrderId", "")
        if any(o["clientOrderId"] == cid for o in self.ledger.orders.values()) or cid in self._hidden:
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
        if cid in self._hidden:
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
        if (p["side"] == "SELL" and price <= trig) or (p["side"] == "BUY" and price >= trig):
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
