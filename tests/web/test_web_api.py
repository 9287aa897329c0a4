"""The REST API over the service layer: status codes, JSON errors, token, validation.

Everything here is the real thing: rl.agent.runner.AgentRunner driving the real TradingAgent, a
KnowledgeStore SQLite file and a PaperExchange under tmp_path, ReplayMarketData over generated
1m candles and a ManualClock (the agent's "sleep" advances it, so it trades through weeks of
candles in well under a second). Fakes remain only where a failure must be provoked that the
real parts cannot produce on demand; each one says so where it is defined.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from client import BinanceClient
from config import Settings
from rl.agent.runner import AgentRunner
from rl.analysis.levels.finder import DEFAULT_WEIGHTS, FEATURES
from rl.clock import ManualClock
from rl.errors import AgentAlreadyRunning, BinanceError, MarketUnavailable, NetworkError, OrderRejected, SettingsError
from rl.knowledge.store import KnowledgeStore
from rl.market.ports import LiveMarketData, ReplayMarketData
from rl.paper.exchange import PaperExchange
from tests.support.candles import make_candles
from web.app import create_app, is_loopback
from web.service import frame_to_candles, translate_error

TOKEN = "test-token-123"
SYMBOL = "FILUSDT"
DAY_MIN = 24 * 60
LEVEL_FIELDS = {"price", "kind", "score", "features", "touches", "timeframe", "first_seen_ms",
                "last_touch_ms", "sources", "stats"}


def build_runner(settings: Settings, market: Any, clock: Any) -> AgentRunner:
    """The runner exactly as web.world wires it (store and paper account in SQLite files)."""
    store = KnowledgeStore(settings.db_path, default_weights=DEFAULT_WEIGHTS)
    exchange = PaperExchange(settings.db_path.with_name("paper.db"), balance=settings.paper_balance,
                             maker_fee=settings.maker_fee, taker_fee=settings.taker_fee,
                             default_leverage=settings.leverage, clock=market.now_ms,
                             price_source=market.last_price)
    return AgentRunner(settings, market, exchange, store, clock, feed=exchange)


@contextmanager
def paper_app(tmp_path: Path, **settings: Any) -> Iterator[tuple[Any, AgentRunner, ManualClock, Any]]:
    """(app, runner, clock, frame): the real app over a paper runner on 45 days of generated 1m
    candles, the clock mid-bar on day 30 so every chart has history; `settings`: more fields."""
    frame = make_candles(n=45 * DAY_MIN, start="2024-01-01", price=4.0, vol=0.002)
    clock = ManualClock(int(frame.index[30 * DAY_MIN].value // 1_000_000) + 30_000)
    market = ReplayMarketData({SYMBOL: frame}, clock)
    config = Settings(symbols=(SYMBOL,), db_path=tmp_path / "agent.db", **settings)
    runner = build_runner(config, market, clock)
    app = create_app(config, market=market, runner=runner, token=TOKEN)
    try:
        yield app, runner, clock, frame
    finally:
        runner.stop()
        runner.store.close()
        runner.exchange.close()


def wait_for(cond, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture
def world(tmp_path: Path):
    with paper_app(tmp_path, api_key="KEY-SHOULD-NOT-LEAK", api_secret="SECRET-SHOULD-NOT-LEAK") as w:
        yield w


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
    runner = world[1]
    assert not runner.running and runner.exchange.open_orders(SYMBOL) == []
    assert runner.exchange.position(SYMBOL) is None and runner.store.decisions.recent() == []


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


def dead_loopback_url() -> str:
    """A loopback port nobody listens on: connection refused, like Binance with no network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_market_unreachable_is_503_and_shown(tmp_path):
    client = BinanceClient(market_url=dead_loopback_url(), timeout=2)
    client.max_retries = 0            # one refused connection is enough; no backoff sleeps
    app = create_app(Settings(db_path=tmp_path / "a.db"), market=LiveMarketData(client), token=TOKEN)
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


