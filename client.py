"""Binance USDⓈ-M futures REST client (public market data + signed trading).

Why it is built the way it is:
- One code path (`_request`) owns signing, timeouts, retries, rate-limit blocks and error
  mapping, so every endpoint behaves the same under failure.
- GETs are idempotent and retried with backoff; order POSTs are NEVER blindly re-sent. Every
  order carries a client id. A request that never left (connect timeout, connection refused,
  DNS: requests' ConnectTimeout / urllib3's NewConnectionError) is a plain `NetworkError`: it
  cannot have reached Binance. Once the request was sent, its outcome is unknown on a read
  timeout, a dropped connection (RemoteDisconnected, reset), a 5xx, -1006 or -1007; we look the
  id up: found → return it; not found (-2013) or the lookup failed → `UnknownOrderStatus`
  (Binance may show a new order late: one lookup a second later proves nothing). A cancel of
  unknown outcome is `UnknownOrderStatus` too: cancel again, or look the order up. This is
  what keeps a flaky network from doubling a position.
- Numbers are handled as Decimal and sent as plain strings, so float noise (0.1+0.2) never
  reaches Binance as a -1111 precision reject.
- Secrets live in `_Secret` wrappers whose repr is redacted; messages never include them.
- Rate limits are per kind of call (`call_kind`). Binance counts IP weight on reads; new orders
  and algo orders carry none (they count against the account's order limits). So a 429 on a
  read blocks only weighted reads until Retry-After, a 429 on an order endpoint (order-count
  limit) blocks only new position-opening orders, and only a 418 (IP ban) blocks everything:
  stops, reduce-only closes and cancels keep going through a 429. Before Binance has to say
  no, weighted reads are throttled from X-MBX-USED-WEIGHT-1M against exchangeInfo's
  REQUEST_WEIGHT limit (docs/configuration.md "Rate limits").
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3

from rl.errors import AuthError, BinanceError, NetworkError, OrderRejected, RateLimitError, UnknownOrderStatus

log = logging.getLogger(__name__)

CLIENT_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
AUTH_CODES = frozenset({-2014, -2015, -2008, -1022})
TOO_MANY_REQUESTS = -1003   # IP request weight exceeded
TOO_MANY_ORDERS = -1015     # account order-count limit exceeded
NOT_FOUND = -2013           # "Order does not exist." → the order was never placed
UNKNOWN_STATUS = -1007      # backend timeout: send status unknown
UNEXPECTED_RESP = -1006     # "unexpected response from the message bus. Execution status unknown."
UNKNOWN_CODES = frozenset({UNKNOWN_STATUS, UNEXPECTED_RESP})
CLOCK_SKEW = -1021          # timestamp outside recvWindow
MARGIN_NO_CHANGE = -4046    # "No need to change margin type." → already as asked
KLINES_MAX = 1500
DEFAULT_WEIGHT_LIMIT = 2400     # REQUEST_WEIGHT per minute on mainnet (exchangeInfo.rateLimits)
ORDER_PATHS = frozenset({"/fapi/v1/order", "/fapi/v1/algoOrder", "/fapi/v1/batchOrders",
                         "/fapi/v1/allOpenOrders", "/fapi/v1/algoOpenOrders"})
# IP weight of the reads this client sends (Binance's docs); any other path weighs 1.
_WEIGHTS = {"/fapi/v3/account": 5, "/fapi/v3/balance": 5, "/fapi/v3/positionRisk": 5,
            "/fapi/v1/userTrades": 5, "/fapi/v1/commissionRate": 20, "/fapi/v1/symbolConfig": 5,
            "/fapi/v1/positionSide/dual": 30, "/fapi/v1/multiAssetsMargin": 30}
_WEIGHT_WITHOUT_SYMBOL = {"/fapi/v1/openOrders": 40, "/fapi/v1/openAlgoOrders": 40,
                          "/fapi/v2/ticker/price": 2}
FILTER_CODES = frozenset({-1111, -4014, -4023})   # precision / tick / step rejects: filters changed?
FILTERS_MAX_AGE_S = 3600.0                         # exchangeInfo is re-read at least hourly
ALGO_TYPES = frozenset({"STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT",
                        "TRAILING_STOP_MARKET"})


# ----------------------------------------------------------------------------- errors
# The public error classes live in rl.errors (imported above); this one never leaves the module.
class _OutcomeUnknown(NetworkError):
    """Internal: an order request may or may not have reached the matching engine."""


# ----------------------------------------------------------------------------- helpers
class _Secret:
    """Holds a credential; its repr/str never shows the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


def sign(query_string: str, secret: str) -> str:
    """HMAC-SHA256 of the exact query string with the API secret, lowercase hex."""
    return hmac.new(secret.encode(), query_string.encode(), hashlib.sha256).hexdigest()


