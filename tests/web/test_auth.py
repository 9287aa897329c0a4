"""The dashboard login (web.auth) over a real waitress server on a free loopback port.

The app is built for an address off loopback (settings.host = 0.0.0.0: no Host check, login
required) but served on 127.0.0.1, so nothing leaves the machine. Behind it: the real
AgentRunner, a KnowledgeStore and a PaperExchange in SQLite files under tmp_path, and
ReplayMarketData over generated candles, so "can trade" means a real paper order is filled.
"""
from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from config import Settings, load_settings
from rl.agent.runner import AgentRunner
from rl.analysis.levels.finder import DEFAULT_WEIGHTS
from rl.clock import ManualClock
from rl.errors import SettingsError
from rl.knowledge.store import KnowledgeStore
from rl.market.ports import ReplayMarketData
from rl.paper.exchange import PaperExchange
from tests.support.candles import make_candles
from tests.support.paths import REPO_ROOT
from web.app import create_app
from web.auth import SECRET_FILE, LoginLimiter, hash_password, verify_password

PASSWORD = "correct horse battery"
HASH = hash_password(PASSWORD, n=2 ** 12)          # cheap cost: the format is what matters here
SYMBOL = "FILUSDT"
DAY_MIN = 24 * 60
ORDER = {"symbol": SYMBOL, "side": "BUY", "quantity": "250"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app: Any) -> Iterator[str]:
    from waitress import wasyncore
    from waitress.server import create_server

    srv = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.effective_port}"
    finally:
        # close the sockets inside the server's own loop (closing them from here races its
        # select()); with nothing left to watch the loop returns
        try:
            srv.trigger.pull_trigger(lambda: wasyncore.close_all(srv._map))
        except OSError:
            # the trigger pipe is already closed (seen in CI as EBADF: waitress closes the
            # server and its trigger itself after an error in its loop); close what is left
            wasyncore.close_all(srv._map, ignore_all=True)
        thread.join(10)
        srv.task_dispatcher.shutdown()
        assert not thread.is_alive()


