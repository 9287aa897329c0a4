"""Each mode (and each replay data set) has its own store by default; DB_PATH, when given, is
kept; the paper account can be reset from the dashboard (POST /api/agent/reset).

Real parts: load_settings and build_world as `python -m web.app` runs them, the AgentRunner,
KnowledgeStore and PaperExchange in SQLite files under tmp_path, the real Flask app. Binance is
mocked over HTTP with `responses` (paper mode asks it for prices and filters); the store folder
(config.STORE_ROOT) points into tmp_path, so nothing is written into the project's data/.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import config
from config import load_settings
from tests.support.archives import write_archive
from tests.web.test_paper_live_world import binance
from web.api import TOKEN_HEADER
from web.app import create_app
from web.world import World, build_world

SYMBOL = "BTCUSDT"
TOKEN = "t" * 32


@pytest.fixture
def store_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setattr(config, "STORE_ROOT", root)
    return root


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return write_archive(tmp_path / "archive", SYMBOL, "2024-01", n=4 * 1440, start="2024-01-01", seed=3)


def env(**extra: str) -> dict[str, str]:
    return {"SYMBOLS": SYMBOL, **extra}


def settings(**extra: str) -> config.Settings:
    return load_settings(env(**extra), dotenv_path="/nonexistent")


def close(world: World) -> None:
    if world.runner is not None:
        world.runner.stop(30)
        world.runner.store.close()
        world.runner.exchange.close()


def replay_world(archive: Path, **extra: str) -> World:
    return build_world(settings(REPLAY_DIR=str(archive), REPLAY_SPEED="1000000", **extra),
                       replay_symbol=SYMBOL)


def trade_in(world: World, qty: float) -> dict:
    """A filled manual market order: a trade in the store and fees off the paper wallet."""
    assert world.runner is not None, world.runner_note
    world.runner.manual_order(SYMBOL, "BUY", "MARKET", qty)
    return world.runner.account()


# ---------------------------------------------------------------------- store per mode
def test_paper_then_a_replay_then_paper_in_the_same_data_dir_share_nothing(store_root, archive):
    """The issue's run: paper, a replay, paper again, all with DB_PATH unset."""
    with binance():
        paper = build_world(settings())
        try:
            paper.runner.agent.startup()                 # writes its first weight row and log lines
            trade_in(paper, 0.01)
            paper_wallet = paper.runner.account()["wallet_balance"]
            paper_weight_rows = paper.runner.weight_history()
            paper_log_ids = len(paper.runner.logs(limit=2000))
            assert paper_weight_rows and paper_log_ids
        finally:
            close(paper)
    replay = replay_world(archive)
    try:
        assert replay.runner.store.path.parent == store_root
        assert replay.runner.store.path.name.startswith(f"agent-replay-{SYMBOL}-")
        assert replay.runner.trades() == []                               # not paper's trade
        assert replay.runner.account()["wallet_balance"] == 10_000.0      # nor its wallet
        assert replay.runner.weight_history() == []                       # nor its weight row
        replay.runner.agent.startup()
        first = replay.runner.weight_history()
        assert first and all(row["time_ms"] <= replay.replay["data_end_ms"] for row in first)
        replay_wallet = trade_in(replay, 100)["wallet_balance"]
        assert replay_wallet < 10_000.0
    finally:
        close(replay)
    with binance():
        again = build_world(settings())
        try:
            assert again.runner.store.path == store_root / "paper" / "agent.db"
            trades = again.runner.trades()
            assert [(t["symbol"], t["quantity"]) for t in trades] == [(SYMBOL, 0.01)]   # no 2024 trade
            assert again.runner.account()["wallet_balance"] == paper_wallet
            assert again.runner.weight_history() == paper_weight_rows
            assert len(again.runner.logs(limit=2000)) == paper_log_ids
        finally:
            close(again)


def test_paper_testnet_and_live_each_default_to_their_own_folder(store_root):
    keys = {"API_KEY": "k" * 16, "API_SECRET": "s" * 16}
    assert settings().db_path == store_root / "paper" / "agent.db"
    assert settings(TRADING_MODE="testnet", **keys).db_path == store_root / "testnet" / "agent.db"
    assert settings(TRADING_MODE="live", LIVE_TRADING_CONFIRM=config.LIVE_CONFIRM_PHRASE,
                    LIVE_WITHOUT_EVIDENCE=config.LIVE_RISK_PHRASE, **keys).db_path == store_root / "live" / "agent.db"
    # the line older .env.example copies carry means "unset": per-mode stores for them too
    assert settings(DB_PATH="data/agent.db").db_path == store_root / "paper" / "agent.db"
    assert settings(DB_PATH="data/agent.db").db_path_is_default