def new_client_order_id(prefix: str = "ag") -> str:
    """A fresh id matching Binance's rule ^[.A-Z:/a-z0-9_-]{1,36}$ (prefix + '-' + random hex)."""
    room = 36 - len(prefix) - 1
    if room < 16 or not CLIENT_ID_RE.match(prefix + "-"):
        raise ValueError(f"prefix: must be at most 19 chars of [.A-Z:/a-z0-9_-], got {prefix!r}")
    return f"{prefix}-{uuid.uuid4().hex[:room]}"


# `BinanceClient.new_order(new_client_order_id=...)` shadows the function inside that method;
# this alias keeps the generator reachable there.
new_client_order_id_default = new_client_order_id


def _check_client_id(field: str, value: str) -> str:
    if not isinstance(value, str) or not CLIENT_ID_RE.match(value):
        raise ValueError(f"{field}: must match ^[.A-Z:/a-z0-9_-]{{1,36}}$, got {value!r}")
    return value


def _dec(value: float | int | str | Decimal, field: str = "value") -> Decimal:
    """Decimal from user input; floats go through 15 significant digits to drop binary noise."""
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, float):
            d = Decimal(format(value, ".15g"))
        else:
            d = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"{field}: must be a number, got {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"{field}: must be finite, got {value!r}")
    return d


def _plain(d: Decimal) -> str:
    """Decimal → plain string, no exponent, no trailing zeros ('1E+1' → '10', '0.10' → '0.1')."""
    s = format(d.normalize(), "f")
    return "0" if s in ("-0", "") else s


def _fmt(value: Any, field: str) -> str:
    """Format one request parameter the way Binance expects it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (float, Decimal)):
        return _plain(_dec(value, field))
    return str(value)


def _flag(body: Any, field: str) -> bool:
    """A boolean field of a Binance answer; anything else is an error naming the field."""
    value = body.get(field) if isinstance(body, dict) else None
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise BinanceError(f"{field}: expected true or false in Binance's answer, got {value!r}")
    return value


def _decimals(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def never_sent(exc: BaseException | None) -> bool:
    """Did this transport error happen before the request left? Only when the connection never
    opened: requests' ConnectTimeout, or urllib3's NewConnectionError (refused, DNS) inside a
    ConnectionError. A read timeout or a connection dropped after sending (RemoteDisconnected,
    reset) is not: the request may have been processed."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    stack, seen = [exc], 0
    while stack and seen < 20:
        e = stack.pop()
        seen += 1
        if e is None:
            continue
        if isinstance(e, urllib3.exceptions.NewConnectionError):
            return True
        reason = getattr(e, "reason", None)
        stack += [a for a in (reason, *getattr(e, "args", ())) if isinstance(a, BaseException)]
        stack.append(e.__cause__)
    return False


# ----------------------------------------------------------------------------- rate limits
READ, ORDER, PROTECTIVE = "read", "order", "protective"


def call_kind(method: str, path: str, params: dict) -> str:
    """What a call is to the rate limits: READ (carries IP weight: market data, account reads,
    settings), ORDER (a new order that may open or add to a position: no IP weight, counts
    against the order limits) or PROTECTIVE (a cancel, a stop or a reduce-only order: what
    keeps a position safe, sent through any 429)."""
    if path not in ORDER_PATHS or method == "GET":
        return READ
    if method == "DELETE":
        return PROTECTIVE           # cancels
    if params.get("reduceOnly") in (True, "true") or params.get("closePosition") in (True, "true"):
        return PROTECTIVE           # stops and closes
    return ORDER


def request_weight(method: str, path: str, params: dict) -> int:
    """The IP weight Binance counts for one call (0 for new orders and algo orders)."""
    if path in ORDER_PATHS and method == "POST":
        return 0
    if path == "/fapi/v1/klines":
        limit = int(params.get("limit") or 500)
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    if path in _WEIGHT_WITHOUT_SYMBOL and params.get("symbol") is None:
        return _WEIGHT_WITHOUT_SYMBOL[path]
    return _WEIGHTS.get(path, 1)


def weight_limit_from(exchange_info: Any) -> int | None:
    """exchangeInfo.rateLimits' REQUEST_WEIGHT per 1 minute, None when it is not there."""
    limits = exchange_info.get("rateLimits") if isinstance(exchange_info, dict) else None
    for r in limits if isinstance(limits, list) else []:
        if (isinstance(r, dict) and r.get("rateLimitType") == "REQUEST_WEIGHT"
                and r.get("interval") == "MINUTE" and str(r.get("intervalNum", 1)) == "1"):
            try:
                limit = int(r["limit"])
            except (KeyError, TypeError, ValueError):
                return None
            return limit if limit > 0 else None
    return None


def _on_grid(value: Decimal, step: Decimal) -> bool:
    """value % step == 0, exactly, whatever their sizes.

    The default 28-digit context raises DivisionImpossible as soon as value / step needs more
    digits (1e28 % 0.001): give the remainder the digits it needs instead.
    """
    with localcontext() as ctx:
        ctx.prec = max(28, value.adjusted() - step.adjusted() + 30)
        return value % step == 0


