"""Profiles: what rl.optimize writes (profiles/NAME.json) is what STRATEGY_PROFILE, `python -m
web.app --profile` and `python -m rl.backtest --profile` load; a bad or missing profile stops
start-up with one line naming it."""
from __future__ import annotations

import json

import optuna
import pytest

from config import SettingsError, load_settings, read_profile
from rl.backtest.engine import main as backtest_main
from rl.optimize.folds import Fold
from rl.optimize.objective import score_window
from rl.optimize.profile import profile_doc, write_profile, write_result
from rl.optimize.study import Evaluator, fold_outcome, open_study, optimize_fold
from rl.optimize.walkforward import WalkForwardConfig, WalkForwardResult
from rl.strategy.params import ParamsError, StrategyParams
from tests.optimize.fakes import FakeBank
from web.app import main as web_main
from web.app import parse_args, settings_from_args

OVERRIDES = {"phases.exploration.min_score": 41.5, "plan.atr_buffer": 0.8,
             "protections.stoploss_guard_trades": 4}


def _write(tmp_path, doc, name="p") -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def _settings(value: str):
    return load_settings(environ={"STRATEGY_PROFILE": value}, dotenv_path="/nonexistent/.env")


def test_strategy_profile_in_the_environment_sets_the_strategy_numbers(tmp_path) -> None:
    s = _settings(_write(tmp_path, {"params": OVERRIDES}))
    flat = StrategyParams.from_settings(s).to_flat()
    assert {k: flat[k] for k in OVERRIDES} == OVERRIDES
    assert flat["plan.max_risk_percent"] == 2.0                      # not in the profile: the setting's
    assert "strategy_overrides" not in s.public_dict() and s.public_dict()["strategy_profile"].endswith("p.json")


@pytest.mark.parametrize("doc, says", [
    (None, "no profile file"),
    ("{not json", "not readable JSON"),
    ({"other": 1}, 'no "params" object'),
    ({"params": {"plan.atr_buffer": "wide"}}, "is not a finite number"),
], ids=["missing", "bad-json", "no-params", "not-a-number"])
def test_a_bad_profile_is_one_line_naming_it(tmp_path, doc, says) -> None:
    path = tmp_path / "bad.json"
    if doc is not None:
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        _settings(str(path))
    msg = str(err.value)
    assert msg.startswith("STRATEGY_PROFILE=") and says in msg and "\n" not in msg


def test_a_profile_name_is_looked_up_in_profiles_and_must_be_a_name() -> None:
    with pytest.raises(SettingsError, match=r"no profile file .*profiles/surely-absent\.json"):
        _settings("surely-absent")
    with pytest.raises(SettingsError, match="must be a profile name"):
        _settings("../etc/passwd")


def test_an_unknown_or_out_of_range_parameter_stops_at_the_params(tmp_path) -> None:
    s = _settings(_write(tmp_path, {"params": {"plan.no_such_thing": 1.0}}))
    with pytest.raises(ParamsError, match=r"STRATEGY_PROFILE=.*plan.no_such_thing: unknown parameter"):
        StrategyParams.from_settings(s)
    s = _settings(_write(tmp_path, {"params": {"phases.exploration.min_score": 140.0}}, "range"))
    with pytest.raises(ParamsError, match=r"phases.exploration.min_score=140.0 is invalid"):
        StrategyParams.from_settings(s)


def test_web_app_profile_flag_loads_it_and_a_bad_one_stops_start_up(tmp_path, capsys) -> None:
    good = _write(tmp_path, {"params": OVERRIDES})
    s = settings_from_args(parse_args(["--profile", good]), environ={})
    assert StrategyParams.from_settings(s).plan.atr_buffer == 0.8
    bad = _write(tmp_path, {"params": {"plan.atr_buffer": -1.0}}, "neg")
    assert web_main(["--profile", bad, "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: STRATEGY_PROFILE=") and "plan.atr_buffer=-1.0" in err and "\n" not in err
    assert web_main(["--profile", "surely-absent"]) == 2
    assert "no profile file" in capsys.readouterr().err


def test_backtest_profile_flag_changes_the_run_and_a_bad_one_is_one_line(tmp_path, capsys,
                                                                          shared_data_dir) -> None:
    # an entry bar no score reaches: the profile's run cannot trade, the default one does
    never = _write(tmp_path, {"params": {"phases.exploration.min_score": 100.0,
                                          "phases.exploration.score_gap": 100.0}})
    args = ["--data", str(shared_data_dir), "--symbol", "FILUSDT", "--from", "2023-09-04", "--to", "2023-09-06"]
    out_default, out_profile = tmp_path / "d.json", tmp_path / "p.json"
    assert backtest_main(args + ["--json", str(out_default)]) == 0
    assert backtest_main(args + ["--profile", never, "--json", str(out_profile)]) == 0
    assert len(json.loads(out_default.read_text())["trades"]) > 0
    assert json.loads(out_profile.read_text())["trades"] == []
    capsys.readouterr()
    assert backtest_main(args + ["--profile", str(tmp_path / "absent.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --profile=") and "no profile file" in err and "\n" not in err
    assert backtest_main(args + ["--set", "STRATEGY_PROFILE=x"]) == 2
    assert "use --profile x" in capsys.readouterr().err


def test_the_written_profile_is_the_last_folds_choice_with_provenance(tmp_path) -> None:
    base = StrategyParams()
    study = open_study("w.fold1", optuna.storages.InMemoryStorage(), seed=9)
    ev = Evaluator(FakeBank(), 1)
    optimize_fold(study, ev, base, [("AAAUSDT", "2023-08")], 4, min_trades=1, show=False)
    fold = Fold(1, ("2023-08",), ("2023-09",))
    out = fold_outcome(study, fold, base)
    out.out_of_sample_runs = [FakeBank().run("AAAUSDT", "2023-09", base.replace_flat(out.params))]
    out.out_of_sample = score_window(out.out_of_sample_runs, 1)
    result = WalkForwardResult(
        config=WalkForwardConfig(data=("d",), symbols=("AAAUSDT",), study="w", storage="sqlite:///x.db"),
        months=["2023-08", "2023-09"], available={"AAAUSDT": ["2023-08", "2023-09"]},
        data_files=[{"symbol": "AAAUSDT", "month": "2023-08", "file": "f", "sha256": "0" * 64}],
        base_params=base.to_flat(), folds=[out], out_of_sample=out.out_of_sample,
        stitched={"day_ms": [], "equity": []})
    path = write_profile(result, "w", tmp_path)
    write_result(result, "w", tmp_path)
    doc = json.loads(path.read_text())
    assert doc["params"] == out.params and doc["provenance"]["folds"][0]["best_trial"] == out.best_trial
    assert doc["provenance"]["data_files"][0]["sha256"] == "0" * 64
    assert doc["objective"]["in_sample"]["score"] == out.in_sample.score
    assert json.loads((tmp_path / "w.walkforward.json").read_text())["folds"][0]["fold"] == 1
    flat = StrategyParams.from_settings(_settings(str(path))).to_flat()
    assert all(flat[k] == pytest.approx(v) for k, v in out.params.items())
    assert read_profile(str(path)) == tuple(doc["params"].items())
    assert profile_doc(result, "w")["provenance"]["storage"] == "sqlite:///x.db"
