"""Dashboard login, for a dashboard that other machines can reach.

Bound to loopback with no DASHBOARD_PASSWORD_HASH the dashboard needs no login (web.app keeps
its Host check). Off loopback anyone who reaches the port could trade, so web.app refuses to
start there without a password, and `install` puts this login in front of every page and API:

- the password is stored only as a salted scrypt hash (hashlib, stdlib), made with
      python -m web.auth hash
- a correct password yields Flask's signed session cookie (HttpOnly, SameSite=Strict, ending
  12 h after the login),
  signed with a secret kept beside the database file (0600), so a restart keeps the session;
  the session holds a fingerprint of the hash, so changing the password logs everyone out;
- POSTs still need the page's token (web.api.require_token): the page that carries it is only
  served after login, and SameSite=Strict keeps other sites' requests cookie-less;
- failed logins are rate-limited per client address and overall.
"""
from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, jsonify, redirect, render_template, request, session, url_for

from config import Settings
from rl.errors import SettingsError

log = logging.getLogger("web.auth")

# scrypt cost: 2**15 x 8 x 128 B = 32 MiB and ~0.1 s per guess; stored in each hash, so it can
# be raised later without breaking existing hashes
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1
_MAX_SCRYPT_MEM = 256 * 1024 * 1024
MIN_PASSWORD_LEN = 8
MAX_PASSWORD_LEN = 1024             # a longer form field is refused before it is hashed
SESSION_HOURS = 12
SECRET_FILE = "dashboard-secret.key"
# failed logins: per client address, and over all addresses (a guesser with many addresses)
FAILS_PER_CLIENT, FAILS_OVERALL, FAIL_WINDOW_S = 5, 50, 900.0


# ------------------------------------------------------------------------------ hashing
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P,
                  salt: bytes | None = None) -> str:
    """'scrypt:N:r:p:salt:key' (base64url): what DASHBOARD_PASSWORD_HASH holds."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                         maxmem=_MAX_SCRYPT_MEM, dklen=32)
    return f"scrypt:{n}:{r}:{p}:{_b64(salt)}:{_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches `stored` (scrypt or pbkdf2_sha256); constant-time compare."""
    parts = stored.split(":")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = (int(x) for x in parts[1:4])
            salt, key = _unb64(parts[4]), _unb64(parts[5])
            got = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                                 maxmem=_MAX_SCRYPT_MEM, dklen=len(key))
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            salt, key = _unb64(parts[2]), _unb64(parts[3])
            got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, int(parts[1]),
                                      dklen=len(key))
        else:
            return False
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got, key)


def hash_fingerprint(stored: str) -> str:
    """Put in each session: a new password hash (a new fingerprint) ends every old session."""
    return hashlib.sha256(stored.encode("utf-8")).hexdigest()[:32]


# ------------------------------------------------------------------------------ secret
def load_or_create_secret(path: Path) -> bytes:
    """The session-signing secret in `path` (0600), made on first use."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32))
        if path.stat().st_mode & 0o077:
            # someone else on the machine could read it and forge a session
            os.chmod(path, 0o600)
            log.warning("%s 权限过宽，已改为 0600 / was readable by others, now 0600", path)
        secret = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SettingsError(f"{path} is invalid: cannot keep the dashboard session secret there "
                            f"({reason}); it sits beside DB_PATH") from None
    if len(secret) < 32:
        raise SettingsError(f"{path} is invalid: the dashboard session secret is too short; delete "
                            "the file and start again (a new one is made)")
    return secret.encode("ascii")


# ------------------------------------------------------------------------------ limiter
@dataclass
class LoginLimiter:
    """Failed logins within the last `window_s`: at most `per_client` per address and
    `overall` in all, then a wait until the oldest failure leaves the window."""

    per_client: int = FAILS_PER_CLIENT
    overall: int = FAILS_OVERALL
    window_s: float = FAIL_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    _fails: dict[str, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _prune(self, now: float) -> None:
        cutoff = now - self.window_s
        while self._all and self._all[0] <= cutoff:
            self._all.popleft()
        for key in list(self._fails):
            q = self._fails[key]
            while q and q[0] <= cutoff:
                q.popleft()
            if not q:
                del self._fails[key]

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 = now."""
        with self._lock:
            now = self.clock()
            self._prune(now)
            waits = [0.0]
            mine = self._fails.get(client)
            if mine and len(mine) >= self.per_client:
                waits.append(mine[-self.per_client] + self.window_s - now)
            if len(self._all) >= self.overall:
                waits.append(self._all[-self.overall] + self.window_s - now)
            return max(waits)

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            self._fails.setdefault(client, deque()).append(now)
            self._all.append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._fails.pop(client, None)


# ------------------------------------------------------------------------------ Flask
@dataclass
class _Auth:
    stored_hash: str
    fingerprint: str
    limiter: LoginLimiter