# ----------------------------------------------------------------------------- filters
@dataclass(frozen=True)
class SymbolFilters:
    """A symbol's exchange filters, with Decimal rounding helpers (inputs/outputs are floats)."""

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step_size: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    price_precision: int
    quantity_precision: int
    # PERCENT_PRICE: a BUY's limit at most mark × up, a SELL's at least mark × down (0 = none)
    multiplier_up: Decimal = Decimal(0)
    multiplier_down: Decimal = Decimal(0)

    def _lot(self, market: bool) -> tuple[Decimal, Decimal, Decimal]:
        if market and self.market_step_size > 0:
            return self.market_step_size, self.market_min_qty, self.market_max_qty
        return self.step_size, self.min_qty, self.max_qty

    def floor_qty(self, qty: float, market: bool = False) -> float:
        """Largest multiple of the step not above qty (never rounds a size up)."""
        q = _dec(qty, "qty")
        if q < 0:
            raise ValueError(f"qty: must be >= 0, got {qty!r}")
        step = self._lot(market)[0]
        return float((q / step).to_integral_value(ROUND_FLOOR) * step)

    def round_price(self, price: float, direction: str = "nearest") -> float:
        """Price on the tick grid: 'nearest' (half up), 'down' or 'up'."""
        modes = {"nearest": ROUND_HALF_UP, "down": ROUND_FLOOR, "up": ROUND_CEILING}
        if direction not in modes:
            raise ValueError(f"direction: must be one of {sorted(modes)}, got {direction!r}")
        p = _dec(price, "price")
        if p <= 0:
            raise ValueError(f"price: must be > 0, got {price!r}")
        return float((p / self.tick_size).to_integral_value(modes[direction]) * self.tick_size)

    def check_notional(self, price: float, qty: float) -> bool:
        """True when price*qty meets MIN_NOTIONAL (exact Decimal arithmetic)."""
        return _dec(price, "price") * _dec(qty, "qty") >= self.min_notional

    def validate(self, price: float | None, qty: float, market: bool = False) -> None:
        """Reject locally what Binance would reject, with Binance's own code and msg.

        For market orders `price` is optional and only used for the notional check.
        """
        q = _dec(qty, "qty")            # finite, or a ValueError naming the field
        step, lo, hi = self._lot(market)
        if _decimals(q) > self.quantity_precision:
            raise OrderRejected("Precision is over the maximum defined for this asset.", -1111)
        p = None if price is None else _dec(price, "price")
        if p is not None and not market:
            if _decimals(p) > self.price_precision:
                raise OrderRejected("Precision is over the maximum defined for this asset.",
                                    -1111)
            if p <= 0 or not _on_grid(p, self.tick_size):
                raise OrderRejected("Price not increased by tick size.", -4014)
        if q <= 0:
            raise OrderRejected("Quantity less than or equal to zero.", -4003)
        # the bound before the grid: an absurd size is "too large", and is never divided
        if hi > 0 and q > hi:
            raise OrderRejected("Quantity greater than maximum quantity.", -4005)
        if not _on_grid(q, step):
            raise OrderRejected("Quantity not increased by step size.", -4023)
        if q < lo:
            raise OrderRejected("Quantity less than minimum quantity.", -4004)
        if p is not None and p * q < self.min_notional:
            raise OrderRejected(f"Order's notional must be no smaller than "
                                f"{_plain(self.min_notional)} (unless you choose reduce only).",
                                -4164)


def parse_symbol_filters(exchange_info: dict) -> dict[str, SymbolFilters]:
    """exchangeInfo payload → {symbol: SymbolFilters}. Missing required filters raise ValueError."""
    symbols = exchange_info.get("symbols") if isinstance(exchange_info, dict) else None
    if not isinstance(symbols, list):
        raise ValueError("exchange_info.symbols: must be a list")
    out: dict[str, SymbolFilters] = {}
    for s in symbols:
        name = s.get("symbol")
        f = {x.get("filterType"): x for x in s.get("filters", [])}
        for need in ("PRICE_FILTER", "LOT_SIZE"):
            if need not in f:
                raise ValueError(f"exchange_info.symbols[{name}].filters: {need} is missing")
        pf, lot = f["PRICE_FILTER"], f["LOT_SIZE"]
        mkt = f.get("MARKET_LOT_SIZE", lot)
        pct = f.get("PERCENT_PRICE", {})        # absent: no price band
        tick, step = _dec(pf["tickSize"], "tickSize"), _dec(lot["stepSize"], "stepSize")
        if tick <= 0 or step <= 0:
            raise ValueError(f"exchange_info.symbols[{name}]: tickSize and stepSize must be > 0")
        up = _dec(pct.get("multiplierUp", "0"), "multiplierUp")
        down = _dec(pct.get("multiplierDown", "0"), "multiplierDown")
        if up < 0 or down < 0:
            raise ValueError(f"exchange_info.symbols[{name}].PERCENT_PRICE: multiplierUp and "
                             f"multiplierDown must be >= 0")
        out[name] = SymbolFilters(
            symbol=name, tick_size=tick, step_size=step,
            min_qty=_dec(lot["minQty"], "minQty"), max_qty=_dec(lot["maxQty"], "maxQty"),
            market_step_size=_dec(mkt.get("stepSize", "0"), "stepSize"),
            market_min_qty=_dec(mkt.get("minQty", "0"), "minQty"),
            market_max_qty=_dec(mkt.get("maxQty", "0"), "maxQty"),
            min_notional=_dec(f.get("MIN_NOTIONAL", {}).get("notional", "0"), "notional"),
            price_precision=int(s.get("pricePrecision", _decimals(tick))),
            quantity_precision=int(s.get("quantityPrecision", _decimals(step))),
            multiplier_up=up, multiplier_down=down,
        )
    return out


