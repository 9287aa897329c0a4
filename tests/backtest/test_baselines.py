"""Baselines: random entries through the agent's entry-policy hook, frozen learning, and the
report section; the agent's own run is unchanged by them."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from config import Settings
from rl.backtest.baselines import (
    NEVER_LEARN,
    ObservedEntries,
    RandomEntries,
    frozen_learning,
    percentile_of,
    run_with_baselines,
    spread,
)
from rl.backtest.engine import TIMING_FIELDS, backtest_settings, dumps_json, main, run_backtest
from rl.strategy.params import PhaseParams, StrategyParams
from rl.strategy.phases import decide
from tests.support.archives import write_archive

SYMBOL = "FILUSDT"
DAY = "2023-09-01"


def _wait(count: int = 0):
    return decide(0.0, 0.0, count, PhaseParams())


# ----------------------------------------------------------------------------- pure parts

def test_random_entries_try_each_due_entry_until_it_becomes_a_trade() -> None:
    p = RandomEntries([100, 200], seed=1)
    assert p(_wait(0), "X", 50, False).action == "wait"          # nothing due yet
    first = p(_wait(0), "X", 100, False)
    assert first.action in ("enter_long", "enter_short") and "random" in first.reason_en
    # the plan refused it (no trade closed since): tried again at the next decision point
    assert p(_wait(0), "X", 115, False).action != "wait"
    assert p(_wait(1), "X", 130, False).action == "wait"         # it became a trade: none owed
    assert p(_wait(1), "X", 145, True) is not None               # paused: passes the agent's own
    paused = _wait(1)
    assert p(paused, "X", 205, True) is paused                   # due, but paused: no try
    assert p(_wait(1), "X", 220, False).action != "wait"         # the first point after the pause
    assert p(_wait(2), "X", 235, False).action == "wait"
    assert (p.eligible, p.entries) == (6, 3)


def test_random_entries_are_seeded_and_both_sides_occur() -> None:
    times = RandomEntries.scheduled(40, 0, 10_000, seed=3).due_ms
    assert times == RandomEntries.scheduled(40, 0, 10_000, seed=3).due_ms
    assert times != RandomEntries.scheduled(40, 0, 10_000, seed=4).due_ms
    assert all(0 <= t < 10_000 for t in times) and times == sorted(times)
    p = RandomEntries([0] * 40, seed=3)
    sides = [p(_wait(k), "X", k, False).action for k in range(40)]
    assert {"enter_long", "enter_short"} == set(sides)


def test_the_observing_policy_returns_the_agents_decision_and_counts() -> None:
    obs = ObservedEntries()
    d = decide(80.0, 0.0, 0, PhaseParams())
    assert obs(d, "X", 0, False) is d and obs(d, "X", 1, True) is d
    w = _wait()
    assert obs(w, "X", 2, False) is w
    assert (obs.eligible, obs.entries) == (2, 1)


def test_frozen_learning_only_stops_the_weight_updates() -> None:
    base = StrategyParams()
    frozen = frozen_learning(base).validate()
    assert frozen.learning.min_trades == NEVER_LEARN
    assert frozen.to_flat() == {**base.to_flat(), "learning.min_trades": NEVER_LEARN}


def test_percentile_and_spread() -> None:
    xs = [1.0, 2.0, 3.0, 4.0]
    assert percentile_of(5.0, xs) == 100.0 and percentile_of(0.0, xs) == 0.0
    assert percentile_of(2.0, xs) == 37.5           # 1 below, 1 equal: (1 + 0.5) / 4
    assert percentile_of(1.0, []) is None
    assert spread(xs) == {"min": 1.0, "p25": 1.75, "median": 2.5, "p75": 3.25, "max": 4.0}
    assert spread([]) is None


# ----------------------------------------------------------------------------- real runs

def _settings(**extra) -> Settings:
    return backtest_settings(SYMBOL, 10_000.0, {"min_reward_r": 0.01, **extra}, base=Settings())


def _doc(result) -> str:
    doc = result.to_json()
    for k in TIMING_FIELDS:
        doc.pop(k)
    return dumps_json(doc)


def test_the_agent_run_with_baselines_is_the_plain_run(day_data) -> None:
    plain_trace, trace = io.StringIO(), io.StringIO()
    plain = run_backtest(day_data, _settings(), trace=plain_trace, progress=False)
    agent, report = run_with_baselines(day_data, _settings(), runs=2, trace=trace, progress=False)
    assert plain.summary["trades"] > 0
    assert _doc(agent) == _doc(plain) and trace.getvalue() == plain_trace.getvalue()
    assert report["agent"]["trades"] == plain.summary["trades"]
    assert report["buy_hold_return_pct"] == plain.summary["buy_hold_return_pct"]


def test_random_runs_are_seeded_match_the_agents_trades_and_jobs_change_nothing(day_data) -> None:
    _, one = run_with_baselines(day_data, _settings(), runs=4, seed=5, jobs=1, progress=False)
    _, two = run_with_baselines(day_data, _settings(), runs=4, seed=5, jobs=2, progress=False)
    assert dumps_json(one) == dumps_json(two)
    rand = one["random_entries"]
    runs = rand["per_run"]
    assert [r["seed"] for r in runs] == [5, 6, 7, 8]
    assert len({r["return_pct"] for r in runs}) > 1                  # different seeds, different runs
    drawn = rand["entries_drawn"]
    assert drawn >= one["agent"]["trades"] > 0               # its closed trades, plus one open at the end
    # each run opens at most the entries drawn; trades counts closed ones (one may be open)
    assert all(r["trades"] <= drawn for r in runs) and max(r["trades"] for r in runs) >= drawn - 2
    fig = rand["figures"]["return_pct"]
    assert fig["min"] <= fig["p25"] <= fig["median"] <= fig["p75"] <= fig["max"]
    assert rand["agent_percentile"]["return_pct"] == percentile_of(one["agent"]["return_pct"],
                                                                   [r["return_pct"] for r in runs])
    band = rand["equity_band"]
    assert len(band["day_ms"]) == len(band["median"]) == len(one["agent"]["equity"]["equity"])


def test_frozen_learning_keeps_the_starting_weights_where_the_agent_learns(day_data) -> None:
    settings = _settings(min_trades_for_adjust=3)        # learning moves the weights within the day
    agent, report = run_with_baselines(day_data, settings, runs=0, progress=False)
    start = StrategyParams().levels.weights.as_dict()
    assert agent.final_weights != pytest.approx(start)
    frozen = report["frozen_learning"]
    assert frozen["final_weights"] == pytest.approx(start)
    assert report["random_entries"]["runs"] == 0 and report["random_entries"]["figures"]["return_pct"] is None


# ----------------------------------------------------------------------------- the CLI

def test_cli_baselines_in_json_and_report_only_when_asked(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("rl.backtest.engine.load_settings", lambda: Settings())
    src = write_archive(tmp_path / "d", "TSTUSDT", "2024-01", 3 * 1440, "2024-01-01", seed=11)
    base = ["--data", str(src), "--symbol", "TSTUSDT", "--from", "2024-01-02", "--to", "2024-01-02",
            "--set", "MIN_REWARD_R=0.01"]
    assert main([*base, "--json", str(tmp_path / "plain.json"), "--report", str(tmp_path / "plain.html")]) == 0
    assert "baselines" not in json.loads((tmp_path / "plain.json").read_text())
    assert 'data-en="Baselines' not in (tmp_path / "plain.html").read_text()
    capsys.readouterr()
    assert main([*base, "--baselines", "2", "--seed", "9", "--json", str(tmp_path / "b.json"),
                 "--report", str(tmp_path / "b.html")]) == 0
    printed = capsys.readouterr().out
    assert "Baselines / 基准" in printed and "random median" in printed
    doc = json.loads((tmp_path / "b.json").read_text())
    plain = json.loads((tmp_path / "plain.json").read_text())
    strip = ("seconds", "bars_per_second", "baselines")
    assert {k: v for k, v in doc.items() if k not in strip} == {k: v for k, v in plain.items() if k not in strip}
    b = doc["baselines"]
    assert [r["seed"] for r in b["random_entries"]["per_run"]] == [9, 10] and b["frozen_learning"] is not None
    page = (tmp_path / "b.html").read_text()
    # bilingual like the rest of the report: Chinese shown, English switched in (#17 item 11)
    assert 'data-zh="基准（随机入场：从种子 9 起 2 次' in page and 'data-en="Baselines (random entries: 2 runs' in page
    assert 'data-zh="随机 中位数" data-en="Random median"' in page and "<script src" not in page
    assert 'data-zh="每日权益与基准" data-en="End-of-day equity vs baselines"' in page
    assert " / 随机" not in page and "Baselines / 基准" not in page


@pytest.mark.parametrize("args", [["--baselines", "-1"], ["--baselines", "2", "--jobs", "0"]])
def test_cli_bad_baseline_flags_exit_2(tmp_path: Path, capsys, monkeypatch, args) -> None:
    monkeypatch.setattr("rl.backtest.engine.load_settings", lambda: Settings())
    src = write_archive(tmp_path / "d", "TSTUSDT", "2024-01", 2 * 1440, "2024-01-01", seed=11)
    assert main(["--data", str(src), "--symbol", "TSTUSDT", *args]) == 2
    assert "--baselines" in capsys.readouterr().err
