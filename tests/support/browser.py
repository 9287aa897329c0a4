"""Real Chromium for the page tests, and the app on a loopback server.

Debian's chromium (/usr/bin/chromium) driven by Playwright's Python package, launched the one
way this machine allows (no sandbox in a container, no GPU, nothing fetched in the background).
A test module that needs it calls `require_browser()` at import, so it is skipped with the
reason where either part is absent; the `browser` fixture (tests/conftest.py) is one Chromium
per test. `serve_app` runs a Flask app on a free loopback port with waitress, as
`python -m web.app` serves it; `watch_page` collects console errors and requests that leave
that server (pages must be self-contained).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update"]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    expect = sync_playwright = None   # type: ignore[assignment]


def browser_missing() -> str | None:
    """Why no browser test can run here, or None when both parts are present."""
    if sync_playwright is None:
        return "playwright (python package) is not installed"
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is absent (apt-get install chromium)"
    return None


def require_browser() -> None:
    """At a test module's top: skip the whole module, with the reason, without a browser."""
    reason = browser_missing()
    if reason is not None:
        pytest.skip(reason, allow_module_level=True)


@contextmanager
def chromium() -> Iterator[Any]:
    """One headless Chromium, closed afterwards; skips the test without one."""
    reason = browser_missing()
    if reason is not None:
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def serve_app(app: Any, threads: int = 6) -> Iterator[str]:
    """`app` served by waitress on a free loopback port; yields its base URL."""
    from waitress.server import create_server

    srv = create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.effective_port}"
    finally:
        srv.close()
        thread.join(5)


def watch_page(page: Any, base: str | None = None) -> tuple[list[str], list[str]]:
    """(console and page errors, requests to anywhere but `base` or data: URLs), filled as
    the page runs."""
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    if base is not None:
        page.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:")
                else foreign.append(r.url))
    return errors, foreign


@contextmanager
def serve_world(settings: Any, replay_symbol: str | None = None,
                before_start: Any = None) -> Iterator[tuple[str, Any]]:
    """The app as `python -m web.app` wires it from `settings` (web.world.build_world: the real
    AgentRunner and TradingAgent, store and paper exchange in their SQLite files), on a free
    loopback port; yields (base URL, runner). `before_start(runner)` runs before the server does
    (a test seeds the store there)."""
    from web.app import create_app
    from web.world import build_world

    world = build_world(settings, replay_symbol=replay_symbol)
    assert world.runner is not None, world.runner_note
    if before_start is not None:
        before_start(world.runner)
    app = create_app(world.settings, market=world.market, runner=world.runner, replay=world.replay)
    try:
        with serve_app(app) as base:
            yield base, world.runner
    finally:
        world.runner.stop()
        world.runner.store.close()
        world.runner.exchange.close()


@contextmanager
def serve_replay_dashboard(shared_data_dir: Any, tmp_path: Any, before_start: Any = None,
                           symbol: str = "FILUSDT", **settings: Any) -> Iterator[tuple[str, Any]]:
    """`python -m web.app --replay ../shared/data --symbol FILUSDT` (serve_world) with the store
    and paper account under tmp_path and the replay at REPLAY_SPEED, 3000x unless given."""
    from config import Settings

    config = Settings(symbols=(symbol,), replay_dir=shared_data_dir, db_path=tmp_path / "agent.db",
                      **{"replay_speed": 3000.0, **settings})
    with serve_world(config, symbol, before_start) as served:
        yield served
