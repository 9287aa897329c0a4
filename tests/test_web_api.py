"""The REST API over the service layer: status codes, JSON errors, token, validation.

Until rl/runner.py's AgentRunner is wired in for tests, `FakeRunner` below stands in for it:
it has the AgentRunner interface from docs/internals.md, runs a real background thread and
writes log lines and one trade with a thought chain, so the page and API have data to show.
The market is the real ReplayMarketData over generated candles and a ManualClock.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from client import NetworkError, OrderRejected
from config import Settings
from rl.clock import ManualClock
from rl.marketdata import MarketUnavailable, ReplayMarketData
from tests.conftest import make_candles
from web.app import create_app, is_loopback
from web.service import DashboardService, ServiceError, frame_to_candles

TOKEN = "test-token-123"
WEIGHTS = {"volume_density": 0.20, "touch_bounce_count": 0.20, "bounce_magnitude": 0.15,
           "failed_breakout_count": 0.20, "duration_days": 0.10, "multi_tf_confirm": 0.15}


class AgentAlreadyRunning(Exception):
    """Same name as rl.runner's: the service recognises it by name."""


class FakeRunner:
    """AgentRunner stand-in: one real thread that logs a decision line every `tick` seconds."""

    def __init__(self, clock: Any, symbols: tuple[str, ...] = ("FILUSDT",), tick: float = 0.2,
                 price: float = 4.0) -> None:
        self.clock = clock
        self.symbols = symbols
        self.tick = tick
        self.price = price
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._logs: list[dict] = []
        self._trades: list[dict] = []
        self.orders: list[tuple] = []
        self.closed: list[str] = []
        self.order_error: Exception | None = None
        self.cycles = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            raise AgentAlreadyRunning("the agent is already running: stop it first")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="fake-agent")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._cycle()
            self._stop.wait(self.tick)

    def _cycle(self) -> None:
        now = self.clock.now_ms()
        with self._lock:
            self.cycles += 1
            n = self.cycles
            self._logs.append({
                "id": len(self._logs) + 1, "time_ms": now, "level": "INFO", "symbol": self.symbols[0],
                "message_zh": f"⏳ 观望中 | 做多:{40 + n % 5} 做空:25 (需≥35分) [探索期|{len(self._trades)}笔]",
                "message_en": f"⏳ waiting | long:{40 + n % 5} short:25 (need ≥35) [exploration|{len(self._trades)} trades]"})
            if n == 2:
                tid = len(self._trades) + 1
                self._trades.append({
                    "id": tid, "symbol": self.symbols[0], "side": "LONG", "status": "closed",
                    "opened_ms": now - 600_000, "closed_ms": now - 60_000, "entry_price": self.price,
                    "exit_price": self.price * 1.01, "quantity": 10.0, "net_pnl": 0.38,
                    "stop_price": self.price * 0.99, "target_price": self.price * 1.02,
                    "thought_chain": {
                        "trade_id": tid,
                        "perception": {"price": self.price, "rsi_15m": 31.2, "trend": "up"},
                        "action": {"side": "LONG", "price": self.price, "stop": self.price * 0.99},
                        "reward": {"net_pnl": 0.38, "r_multiple": 1.0},
                        "summary_zh": "支撑位反弹做多，止盈离场", "summary_en": "Long on a support bounce, target hit"}})

    def status(self) -> dict:
        with self._lock:
            count = len(self._trades)
        return {"running": self.running, "mode": "replay", "symbols": list(self.symbols),
                "phase": {"key": "exploration", "name_zh": "探索期", "name_en": "Exploration",
                          "trade_count": count, "next_at": 30, "progress": count / 30,
                          "min_score": 35, "score_gap": 10},
                "last_scores": {}, "weights": dict(WEIGHTS), "last_error": None,
                "last_cycle_ms": self.clock.now_ms(), "connectivity": "ok"}

    def logs(self, limit: int = 200, after_id: int | None = None) -> list[dict]:
        with self._lock:
            rows = [r for r in self._logs if after_id is None or r["id"] > after_id]
        return list(reversed(rows))[:limit]

    def levels(self, symbol: str) -> list[dict]:
        return [{"price": self.price * 0.98, "kind": "support", "score": 72.5},
                {"price": self.price * 1.03, "kind": "resistance", "score": 64.0}]

    def account(self) -> dict:
        return {"wallet_balance": 10000.0, "unrealized_pnl": 12.5, "margin_balance": 10012.5,
                "initial_margin": 400.0, "available_balance": 9612.5}

    def positions(self) -> list[dict]:
        return [{"symbol": self.symbols[0], "amount": 100.0, "entry_price": self.price,
                 "mark_price": self.price * 1.001, "unrealized_pnl": 12.5, "liquidation_price": 3.0,
                 "leverage": 10, "margin": 40.0, "stop": self.price * 0.99, "target": self.price * 1.02}]

    def manual_order(self, symbol: str, side: str, type: str, quantity: float,
                     price: float | None = None) -> dict:
        if self.order_error is not None:
            raise self.order_error
        self.orders.append((symbol, side, type, quantity, price))
        return {"symbol": symbol, "side": side, "type": type, "status": "FILLED",
                "executed_qty": quantity}

    def close_position(self, symbol: str) -> dict:
        self.closed.append(symbol)
        return {"symbol": symbol, "status": "FILLED"}

    def trades(self, limit: int = 100) -> list[dict]:
        with self._lock:
            rows = [{k: v for k, v in t.items() if k != "thought_chain"} for t in self._trades]
        return list(reversed(rows))[:limit]

    def trade(self, trade_id: int) -> dict | None:
        with self._lock:
            return next((dict(t) for t in self._trades if t["id"] == trade_id), None)

    def equity_curve(self) -> list[dict]:
        now = self.clock.now_ms()
        return [{"time_ms": now - 3_600_000, "equity": 10000.0}, {"time_ms": now, "equity": 10000.38}]

    def weight_history(self) -> list[dict]:
        return [{"time_ms": self.clock.now_ms(), "weights": dict(WEIGHTS), "reason": "initial",
                 "reason_zh": "初始权重", "reason_en": "initial weights"}]


