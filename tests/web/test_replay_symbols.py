"""Replay of several symbols from one archive root (issue 18 #3): `python -m web.app --replay ROOT
--symbol FILUSDT,NEARUSDT` plays both on one account; without --symbol a root with several says
which it holds; a symbol the root lacks is named with what it does hold. Generated
Binance-layout zips (tests/support/archives.py), the real loader and web.world.build_world."""
from __future__ import annotations

from pathlib import Path

import pytest

from rl.errors import SettingsError
from tests.support.archives import write_archive
from web.app import create_app, parse_args, settings_from_args
from web.world import build_world, load_replay_frames

KLINES = "binance/futures/um/monthly/klines"


def _root(tmp_path: Path, *symbols: str) -> Path:
    for i, sym in enumerate(symbols):
        write_archive(tmp_path / KLINES / sym / "1m", sym, "2023-09", 3 * 1440, "2023-09-01", seed=i + 1,
                      price=4.0 / (i + 1))
    return tmp_path


def _settings(root: Path, tmp_path: Path, symbol: str | None):
    argv = ["--replay", str(root), "--db", str(tmp_path / "agent.db")]
    argv += ["--symbol", symbol] if symbol is not None else []
    return settings_from_args(parse_args(argv), environ={}), symbol


def test_a_comma_list_replays_those_symbols_on_one_account(tmp_path: Path):
    root = _root(tmp_path / "data", "FILUSDT", "NEARUSDT", "AVAXUSDT")
    settings, symbol = _settings(root, tmp_path, "FILUSDT,NEARUSDT")
    world = build_world(settings, replay_symbol=symbol)
    try:
        assert world.runner is not None, world.runner_note
        assert world.settings.symbols == ("FILUSDT", "NEARUSDT")
        assert world.replay["symbols"] == ["FILUSDT", "NEARUSDT"]
        closes = {s: float(world.market.klines(s, "15m", 5)["close"].iloc[-1]) for s in ("FILUSDT", "NEARUSDT")}
        assert closes["FILUSDT"] > 2.5 > closes["NEARUSDT"]          # each symbol its own bars
        client = create_app(world.settings, market=world.market, runner=world.runner,
                            replay=world.replay).test_client()
        meta = client.get("/api/meta").get_json()
        assert meta["symbols"] == ["FILUSDT", "NEARUSDT"] and meta["replay"]["symbols"] == meta["symbols"]
        assert client.get("/api/klines_all/NEARUSDT?limit=5").status_code == 200
        assert client.get("/api/agent/levels?symbol=AVAXUSDT").status_code == 400   # in the root, not played
        assert [r["symbol"] for r in client.get("/api/pnl/symbols").get_json()["symbols"]] == ["FILUSDT", "NEARUSDT"]
    finally:
        world.runner.store.close()
        world.runner.exchange.close()


def test_a_root_with_several_symbols_and_no_symbol_still_says_which_it_holds(tmp_path: Path):
    root = _root(tmp_path / "data", "FILUSDT", "NEARUSDT")
    settings, _ = _settings(root, tmp_path, None)
    with pytest.raises(SettingsError) as err:
        load_replay_frames(settings, symbol_given=False)
    msg = str(err.value)
    assert "\n" not in msg and "FILUSDT, NEARUSDT" in msg and "--symbol FILUSDT,NEARUSDT" in msg


def test_a_symbol_the_root_lacks_is_named_with_what_it_holds(tmp_path: Path):
    root = _root(tmp_path / "data", "FILUSDT", "NEARUSDT")
    settings, _ = _settings(root, tmp_path, "FILUSDT,XRPUSDT")
    with pytest.raises(SettingsError) as err:
        load_replay_frames(settings, symbol_given=True)
    msg = str(err.value)
    assert "has no XRPUSDT" in msg and "it holds FILUSDT, NEARUSDT" in msg and "\n" not in msg
