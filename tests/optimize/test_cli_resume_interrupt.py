"""`python -m rl.optimize` end to end on two real months: Ctrl-C stops cleanly and keeps the
finished trials, rerunning the command continues the study, and the profile it writes loads."""
from __future__ import annotations

import json
import signal
import time

import optuna
import pytest
from optuna.trial import TrialState

from config import load_settings
from rl.strategy.params import StrategyParams
from tests.optimize.cli_support import command, start, two_months

pytestmark = pytest.mark.slow


def _trials(url: str) -> list:
    try:
        return optuna.load_study(study_name="cli.fold1", storage=url).get_trials()
    except KeyError:
        return []


def test_ctrl_c_keeps_finished_trials_and_a_rerun_continues(tmp_path) -> None:
    two_months()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    proc = start(command("cli", url, tmp_path, trials=50, jobs=2), tmp_path / "first.log")
    try:
        # wait for the first finished trial (the process would end on its own only after 50)
        while not any(t.state == TrialState.COMPLETE for t in _trials(url)):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=300) == 130, (tmp_path / "first.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "first.log").read_text()
    assert "stopped by Ctrl-C" in log and "rerun the same command" in log and "Traceback" not in log
    trials = _trials(url)
    kept = [t for t in trials if t.state == TrialState.COMPLETE]
    assert kept and not [t for t in trials if t.state == TrialState.RUNNING]
    assert all(t.user_attrs.get("interrupted") for t in trials if t.state == TrialState.FAIL)
    assert not (tmp_path / "cli.json").exists()          # no profile from a study cut short

    rerun = start(command("cli", url, tmp_path, trials=len(kept) + 1), tmp_path / "second.log")
    assert rerun.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()
    second = (tmp_path / "second.log").read_text()
    assert "fold 1: 1 trial(s) run by this worker" in second
    done = [t for t in _trials(url) if t.state == TrialState.COMPLETE]
    assert [t.number for t in done[:len(kept)]] == [t.number for t in kept] and len(done) == len(kept) + 1

    profile = tmp_path / "cli.json"
    doc = json.loads(profile.read_text())
    assert doc["provenance"]["folds"][0]["train"] == ["2023-08"] and doc["provenance"]["folds"][0]["test"] == ["2023-09"]
    assert len(doc["provenance"]["data_files"]) == 2
    params = StrategyParams.from_settings(load_settings(environ={"STRATEGY_PROFILE": str(profile)},
                                                        dotenv_path="/nonexistent/.env"))
    assert params.plan.atr_buffer == pytest.approx(doc["params"]["plan.atr_buffer"])
    assert "stitched out-of-sample" in (tmp_path / "second.log").read_text()