def test_an_explicit_db_path_is_kept_in_paper_and_in_replay(store_root, archive, tmp_path):
    mine = tmp_path / "mine" / "store.db"
    with binance():
        paper = build_world(settings(DB_PATH=str(mine)))
        try:
            assert paper.runner.store.path == mine and not paper.settings.db_path_is_default
            trade_in(paper, 0.01)
        finally:
            close(paper)
    assert (mine.parent / "store-paper.db").exists()
    # the same file for a replay: it is refused (it holds paper history after the data), never
    # silently swapped for another store
    with pytest.raises(config.SettingsError, match="after this replay's data ends"):
        replay_world(archive, DB_PATH=str(mine))
    other = tmp_path / "replay.db"
    replay = replay_world(archive, DB_PATH=str(other))
    try:
        assert replay.runner.store.path == other
    finally:
        close(replay)
    assert not store_root.exists()                 # nothing went to the default folder


# ---------------------------------------------------------------------- paper reset route
@contextmanager
def paper_app(world: World) -> Iterator:
    app = create_app(world.settings, market=world.market, runner=world.runner, token=TOKEN,
                     replay=world.replay, reset_paper=world.reset_paper)
    try:
        yield app.test_client(), app.extensions["dashboard_service"]
    finally:
        svc = app.extensions["dashboard_service"]
        if svc.runner is not None:
            close(World(settings=world.settings, market=None, runner=svc.runner, clock=world.clock))


def post_reset(client, token: str | None = TOKEN, **kw):
    headers = {TOKEN_HEADER: token} if token is not None else {}
    return client.post("/api/agent/reset", headers=headers, **kw)


def test_reset_starts_the_paper_account_over_and_keeps_the_old_files(store_root):
    with binance():
        world = build_world(settings(PAPER_BALANCE="2500"))
        with paper_app(world) as (client, svc):
            trade_in(world, 0.01)
            world.runner.agent.startup()
            assert client.get("/api/weights/history").get_json()["history"]
            assert client.get("/api/agent/logs").get_json()["logs"]
            assert client.get("/api/trades").get_json()["trades"]
            assert client.get("/api/account").get_json()["wallet_balance"] < 2500
            resp = post_reset(client)
            assert resp.status_code == 200, resp.get_json()
            body = resp.get_json()
            assert body["reset"] is True and body["account"]["wallet_balance"] == 2500.0
            assert svc.runner is not world.runner
            assert client.get("/api/account").get_json()["margin_balance"] == 2500.0
            assert client.get("/api/trades").get_json()["trades"] == []
            assert client.get("/api/agent/logs").get_json()["logs"] == []
            assert client.get("/api/weights/history").get_json()["history"] == []
            kept = sorted(p.name for p in (store_root / "paper").glob("*.bak"))
            assert any(n.startswith("agent.db.reset-") for n in kept)
            assert any(n.startswith("agent-paper.db.reset-") for n in kept)
            # the fresh agent trades on the fresh account
            svc.runner.manual_order(SYMBOL, "BUY", "MARKET", 0.01)
            assert len(client.get("/api/trades").get_json()["trades"]) == 1


def test_reset_is_refused_while_the_agent_runs(store_root):
    with binance():
        world = build_world(settings())
        with paper_app(world) as (client, svc):
            assert client.post("/api/agent/start", headers={TOKEN_HEADER: TOKEN}).status_code == 200
            resp = post_reset(client)
            assert resp.status_code == 409
            assert "stop it" in resp.get_json()["error"]
            assert svc.runner is world.runner and world.runner.running
            world.runner.stop(30)
            assert post_reset(client).status_code == 200


def test_reset_is_refused_outside_paper_mode(store_root, archive):
    world = replay_world(archive)
    assert world.reset_paper is None
    with paper_app(world) as (client, svc):
        trade_in(world, 100)
        resp = post_reset(client)
        assert resp.status_code == 409
        assert resp.get_json()["error"] == ("only the paper account can be reset; this dashboard runs in "
                                            "replay mode")
        assert len(client.get("/api/trades").get_json()["trades"]) == 1


def test_reset_needs_the_token_and_an_empty_body(store_root):
    with binance():
        world = build_world(settings())
        with paper_app(world) as (client, svc):
            trade_in(world, 0.01)
            for token in (None, "wrong"):
                resp = post_reset(client, token)
                assert resp.status_code == 403 and TOKEN_HEADER in resp.get_json()["error"]
            resp = post_reset(client, json={"balance": 1})
            assert resp.status_code == 400 and resp.get_json()["field"] == "body"
            assert svc.runner is world.runner
            assert len(client.get("/api/trades").get_json()["trades"]) == 1


def test_a_failed_reset_says_why_and_serves_no_half_closed_agent(store_root):
    """The fresh account cannot be built (here: the builder refuses): 500 with its reason, and
    the page then says the agent is unavailable instead of reading a closed store."""
    from rl.errors import AgentError

    def broken(old):
        old.store.close()
        old.exchange.close()
        raise AgentError("the new store cannot be written (disk full)")

    with binance():
        world = build_world(settings())
        app = create_app(world.settings, market=world.market, runner=world.runner, token=TOKEN,
                         reset_paper=broken)
        client = app.test_client()
        resp = post_reset(client)
        assert resp.status_code == 500
        assert resp.get_json()["error"] == "paper reset: the new store cannot be written (disk full)"
        meta = client.get("/api/meta").get_json()
        assert meta["agent_available"] is False and "disk full" in meta["agent_note"]
        assert client.get("/api/account").status_code == 503