def test_runner_refusal_maps_to_409(world):
    # The runner may refuse a start that the service's `running` pre-check could not see (a
    # start racing in between check and start). That race cannot be produced on demand with the
    # real runner, so this one test hides `running` from the pre-check and lets start() raise
    # the real rl.errors.AgentAlreadyRunning: it must still be a 409, not a 500.
    _, runner, _, _ = world

    class RaceLost(AgentRunner):
        running = False

        def start(self) -> None:
            raise AgentAlreadyRunning("the agent is already running: stop it first")

    raced = RaceLost(runner.settings, runner.market, runner.exchange, runner.store, runner.clock,
                     agent=runner.agent)
    app = create_app(runner.settings, market=runner.market, runner=raced, token=TOKEN)
    resp = post(app.test_client(), "/api/agent/start")
    assert resp.status_code == 409 and "already running" in resp.get_json()["error"]


def test_status_logs_levels_after_running(client, world):
    runner = world[1]
    post(client, "/api/agent/start")
    assert wait_for(lambda: runner.store.decisions.count() >= 3 and runner.levels(SYMBOL))
    status = client.get("/api/agent/status").get_json()
    # What the page's training panel and badges read.
    assert status["running"] is True and status["mode"] == "paper" and status["symbols"] == [SYMBOL]
    phase = status["phase"]
    assert phase["key"] == "exploration" and phase["name_zh"] == "探索期" and phase["next_at"] == 30
    assert 0.0 <= phase["progress"] <= 1.0 and phase["min_score"] > 0 and phase["score_gap"] > 0
    assert set(status["weights"]) == set(FEATURES)
    assert sum(status["weights"].values()) == pytest.approx(1.0)
    assert set(status["last_scores"][SYMBOL]) >= {"long", "short", "long_breakdown", "short_breakdown"}
    assert set(status["connectivity"]) == {"market", "exchange"}
    # the risk protections' state as the agent published it (rl.risk ProtectionState.to_dict)
    prot = status["protections"]
    assert prot["allows_entry"] is True and prot["active"] == [] and prot["history"] == []
    assert prot["config"]["max_drawdown_percent"] == 10.0 and prot["config"]["stoploss_guard_trades"] == 3
    logs = client.get("/api/agent/logs?limit=2").get_json()["logs"]
    assert len(logs) == 2 and logs[0]["id"] > logs[1]["id"]          # newest first
    assert set(logs[0]) >= {"id", "time_ms", "level", "symbol", "message_zh", "message_en"}
    newer = client.get(f"/api/agent/logs?after_id={logs[0]['id'] - 1}").get_json()["logs"]
    assert newer and all(line["id"] >= logs[0]["id"] for line in newer)
    assert client.get("/api/agent/logs?limit=-3").status_code == 400
    levels = client.get(f"/api/agent/levels?symbol={SYMBOL}").get_json()
    assert levels["symbol"] == SYMBOL and levels["levels"]
    for lv in levels["levels"]:            # ScoredLevel.to_dict(): what the charts draw
        assert set(lv) >= LEVEL_FIELDS and lv["kind"] in ("support", "resistance")
        assert 0 <= lv["score"] <= 100
    scores = [lv["score"] for lv in levels["levels"]]
    assert scores == sorted(scores, reverse=True)                    # best first
    # a symbol this dashboard does not serve is a bad query value: 400 naming field and rule
    bad = client.get("/api/agent/levels?symbol=XRPUSDT")
    assert bad.status_code == 400 and bad.get_json()["field"] == "symbol"


