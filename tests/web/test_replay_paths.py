"""Where `--replay` finds its data (web.world.load_replay_frames) and what the offline banner
tells a newcomer: generated Binance-layout zips in tmp folders, the real loader."""
from __future__ import annotations

from pathlib import Path

import pytest

from config import load_settings
from rl.errors import SettingsError
from tests.support.archives import write_archive
from web.service import REPLAY_HINT
from web.world import load_replay_frames

KLINES = "binance/futures/um/monthly/klines"


def _root(tmp_path: Path, *symbols: str) -> Path:
    for i, sym in enumerate(symbols):
        write_archive(tmp_path / KLINES / sym / "1m", sym, "2023-09", 600, "2023-09-01", seed=i + 1)
    return tmp_path


def _settings(path: Path, **extra: str):
    return load_settings({"REPLAY_DIR": str(path), **extra}, dotenv_path="/nonexistent")


def test_a_symbol_folder_replays_its_symbol(tmp_path: Path):
    root = _root(tmp_path, "FILUSDT")
    datas = load_replay_frames(_settings(root / KLINES / "FILUSDT"), symbol_given=False)
    assert list(datas) == ["FILUSDT"] and len(datas["FILUSDT"].frame) == 600


def test_a_symbol_folder_with_its_symbol_given(tmp_path: Path):
    root = _root(tmp_path, "FILUSDT")
    datas = load_replay_frames(_settings(root / KLINES / "FILUSDT", SYMBOLS="FILUSDT"), symbol_given=True)
    assert list(datas) == ["FILUSDT"]


def test_a_root_with_one_symbol_replays_it(tmp_path: Path):
    datas = load_replay_frames(_settings(_root(tmp_path, "NEARUSDT")), symbol_given=False)
    assert list(datas) == ["NEARUSDT"]


def test_a_root_with_several_symbols_and_no_symbol_lists_them(tmp_path: Path):
    root = _root(tmp_path, "FILUSDT", "NEARUSDT")
    with pytest.raises(SettingsError) as err:
        load_replay_frames(_settings(root, SYMBOLS="FILUSDT"), symbol_given=False)
    msg = str(err.value)
    assert "\n" not in msg and "FILUSDT, NEARUSDT" in msg and "--symbol" in msg


def test_a_root_with_several_symbols_and_a_symbol_replays_that_one(tmp_path: Path):
    root = _root(tmp_path, "FILUSDT", "NEARUSDT")
    datas = load_replay_frames(_settings(root, SYMBOLS="NEARUSDT"), symbol_given=True)
    assert list(datas) == ["NEARUSDT"]


def test_banner_hint_names_commands_that_work_in_a_clone():
    assert "../shared/data" not in REPLAY_HINT
    assert "python -m rl.data download" in REPLAY_HINT and "--replay data" in REPLAY_HINT
