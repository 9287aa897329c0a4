"""Flask app factory and `python -m web.app`, served by waitress.

    python -m web.app                                   # paper trading on live Binance klines
    python -m web.app --replay data --symbol FILUSDT --speed 60   (python -m rl.data download first)
    python -m web.app --host 127.0.0.1 --port 5000 --db data/paper/agent.db [--debug]

The agent never starts by itself: the page (or POST /api/agent/start) starts it in one
background thread. `--debug` uses Flask's development server WITHOUT the reloader, because the
reloader runs the module twice and would own two agents and two tokens; it is refused off
loopback, since its debugger runs code for whoever reaches it.

Bound off loopback (e.g. --host 0.0.0.0) the dashboard starts only with DASHBOARD_PASSWORD_HASH
set, and then every page and API call needs a login (web.auth).
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import secrets
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from config import Settings, load_settings
from rl.errors import SettingsError
from rl.strategy.params import ParamsError, StrategyParams
from web import auth
from web.api import api
from web.pages import pages
from web.service import REPLAY_HINT, DashboardService, ServiceError, internal_error_message

log = logging.getLogger("web")

# Loopback names a browser may send as Host when the app is bound to loopback. Anything else
# reaching a loopback-bound app is a DNS-rebinding page trying to read the token: refuse it.
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

# No external requests: scripts, styles, images and fetches only from this origin.
# style-src needs 'unsafe-inline' because the chart library sets style attributes.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class _JSONProvider(DefaultJSONProvider):
    sort_keys = False       # keep the order the service built (the API docs show that order)
    ensure_ascii = False    # Chinese log lines as UTF-8 text, not \u escapes


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(settings: Settings, *, market: Any | None = None, runner: Any | None = None,
               service: DashboardService | None = None, token: str | None = None,
               market_note: str | None = None, runner_note: str | None = None,
               replay: dict[str, Any] | None = None,
               reset_paper: Callable[[Any], Any] | None = None) -> Flask:
    """Build the dashboard app over one DashboardService.

    `market` is a MarketDataPort, `runner` an AgentRunner (or anything with its interface);
    either may be None, with a note saying why, and the page shows that note. SettingsError
    if settings.host is off loopback without a DASHBOARD_PASSWORD_HASH.
    """
    check_bind(settings)
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config["DASHBOARD_TOKEN"] = token or secrets.token_urlsafe(32)
    app.json = _JSONProvider(app)
    svc = service or DashboardService(settings, market, runner, market_note=market_note,
                                      runner_note=runner_note, replay=replay,
                                      reset_paper=reset_paper)
    app.extensions["dashboard_service"] = svc
    app.register_blueprint(api)
    app.register_blueprint(pages)
    guard_host = is_loopback(settings.host)

    @app.before_request
    def _check_host() -> Any:
        if not guard_host:
            return None
        host = _host_name(request.host or "")
        if host.lower() not in _LOOPBACK_HOSTS:
            return _error(403, f"forbidden: Host {request.host!r} is not this loopback dashboard")
        return None

    if settings.dashboard_password_hash:        # after the Host check: it runs first
        auth.install(app, settings)

    @app.after_request
    def _headers(resp: Any) -> Any:
        resp.headers.setdefault("Content-Security-Policy", _CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/") or request.path == "/":
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Any:
        if exc.status >= 500:
            log.warning("%s %s -> %d %s", request.method, request.path, exc.status, exc.message)
        if exc.code is not None:                # Binance's code: the page translates it
            return jsonify({"error": exc.message, "code": exc.code}), exc.status
        return _error(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if request.path.startswith("/api/"):
            return _error(exc.code or 500, f"{exc.name}: {exc.description}")
        return exc

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, internal_error_message(exc))

    return app


def _host_name(host: str) -> str:
    """'localhost:5000' -> 'localhost'; '[::1]:5000' -> '[::1]'."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _error(status: int, message: str) -> Any:
    return jsonify({"error": message}), status


def check_bind(settings: Settings, debug: bool = False) -> None:
    """SettingsError (one line) unless the address is safe to serve on.

    Off loopback anyone who reaches the port gets the page and its token, so a password is
    required; the Werkzeug debugger (--debug) runs code for anyone who reaches it.
    """
    if is_loopback(settings.host):
        return
    if not settings.dashboard_password_hash:
        raise SettingsError(
            f"HOST={settings.host!r} is invalid: off loopback anyone who reaches the port could "
            "trade, so set DASHBOARD_PASSWORD_HASH (make it with `python -m web.auth hash`) or "
            "use HOST=127.0.0.1")
    if debug:
        raise SettingsError(
            f"--debug is invalid with HOST={settings.host!r}: the Werkzeug debugger runs code for "
            "anyone who reaches it; use --debug only with --host 127.0.0.1")