def test_no_runner_is_503_with_reason(tmp_path):
    app = create_app(Settings(db_path=tmp_path / "a.db"), runner=None, token=TOKEN,
                     runner_note="ModuleNotFoundError: No module named 'rl.agent.agent'")
    c = app.test_client()
    for path in ("/api/agent/status", "/api/account", "/api/positions", "/api/trades", "/api/equity"):
        resp = c.get(path)
        assert resp.status_code == 503 and "rl.agent.agent" in resp.get_json()["error"], path
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
    assert world[1].exchange.position(SYMBOL) is None and world[1].exchange.open_orders(SYMBOL) == []


def test_order_unknown_symbol_404(client):
    resp = post(client, "/api/order", {"symbol": "DOGEUSDT", "side": "BUY", "quantity": 1})
    assert resp.status_code == 404


def test_order_malformed_json_400(client):
    resp = client.post("/api/order", data="{not json", content_type="application/json",
                       headers={"X-Dashboard-Token": TOKEN})
    assert resp.status_code == 400 and "JSON" in resp.get_json()["error"]


def test_manual_orders_account_positions_close(client, world):
    runner = world[1]
    price = runner.market.last_price(SYMBOL)
    empty = client.get("/api/account").get_json()
    assert empty["wallet_balance"] == pytest.approx(runner.settings.paper_balance)
    assert client.get("/api/positions").get_json()["positions"] == []

    # Symbol and side in any case, quantity as a string: normalised by the service.
    filled = post(client, "/api/order", {"symbol": "filusdt", "side": "buy", "quantity": "250"})
    assert filled.status_code == 200, filled.get_json()
    order = filled.get_json()
    assert order["status"] == "FILLED" and order["side"] == "BUY" and order["executed_qty"] == 250
    # A LIMIT far below the market rests on the paper book.
    limit = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT",
                                        "quantity": 100, "price": f"{price * 0.5:.4f}"}).get_json()
    assert limit["status"] == "NEW" and runner.exchange.open_orders(SYMBOL)

    # What the account and positions panels read.
    acc = client.get("/api/account").get_json()
    assert set(acc) >= {"wallet_balance", "unrealized_pnl", "margin_balance", "initial_margin",
                        "available_balance"}
    assert acc["margin_balance"] == pytest.approx(acc["wallet_balance"] + acc["unrealized_pnl"])
    assert acc["initial_margin"] > 0 and acc["available_balance"] < acc["margin_balance"]
    pos = client.get("/api/positions").get_json()["positions"]
    assert len(pos) == 1 and pos[0]["symbol"] == SYMBOL and pos[0]["amount"] == 250
    assert pos[0]["entry_price"] > 0 and "unrealized_pnl" in pos[0]
    logs = [line["message_en"] for line in runner.store.decisions.recent()]
    assert any("manual order BUY MARKET 250" in m for m in logs)

    # Close it: flat afterwards (the page's close button posts exactly this).
    assert post(client, "/api/close", {}).status_code == 400
    assert post(client, "/api/close", {"symbol": "XRPUSDT"}).status_code == 404
    closed = post(client, "/api/close", {"symbol": SYMBOL})
    assert closed.status_code == 200, closed.get_json()
    assert runner.exchange.position(SYMBOL) is None


def test_exchange_refusal_is_400_with_its_message(client, world):
    # The real paper account refuses an order whose margin it cannot cover (-2019).
    resp = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 100_000})
    assert resp.status_code == 400
    assert "Margin is insufficient" in resp.get_json()["error"]
    assert world[1].exchange.position(SYMBOL) is None


def test_exchange_network_failure_is_503(client, world, monkeypatch):
    # The paper exchange has no network to lose, so this one failure is provoked: its
    # place_order raises what BinanceExchange raises when the connection drops mid-order.
    def no_network(*args, **kwargs):
        raise NetworkError("connection refused")

    monkeypatch.setattr(world[1].exchange, "place_order", no_network)
    resp = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 1})
    assert resp.status_code == 503
    assert "connection refused" in resp.get_json()["error"]


class FeedStalled(MarketUnavailable):
    """A market failure the status table does not list: it must map like MarketUnavailable."""