# ----------------------------------------------------------------------------- client
class BinanceClient:
    """REST client: public data from `market_url`, signed calls (and filters) on `trade_url`."""

    max_retries = 3          # extra attempts for idempotent GETs
    backoff_base = 0.5       # seconds; doubles per retry
    lookup_delay = 1.0       # wait before looking up an order of unknown outcome
    default_retry_after = 60.0
    # The soft throttle: a market read (unsigned) waits once the minute's used weight would pass
    # market_weight_share of the limit, an account read (signed) once it would pass
    # account_weight_share: the last share is left to the reads that keep a stop in place
    # (positions, open stops). Orders carry no IP weight and are never throttled. A wait up to
    # max_throttle_sleep seconds is slept; a longer one is not sent (RateLimitError, retried
    # by the caller's next cycle) so the agent's lock is never held for most of a minute.
    market_weight_share = 0.8
    account_weight_share = 0.95
    max_throttle_sleep = 5.0

    def __init__(self, market_url: str = "https://fapi.binance.com",
                 trade_url: str = "https://demo-fapi.binance.com",
                 api_key: str | None = None, api_secret: str | None = None,
                 timeout: float = 30.0, recv_window: int = 5000,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], float] = time.time):
        if not 0 < recv_window <= 60000:
            raise ValueError(f"recv_window: must be in 1..60000 ms, got {recv_window}")
        if timeout <= 0:
            raise ValueError(f"timeout: must be > 0, got {timeout}")
        self.market_url = market_url.rstrip("/")
        self.trade_url = trade_url.rstrip("/")
        self._key = _Secret(api_key) if api_key else None
        self._secret = _Secret(api_secret) if api_secret else None
        self.timeout = timeout
        self.recv_window = recv_window
        self.session = session or requests.Session()
        self.sleep = sleep
        self.now = now
        self.time_offset_ms = 0          # serverTime - local clock, learned on -1021
        self.used_weight: int | None = None
        self.order_count_10s: int | None = None
        self.order_count_1m: int | None = None
        self.weight_limit = DEFAULT_WEIGHT_LIMIT
        self._weight_minute: int | None = None     # server minute the used_weight belongs to
        self._reads_blocked_until = 0.0            # a 429 on a read
        self._orders_blocked_until = 0.0           # a 429 on an order endpoint (order limits)
        self._all_blocked_until = 0.0              # a 418: the IP is banned
        self._filters: dict[str, SymbolFilters] | None = None
        self._filters_at = 0.0           # when (self.now()) they were read; 0: never / stale
        self._filters_retry_at = 0.0     # after a failed refresh: keep the old ones until then

    def __repr__(self) -> str:
        return (f"BinanceClient(market_url={self.market_url!r}, trade_url={self.trade_url!r}, "
                f"api_key={'<redacted>' if self._key else None}, "
                f"api_secret={'<redacted>' if self._secret else None})")

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, params: dict | None = None, *,
                 signed: bool = False, trade: bool = False, order: bool = False) -> Any:
        """Send one logical call. GETs retry on NetworkError; -1021 resyncs and retries once."""
        retries, resynced = 0, False
        params = params or {}
        kind = call_kind(method, path, params)
        while True:
            try:
                return self._once(method, path, params, signed, trade or signed, order, kind)
            except _OutcomeUnknown:
                raise
            except NetworkError:
                if method != "GET" or retries >= self.max_retries:
                    raise
                self.sleep(self.backoff_base * 2 ** retries)
                retries += 1
            except BinanceError as exc:
                if not (signed and exc.code == CLOCK_SKEW) or resynced:
                    raise
                resynced = True
                self.sync_time()

    def _once(self, method: str, path: str, params: dict, signed: bool, trade: bool,
              order: bool, kind: str = READ) -> Any:
        self._admit(method, path, params, signed, kind)
        pairs = [(k, _fmt(v, k)) for k, v in params.items() if v is not None]
        headers = {}
        if signed:
            if self._key is None or self._secret is None:
                raise AuthError(f"{method} {path} needs api_key and api_secret; none configured")
            pairs += [("recvWindow", str(self.recv_window)),
                      ("timestamp", str(int(self.now() * 1000) + self.time_offset_ms))]
            query = urlencode(pairs)
            query += "&signature=" + sign(query, self._secret.get())
            headers["X-MBX-APIKEY"] = self._key.get()
        else:
            query = urlencode(pairs)
        url = (self.trade_url if trade else self.market_url) + path + ("?" + query if query else "")
        try:
            resp = self.session.request(method, url, headers=headers, timeout=self.timeout)
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
            if never_sent(exc):
                # never connected: the request cannot have reached Binance
                raise NetworkError(f"{method} {path}: not sent ({type(exc).__name__}: the "
                                   f"connection never opened)") from exc
            # sent, then no answer (read timeout, connection dropped): it may have been processed
            cls = _OutcomeUnknown if order else NetworkError
            raise cls(f"{method} {path}: {type(exc).__name__} after sending") from exc
        self._track(resp.headers)
        status = resp.status_code
        try:
            body = resp.json()
        except ValueError:
            body = None
        code, msg = None, ""
        if isinstance(body, dict) and "code" in body:
            try:
                code = int(body["code"])
            except (TypeError, ValueError):
                code = None
            msg = str(body.get("msg", ""))
        log.debug("%s %s -> %s code=%s weight=%s", method, path, status, code, self.used_weight)
        if status in (418, 429):
            retry_after = self._retry_after(resp.headers.get("Retry-After"))
            until = self.now() + retry_after
            if status == 418:
                blocked = "every call"
                self._all_blocked_until = max(self._all_blocked_until, until)
            elif code == TOO_MANY_ORDERS or (code != TOO_MANY_REQUESTS and kind != READ):
                # the account's order limits: new entries wait, protective calls go on
                blocked = "new entry orders"
                self._orders_blocked_until = max(self._orders_blocked_until, until)
            else:       # the IP's request weight: weighted reads wait, orders go on
                blocked = "weighted reads"
                self._reads_blocked_until = max(self._reads_blocked_until, until)
            log.warning("%s %s -> HTTP %s (code %s): %s blocked for %.0f s", method, path,
                        status, code, blocked, retry_after)
            raise RateLimitError(msg or f"HTTP {status} rate limit", code, status, retry_after)
        if code in UNKNOWN_CODES or status >= 500:
            cls = _OutcomeUnknown if order else NetworkError
            raise cls(msg or f"{method} {path}: HTTP {status}", code, status)
        if status >= 400 or (code is not None and code < 0):
            if status == 401 or code in AUTH_CODES:
                raise AuthError(msg or f"HTTP {status}", code, status)
            raise (OrderRejected if order else BinanceError)(msg or f"HTTP {status}", code, status)
        return body

    def _admit(self, method: str, path: str, params: dict, signed: bool, kind: str) -> None:
        """Raise RateLimitError (nothing sent) while a block covers this kind of call; throttle
        a weighted read that would take the minute's used weight past its share."""
        now = self.now()
        blocks = [(self._all_blocked_until, "the IP is banned (418)")]
        if kind == READ:
            blocks.append((self._reads_blocked_until, "weighted reads are rate limited (429)"))
        elif kind == ORDER:
            blocks.append((self._orders_blocked_until, "new orders are rate limited (429)"))
        for until, why in blocks:
            wait = until - now
            if wait > 0:
                raise RateLimitError(f"rate limited: {why}, blocked for {wait:.1f} s more, "
                                     f"{method} {path} not sent", retry_after=wait)
        if kind != READ:
            return
        weight = request_weight(method, path, params)
        used = self._used_this_minute(now)
        share = self.account_weight_share if signed else self.market_weight_share
        if weight <= 0 or used + weight <= share * self.weight_limit:
            return
        server_ms = now * 1000 + self.time_offset_ms
        wait = (60_000 - server_ms % 60_000) / 1000 + 0.05      # Binance resets at each minute
        if wait > self.max_throttle_sleep:
            raise RateLimitError(f"throttled: {used} of {self.weight_limit} request weight used "
                                 f"this minute; {method} {path} (weight {weight}) deferred "
                                 f"{wait:.1f} s, not sent", retry_after=wait)
        log.info("throttled: %s of %s request weight used this minute; %s %s waits %.1f s",
                 used, self.weight_limit, method, path, wait)
        self.sleep(wait)

    def _used_this_minute(self, now: float) -> int:
        """The last X-MBX-USED-WEIGHT-1M seen, if it belongs to the current server minute."""
        if self.used_weight is None or self._weight_minute is None:
            return 0
        minute = int((now * 1000 + self.time_offset_ms) // 60_000)
        return self.used_weight if minute == self._weight_minute else 0

    def _track(self, headers: Any) -> None:
        if headers.get("X-MBX-USED-WEIGHT-1M") is not None:
            self._weight_minute = int((self.now() * 1000 + self.time_offset_ms) // 60_000)
        for name, attr in (("X-MBX-USED-WEIGHT-1M", "used_weight"),
                           ("X-MBX-ORDER-COUNT-10S", "order_count_10s"),
                           ("X-MBX-ORDER-COUNT-1M", "order_count_1m")):
            value = headers.get(name)
            if value is not None:
                try:
                    setattr(self, attr, int(value))
                except ValueError:
                    pass

    def _retry_after(self, header: str | None) -> float:
        try:
            return max(0.0, float(header)) if header is not None else self.default_retry_after
        except ValueError:
            return self.default_retry_after

    def _resolve(self, lookup: Callable[[], dict], client_id: str, cause: Exception) -> dict:
        """Outcome unknown: find the order by its client id, or prove it was never placed."""
        self.sleep(self.lookup_delay)
        try:
            found = lookup()
        except BinanceError as exc:
            if exc.code == NOT_FOUND:
                # not proof that it was never placed: Binance may show a new order late
                raise UnknownOrderStatus(f"order {client_id}: outcome unknown ({cause}); not found "
                                         f"by its id {self.lookup_delay:g} s later",
                                         getattr(cause, "code", None), getattr(cause, "status", None),
                                         client_order_id=client_id) from cause
            raise UnknownOrderStatus(f"order {client_id}: outcome unknown and lookup failed "
                                     f"({exc})", exc.code, exc.status,
                                     client_order_id=client_id) from exc
        log.warning("order %s outcome was unknown (%s); found it on lookup", client_id, cause)
        return found

    # ------------------------------------------------------------------ public
    def server_time(self, trade_host: bool = False) -> int:
        return int(self._request("GET", "/fapi/v1/time", trade=trade_host)["serverTime"])

    def sync_time(self) -> int:
        """Learn the trade host's clock offset (ms), midpoint-corrected; returns it."""
        t0 = self.now()
        server = self.server_time(trade_host=True)
        t1 = self.now()
        self.time_offset_ms = int(server - (t0 + t1) * 500)
        return self.time_offset_ms

    def exchange_info(self, trade_host: bool = True) -> dict:
        """exchangeInfo; its REQUEST_WEIGHT limit becomes the soft throttle's limit."""
        info = self._request("GET", "/fapi/v1/exchangeInfo", trade=trade_host)
        limit = weight_limit_from(info)
        if limit is not None:
            self.weight_limit = limit
        return info

    def symbol_filters(self, symbol: str) -> SymbolFilters:
        """Filters from the trade host's exchangeInfo: cached, re-read when older than
        FILTERS_MAX_AGE_S, after `invalidate_filters` (an order refused for precision, tick or
        step: Binance changed them) and once for an unknown symbol. A failed re-read keeps the
        cached filters for a minute (logged) rather than stop every order on an exchangeInfo
        outage; with nothing cached the error goes to the caller."""
        now = self.now()
        stale = self._filters is None or now - self._filters_at >= FILTERS_MAX_AGE_S
        if (stale and now >= self._filters_retry_at) or self._filters is None or symbol not in self._filters:
            try:
                self._filters = parse_symbol_filters(self.exchange_info(trade_host=True))
                self._filters_at, self._filters_retry_at = now, 0.0
            except BinanceError as exc:
                if self._filters is None or symbol not in self._filters:
                    raise
                self._filters_retry_at = now + 60.0
                log.warning("exchangeInfo refresh failed (%s); keeping the filters read %.0f s ago",
                            exc, now - self._filters_at)
        if symbol not in self._filters:
            raise BinanceError(f"Invalid symbol: {symbol!r} not in exchangeInfo", -1121)
        return self._filters[symbol]

    def invalidate_filters(self) -> None:
        """The next `symbol_filters` re-reads exchangeInfo (called after a -1111/-4014/-4023)."""
        self._filters_at, self._filters_retry_at = 0.0, 0.0

    def klines(self, symbol: str, interval: str, limit: int = 500,
               start_time: int | None = None, end_time: int | None = None) -> list[list]:
        if not 1 <= int(limit) <= KLINES_MAX:
            raise ValueError(f"limit: must be in 1..{KLINES_MAX}, got {limit}")
        return self._request("GET", "/fapi/v1/klines", {
            "symbol": symbol, "interval": interval, "startTime": start_time,
            "endTime": end_time, "limit": int(limit)})

    def ticker_price(self, symbol: str, trade_host: bool = False) -> float:
        return float(self._request("GET", "/fapi/v2/ticker/price", {"symbol": symbol},
                                   trade=trade_host)["price"])

    # ------------------------------------------------------------------ account
    def account(self) -> dict:
        return self._request("GET", "/fapi/v3/account", signed=True)

    def balance(self) -> list[dict]:
        return self._request("GET", "/fapi/v3/balance", signed=True)

    def position_risk(self, symbol: str | None = None) -> list[dict]:
        return self._request("GET", "/fapi/v3/positionRisk", {"symbol": symbol}, signed=True)

    def symbol_config(self, symbol: str | None = None) -> list[dict]:
        """GET /fapi/v1/symbolConfig: [{symbol, marginType, isAutoAddMargin, leverage,
        maxNotionalValue}] (every symbol without `symbol`)."""
        return self._request("GET", "/fapi/v1/symbolConfig", {"symbol": symbol}, signed=True)

    def position_mode(self) -> bool:
        """GET /fapi/v1/positionSide/dual: True = hedge mode, False = one-way mode."""
        return _flag(self._request("GET", "/fapi/v1/positionSide/dual", signed=True),
                     "dualSidePosition")

    def multi_assets_mode(self) -> bool:
        """GET /fapi/v1/multiAssetsMargin: True = multi-assets mode, False = single-asset."""
        return _flag(self._request("GET", "/fapi/v1/multiAssetsMargin", signed=True),
                     "multiAssetsMargin")

    def set_leverage(self, symbol: str, leverage: int) -> dict:
        if isinstance(leverage, bool) or not isinstance(leverage, int) or not 1 <= leverage <= 125:
            raise ValueError(f"leverage: must be an integer in 1..125, got {leverage!r}")
        return self._request("POST", "/fapi/v1/leverage",
                             {"symbol": symbol, "leverage": leverage}, signed=True)

    def set_margin_type(self, symbol: str, margin_type: str) -> None:
        """ISOLATED or CROSSED; 'no need to change' (-4046) counts as success."""
        if margin_type not in ("ISOLATED", "CROSSED"):
            raise ValueError(f"margin_type: must be ISOLATED or CROSSED, got {margin_type!r}")
        try:
            self._request("POST", "/fapi/v1/marginType",
                          {"symbol": symbol, "marginType": margin_type}, signed=True)
        except BinanceError as exc:
            if exc.code != MARGIN_NO_CHANGE:
                raise

    # ------------------------------------------------------------------ orders
    def new_order(self, symbol: str, side: str, type: str, quantity: float | str | None = None,
                  price: float | str | None = None, time_in_force: str | None = None,
                  reduce_only: bool = False, new_client_order_id: str | None = None,
                  **extra: Any) -> dict:
        """Place an order (newOrderRespType=RESULT); never sent twice (see module doc)."""
        if type.upper() in ALGO_TYPES:
            raise ValueError(f"type: {type} orders go through new_algo_order (Binance -4120)")
        cid = _check_client_id("new_client_order_id",
                               new_client_order_id or new_client_order_id_default())
        params: dict[str, Any] = {
            "symbol": symbol, "side": side, "type": type,
            "quantity": None if quantity is None else _dec(quantity, "quantity"),
            "price": None if price is None else _dec(price, "price"),
            "timeInForce": time_in_force, "reduceOnly": True if reduce_only else None,
            "newClientOrderId": cid, "newOrderRespType": "RESULT", **extra}
        try:
            return self._request("POST", "/fapi/v1/order", params, signed=True, order=True)
        except _OutcomeUnknown as exc:
            return self._resolve(lambda: self.query_order(symbol, orig_client_order_id=cid),
                                 cid, exc)

    def query_order(self, symbol: str, order_id: int | None = None,
                    orig_client_order_id: str | None = None) -> dict:
        return self._request("GET", "/fapi/v1/order",
                             self._order_ref(symbol, order_id, orig_client_order_id), signed=True)

    def cancel_order(self, symbol: str, order_id: int | None = None,
                     orig_client_order_id: str | None = None) -> dict:
        """DELETE /fapi/v1/order; a cancel of unknown outcome (5xx, timeout after sending) is
        UnknownOrderStatus: cancel again (-2011 then) or look the order up."""
        try:
            return self._request("DELETE", "/fapi/v1/order",
                                 self._order_ref(symbol, order_id, orig_client_order_id),
                                 signed=True, order=True)
        except _OutcomeUnknown as exc:
            name = orig_client_order_id or str(order_id)
            raise UnknownOrderStatus(f"cancel of order {name}: outcome unknown ({exc.msg})",
                                     exc.code, exc.status, client_order_id=orig_client_order_id or "") from exc

    @staticmethod
    def _order_ref(symbol: str, order_id: int | None, client_id: str | None) -> dict:
        if order_id is None and client_id is None:
            raise ValueError("order_id or orig_client_order_id: one is required")
        return {"symbol": symbol, "orderId": order_id, "origClientOrderId": client_id}

    def open_orders(self, symbol: str | None = None) -> list[dict]:
        return self._request("GET", "/fapi/v1/openOrders", {"symbol": symbol}, signed=True)

    def user_trades(self, symbol: str, start_time: int | None = None,
                    end_time: int | None = None, limit: int = 500, *,
                    order_id: int | str | None = None, from_id: int | str | None = None) -> list[dict]:
        """GET /fapi/v1/userTrades. Binance: startTime..endTime at most 7 days apart, fromId
        not with either of them, orderId only with the symbol; only the last 6 months."""
        if not 1 <= int(limit) <= 1000:
            raise ValueError(f"limit: must be in 1..1000, got {limit}")
        if from_id is not None and (start_time is not None or end_time is not None):
            raise ValueError("from_id: cannot be combined with start_time/end_time (Binance)")
        if start_time is not None and end_time is not None and end_time - start_time > 7 * 86_400_000:
            raise ValueError("end_time: at most 7 days after start_time (Binance)")
        return self._request("GET", "/fapi/v1/userTrades", {
            "symbol": symbol, "orderId": order_id, "startTime": start_time, "endTime": end_time,
            "fromId": from_id, "limit": int(limit)}, signed=True)

    def income(self, symbol: str | None = None, income_type: str | None = None,
               start_time: int | None = None, end_time: int | None = None,
               limit: int = 1000) -> list[dict]:
        """GET /fapi/v1/income (funding fees, commissions, ...), oldest first from start_time;
        Binance keeps three months."""
        if not 1 <= int(limit) <= 1000:
            raise ValueError(f"limit: must be in 1..1000, got {limit}")
        return self._request("GET", "/fapi/v1/income", {
            "symbol": symbol, "incomeType": income_type, "startTime": start_time,
            "endTime": end_time, "limit": int(limit)}, signed=True)

    # ------------------------------------------------------------------ algo orders
    def new_algo_order(self, symbol: str, side: str, type: str, trigger_price: float | str,
                       quantity: float | str | None = None, close_position: bool = False,
                       reduce_only: bool | None = None, working_type: str = "MARK_PRICE",
                       client_algo_id: str | None = None, **extra: Any) -> dict:
        """Conditional (stop / take-profit) order via the Algo API; same no-duplicate rule."""
        if type not in ALGO_TYPES:
            raise ValueError(f"type: must be one of {sorted(ALGO_TYPES)}, got {type!r}")
        if close_position and (quantity is not None or reduce_only is not None):
            raise ValueError("close_position: cannot be combined with quantity or reduce_only")
        if not close_position and quantity is None:
            raise ValueError("quantity: required unless close_position=True")
        if working_type not in ("MARK_PRICE", "CONTRACT_PRICE"):
            raise ValueError(f"working_type: must be MARK_PRICE or CONTRACT_PRICE, "
                             f"got {working_type!r}")
        cid = _check_client_id("client_algo_id", client_algo_id or new_client_order_id_default())
        params: dict[str, Any] = {
            "algoType": "CONDITIONAL", "symbol": symbol, "side": side, "type": type,
            "quantity": None if quantity is None else _dec(quantity, "quantity"),
            "triggerPrice": _dec(trigger_price, "trigger_price"),
            "workingType": working_type,
            "closePosition": True if close_position else None,
            "reduceOnly": reduce_only, "clientAlgoId": cid,
            "newOrderRespType": "RESULT", **extra}
        try:
            return self._request("POST", "/fapi/v1/algoOrder", params, signed=True, order=True)
        except _OutcomeUnknown as exc:
            return self._resolve(lambda: self.query_algo_order(client_algo_id=cid), cid, exc)

    @staticmethod
    def _algo_ref(algo_id: int | None, client_algo_id: str | None) -> dict:
        if algo_id is None and client_algo_id is None:
            raise ValueError("algo_id or client_algo_id: one is required")
        return {"algoId": algo_id, "clientAlgoId": client_algo_id}

    def query_algo_order(self, algo_id: int | None = None,
                         client_algo_id: str | None = None) -> dict:
        return self._request("GET", "/fapi/v1/algoOrder", self._algo_ref(algo_id, client_algo_id),
                             signed=True)

    def cancel_algo_order(self, algo_id: int | None = None,
                          client_algo_id: str | None = None) -> dict:
        """DELETE /fapi/v1/algoOrder; a cancel of unknown outcome is UnknownOrderStatus (as
        cancel_order): the caller cancels again or confirms with query_algo_order."""
        try:
            return self._request("DELETE", "/fapi/v1/algoOrder",
                                 self._algo_ref(algo_id, client_algo_id), signed=True, order=True)
        except _OutcomeUnknown as exc:
            name = client_algo_id or str(algo_id)
            raise UnknownOrderStatus(f"cancel of stop {name}: outcome unknown ({exc.msg})",
                                     exc.code, exc.status, client_order_id=client_algo_id or "") from exc

    def open_algo_orders(self, symbol: str | None = None) -> list[dict]:
        return self._request("GET", "/fapi/v1/openAlgoOrders", {"symbol": symbol}, signed=True)