auth = Blueprint("auth", __name__)


def _state() -> _Auth:
    return current_app.extensions["dashboard_auth"]


def logged_in() -> bool:
    given = session.get("auth")
    return isinstance(given, str) and hmac.compare_digest(given, _state().fingerprint)


def install(app: Flask, settings: Settings, limiter: LoginLimiter | None = None) -> None:
    """Require a login for every page and API call of `app` (settings.dashboard_password_hash)."""
    stored = settings.dashboard_password_hash
    if not stored:
        raise SettingsError("DASHBOARD_PASSWORD_HASH is empty: nothing to log in with")
    app.secret_key = load_or_create_secret(settings.db_path.parent / SECRET_FILE)
    app.config.update(
        # one cookie per port: two dashboards on one machine do not overwrite each other's
        SESSION_COOKIE_NAME=f"dashboard_session_{settings.port}",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        # the cookie is issued once, at login: a session ends SESSION_HOURS after it, however
        # busy (a cookie re-issued on every poll of the page would never expire)
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    app.extensions["dashboard_auth"] = _Auth(stored, hash_fingerprint(stored), limiter or LoginLimiter())
    app.register_blueprint(auth)
    app.before_request(_require_login)
    app.context_processor(lambda: {"dashboard_login": True})


def _require_login() -> Any:
    if request.endpoint in ("auth.login", "static") or logged_in():
        return None
    if request.path.startswith("/api/"):
        return jsonify({"error": "unauthorized: log in at /login first (the session may have "
                                 "expired or the password changed)"}), 401
    return redirect(url_for("auth.login"))


def _same_origin() -> bool:
    """A browser's login POST must come from this dashboard's own page.

    Sec-Fetch-Site says so directly; Origin is "null" under the page's Referrer-Policy
    no-referrer, so it only counts when it names a host (absent both: not a browser form).
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    return origin in (None, "null") or urlsplit(origin).netloc == request.host


def _page(status: int, error_zh: str = "", error_en: str = "", **headers: str) -> Any:
    lang = current_app.extensions["dashboard_service"].settings.language
    html = render_template("login.html", lang=lang, error_zh=error_zh, error_en=error_en)
    return html, status, headers


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return redirect(url_for("pages.index")) if logged_in() else _page(200)
    if not _same_origin():
        return _page(403, "请求来源不是本看板", "the request did not come from this dashboard")
    state, client = _state(), request.remote_addr or "?"
    wait = state.limiter.retry_after(client)
    if wait > 0:
        minutes = max(1, round(wait / 60))
        return _page(429, f"密码错误次数过多，请 {minutes} 分钟后再试",
                     f"too many wrong passwords: try again in {minutes} min",
                     **{"Retry-After": str(int(wait) + 1)})
    password = request.form.get("password", "")
    if not (0 < len(password) <= MAX_PASSWORD_LEN and verify_password(password, state.stored_hash)):
        state.limiter.failed(client)
        log.warning("看板登录失败（来自 %s）/ failed dashboard login from %s", client, client)
        return _page(401, "密码错误", "wrong password")
    state.limiter.succeeded(client)
    session.clear()
    session["auth"] = state.fingerprint
    session.permanent = True
    log.info("看板登录成功（来自 %s）/ dashboard login from %s", client, client)
    return redirect(url_for("pages.index"), code=303)


@auth.post("/logout")
def logout() -> Any:
    expected: str = current_app.config["DASHBOARD_TOKEN"]
    given = request.form.get("token", "")
    if logged_in() and not hmac.compare_digest(given.encode(), expected.encode()):
        return jsonify({"error": "forbidden: missing or wrong token (reload the dashboard page)"}), 403
    session.clear()
    return redirect(url_for("auth.login"), code=303)


# ------------------------------------------------------------------------------ CLI
def _read_password() -> str:
    if not sys.stdin.isatty():                      # piped: one line
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("看板密码 / dashboard password: ")
    if getpass.getpass("再输入一次 / again: ") != first:
        raise SettingsError("the two passwords differ")
    return first


def main(argv: Sequence[str] | None = None) -> int:
    """python -m web.auth hash: read a password, print the DASHBOARD_PASSWORD_HASH line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["hash"]:
        print("usage: python -m web.auth hash   (reads the password, prints "
              "DASHBOARD_PASSWORD_HASH=... for .env)", file=sys.stderr)
        return 2
    try:
        password = _read_password()
        if not MIN_PASSWORD_LEN <= len(password) <= MAX_PASSWORD_LEN:
            raise SettingsError(f"the password must be {MIN_PASSWORD_LEN}..{MAX_PASSWORD_LEN} characters")
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"DASHBOARD_PASSWORD_HASH={hash_password(password)}")
    print("把上面一行写入 .env / put the line above into .env", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