# ---------------------------------------------------------------------------- fixtures
SYMBOL = "FILUSDT"


@pytest.fixture
def world(tmp_path: Path):
    frame = make_candles(n=3000, start="2024-01-01", price=4.0)
    clock = ManualClock(int(frame.index[2000].value // 1_000_000) + 30_000)  # mid-bar: forming 1m
    market = ReplayMarketData({SYMBOL: frame}, clock)
    runner = FakeRunner(clock, (SYMBOL,))
    settings = Settings(symbols=(SYMBOL,), db_path=tmp_path / "agent.db", api_key="KEY-SHOULD-NOT-LEAK",
                        api_secret="SECRET-SHOULD-NOT-LEAK")
    app = create_app(settings, market=market, runner=runner, token=TOKEN)
    yield app, runner, clock, frame
    runner.stop()


@pytest.fixture
def client(world):
    return world[0].test_client()


def post(client, path: str, body: Any = None, token: str | None = TOKEN):
    headers = {"X-Dashboard-Token": token} if token is not None else {}
    return client.post(path, json=body if body is not None else {}, headers=headers)


# ---------------------------------------------------------------------------- page + token
def test_page_carries_token_and_no_secrets(client):
    resp = client.get("/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert f'<meta name="dashboard-token" content="{TOKEN}">' in html
    assert "KEY-SHOULD-NOT-LEAK" not in html and "SECRET-SHOULD-NOT-LEAK" not in html
    assert "lightweight-charts.standalone.production.js" in html
    assert "https://" not in html.split("<body>")[0]  # no external resources in <head>
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    meta = client.get("/api/meta").get_data(as_text=True)
    assert "SHOULD-NOT-LEAK" not in meta


@pytest.mark.parametrize("path", ["/api/agent/start", "/api/agent/stop", "/api/order", "/api/close"])
@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_post_without_right_token_is_403_json(client, world, path, token):
    resp = post(client, path, {"symbol": SYMBOL, "side": "BUY", "quantity": 1}, token=token)
    assert resp.status_code == 403
    assert "X-Dashboard-Token" in resp.get_json()["error"]
    assert not world[1].running and world[1].orders == [] and world[1].closed == []


def test_random_token_per_app(tmp_path):
    s = Settings(db_path=tmp_path / "a.db")
    t1 = create_app(s).config["DASHBOARD_TOKEN"]
    t2 = create_app(s).config["DASHBOARD_TOKEN"]
    assert t1 != t2 and len(t1) >= 32


def test_foreign_host_header_refused_on_loopback(client):
    # A DNS-rebinding page would reach us with its own host name: it must not read the token.
    resp = client.get("/", headers={"Host": "evil.example:5000"})
    assert resp.status_code == 403
    assert client.get("/", headers={"Host": "localhost:5000"}).status_code == 200


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


# ---------------------------------------------------------------------------- klines
def test_klines_shape_and_no_future(client, world):
    _, _, clock, frame = world
    data = client.get(f"/api/klines/{SYMBOL}/1m?limit=100").get_json()
    candles = data["candles"]
    assert data["symbol"] == SYMBOL and len(candles) == 100
    times = [c["time"] for c in candles]
    assert times == sorted(times) and len(set(times)) == 100
    assert candles[-1]["open_time_ms"] <= clock.now_ms()      # nothing after the clock
    assert set(candles[0]) >= {"time", "open", "high", "low", "close", "volume"}
    assert all(c["low"] <= min(c["open"], c["close"]) and c["high"] >= max(c["open"], c["close"])
               for c in candles)


def test_klines_15m_aggregates_1m(client):
    m1 = client.get(f"/api/klines/{SYMBOL}/1m?limit=60").get_json()["candles"]
    m15 = client.get(f"/api/klines/{SYMBOL}/15m?limit=3").get_json()["candles"]
    closed = m15[-2]                          # the last fully closed 15m candle
    inside = [c for c in m1 if closed["time"] <= c["time"] < closed["time"] + 900]
    assert len(inside) == 15
    assert closed["open"] == pytest.approx(inside[0]["open"])
    assert closed["close"] == pytest.approx(inside[-1]["close"])
    assert closed["high"] == pytest.approx(max(c["high"] for c in inside))
    assert closed["low"] == pytest.approx(min(c["low"] for c in inside))


def test_klines_all_has_four_intervals(client):
    data = client.get(f"/api/klines_all/{SYMBOL}?limit=50").get_json()
    assert data["intervals"] == ["1m", "15m", "8h", "1w"]
    for itv in data["intervals"]:
        assert data["klines"][itv], itv
    assert len(data["klines"]["1m"]) == 50


@pytest.mark.parametrize("url,status,word", [
    ("/api/klines/DOGEUSDT/1m", 404, "symbol"),
    ("/api/klines/bad$sym/1m", 400, "symbol"),
    (f"/api/klines/{SYMBOL}/7m", 400, "interval"),
    (f"/api/klines/{SYMBOL}/1m?limit=0", 400, "limit"),
    (f"/api/klines/{SYMBOL}/1m?limit=abc", 400, "limit"),
    ("/api/klines_all/DOGEUSDT", 404, "symbol"),
])
def test_klines_bad_input(client, url, status, word):
    resp = client.get(url)
    assert resp.status_code == status
    assert word in resp.get_json()["error"]


class DownMarket:
    """A market port whose network is down, as LiveMarketData reports it."""

    def klines(self, symbol, interval, limit=500):
        raise MarketUnavailable("Binance (https://fapi.binance.com) is unreachable: connection refused")

    def last_price(self, symbol):
        raise MarketUnavailable("Binance is unreachable")

    def now_ms(self):
        return 1_700_000_000_000


def test_market_unreachable_is_503_and_shown(tmp_path):
    app = create_app(Settings(db_path=tmp_path / "a.db"), market=DownMarket(), token=TOKEN)
    c = app.test_client()
    resp = c.get("/api/klines/BTCUSDT/1m")
    assert resp.status_code == 503
    assert "unreachable" in resp.get_json()["error"]
    meta = c.get("/api/meta").get_json()
    assert meta["connectivity"]["state"] == "unreachable"
    page = c.get("/").get_data(as_text=True)
    assert "Binance is unreachable" in page and "--replay" in page


# ---------------------------------------------------------------------------- agent
def test_agent_start_stop_conflicts(client, world):
    runner = world[1]
    resp = post(client, "/api/agent/start")
    assert resp.status_code == 200 and resp.get_json()["running"] is True
    again = post(client, "/api/agent/start")
    assert again.status_code == 409 and "already running" in again.get_json()["error"]
    assert post(client, "/api/agent/stop").get_json()["running"] is False
    assert not runner.running
    assert post(client, "/api/agent/stop").status_code == 409


def test_concurrent_starts_start_one_agent(world):
    app, runner, _, _ = world
    codes: list[int] = []

    def hit() -> None:
        codes.append(post(app.test_client(), "/api/agent/start").status_code)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [409] * 7


def test_runner_exception_by_name_maps_to_409(tmp_path):
    # The runner may refuse a start the service's pre-check could not see (started elsewhere):
    # its AgentAlreadyRunning is recognised by name and still becomes a 409.
    class StartedElsewhere(FakeRunner):
        running = False

        def start(self) -> None:
            raise AgentAlreadyRunning("the agent is already running: stop it first")

    runner = StartedElsewhere(ManualClock(0))
    app = create_app(Settings(symbols=(SYMBOL,), db_path=tmp_path / "a.db"), runner=runner, token=TOKEN)
    resp = post(app.test_client(), "/api/agent/start")
    assert resp.status_code == 409 and "already running" in resp.get_json()["error"]


def test_status_logs_levels_after_running(client, world):
    runner = world[1]
    post(client, "/api/agent/start")
    deadline = time.monotonic() + 5
    while runner.cycles < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = client.get("/api/agent/status").get_json()
    assert status["phase"]["key"] == "exploration" and set(status["weights"]) == set(WEIGHTS)
    logs = client.get("/api/agent/logs?limit=2").get_json()["logs"]
    assert len(logs) == 2 and logs[0]["id"] > logs[1]["id"]          # newest first
    newer = client.get(f"/api/agent/logs?after_id={logs[0]['id'] - 1}").get_json()["logs"]
    assert all(line["id"] >= logs[0]["id"] for line in newer)
    assert client.get("/api/agent/logs?limit=-3").status_code == 400
    levels = client.get(f"/api/agent/levels?symbol={SYMBOL}").get_json()
    assert levels["symbol"] == SYMBOL and levels["levels"][0]["kind"] == "support"
    assert client.get("/api/agent/levels?symbol=XRPUSDT").status_code == 404


def test_no_runner_is_503_with_reason(tmp_path):
    app = create_app(Settings(db_path=tmp_path / "a.db"), runner=None, token=TOKEN,
                     runner_note="ModuleNotFoundError: No module named 'rl.agent'")
    c = app.test_client()
    for path in ("/api/agent/status", "/api/account", "/api/positions", "/api/trades", "/api/equity"):
        resp = c.get(path)
        assert resp.status_code == 503 and "rl.agent" in resp.get_json()["error"], path
    assert post(c, "/api/agent/start").status_code == 503


# ---------------------------------------------------------------------------- orders
@pytest.mark.parametrize("body,field", [
    ({"side": "BUY", "quantity": 1}, "symbol"),
    ({"symbol": SYMBOL, "quantity": 1}, "side"),
    ({"symbol": SYMBOL, "side": "HOLD", "quantity": 1}, "side"),
    ({"symbol": SYMBOL, "side": "BUY"}, "quantity"),
    ({"symbol": SYMBOL, "side": "BUY", "quantity": -2}, "quantity"),
    ({"symbol": SYMBOL, "side": "BUY", "quantity": "abc"}, "quantity"),
    ({"symbol": SYMBOL, "side": "BUY", "quantity": True}, "quantity"),
    ({"symbol": SYMBOL, "side": "BUY", "quantity": "NaN"}, "quantity"),
    ({"symbol": SYMBOL, "side": "BUY", "quantity": 1, "type": "STOP"}, "type"),
    ({"symbol": SYMBOL, "side": "BUY", "quantity": 1, "type": "LIMIT"}, "price"),
    ({"symbol": SYMBOL, "side": "BUY", "quantity": 1, "type": "LIMIT", "price": 0}, "price"),
    ({"symbol": SYMBOL, "side": "BUY", "quantity": 1, "type": "MARKET", "price": 4}, "price"),
])
def test_bad_order_fields_are_400_naming_the_field(client, world, body, field):
    resp = post(client, "/api/order", body)
    assert resp.status_code == 400
    assert resp.get_json()["error"].startswith(field)
    assert world[1].orders == []


def test_order_unknown_symbol_404(client):
    resp = post(client, "/api/order", {"symbol": "DOGEUSDT", "side": "BUY", "quantity": 1})
    assert resp.status_code == 404


def test_order_malformed_json_400(client):
    resp = client.post("/api/order", data="{not json", content_type="application/json",
                       headers={"X-Dashboard-Token": TOKEN})
    assert resp.status_code == 400 and "JSON" in resp.get_json()["error"]


def test_valid_orders_reach_runner(client, world):
    runner = world[1]
    assert post(client, "/api/order", {"symbol": "filusdt", "side": "buy", "quantity": "2.5"}).status_code == 200
    assert post(client, "/api/order", {"symbol": SYMBOL, "side": "SELL", "type": "LIMIT",
                                       "quantity": 1, "price": "4.2"}).get_json()["status"] == "FILLED"
    assert runner.orders == [(SYMBOL, "BUY", "MARKET", 2.5, None), (SYMBOL, "SELL", "LIMIT", 1.0, 4.2)]


@pytest.mark.parametrize("exc,status", [
    (OrderRejected("Margin is insufficient.", code=-2019, status=400), 400),
    (NetworkError("connection refused"), 503),
])
def test_exchange_errors_map_to_status(client, world, exc, status):
    world[1].order_error = exc
    resp = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 1})
    assert resp.status_code == status
    assert exc.msg in resp.get_json()["error"]


def test_close(client, world):
    assert post(client, "/api/close", {}).status_code == 400
    assert post(client, "/api/close", {"symbol": "XRPUSDT"}).status_code == 404
    assert post(client, "/api/close", {"symbol": SYMBOL}).status_code == 200
    assert world[1].closed == [SYMBOL]


# ---------------------------------------------------------------------------- account, history
def test_account_positions(client):
    acc = client.get("/api/account").get_json()
    assert acc["margin_balance"] == pytest.approx(acc["wallet_balance"] + acc["unrealized_pnl"])
    pos = client.get("/api/positions").get_json()["positions"]
    assert pos[0]["symbol"] == SYMBOL and "stop" in pos[0] and "target" in pos[0]


def test_trades_and_thought_chain(client, world):
    runner = world[1]
    runner._cycle()
    runner._cycle()
    trades = client.get("/api/trades").get_json()["trades"]
    assert len(trades) == 1
    one = client.get(f"/api/trades/{trades[0]['id']}").get_json()
    assert set(one["thought_chain"]) >= {"perception", "action", "reward", "summary_zh", "summary_en"}
    missing = client.get("/api/trades/999")
    assert missing.status_code == 404 and "999" in missing.get_json()["error"]
    assert client.get("/api/trades?limit=0").status_code == 400
    assert client.get("/api/equity").get_json()["equity"][-1]["equity"] == pytest.approx(10000.38)
    assert client.get("/api/weights/history").get_json()["history"][0]["weights"] == WEIGHTS


def test_unknown_api_path_and_method_are_json(client):
    r = client.get("/api/nope")
    assert r.status_code == 404 and "error" in r.get_json()
    r = client.get("/api/order")
    assert r.status_code == 405 and "error" in r.get_json()


def test_frame_to_candles_units():
    frame = make_candles(n=3)
    rows = frame_to_candles(frame)
    assert rows[0]["time"] == int(frame.index[0].timestamp())
    ms_frame = frame.copy()
    ms_frame.index = ms_frame.index.as_unit("ms")
    assert frame_to_candles(ms_frame) == rows
