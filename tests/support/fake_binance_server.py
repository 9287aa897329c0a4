"""A fake Binance USDⓈ-M futures server on loopback, for driving the real client and agent.

A real HTTP server (stdlib `http.server` in a thread) on 127.0.0.1 answering the endpoints the
client and `BinanceExchange` use, in the shapes of Binance's official docs, over its own ledger
(tests/support/fake_binance_exchange.py: wallet, one-way position per symbol, orders,
conditional (algo) stops that trigger on the market's bars, fills with commission, funding,
the income history). This module is the transport: signatures, faults, kill hooks and the
protection watch.

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
the next `delay` requests, as a new order Binance does not show at once), 429 / 418 with
Retry-After, -1021, -2019, partial_ioc (an IOC fills `fraction` of its size), reject (400 with `code`/`msg`), no_avgprice (the reply lacks avgPrice
and cumQuote; GET answers have them), cancel_unknown (a DELETE answers -2011 but the order
stays). `injected` counts what was injected, per kind.

Kill hooks (`KillHook`): when a matching request arrives ("before" processing), was processed
("after", no reply is sent), or on the first request after a matching one was answered
("next"), the server calls `callback` (a test SIGKILLs the agent's process there) and drops the
connection (with drop=False the request goes on: a callback that changes the exchange). That
is how a kill lands at an exact point of the entry sequence.

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
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.fake_binance_exchange import EIGHT_HOURS, Bar, FakeExchange, Ledger

API_KEY = "fake-test-key-0123456789"
API_SECRET = "fake-test-secret-9876543210"
FAULT_KINDS = ("timeout_before", "timeout_after", "5xx_before", "5xx_after", "late", "429", "418",
               "-1021", "-2019", "partial_ioc", "reject", "no_avgprice", "cancel_unknown")
__all__ = ["API_KEY", "API_SECRET", "Bar", "Fault", "FakeBinanceServer", "KillHook"]


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


class FakeBinanceServer:
    """See the module doc. Use as a context manager or call start()/stop()."""

    def __init__(self, price_at: Callable[[int], float],
                 bars_between: Callable[[int, int], Iterable[Bar]] | None = None, *,
                 balance: float = 10_000.0, taker_fee: float = 0.0005, maker_fee: float = 0.0002,
                 funding_rate: float = 0.0001, funding_interval_ms: int = EIGHT_HOURS,
                 start_ms: int = 0, client_timeout: float = 1.0, cycle_ms: int = 60_000,
                 faults: list[Fault] | None = None, hooks: list[KillHook] | None = None,
                 symbols: Iterable[str] = ("BTCUSDT",)) -> None:
        self.exchange = FakeExchange(price_at, bars_between, balance=balance, taker_fee=taker_fee,
                                     maker_fee=maker_fee, funding_rate=funding_rate,
                                     funding_interval_ms=funding_interval_ms, start_ms=start_ms,
                                     symbols=symbols)
        self.client_timeout = client_timeout
        self.faults = list(faults or [])
        self.hooks = list(hooks or [])
        self.injected: dict[str, int] = {}
        self.requests: list[str] = []             # "METHOD /path" of every request
        self.cycle_ms = int(cycle_ms)
        self.max_unprotected = 0                  # longest a position went without its stop (ms)
        self.stop_missing = 0                     # boundaries crossed more than a cycle unprotected
        self.unprotected_events: list[tuple[int, str]] = []    # (time_ms, symbol)
        self._unprotected_since: dict[str, int] = {}           # symbol -> world time
        self._late: list[tuple[int, dict]] = []   # (requests to go, params) of late orders
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
            status, payload = self.exchange.route(endpoint, params, fault)
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
            self.exchange.new_order(params, None)
            self._late.append((fault.delay, dict(params)))
            self.exchange.hidden.add(params.get("newClientOrderId", ""))
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
                self.exchange.hidden.discard(params.get("newClientOrderId", ""))
            else:
                still.append((left - 1, params))
        self._late = still

    # ------------------------------------------------------------------ time and protection
    def _advance(self, ts: int) -> None:
        """The world's time moved to `ts`: the protection watch, then the exchange moves on."""
        if ts <= self.exchange.now:
            return
        self._watch_protection(ts)
        self.exchange.advance(ts)
        self._note_protection()

    def _note_protection(self) -> None:
        """After every request: since when has each open position been without its stop?"""
        for sym, pos in self.exchange.ledger.positions.items():
            if pos.amount == 0 or self.exchange.protected(sym):
                self._unprotected_since.pop(sym, None)
            else:
                self._unprotected_since.setdefault(sym, self.exchange.now)

    def _watch_protection(self, ts: int) -> None:
        """The world's time moves from `now` to `ts` (the agent's next cycle)."""
        self._note_protection()
        for sym, since in self._unprotected_since.items():
            self.unprotected_events.append((self.exchange.now, sym))
            self.max_unprotected = max(self.max_unprotected, ts - since)
            if ts - since > self.cycle_ms:
                self.stop_missing += 1

    # ------------------------------------------------------------------ the ledger, for tests
    @property
    def ledger(self) -> Ledger:
        return self.exchange.ledger

    @property
    def start_balance(self) -> float:
        return self.exchange.start_balance

    @property
    def duplicate_entries(self) -> int:
        return self.exchange.duplicate_entries

    @property
    def stale_stops_at_entry(self) -> int:
        return self.exchange.stale_stops_at_entry

    def protected(self, symbol: str) -> bool:
        return self.exchange.protected(symbol)

    def funding_total(self) -> float:
        return self.exchange.funding_total()

    def entry_orders(self) -> list[dict]:
        return self.exchange.entry_orders()

    def add_foreign_stop(self, symbol: str, side: str, trigger: float, qty: float) -> dict:
        with self._lock:
            return self.exchange.add_foreign_stop(symbol, side, trigger, qty)
