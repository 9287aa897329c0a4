"""REST API blueprint: thin views over web.service.DashboardService.

Each view parses the request (web.inputs: strict rules, errors naming field and rule), calls
one service method and returns JSON. Rules and error messages live in the service and
web.inputs; errors become `{"error": "..."}` in web.app's handlers (bad input here, with
`field` and `rule`).
Every state-changing request (POST) must carry the per-process dashboard token (see
`require_token`), so a page on another site cannot trade through the trader's browser.
"""
from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from web.inputs import MAX_BODY_BYTES, InputError, parse_int, parse_json_object
from web.service import DashboardService

api = Blueprint("api", __name__, url_prefix="/api")

TOKEN_HEADER = "X-Dashboard-Token"
SQLITE_MAX_INT = 2**63 - 1      # ids are SQLite INTEGERs: a larger one cannot even be looked up
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def service() -> DashboardService:
    return current_app.extensions["dashboard_service"]


@api.before_request
def require_token() -> Any:
    """403 for any state-changing request without the right token.

    The token is random per process and only readable by a page served from this origin
    (no CORS), so a cross-site form or fetch cannot supply it. compare_digest: no timing leak.
    """
    if request.method in _SAFE_METHODS:
        return None
    expected: str = current_app.config["DASHBOARD_TOKEN"]
    given = request.headers.get(TOKEN_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        return jsonify({"error": f"forbidden: missing or wrong {TOKEN_HEADER} header "
                                 "(reload the dashboard page to get the current token)"}), 403
    return None


@api.errorhandler(InputError)
def bad_input(exc: InputError) -> Any:
    """400 (413 for a body too large) naming the field and the rule, as JSON."""
    return jsonify({"error": str(exc), "field": exc.field, "rule": exc.rule}), exc.status


def _json_body() -> Any:
    """The request's JSON object (web.inputs.parse_json_object): an empty body is {}."""
    # Werkzeug stops reading past this (413), chunked bodies included: nothing large is buffered.
    request.max_content_length = MAX_BODY_BYTES
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise InputError("body", f"it must be at most {MAX_BODY_BYTES} bytes", shown=False,
                         status=413) from None
    return parse_json_object(data, is_json=request.is_json)


def _query(name: str) -> str | None:
    """One query parameter; given twice it is ambiguous, so refused (as Binance's -1101 does)."""
    values = request.args.getlist(name)
    if len(values) > 1:
        raise InputError(name, "it is given more than once", shown=False)
    return values[0] if values else None


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    return parse_int(name, _query(name), lo=lo, hi=hi, default=default)


def _symbol_arg() -> str:
    """`?symbol=` (a configured symbol, else 400), the first configured one when absent."""
    return _symbol_filter() or service().symbols[0]


def _symbol_filter() -> str | None:
    """`?symbol=` as a filter: None (every symbol) when absent; 400 unless configured."""
    return service().query_symbol(_query("symbol"))


# ---- meta -------------------------------------------------------------------------------
@api.get("/meta")
def meta() -> Any:
    return jsonify(service().meta())


# ---- agent control ------------------------------------------------------------------------
@api.post("/agent/start")
def agent_start() -> Any:
    return jsonify(service().agent_start())


@api.post("/agent/stop")
def agent_stop() -> Any:
    return jsonify(service().agent_stop())


@api.post("/agent/reset")
def agent_reset() -> Any:
    """Paper mode, agent stopped: a fresh paper account, trades and learning (else 409)."""
    if _json_body():
        raise InputError("body", "it must be empty or {}: the reset takes no fields", shown=False)
    return jsonify(service().reset_paper_account())


@api.get("/agent/status")
def agent_status() -> Any:
    return jsonify(service().agent_status())


@api.get("/agent/evidence")
def agent_evidence() -> Any:
    """The active strategy profile's out-of-sample figures against the baselines."""
    return jsonify(service().evidence())


@api.get("/agent/logs")
def agent_logs() -> Any:
    limit = _int_arg("limit", 200, 1, 2000)
    after_id = parse_int("after_id", _query("after_id"), lo=0, hi=SQLITE_MAX_INT)
    return jsonify({"logs": service().agent_logs(limit=limit, after_id=after_id)})


@api.get("/agent/levels")
def agent_levels() -> Any:
    return jsonify(service().agent_levels(_symbol_arg()))


# ---- account and orders -------------------------------------------------------------------
@api.get("/account")
def account() -> Any:
    return jsonify(service().account())


@api.get("/positions")
def positions() -> Any:
    return jsonify({"positions": service().positions(_symbol_filter())})


@api.get("/pnl/symbols")
def symbol_pnl() -> Any:
    return jsonify(service().symbol_pnl(_symbol_filter()))


@api.post("/order")
def order() -> Any:
    return jsonify(service().place_order(_json_body()))


@api.post("/close")
def close() -> Any:
    return jsonify(service().close_position(_json_body()))


@api.get("/agent/orders")
def agent_orders() -> Any:
    return jsonify({"orders": service().open_orders(_symbol_filter())})


@api.post("/agent/orders/cancel")
def agent_orders_cancel() -> Any:
    return jsonify(service().cancel_order(_json_body()))


@api.get("/agent/fills")
def agent_fills() -> Any:
    limit = _int_arg("limit", 100, 1, 1000)
    svc = service()
    return jsonify({"fills": svc.fills(limit=limit, symbol=request.args.get("symbol")),
                    "orders": svc.order_history(limit=limit)})


# ---- market data -----------------------------------------------------------------------------
@api.get("/klines/<symbol>/<interval>")
def klines(symbol: str, interval: str) -> Any:
    svc = service()
    limit = svc.check_limit(_query("limit"))
    return jsonify(svc.klines(symbol, interval, limit))


@api.get("/klines_all/<symbol>")
def klines_all(symbol: str) -> Any:
    svc = service()
    limit = svc.check_limit(_query("limit"))
    return jsonify(svc.klines_all(symbol, limit))


# ---- history for the page ---------------------------------------------------------------------
@api.get("/trades")
def trades() -> Any:
    return jsonify({"trades": service().trades(limit=_int_arg("limit", 100, 1, 1000))})


@api.get("/trades/<trade_id>")
def trade(trade_id: str) -> Any:
    # a string route: Flask's <int:> takes any size, and past 2**63-1 SQLite overflows
    # (a path segment is never empty, so the default is never used)
    found = parse_int("trade id", trade_id, lo=1, hi=SQLITE_MAX_INT, default=0)
    return jsonify(service().trade(found))


@api.get("/equity")
def equity() -> Any:
    return jsonify({"equity": service().equity_curve()})


@api.get("/weights/history")
def weights_history() -> Any:
    return jsonify({"history": service().weight_history()})