@contextmanager
def dashboard(tmp_path: Path, **settings: Any) -> Iterator[tuple[str, Any, AgentRunner]]:
    frame = make_candles(n=35 * DAY_MIN, start="2024-01-01", price=4.0, vol=0.002)
    clock = ManualClock(int(frame.index[30 * DAY_MIN].value // 1_000_000) + 30_000)
    market = ReplayMarketData({SYMBOL: frame}, clock)
    config = Settings(**{"symbols": (SYMBOL,), "db_path": tmp_path / "agent.db", "host": "0.0.0.0",
                         "dashboard_password_hash": HASH, **settings})
    store = KnowledgeStore(config.db_path, default_weights=DEFAULT_WEIGHTS)
    exchange = PaperExchange(config.db_path.with_name("paper.db"), balance=config.paper_balance,
                             clock=market.now_ms, price_source=market.last_price)
    runner = AgentRunner(config, market, exchange, store, clock, feed=exchange)
    app = create_app(config, market=market, runner=runner)
    try:
        with serve(app) as base:
            yield base, app, runner
    finally:
        runner.stop()
        store.close()
        exchange.close()


def login(base: str, password: str = PASSWORD) -> tuple[requests.Session, requests.Response]:
    s = requests.Session()
    resp = s.post(base + "/login", data={"password": password}, allow_redirects=False, timeout=10)
    return s, resp


def token_of(html: str) -> str:
    marker = '<meta name="dashboard-token" content="'
    assert marker in html
    return html.split(marker, 1)[1].split('"', 1)[0]


def test_off_loopback_without_a_password_is_refused(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        with pytest.raises(SettingsError) as err:
            create_app(Settings(host=host, db_path=tmp_path / "a.db"))
        assert str(err.value).startswith(f"HOST={host!r} is invalid") and "\n" not in str(err.value)
        assert "python -m web.auth hash" in str(err.value)


def test_without_login_nothing_is_served_and_nothing_trades(tmp_path: Path) -> None:
    with dashboard(tmp_path) as (base, app, runner):
        page = requests.get(base + "/", allow_redirects=False, timeout=10)
        assert page.status_code == 302 and page.headers["Location"].endswith("/login")
        assert app.config["DASHBOARD_TOKEN"] not in page.text
        for path in ("/api/meta", "/api/account", "/api/positions", "/api/trades", "/api/agent/status"):
            resp = requests.get(base + path, timeout=10)
            assert resp.status_code == 401 and "log in" in resp.json()["error"], path
        # even someone who knows the token cannot trade without a session
        resp = requests.post(base + "/api/order", json=ORDER, timeout=10,
                             headers={"X-Dashboard-Token": app.config["DASHBOARD_TOKEN"]})
        assert resp.status_code == 401
        assert runner.exchange.position(SYMBOL) is None
        assert requests.get(base + "/static/style.css", timeout=10).status_code == 200


def test_login_gives_an_httponly_strict_session_and_the_token_is_still_needed(tmp_path: Path) -> None:
    with dashboard(tmp_path) as (base, app, runner):
        wrong_session, wrong = login(base, "not the password")
        assert wrong.status_code == 401 and "wrong password" in wrong.text and "密码错误" in wrong.text
        assert not wrong_session.cookies
        s, ok = login(base)
        assert ok.status_code == 303 and ok.headers["Location"].endswith("/")
        cookie = ok.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = s.get(base + "/", timeout=10)
        assert page.status_code == 200 and 'id="btn-logout"' in page.text
        token = token_of(page.text)
        assert s.get(base + "/api/meta", timeout=10).status_code == 200
        # CSRF: a logged-in browser's request without the page's token is still refused
        assert s.post(base + "/api/order", json=ORDER, timeout=10).status_code == 403
        assert runner.exchange.position(SYMBOL) is None
        filled = s.post(base + "/api/order", json=ORDER, headers={"X-Dashboard-Token": token}, timeout=10)
        assert filled.status_code == 200, filled.text
        assert runner.exchange.position(SYMBOL) is not None


def test_a_session_ends_12_hours_after_the_login(tmp_path: Path, monkeypatch) -> None:
    import itsdangerous.timed

    with dashboard(tmp_path) as (base, app, runner):
        s, _ = login(base)
        polled = s.get(base + "/api/meta", timeout=10)
        assert polled.status_code == 200 and "Set-Cookie" not in polled.headers   # not re-issued
        serializer = app.session_interface.get_signing_serializer(app)
        name, value = next(iter(s.cookies.get_dict().items()))
        content = serializer.loads(value)
        real_time = itsdangerous.timed.time.time
        monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() - 12 * 3600 - 60)
        stale = serializer.dumps(content)                   # the same session, signed 12 h ago
        monkeypatch.undo()
        assert requests.get(base + "/api/meta", cookies={name: stale}, timeout=10).status_code == 401
        fresh = serializer.dumps(content)
        assert requests.get(base + "/api/meta", cookies={name: fresh}, timeout=10).status_code == 200


def test_logout_needs_the_token_and_ends_the_session(tmp_path: Path) -> None:
    with dashboard(tmp_path) as (base, app, runner):
        s, _ = login(base)
        token = token_of(s.get(base + "/", timeout=10).text)
        assert s.post(base + "/logout", data={"token": "wrong"}, allow_redirects=False,
                      timeout=10).status_code == 403
        out = s.post(base + "/logout", data={"token": token}, allow_redirects=False, timeout=10)
        assert out.status_code == 303 and out.headers["Location"].endswith("/login")
        assert s.get(base + "/api/meta", timeout=10).status_code == 401


def test_failed_logins_are_rate_limited(tmp_path: Path) -> None:
    with dashboard(tmp_path) as (base, app, runner):
        for _ in range(5):
            assert login(base, "guess")[1].status_code == 401
        s, refused = login(base)               # even the right password, while locked out
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert "too many wrong passwords" in refused.text
        assert s.get(base + "/api/meta", timeout=10).status_code == 401


def test_limiter_window_per_client_and_overall() -> None:
    now = [1000.0]
    lim = LoginLimiter(per_client=3, overall=5, window_s=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert lim.retry_after("a") == 0
        lim.failed("a")
    assert lim.retry_after("a") == pytest.approx(60.0) and lim.retry_after("b") == 0
    now[0] += 61
    assert lim.retry_after("a") == 0                     # the failures left the window
    for client in "abcde":
        lim.failed(client)
    assert lim.retry_after("f") > 0                      # many addresses: everyone waits
    lim.succeeded("a")
    now[0] += 61
    assert lim.retry_after("f") == 0


def test_login_from_another_site_is_refused(tmp_path: Path) -> None:
    with dashboard(tmp_path) as (base, app, runner):
        for headers in ({"Origin": "http://evil.example"},
                        {"Origin": "null", "Sec-Fetch-Site": "cross-site"}):
            resp = requests.post(base + "/login", data={"password": PASSWORD}, allow_redirects=False,
                                 headers=headers, timeout=10)
            assert resp.status_code == 403 and "Set-Cookie" not in resp.headers


def test_session_survives_a_restart_but_not_a_new_password(tmp_path: Path) -> None:
    with dashboard(tmp_path) as (base, app, runner):
        s, _ = login(base)
    secret = tmp_path / SECRET_FILE
    assert secret.is_file() and stat.S_IMODE(secret.stat().st_mode) == 0o600
    # cookies ignore ports, so the session goes to the restarted servers on their new ports
    with dashboard(tmp_path) as (base2, app, runner):         # same secret file, same hash
        assert s.get(base2 + "/api/meta", timeout=10).status_code == 200
    new_hash = hash_password("another password", n=2 ** 12)
    with dashboard(tmp_path, dashboard_password_hash=new_hash) as (base3, app, runner):
        assert s.get(base3 + "/api/meta", timeout=10).status_code == 401


def test_a_forged_or_foreign_cookie_is_refused(tmp_path: Path) -> None:
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    other = Flask("forger")
    other.secret_key = "not-the-dashboard-secret-0123456789abcdef"
    serializer = SecureCookieSessionInterface().get_signing_serializer(other)
    assert serializer is not None
    with dashboard(tmp_path) as (base, app, runner):
        from web.auth import hash_fingerprint

        forged = serializer.dumps({"auth": hash_fingerprint(HASH), "_permanent": True})
        name = f"dashboard_session_{Settings().port}"
        resp = requests.get(base + "/api/meta", cookies={name: forged}, timeout=10)
        assert resp.status_code == 401


def test_a_readable_secret_file_is_made_private(tmp_path: Path) -> None:
    secret = tmp_path / SECRET_FILE
    secret.write_text("f" * 64)
    os.chmod(secret, 0o644)
    create_app(Settings(host="0.0.0.0", db_path=tmp_path / "agent.db", dashboard_password_hash=HASH))
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_an_unusable_secret_file_stops_start_up_with_one_line(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).mkdir()
    with pytest.raises(SettingsError, match="cannot keep the dashboard session secret") as err:
        create_app(Settings(host="0.0.0.0", db_path=tmp_path / "agent.db", dashboard_password_hash=HASH))
    assert "\n" not in str(err.value)


def test_loopback_with_a_password_keeps_the_host_check(tmp_path: Path) -> None:
    with dashboard(tmp_path, host="127.0.0.1") as (base, app, runner):
        rebound = requests.get(base + "/login", headers={"Host": "evil.example"}, timeout=10)
        assert rebound.status_code == 403
        assert requests.get(base + "/login", timeout=10).status_code == 200
        assert requests.get(base + "/api/meta", timeout=10).status_code == 401


def test_loopback_without_a_password_needs_no_login(tmp_path: Path) -> None:
    with dashboard(tmp_path, host="127.0.0.1", dashboard_password_hash="") as (base, app, runner):
        page = requests.get(base + "/", timeout=10)
        assert page.status_code == 200 and token_of(page.text) == app.config["DASHBOARD_TOKEN"]
        assert 'id="btn-logout"' not in page.text
        assert requests.get(base + "/login", timeout=10).status_code == 404
        assert not (tmp_path / SECRET_FILE).exists()


# ------------------------------------------------------------------------------ CLI
def _run(args: list[str], tmp_path: Path, stdin: str = "", **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRADING_MODE", "API_KEY", "API_SECRET", "DASHBOARD_PASSWORD_HASH", "HOST")}
    env.update({"DB_PATH": str(tmp_path / "agent.db"), **env_extra})
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_hash_command_prints_a_line_for_env(tmp_path: Path) -> None:
    done = _run(["web.auth", "hash"], tmp_path, stdin="my dashboard pw\n")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("DASHBOARD_PASSWORD_HASH=scrypt:") and "my dashboard pw" not in line
    stored = line.split("=", 1)[1]
    assert verify_password("my dashboard pw", stored) and not verify_password("my dashboard", stored)
    env_file = tmp_path / ".env"
    env_file.write_text(line + "\n", encoding="utf-8")
    assert load_settings({}, dotenv_path=env_file).dashboard_password_hash == stored
    short = _run(["web.auth", "hash"], tmp_path, stdin="short\n")
    assert short.returncode == 2 and "8.." in short.stderr


@pytest.mark.parametrize("args, env_extra, needle", [
    (["--host", "0.0.0.0"], {}, "HOST='0.0.0.0' is invalid"),
    (["--host", "0.0.0.0", "--debug"], {"DASHBOARD_PASSWORD_HASH": HASH}, "--debug is invalid"),
])
def test_unsafe_bind_stops_start_up_with_one_line(tmp_path: Path, args, env_extra, needle) -> None:
    done = _run(["web.app", *args, "--port", str(free_port())], tmp_path, **env_extra)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and needle in lines[0], done.stderr


def test_unwritable_db_path_stops_start_up_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    done = _run(["web.app", "--port", str(free_port())], tmp_path,
                DB_PATH=str(tmp_path / "a-file" / "agent.db"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: DB_PATH="), done.stderr
