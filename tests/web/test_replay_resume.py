"""A replay restarted on its store resumes its clock from the store's last world time, never
from the fixed warm-up point again (web.world); each data set has its own store by default, and
a store of another data set is refused with one line.

Real parts: build_world over a generated Binance-layout archive, the AgentRunner thread on
a BarClock at a huge speed, KnowledgeStore and PaperExchange in SQLite files.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from config import Settings
from rl.errors import SettingsError
from tests.support.archives import write_archive
from web.world import REPLAY_CLOCK_KEY, World, build_world, replay_start_ms

SYMBOL = "BTCUSDT"
MIN = 60_000
DAYS = 4


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return write_archive(tmp_path / "archive", SYMBOL, "2024-01", n=DAYS * 1440, start="2024-01-01", seed=3)


def settings_for(archive: Path, db: Path | None, **extra) -> Settings:
    kw = {"db_path": db} if db is not None else {}
    return Settings(replay_dir=archive, replay_speed=1e6, symbols=(SYMBOL,), min_reward_r=0.01, **kw, **extra)


def close(world: World) -> None:
    if world.runner is not None:
        world.runner.stop(30)
        world.runner.store.close()
        world.runner.exchange.close()


def run_until(world: World, cond, timeout: float = 60.0) -> None:
    world.runner.start()
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        time.sleep(0.02)
    world.runner.stop(30)
    assert cond(), "the replay did not get there in time"


def test_a_restarted_replay_resumes_where_its_store_left_off(archive, tmp_path):
    settings = settings_for(archive, tmp_path / "agent.db")
    first = build_world(settings)
    start = first.clock.now_ms()
    assert start - MIN < replay_start_ms(first.replay["data_start_ms"], first.replay["data_end_ms"]) <= start
    assert first.replay["resumed_from_ms"] is None
    run_until(first, lambda: first.clock.now_ms() >= start + 300 * MIN)
    reached = first.clock.now_ms()
    stored = first.runner.store.get_state(REPLAY_CLOCK_KEY)
    assert stored == reached                          # every step is in the store before it is shown
    close(first)
    again = build_world(settings)
    try:
        assert again.clock.now_ms() == reached and again.replay["resumed_from_ms"] == reached
        assert again.replay["clock_start_ms"] == reached
    finally:
        close(again)


def test_the_stores_own_times_are_a_floor_when_the_clock_row_is_behind(archive, tmp_path):
    """A store written before the clock row existed (or a row that lags): the latest time the
    trades, the log or the paper account hold wins."""
    settings = settings_for(archive, tmp_path / "agent.db")
    first = build_world(settings)
    start = first.clock.now_ms()
    store = first.runner.store
    run_until(first, lambda: store.trades(limit=1) != [] or first.clock.now_ms() > start + 2 * 1440 * MIN)
    latest = store.last_event_ms()
    store.delete_state(REPLAY_CLOCK_KEY)
    close(first)
    again = build_world(settings)
    try:
        assert again.clock.now_ms() >= latest > start
    finally:
        close(again)


def test_each_data_set_gets_its_own_store_by_default(archive, tmp_path, monkeypatch):
    import config

    monkeypatch.setattr(config, "STORE_ROOT", tmp_path / "data")     # not the project's data/
    world = build_world(settings_for(archive, None))
    try:
        path = world.settings.db_path
        assert path.parent == tmp_path / "data" and path != config.default_db_path("paper")
        assert path.name.startswith(f"agent-replay-{SYMBOL}-") and world.replay["dataset_id"] in path.name
        assert world.runner is not None and world.runner.store.path == path
    finally:
        close(world)


def test_a_store_of_another_data_set_is_refused_with_one_line(archive, tmp_path):
    db = tmp_path / "agent.db"
    close(build_world(settings_for(archive, db)))
    other = write_archive(tmp_path / "other", SYMBOL, "2024-02", n=DAYS * 1440, start="2024-02-01", seed=5)
    with pytest.raises(SettingsError) as err:
        build_world(settings_for(other, db))
    msg = str(err.value)
    assert "\n" not in msg and "another data set" in msg and "--db" in msg


def test_a_store_with_history_after_the_data_and_no_data_set_row_is_refused(archive, tmp_path):
    """E.g. a paper-mode store (wall-clock times in 2026) given to a 2024 replay."""
    from rl.analysis.levels.finder import DEFAULT_WEIGHTS
    from rl.knowledge.store import KnowledgeStore

    db = tmp_path / "agent.db"
    store = KnowledgeStore(db, default_weights=DEFAULT_WEIGHTS)
    store.decisions.log(1_800_000_000_000, "INFO", "", "纸面交易", "paper trading")
    store.close()
    with pytest.raises(SettingsError, match="after this replay's data ends"):
        build_world(settings_for(archive, db))


def test_the_paper_files_latest_time_is_read_without_creating_anything(tmp_path):
    from rl.paper.exchange import PaperExchange
    from rl.paper.store import last_time_ms

    assert last_time_ms(tmp_path / "none.db") is None and not (tmp_path / "none.db").exists()
    ex = PaperExchange(tmp_path / "paper.db", funding_rate=0.0, clock=lambda: 1_000 * MIN)
    ex.on_price(SYMBOL, 100.0, 1_000 * MIN)
    ex.place_order(SYMBOL, "BUY", "MARKET", 1.0)
    ex.on_bar(SYMBOL, 100.0, 101.0, 99.0, 100.5, 1_001 * MIN - 1)
    ex.close()
    # the fill's time: a bar that changes nothing is not written (why the replay's own clock
    # row in the knowledge store is the primary resume point, and this only a floor)
    assert last_time_ms(tmp_path / "paper.db") == 1_000 * MIN


def test_the_recording_clock_shows_a_time_only_once_it_is_recorded():
    from rl.clock import ManualClock, RecordingClock

    seen: list[tuple[int, int]] = []
    clock: RecordingClock

    def record(ms: int) -> None:
        seen.append((ms, clock.now_ms()))          # what the world sees while it is written
        if ms == 3 * MIN:
            raise OSError("disk full")

    clock = RecordingClock(ManualClock(MIN), record)
    clock.sleep(60)
    clock.sleep(60)                                 # a failed record is logged, not raised
    clock.sleep(60)
    assert seen == [(2 * MIN, MIN), (3 * MIN, 2 * MIN), (4 * MIN, 3 * MIN)] and clock.now_ms() == 4 * MIN