class SelfTradePrevented(OrderRejected):
    """An exchange refusal the status table does not list: it must map like OrderRejected."""


@pytest.mark.parametrize("parent,child,status", [
    (MarketUnavailable, FeedStalled, 503),
    (OrderRejected, SelfTradePrevented, 400),
    (NetworkError, type("ReadTimedOut", (NetworkError,), {}), 503),
    (SettingsError, type("BadOverride", (SettingsError,), {}), 400),
])
def test_subclass_maps_like_its_parent(parent, child, status):
    assert translate_error(parent("why"), "ctx").status == status
    mapped = translate_error(child("why"), "ctx")
    assert mapped.status == status and "why" in mapped.message


def test_exchange_refusal_subclass_is_400_with_its_message(client, world, monkeypatch):
    # Provoked like the network failure above: a refusal of a kind no table entry names.
    def refuse(*args, **kwargs):
        raise SelfTradePrevented("Order would immediately match and take.", -2021, 400)

    monkeypatch.setattr(world[1].exchange, "place_order", refuse)
    resp = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 1})
    assert resp.status_code == 400
    assert "would immediately match" in resp.get_json()["error"]


def test_market_failure_subclass_is_503_and_shown(client, world, monkeypatch):
    def stalled(*args, **kwargs):
        raise FeedStalled("the replay feed stalled: restart it")

    monkeypatch.setattr(world[0].extensions["dashboard_service"].market, "klines", stalled)
    resp = client.get(f"/api/klines/{SYMBOL}/1m")
    assert resp.status_code == 503 and "feed stalled" in resp.get_json()["error"]
    assert client.get("/api/meta").get_json()["connectivity"]["state"] == "unreachable"


def test_unexpected_error_text_stays_in_the_log(client, world, monkeypatch, caplog):
    # A bug deep in the core: its text (paths, SQL) must not reach the browser, only the log.
    def bug(*args, **kwargs):
        raise RuntimeError("no such column: secret_col in /home/trader/agent.db")

    monkeypatch.setattr(world[1].exchange, "place_order", bug)
    resp = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 1})
    assert resp.status_code == 500
    error = resp.get_json()["error"]
    assert "internal error" in error and "server log" in error
    assert "RuntimeError" not in error                        # not even the type of the bug
    assert "secret_col" not in error and "/home/trader" not in error
    assert "secret_col" in caplog.text


def test_unhandled_error_outside_the_service_is_500_without_its_text(client, world, monkeypatch):
    # A market port that returns a frame without candle times breaks in the view itself,
    # past the service's error mapping: the app's last-resort handler answers.
    monkeypatch.setattr(world[0].extensions["dashboard_service"].market, "klines",
                        lambda *args, **kwargs: make_candles(n=3).reset_index())
    resp = client.get(f"/api/klines/{SYMBOL}/1m")
    assert resp.status_code == 500
    error = resp.get_json()["error"]
    assert error.startswith("internal error") and "server log" in error
    assert "TypeError" not in error and "DatetimeIndex" not in error


def test_unlisted_core_error_is_500_with_its_message(client, world, monkeypatch):
    # Errors of the project's own tree are written for the trader: shown even when unlisted.
    def odd_answer(*args, **kwargs):
        raise BinanceError("Invalid symbol.", -1121, 400)

    monkeypatch.setattr(world[1].exchange, "place_order", odd_answer)
    resp = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 1})
    assert resp.status_code == 500 and "Invalid symbol." in resp.get_json()["error"]


