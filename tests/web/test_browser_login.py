"""The login page in a real browser (Debian's Chromium driven by Playwright).

The dashboard of tests/web/test_auth.py (built for 0.0.0.0, served on loopback, the real agent
and paper exchange behind it): a browser that opens it lands on the login page, a wrong
password is refused, the right one opens the dashboard, whose token then trades; the session
cookie is out of the page's scripts' reach (HttpOnly), and logging out ends it.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import chromium, expect, require_browser
from tests.web.test_auth import ORDER, PASSWORD, SYMBOL, dashboard

pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_browser()

POST_ORDER = """async (order) => {
  const token = document.querySelector('meta[name="dashboard-token"]').content;
  const r = await fetch('/api/order', {method: 'POST', body: JSON.stringify(order),
    headers: {'Content-Type': 'application/json', 'X-Dashboard-Token': token}});
  return r.status;
}"""


def test_login_in_chromium(tmp_path: Path) -> None:
    with dashboard(tmp_path) as (base, app, runner), chromium() as browser:
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            page.goto(base + "/")
            assert page.url == base + "/login"
            expect(page.locator("label[for=password]")).to_contain_text("密码")
            expect(page.locator("#btn-login")).to_have_text("登录 / Log in")
            page.screenshot(path=str(tmp_path / "login.png"))

            page.fill("#password", "not the password")
            page.click("#btn-login")
            expect(page.locator("#login-error")).to_have_text("密码错误 / wrong password")
            assert page.url == base + "/login"

            page.fill("#password", PASSWORD)
            page.click("#btn-login")
            page.wait_for_url(base + "/")
            expect(page.locator("h1")).to_have_text("自学习交易代理")
            expect(page.locator("#btn-logout")).to_be_visible()
            page.screenshot(path=str(tmp_path / "dashboard-after-login.png"))
            assert page.evaluate("document.cookie") == ""         # HttpOnly: no script reads it
            cookie = next(c for c in page.context.cookies() if c["name"].startswith("dashboard_session"))
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

            assert page.evaluate(POST_ORDER, ORDER) == 200
            assert runner.exchange.position(SYMBOL) is not None

            page.click("#btn-logout")
            page.wait_for_url(base + "/login")
            assert page.evaluate("fetch('/api/meta').then(r => r.status)") == 401
            assert not [c for c in page.context.cookies() if c["name"].startswith("dashboard_session")]
            assert errors == []
        finally:
            browser.close()
