"""REST API blueprint: thin views over web.service.DashboardService.

Each view parses the request, calls one service method and returns JSON. Rules and error
messages live in the service; errors become `{"error": "..."}` in web.app's handlers.
Every state-changing request (POST) must carry the per-process dashboard token (see
`require_token`), so a page on another site cannot trade through the trader's browser.
"""
from __future__ import annotations

import hmac
from typing import Any, overload

from flask import Blueprint, current_app, jsonify, request

from web.service import DashboardService, ServiceError

api = Blueprint("api", __name__, url_prefix="/api")

TOKEN_HEADER = "X-Dashboard-Token"
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


def _json_body() -> Any:
    """The request's JSON object; an empty body is {}; malformed JSON is a 400."""
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if body is None:
        raise ServiceError(400, "body is invalid: it must be JSON (Content-Type: application/json)")
    return body


@overload
def _int_arg(name: str, default: int, lo: int, hi: int) -> int: ...
@overload
def _int_arg(name: str, default: None, lo: int, hi: int) -> int | None: ...
def _int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise ServiceError(400, f"{name}={raw!r} is invalid: it must be an integer {lo}..{hi}")
    return value


def _symbol_arg() -> str:
    svc = service()
    return request.args.get("symbol") or svc.symbols[0]


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


@api.get("/agent/status")
def agent_status() -> Any:
    return jsonify(service().agent_status())


@api.get("/agent/logs")
def agent_logs() -> Any:
    limit = _int_arg("limit", 200, 1, 2000)
    after_id = _int_arg("after_id", None, 0, 2**62)
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
    return jsonify({"positions": service().positions()})


@api.post("/order")
def order() -> Any:
    return jsonify(service().place_order(_json_body()))


@api.post("/close")
def close() -> Any:
    return jsonify(service().close_position(_json_body()))


# ---- market data -----------------------------------------------------------------------------
@api.get("/klines/<symbol>/<interval>")
def klines(symbol: str, interval: str) -> Any:
    svc = service()
    limit = svc.check_limit(request.args.get("limit"))
    return jsonify(svc.klines(symbol, interval, limit))


@api.get("/klines_all/<symbol>")
def klines_all(symbol: str) -> Any:
    svc = service()
    limit = svc.check_limit(request.args.get("limit"))
    return jsonify(svc.klines_all(symbol, limit))


# ---- history for the page ---------------------------------------------------------------------
@api.get("/trades")
def trades() -> Any:
    return jsonify({"trades": service().trades(limit=_int_arg("limit", 100, 1, 1000))})


@api.get("/trades/<int:trade_id>")
def trade(trade_id: int) -> Any:
    return jsonify(service().trade(trade_id))


@api.get("/equity")
def equity() -> Any:
    return jsonify({"equity": service().equity_curve()})


@api.get("/weights/history")
def weights_history() -> Any:
    return jsonify({"history": service().weight_history()})
