"""A replay played to the end of its data stops by itself and says so (issue 17 item 6): the
status is "finished" with the end time and the figures, the log says it in both languages,
the market time stands at the last bar, and starting again is refused with what to do
instead, also after a restart on the same store.

Real parts: build_world over a generated Binance-layout archive (tests/support/archives.py),
the real app, the AgentRunner thread on the replay's BarClock at a huge speed, KnowledgeStore
and PaperExchange in SQLite files.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from config import Settings
from rl.agent.replay_end import FINISHED_KEY
from tests.support.archives import write_archive
from tests.web.test_web_api import TOKEN, post
from web.app import create_app
from web.world import World, build_world

SYMBOL = "BTCUSDT"
DAYS = 2          # the replay warms up on the first day and plays the second


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return write_archive(tmp_path / "archive", SYMBOL, "2024-01", n=DAYS * 1440, start="2024-01-01", seed=5)


def _world(archive: Path, tmp_path: Path, speed: float = 1e7) -> World:
    settings = Settings(replay_dir=archive, replay_speed=speed, symbols=(SYMBOL,), min_reward_r=0.01,
                        db_path=tmp_path / "agent.db", entry_order="ioc", take_profit_order="market")
    return build_world(settings, replay_symbol=SYMBOL)


def _app(world: World):
    return create_app(world.settings, market=world.market, runner=world.runner, token=TOKEN,
                      replay=world.replay).test_client()


def _close(world: World) -> None:
    world.runner.stop(30)
    world.runner.store.close()
    world.runner.exchange.close()


def _wait_finished(client, timeout: float = 120.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = client.get("/api/agent/status").get_json()
        if status["state"] == "finished":
            return status
        assert status["state"] == "running", status
        time.sleep(0.05)
    raise AssertionError("the replay did not reach the end of its data in time")


def test_a_replay_that_reaches_the_end_of_its_data_is_finished(archive, tmp_path):
    world = _world(archive, tmp_path)
    client = _app(world)
    try:
        before = client.get("/api/agent/status").get_json()
        assert before["state"] == "stopped" and before["replay_finished"] is None
        assert post(client, "/api/agent/start").status_code == 200
        status = _wait_finished(client)
        assert status["running"] is False
        end = world.replay["data_end_ms"] // 60_000 * 60_000     # the last bar opens 23:59
        done = status["replay_finished"]
        # the last step is the open of the archive's last bar: the market time stands there
        assert done["end_ms"] == world.clock.now_ms() == end
        assert client.get("/api/meta").get_json()["world_time_ms"] == end
        closed = world.runner.store.trades(status="closed", limit=10_000)
        assert done["trades"] == len(closed)
        assert done["net_pnl"] == pytest.approx(sum(t["net_pnl"] for t in closed))
        acct = client.get("/api/account").get_json()
        assert done["equity_end"] == pytest.approx(acct["margin_balance"])
        assert done["equity_start"] == pytest.approx(world.settings.paper_balance)
        # the thread ended by itself: nothing left running on a frozen clock
        world.runner._thread.join(10)
        assert not world.runner.running
        logs = client.get("/api/agent/logs").get_json()["logs"]
        line = next(x for x in logs if "replay finished" in x["message_en"])
        assert "回放结束" in line["message_zh"] and line["time_ms"] == end
        assert f"{done['trades']} trade" in line["message_en"] and f"共 {done['trades']} 笔交易" in line["message_zh"]
        # starting again: refused, with the reason and the ways on
        again = post(client, "/api/agent/start")
        assert again.status_code == 409
        msg = again.get_json()["error"]
        assert "replay is finished" in msg and "--replay" in msg and str(world.settings.db_path) in msg
        assert client.get("/api/agent/status").get_json()["state"] == "finished"
        assert world.runner.store.get_state(FINISHED_KEY)["end_ms"] == end
    finally:
        _close(world)

    # a dashboard restarted on the same store knows the replay is over before any start
    again = _world(archive, tmp_path)
    client = _app(again)
    try:
        status = client.get("/api/agent/status").get_json()
        assert status["state"] == "finished" and status["replay_finished"]["end_ms"] == end
        assert client.get("/api/meta").get_json()["world_time_ms"] == end
        assert post(client, "/api/agent/start").status_code == 409
        assert not again.runner.running
    finally:
        _close(again)


def test_a_stopped_replay_is_stopped_not_finished(archive, tmp_path):
    """Stop before the data ends (a bar a second: a day takes a day / 60): "stopped", no
    summary, and it starts again."""
    world = _world(archive, tmp_path, speed=60.0)
    client = _app(world)
    try:
        assert post(client, "/api/agent/start").status_code == 200
        assert client.get("/api/agent/status").get_json()["state"] == "running"
        assert post(client, "/api/agent/stop").status_code == 200
        status = client.get("/api/agent/status").get_json()
        assert status["state"] == "stopped" and status["replay_finished"] is None
        assert world.runner.store.get_state(FINISHED_KEY) is None
        assert post(client, "/api/agent/start").status_code == 200
        assert client.get("/api/agent/status").get_json()["state"] == "running"
    finally:
        _close(world)
