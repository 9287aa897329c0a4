"""The one service layer between the HTTP views and the trading core.

Views stay thin: they parse the request, call one method here, and turn the result (or a
`ServiceError`) into JSON. Everything that decides *what* is allowed lives here, so it can be
tested without HTTP and so the API and the page can never disagree about a rule.

The agent runner and the market-data port are taken by duck typing (see docs/internals.md):
the service needs only the methods listed there. Errors raised by the core are recognised by
their rl.errors class (`ERROR_STATUS`); rl.errors imports nothing else, so the web layer still
starts (and says clearly what is wrong) when a core module failed to import.

Request values are parsed by web.inputs (one strict rule per kind of value, errors naming
the field and the rule). A known error's message is written for the trader and goes into the
JSON body as it is; an unexpected one (a bug) is logged with its traceback and the body says
only that it happened, so internal details (paths, SQL, payloads, types) never reach the
browser.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import pandas as pd

from config import LIVE_RISK_PHRASE, Settings
from rl.agent.manual_stops import check_manual_stops
from rl.errors import (
    AgentAlreadyRunning,
    AgentError,
    AuthError,
    BinanceError,
    CancelRefused,
    MarketUnavailable,
    NetworkError,
    OrderNotOpen,
    OrderRejected,
    RateLimitError,
    ReplayFinished,
    UnknownOrderStatus,
)
from rl.optimize.evidence import profile_evidence
from web.inputs import (
    InputError,
    check_fields,
    parse_choice,
    parse_client_id,
    parse_flag,
    parse_int,
    parse_number,
    parse_symbol,
)

log = logging.getLogger("web.service")

# Every kline interval Binance USDⓈ-M futures accepts; the dashboard shows four of them.
BINANCE_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                     "1d", "3d", "1w", "1M")
DASHBOARD_INTERVALS = ("1m", "15m", "8h", "1w")
MAX_KLINES_LIMIT = 1500          # Binance's own cap on /fapi/v1/klines
DEFAULT_KLINES_LIMIT = 500
ORDER_SIDES = ("BUY", "SELL")
ORDER_TYPES = ("MARKET", "LIMIT")
ORDER_FIELDS = ("symbol", "side", "type", "quantity", "price", "reduceOnly", "clientOrderId",
                "stopLoss", "takeProfit")
STOP_FIELDS = ("stopLoss", "takeProfit")     # the trader's own stops of a manual order (optional)
CLOSE_FIELDS = ("symbol",)
CANCEL_FIELDS = ("symbol", "order_id", "confirm_unprotected")
IDEMPOTENCY_MEMORY = 1000        # answered clientOrderIds the service remembers (oldest go first)
T = TypeVar("T")

# Core exception class -> HTTP status. The first class the error is an instance of wins, so a
# subclass (with a status of its own) must be listed before its parent; a subclass not listed
# maps like its parent. Anything else is a 500.
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (AgentAlreadyRunning, 409),
    (ReplayFinished, 409),        # the replay's data is all played: another data set, or start over
    (CancelRefused, 409),         # a protective stop of an open position: confirm first
    (OrderNotOpen, 404),
    (MarketUnavailable, 503),
    (NetworkError, 503),
    (RateLimitError, 503),        # Binance asked us to back off: try again later
    (AuthError, 502),             # our API key was refused upstream: a server-side setting
    (UnknownOrderStatus, 502),    # the exchange may or may not have filled: not the user's fault
    (OrderRejected, 400),         # Binance (or paper) refused the order: the user can fix it
    (ValueError, 400),            # bad input named in the message (rl.errors.ValidationError, core checks)
)
# What means "Binance / the market cannot be reached": the page's connectivity badge shows it.
_NETWORK_FAILURES = (MarketUnavailable, NetworkError, RateLimitError)


# What an offline newcomer can run in their own clone: fetch archive zips while online (or
# point --replay at any folder of them, a symbol folder .../klines/FILUSDT too), then replay.
REPLAY_HINT = ("python -m rl.data download --symbol FILUSDT --from 2023-08 --to 2023-09 --dest data; "
               "python -m web.app --replay data --symbol FILUSDT --speed 60")


class ServiceError(AgentError):
    """A failure the API reports as JSON `{"error": message}` with `status`.

    Lives here, not in rl.errors, because it carries an HTTP status: only the web layer knows
    those. It is an AgentError so that it, too, hangs off the project's one error tree.
    """

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code          # Binance's error code (-2019 ...): the page explains it in its language


class MarketPort(Protocol):
    def klines(self, symbol: str, interval: str, limit: int = 500) -> pd.DataFrame: ...
    def last_price(self, symbol: str) -> float: ...
    def now_ms(self) -> int: ...


def translate_error(exc: BaseException, context: str) -> ServiceError:
    """Map a core exception to a ServiceError by `ERROR_STATUS`; anything else becomes a 500.

    Known errors (listed ones, and any other AgentError) keep their message, which the project
    writes for the trader; an unexpected error is logged with its traceback and neither its
    text nor its type reaches the message.
    """
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, InputError):
        return ServiceError(exc.status, str(exc))
    status = next((code for cls, code in ERROR_STATUS if isinstance(exc, cls)), None)
    if status is not None:
        code = exc.code if isinstance(exc, BinanceError) else None
        return ServiceError(status, f"{context}: {exc}", code)
    if isinstance(exc, AgentError):
        return ServiceError(500, f"{context}: {exc}")
    log.error("%s failed unexpectedly", context, exc_info=exc)
    return ServiceError(500, internal_error_message(exc, context))


def internal_error_message(exc: BaseException, context: str | None = None) -> str:
    """What the API says about an unexpected error: that it happened (the log has the rest).

    Not even the exception's type: "OverflowError" or "RecursionError" tells an attacker which
    input reached which code, and tells the trader nothing.
    """
    message = "internal error; the server log has the details"
    return f"{context}: {message}" if context else message


def exchange_client_id(given: str) -> str:
    """The exchange's clientOrderId for the page's id: "man-" + 28 hex of its SHA-256.

    Deterministic, so a retry (even after a restart) names the same order; prefixed and hashed,
    so a page's id can never collide with the agent's own ids ("ag-...") and always fits
    Binance's 36 characters.
    """
    return "man-" + hashlib.sha256(given.encode("ascii")).hexdigest()[:28]


def frame_to_candles(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Binance-shaped kline frame -> chart rows. `time` is UTC seconds (what the chart wants)."""
    if frame is None or len(frame) == 0:
        return []
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex):
        raise TypeError("kline frame must have a DatetimeIndex named open_time")
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    # pandas 2 indexes may be ns, us, ms or s resolution: normalise to ms.
    unit = getattr(idx, "unit", "ns")
    raw = idx.asi8
    if unit == "s":
        ms = (raw * 1000).tolist()
    else:
        ms = (raw // {"ns": 1_000_000, "us": 1_000, "ms": 1}.get(unit, 1_000_000)).tolist()
    cols = {c: frame[c].to_numpy(dtype=float).tolist() for c in ("open", "high", "low", "close", "volume")}
    out = []
    for i, t in enumerate(ms):
        out.append({"time": int(t // 1000), "open_time_ms": int(t),
                    "open": cols["open"][i], "high": cols["high"][i], "low": cols["low"][i],
                    "close": cols["close"][i], "volume": cols["volume"][i]})
    return out


class DashboardService:
    """What the dashboard can see and do. Thread-safe: waitress serves from several threads."""

    def __init__(self, settings: Settings, market: MarketPort | None = None,
                 runner: Any | None = None, *, market_note: str | None = None,
                 runner_note: str | None = None, replay: dict[str, Any] | None = None,
                 wall_ms: Callable[[], int] | None = None,
                 reset_paper: Callable[[Any], Any] | None = None) -> None:
        """`market_note`/`runner_note` explain why a piece is missing (shown in page and API).
        `reset_paper` (paper mode): the stopped runner -> a runner on a fresh account."""
        self.settings = settings
        self.market = market
        self.runner = runner
        self.market_note = market_note
        self.runner_note = runner_note
        self.replay = replay
        self._wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self._reset_paper = reset_paper
        self._lock = threading.Lock()
        # Connectivity as last observed by a market call: "unknown" until the first one.
        self._connectivity = "unknown" if market is not None else "unreachable"
        self._connectivity_error: str | None = market_note
        self._connectivity_checked_ms: int | None = None
        # clientOrderId -> (the validated order, the answer): idempotent POST /api/order
        self._orders_lock = threading.Lock()
        self._answered: OrderedDict[str, tuple[dict[str, Any], dict[str, Any]]] = OrderedDict()

    # ---- validation -------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.settings.symbols)

    def check_symbol(self, symbol: Any, field: str = "symbol") -> str:
        """A symbol this dashboard serves: 400 when it is not shaped like one, else 404."""
        sym = parse_symbol(field, symbol)
        if sym not in self.symbols:
            raise ServiceError(404, f"{field}={sym!r} is unknown here: this dashboard serves "
                                    f"{', '.join(self.symbols)}")
        return sym

    def query_symbol(self, raw: str | None) -> str | None:
        """A `?symbol=` filter: None when absent, else one of the configured symbols (any
        case); anything else is a 400 naming the field and the rule."""
        if raw is None:
            return None
        sym = parse_symbol("symbol", raw)
        if sym not in self.symbols:
            raise InputError("symbol", f"it must be one of the configured symbols "
                                       f"({', '.join(self.symbols)})", raw)
        return sym

    @staticmethod
    def check_interval(interval: Any) -> str:
        # case matters: "1m" is a minute, "1M" a month
        return parse_choice("interval", interval, BINANCE_INTERVALS, fold_case=False)

    @staticmethod
    def check_limit(raw: str | None, default: int = DEFAULT_KLINES_LIMIT,
                    maximum: int = MAX_KLINES_LIMIT) -> int:
        return parse_int("limit", raw, lo=1, hi=maximum, default=default)

    # ---- market data --------------------------------------------------------------------
    def _market_call(self, fn: Callable[[MarketPort], T], context: str) -> T:
        """`fn(market)`, its failure as a ServiceError; notes what it says about connectivity."""
        if self.market is None:
            raise ServiceError(503, self.market_note or "market data is unavailable")
        try:
            result = fn(self.market)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a clear JSON error
            if isinstance(exc, _NETWORK_FAILURES):
                self._note_connectivity("unreachable", str(exc))
            raise translate_error(exc, context) from exc
        self._note_connectivity("ok", None)
        return result

    def _note_connectivity(self, state: str, error: str | None) -> None:
        with self._lock:
            self._connectivity = state
            self._connectivity_error = error
            self._connectivity_checked_ms = self._wall_ms()

    def klines(self, symbol: str, interval: str, limit: int = DEFAULT_KLINES_LIMIT) -> dict[str, Any]:
        sym = self.check_symbol(symbol)
        itv = self.check_interval(interval)
        return {"symbol": sym, "interval": itv, "forming_last": True,
                "candles": frame_to_candles(self._klines(sym, itv, limit))}

    def klines_all(self, symbol: str, limit: int = DEFAULT_KLINES_LIMIT) -> dict[str, Any]:
        sym = self.check_symbol(symbol)
        out = {}
        for itv in DASHBOARD_INTERVALS:
            out[itv] = frame_to_candles(self._klines(sym, itv, limit))
        return {"symbol": sym, "intervals": list(DASHBOARD_INTERVALS), "forming_last": True,
                "klines": out}

    def _klines(self, sym: str, itv: str, limit: int) -> pd.DataFrame:
        return self._market_call(lambda market: market.klines(sym, itv, limit), f"klines {sym} {itv}")

    def probe_market(self) -> bool:
        """One cheap market call at start-up so the page and log can say if Binance is reachable."""
        if self.market is None:
            return False
        try:
            self._market_call(lambda market: market.last_price(self.symbols[0]), "probe")
        except ServiceError:
            return False
        return True

    # ---- meta (what the page needs to draw badges and banners) ---------------------------
    def meta(self) -> dict[str, Any]:
        with self._lock:
            conn = {"state": self._connectivity, "error": self._connectivity_error,
                    "checked_ms": self._connectivity_checked_ms}
        if self.runner is not None:
            try:
                runner_conn = self.runner.status().get("connectivity")
            except Exception:  # noqa: BLE001 - meta must always answer
                runner_conn = None
            if runner_conn is not None:
                conn["agent"] = runner_conn
        world_ms = None
        if self.market is not None:
            try:
                world_ms = int(self.market.now_ms())
            except Exception:  # noqa: BLE001
                world_ms = None
        return {
            "mode": self.settings.mode_label,
            "trading_mode": self.settings.trading_mode,
            "symbols": list(self.symbols),
            "intervals": list(DASHBOARD_INTERVALS),
            "language": self.settings.language,
            "connectivity": conn,
            "market_note": self.market_note,
            "agent_available": self.runner is not None,
            "agent_note": self.runner_note,
            "replay": self.replay,
            "world_time_ms": world_ms,
            "leverage": self.settings.leverage,     # the order form's margin estimate
            "replay_hint": REPLAY_HINT,
        }

    # ---- agent ----------------------------------------------------------------------------
    def _need_runner(self) -> Any:
        if self.runner is None:
            raise ServiceError(503, self.runner_note or "the trading agent is not available")
        return self.runner

    def _runner_call(self, fn: Callable[[], Any], context: str) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            raise translate_error(exc, context) from exc

    def agent_start(self) -> dict[str, Any]:
        runner = self._need_runner()
        # The lock makes check-then-start atomic across waitress threads: two clicks, one agent.
        with self._lock:
            if getattr(runner, "running", False):
                raise ServiceError(409, "agent is already running: stop it first")
            self._runner_call(runner.start, "agent start")
        return self._runner_call(runner.status, "agent status")

    def agent_stop(self) -> dict[str, Any]:
        runner = self._need_runner()
        with self._lock:
            if not getattr(runner, "running", False):
                raise ServiceError(409, "agent is not running")
            self._runner_call(runner.stop, "agent stop")
        return self._runner_call(runner.status, "agent status")

    def reset_paper_account(self) -> dict[str, Any]:
        """Start the paper account over: a fresh store (trades, learning, log) and PAPER_BALANCE.
        409 outside paper mode or while the agent runs; the old files are kept aside."""
        mode = self.settings.mode_label
        if mode != "paper" or self._reset_paper is None:
            raise ServiceError(409, f"only the paper account can be reset; this dashboard runs in "
                                    f"{mode} mode")
        with self._lock:       # against a concurrent start: the check and the swap are one step
            if self.runner is not None and getattr(self.runner, "running", False):
                raise ServiceError(409, "the agent is running: stop it before resetting the paper account")
            reset = self._reset_paper
            try:
                fresh = self._runner_call(lambda: reset(self.runner), "paper reset")
            except ServiceError as exc:
                # the old runner's files may be closed or moved by now: say so instead of
                # serving a runner whose store is gone (a retry of the reset can still succeed)
                self.runner, self.runner_note = None, exc.message
                raise
            self.runner, self.runner_note = fresh, None
        return {"reset": True, "account": self._runner_call(fresh.account, "account")}

    def agent_status(self) -> dict[str, Any]:
        return self._runner_call(self._need_runner().status, "agent status")

    def evidence(self) -> dict[str, Any]:
        """The active profile's out-of-sample evidence (rl.optimize.evidence), as computed there."""
        s = self.settings
        return profile_evidence(s.strategy_profile, s.trading_mode, s.live_without_evidence == LIVE_RISK_PHRASE)

    def agent_logs(self, limit: int = 200, after_id: int | None = None) -> list[dict[str, Any]]:
        runner = self._need_runner()
        return self._runner_call(lambda: runner.logs(limit=limit, after_id=after_id), "agent logs")

    def agent_levels(self, symbol: str) -> dict[str, Any]:
        sym = self.check_symbol(symbol)
        runner = self._need_runner()
        levels = self._runner_call(lambda: runner.levels(sym), f"levels {sym}")
        return {"symbol": sym, "levels": levels}

    # ---- account and orders ------------------------------------------------------------------
    def account(self) -> dict[str, Any]:
        return self._runner_call(self._need_runner().account, "account")

    def positions(self, symbol: str | None = None) -> list[dict[str, Any]]:
        rows = self._runner_call(self._need_runner().positions, "positions")
        return [p for p in rows if symbol is None or p.get("symbol") == symbol]

    def symbol_pnl(self, symbol: str | None = None) -> dict[str, Any]:
        """Per-symbol PnL rows and the account total (computed in rl.knowledge.symbol_pnl)."""
        out = self._runner_call(self._need_runner().symbol_pnl, "symbol pnl")
        if symbol is not None:
            out = {**out, "symbols": [r for r in out["symbols"] if r["symbol"] == symbol]}
        return out

    def validate_order(self, payload: Any) -> dict[str, Any]:
        """Check a manual order; every problem names the field and the rule (400)."""
        check_fields(payload, ORDER_FIELDS)
        sym = self.check_symbol(payload.get("symbol"))
        side = parse_choice("side", payload.get("side"), ORDER_SIDES)
        otype = parse_choice("type", payload.get("type"), ORDER_TYPES, default="MARKET")
        quantity = parse_number("quantity", payload.get("quantity"), required=True)
        price = parse_number("price", payload.get("price"), required=(otype == "LIMIT"))
        if otype == "MARKET" and price is not None:
            raise InputError("price", "a MARKET order has no price: leave it empty or use LIMIT",
                             payload.get("price"))
        reduce_only = parse_flag("reduceOnly", payload.get("reduceOnly"))
        client_id = parse_client_id("clientOrderId", payload.get("clientOrderId"))
        stop_loss = parse_number("stopLoss", payload.get("stopLoss"), required=False)
        take_profit = parse_number("takeProfit", payload.get("takeProfit"), required=False)
        # the side rules against a LIMIT's price here; a MARKET's against the last price (the agent)
        self._stop_rule(lambda: check_manual_stops(side, price, stop_loss, take_profit, reduce_only=reduce_only),
                        payload)
        return {"symbol": sym, "side": side, "type": otype, "quantity": quantity, "price": price,
                "reduce_only": reduce_only, "client_order_id": client_id,
                "stop_loss": stop_loss, "take_profit": take_profit}

    @staticmethod
    def _stop_rule(fn: Callable[[], Any], payload: Mapping[str, Any]) -> Any:
        """Run `fn`; a ValueError about stopLoss/takeProfit (raised, or translated by
        `_runner_call`) becomes a 400 naming that field and the rule."""
        try:
            return fn()
        except (ValueError, ServiceError) as exc:
            cause = exc.__cause__ if isinstance(exc, ServiceError) else exc
            text = str(cause) if isinstance(cause, ValueError) else ""
            field = next((f for f in STOP_FIELDS if text.startswith(f)), None)
            if field is None:
                raise
            raise InputError(field, text.split("is invalid: ", 1)[-1], payload.get(field)) from None

    def place_order(self, payload: Any) -> dict[str, Any]:
        """Place a manual order; with a clientOrderId, at most one order per id.

        A repeated POST with an id already answered gets the first answer again (200, no new
        order). The id reaches the exchange as `exchange_client_id(id)`, and the agent looks that
        up before placing, so a retry after a lost answer or a restart places nothing twice
        either. The lock makes "answered?" and "place" one step for concurrent POSTs.
        """
        order = self.validate_order(payload)
        runner = self._need_runner()
        given = order.pop("client_order_id")
        context = f"order {order['symbol']}"
        stops = {"stop_loss": order["stop_loss"], "take_profit": order["take_profit"]}
        if given is None:
            return self._stop_rule(lambda: self._runner_call(lambda: runner.manual_order(
                order["symbol"], order["side"], order["type"], order["quantity"], order["price"],
                reduce_only=order["reduce_only"], **stops), context), payload)
        with self._orders_lock:
            seen = self._answered.get(given)
            if seen is not None:
                if seen[0] != order:
                    raise ServiceError(409, f"clientOrderId={given!r} is already used by another "
                                            "order: send a new id for a new order")
                return seen[1]
            result = self._stop_rule(lambda: self._runner_call(lambda: runner.manual_order(
                order["symbol"], order["side"], order["type"], order["quantity"], order["price"],
                client_order_id=exchange_client_id(given), reduce_only=order["reduce_only"], **stops),
                context), payload)
            self._answered[given] = (order, result)
            while len(self._answered) > IDEMPOTENCY_MEMORY:
                self._answered.popitem(last=False)
            return result

    def close_position(self, payload: Any) -> dict[str, Any]:
        check_fields(payload, CLOSE_FIELDS)
        if payload.get("symbol") in (None, ""):
            raise InputError("symbol", "it is required: the symbol of the position to close",
                             shown=False)
        sym = self.check_symbol(payload["symbol"])
        runner = self._need_runner()
        return self._runner_call(lambda: runner.close_position(sym), f"close {sym}")

    def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        rows = self._runner_call(self._need_runner().open_orders, "open orders")
        return [o for o in rows if symbol is None or o.get("symbol") == symbol]

    def cancel_order(self, payload: Any) -> dict[str, Any]:
        """Cancel one open order or stop: {"symbol", "order_id", "confirm_unprotected"?}.

        The agent refuses (409) to cancel the stop-loss of an open position unless
        confirm_unprotected is true; an order not open any more is a 404."""
        check_fields(payload, CANCEL_FIELDS)
        if payload.get("symbol") in (None, ""):
            raise InputError("symbol", "it is required: the symbol of the order to cancel", shown=False)
        sym = self.check_symbol(payload["symbol"])
        order_id = parse_client_id("order_id", payload.get("order_id"))
        if order_id is None:
            raise InputError("order_id", "it is required: the exchange's id of the order to cancel",
                             shown=False)
        confirm = payload.get("confirm_unprotected", False)
        if not isinstance(confirm, bool):
            raise InputError("confirm_unprotected", "it must be true or false", confirm)
        runner = self._need_runner()
        return self._runner_call(lambda: runner.cancel_order(sym, order_id, confirm),
                                 f"cancel {sym} {order_id}")

    def fills(self, limit: int = 100, symbol: Any = None) -> list[dict[str, Any]]:
        sym = None if symbol in (None, "") else self.check_symbol(symbol)
        runner = self._need_runner()
        return self._runner_call(lambda: runner.fills(limit=limit, symbol=sym), "fills")

    def order_history(self, limit: int = 100) -> list[dict[str, Any]]:
        runner = self._need_runner()
        return self._runner_call(lambda: runner.order_history(limit=limit), "order history")

    # ---- history -------------------------------------------------------------------------------
    def trades(self, limit: int = 100) -> list[dict[str, Any]]:
        runner = self._need_runner()
        return self._runner_call(lambda: runner.trades(limit=limit), "trades")

    def trade(self, trade_id: int) -> dict[str, Any]:
        runner = self._need_runner()
        found = self._runner_call(lambda: runner.trade(trade_id), f"trade {trade_id}")
        if found is None:
            raise ServiceError(404, f"trade id={trade_id} does not exist")
        return found

    def equity_curve(self) -> list[dict[str, Any]]:
        return self._runner_call(self._need_runner().equity_curve, "equity")

    def weight_history(self) -> list[dict[str, Any]]:
        return self._runner_call(self._need_runner().weight_history, "weight history")
