"""Helpers start.bat calls, kept in Python so they can be tested (and batch stays simple).

    python launcher.py check-python          exit 1 with a zh/en line when Python < 3.11
    python launcher.py open-when-up [ARGS]   wait until the dashboard answers, then open it

`open-when-up` takes the same arguments as `python -m web.app` (only --port is read), else the
PORT in .env or the environment, else 5000; it opens the browser only once the server answers,
and gives up (saying so) when it never does, e.g. because start-up stopped on a bad setting.
Standard library only: it runs before the requirements are installed.
"""
from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
import webbrowser
from collections.abc import Callable, Sequence
from pathlib import Path

MIN_PYTHON = (3, 11)
DEFAULT_PORT = 5000


def python_ok(version: Sequence[int] = tuple(sys.version_info[:2])) -> tuple[bool, str]:
    """(ok, message): the message says which Python was found and what is needed."""
    found = ".".join(str(v) for v in version[:3])
    if tuple(version[:2]) >= MIN_PYTHON:
        return True, f"Python {found}"
    need = ".".join(map(str, MIN_PYTHON))
    return False, (f"[错误] 需要 Python {need} 或更高版本，当前为 {found}；请从 python.org 安装并勾选 "
                   f"\"Add to PATH\"\n[error] Python {need}+ is required, found {found}: install it "
                   f"from python.org and tick \"Add to PATH\"")


def _dotenv_port(path: Path) -> str | None:
    if not path.is_file():
        return None
    value = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, rest = line.strip().partition("=")
        if sep and key.strip() == "PORT":
            value = rest.split("#", 1)[0].strip().strip("\"'")
    return value


def resolve_port(argv: Sequence[str], env: dict[str, str], dotenv: Path) -> int:
    """--port N / --port=N from the web.app arguments, else PORT (environment, then .env,
    as config.py reads them), else 5000; an unusable value falls back to 5000 (web.app itself
    then stops on it with a clear message)."""
    raw: str | None = None
    for i, arg in enumerate(argv):
        if arg == "--port" and i + 1 < len(argv):
            raw = argv[i + 1]
        elif arg.startswith("--port="):
            raw = arg.split("=", 1)[1]
    if raw is None:
        raw = env.get("PORT") or _dotenv_port(dotenv)
    try:
        port = int(raw) if raw is not None else DEFAULT_PORT
    except ValueError:
        return DEFAULT_PORT
    return port if 1 <= port <= 65535 else DEFAULT_PORT


def answers(url: str, timeout: float = 1.0) -> bool:
    """Does anything answer HTTP at `url`? (any status: a login page or 503 is still up)"""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def wait_until_up(url: str, tries: int, pause: Callable[[], None],
                  probe: Callable[[str], bool] = answers) -> bool:
    """Probe `url` up to `tries` times with `pause()` between; True once it answers."""
    for i in range(tries):
        if probe(url):
            return True
        if i + 1 < tries:
            pause()
    return False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(__doc__)
        return 2
    if args[0] == "check-python":
        ok, msg = python_ok()
        print(msg, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    if args[0] == "open-when-up":
        port = resolve_port(args[1:], dict(os.environ), Path(__file__).with_name(".env"))
        url = f"http://127.0.0.1:{port}/"
        # up to 2 minutes: the first start imports numpy/pandas and may build a store
        if wait_until_up(url, tries=240, pause=lambda: time.sleep(0.5)):
            webbrowser.open(url)
            return 0
        print(f"[提示] 服务器未在 {url} 响应，请查看上方窗口的错误信息\n"
              f"[note] the server did not answer at {url}: see the messages in the other window",
              file=sys.stderr)
        return 1
    print(f"unknown command {args[0]!r}: use check-python or open-when-up", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