def check_db_path(path: Path) -> None:
    """SettingsError (one line) unless the store, its journal and its neighbours (the paper
    account, the session secret) can be written at `path`: serving a dashboard whose agent
    cannot be built would only hide the mistake."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
        if path.exists():
            with path.open("r+b"):
                pass
    except OSError as exc:
        raise SettingsError(f"DB_PATH={str(path)!r} is invalid: cannot write there "
                            f"({exc.strerror or type(exc).__name__})") from None


# ------------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m web.app",
                                description="Trading agent dashboard (Flask app served by waitress).")
    p.add_argument("--host", help="address to bind (default from HOST, 127.0.0.1)")
    p.add_argument("--port", help="port to bind (default from PORT, 5000)")
    p.add_argument("--db", help="SQLite database path (default from DB_PATH)")
    p.add_argument("--replay", metavar="PATH",
                   help="replay Binance archive klines from PATH (a data root, directory or zip)")
    p.add_argument("--speed", help="replay speed: world seconds per wall second (default 60)")
    p.add_argument("--symbol", help="symbol(s) to replay when PATH holds several: FILUSDT or FILUSDT,NEARUSDT")
    p.add_argument("--profile", metavar="NAME",
                   help="strategy profile profiles/NAME.json from python -m rl.optimize (default STRATEGY_PROFILE)")
    p.add_argument("--debug", action="store_true",
                   help="Flask development server with debug (no reloader)")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """load_settings() then the CLI flags, all validated with the same one-line errors."""
    env = dict(environ) if environ is not None else None
    if env is None:
        import os
        env = dict(os.environ)
    if args.host is not None:
        env["HOST"] = args.host
    if args.port is not None:
        env["PORT"] = args.port
    if args.db is not None:
        env["DB_PATH"] = str(Path(args.db).expanduser().resolve())
    if args.replay is not None:
        replay = Path(args.replay).expanduser().resolve()
        if not replay.exists():
            raise SettingsError(f"--replay={args.replay!r} is invalid: no such file or directory")
        env["REPLAY_DIR"] = str(replay)
    if args.speed is not None:
        if args.replay is None and not env.get("REPLAY_DIR"):
            raise SettingsError(f"--speed={args.speed!r} is invalid: it only applies with --replay PATH")
        env["REPLAY_SPEED"] = args.speed
    if args.symbol is not None:
        env["SYMBOLS"] = args.symbol
    if getattr(args, "profile", None) is not None:
        env["STRATEGY_PROFILE"] = args.profile
    return load_settings(env)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from web.world import build_world  # late: the CLI error path must not need pandas-heavy imports

    try:
        settings = settings_from_args(args)
        StrategyParams.from_settings(settings)      # a bad STRATEGY_PROFILE stops start-up here
        logging.getLogger().setLevel(settings.log_level)
        check_bind(settings, debug=args.debug)
        check_db_path(settings.db_path)
        world = build_world(settings, replay_symbol=args.symbol)
        settings = world.settings
        app = create_app(settings, market=world.market, runner=world.runner,
                         market_note=world.market_note, runner_note=world.runner_note,
                         replay=world.replay, reset_paper=world.reset_paper)
    except (SettingsError, ParamsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    svc: DashboardService = app.extensions["dashboard_service"]
    if world.market is not None and not settings.replaying:
        if not svc.probe_market():
            log.warning("Binance is unreachable (%s). The dashboard still serves the page; to "
                        "work offline replay archive data: %s",
                        svc.meta()["connectivity"]["error"], REPLAY_HINT)
    if world.runner is None:
        log.warning("agent unavailable: %s", world.runner_note)
    if not is_loopback(settings.host):
        log.warning("绑定到 %s（非本机回环）：需登录；密码经明文 HTTP 传输，请只在可信网络使用或加 HTTPS 反向代理 / "
                    "bound to %s, NOT loopback: every page needs the login; the password crosses the "
                    "network in plain HTTP, so use a trusted network, an SSH tunnel or an HTTPS "
                    "reverse proxy", settings.host, settings.host)
    if settings.strategy_profile:
        log.info("strategy profile %s: %d parameter(s) from it", settings.strategy_profile,
                 len(settings.strategy_overrides))
    url_host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    log.info("dashboard on http://%s:%d  (mode: %s)", url_host, settings.port, settings.mode_label)
    try:
        if args.debug:
            app.run(host=settings.host, port=settings.port, debug=True, use_reloader=False,
                    threaded=True)
        else:
            from waitress import serve
            serve(app, host=settings.host, port=settings.port, threads=8, ident="dashboard")
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    finally:
        # svc.runner: a paper reset replaces the world's runner
        if svc.runner is not None and getattr(svc.runner, "running", False):
            svc.runner.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