# ---------------------------------------------------------------------------- account, history
def test_trades_and_thought_chain(client, world):
    runner = world[1]
    post(client, "/api/agent/start")
    assert wait_for(lambda: runner.store.trades(status="closed"))
    post(client, "/api/agent/stop")
    trades = client.get("/api/trades").get_json()["trades"]
    assert trades and [t["id"] for t in trades] == sorted((t["id"] for t in trades), reverse=True)
    closed = next(t for t in trades if t["status"] == "closed")
    # The fields the trades table and chart markers read.
    assert closed["side"] in ("LONG", "SHORT") and closed["symbol"] == SYMBOL
    assert closed["opened_ms"] <= closed["closed_ms"]
    for key in ("entry_price", "exit_price", "net_pnl", "stop_price", "target_price", "quantity"):
        assert isinstance(closed[key], float), key
    one = client.get(f"/api/trades/{closed['id']}").get_json()
    chain = one["thought_chain"]
    assert set(chain) >= {"perception", "action", "reward", "summary_zh", "summary_en"}
    # The parts the thought-chain dialog lifts out before the raw details.
    assert chain["perception"]["price"] > 0 and "reason_en" in chain["perception"]["decision"]
    assert chain["perception"]["level"]["kind"] in ("support", "resistance")
    assert chain["action"]["side"] == closed["side"] and chain["action"]["stop"] > 0
    assert chain["reward"]["net_pnl"] == pytest.approx(closed["net_pnl"])
    assert "weight_change" in chain["reward"] and chain["summary_zh"] and chain["summary_en"]
    missing = client.get("/api/trades/999999")
    assert missing.status_code == 404 and "999999" in missing.get_json()["error"]
    assert client.get("/api/trades?limit=0").status_code == 400
    equity = client.get("/api/equity").get_json()["equity"]
    assert equity[0]["equity"] == pytest.approx(runner.settings.paper_balance)
    assert len(equity) >= 2 and all(set(p) >= {"time_ms", "equity"} for p in equity)
    history = client.get("/api/weights/history").get_json()["history"]
    assert history[0]["weights"] == pytest.approx(DEFAULT_WEIGHTS)
    assert history[0]["reason_zh"] and history[0]["reason_en"]


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


def test_a_refused_order_carries_binances_code_for_the_page(client, world):
    # The page explains Binance's refusals in its language by code (issue 17 #10): the JSON
    # says the code next to the English text; input errors (no exchange involved) have none.
    refused = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 1_000_000})
    body = refused.get_json()
    assert refused.status_code == 400 and body["code"] == -2019, body
    assert "Margin is insufficient" in body["error"]
    too_big = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 10_000_000}).get_json()
    assert too_big["code"] == -4005 and "maximum quantity" in too_big["error"], too_big
    bad = post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": -1})
    assert bad.status_code == 400 and "code" not in bad.get_json()
    assert client.get("/api/meta").get_json()["leverage"] == world[1].settings.leverage


def test_reduce_only_orders_only_shrink_a_position(client, world):
    runner = world[1]
    flat = post(client, "/api/order", {"symbol": SYMBOL, "side": "SELL", "quantity": 10, "reduceOnly": True})
    assert flat.status_code == 400 and flat.get_json()["code"] == -2022, flat.get_json()
    assert runner.exchange.position(SYMBOL) is None                   # nothing opened
    typo = post(client, "/api/order", {"symbol": SYMBOL, "side": "SELL", "quantity": 10, "reduceOnly": "yes"})
    assert typo.status_code == 400 and typo.get_json()["field"] == "reduceOnly"
    assert post(client, "/api/order", {"symbol": SYMBOL, "side": "BUY", "quantity": 250}).status_code == 200
    cut = post(client, "/api/order", {"symbol": SYMBOL, "side": "SELL", "quantity": 100, "reduceOnly": True})
    assert cut.status_code == 200 and cut.get_json()["reduce_only"] is True, cut.get_json()
    assert runner.exchange.position(SYMBOL).amount == 150
    # More than the position: the exchange does not flip it short.
    post(client, "/api/order", {"symbol": SYMBOL, "side": "SELL", "quantity": 400, "reduceOnly": True})
    pos = runner.exchange.position(SYMBOL)
    assert pos is None or pos.amount >= 0
