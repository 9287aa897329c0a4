"""TRADING_MODE=live starts only on out-of-sample evidence (rl.optimize.evidence.live_gate) or
with LIVE_WITHOUT_EVIDENCE=I_ACCEPT_THE_RISK; paper and testnet are not gated. Real profile
files in tmp_path, loaded by the real load_settings."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import config
from config import load_settings
from rl.errors import SettingsError
from tests.optimize.test_evidence import profile

KEYS = {"API_KEY": "k" * 64, "API_SECRET": "s" * 64}
LIVE = {"TRADING_MODE": "live", "LIVE_TRADING_CONFIRM": config.LIVE_CONFIRM_PHRASE, **KEYS}


def write(tmp_path: Path, name: str, doc: dict) -> str:
    doc = {**doc, "params": {"plan.atr_buffer": 0.7}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def load(**env: str) -> config.Settings:
    return load_settings(env, dotenv_path="/nonexistent/.env")


def test_live_without_a_profile_refuses_naming_what_to_do() -> None:
    with pytest.raises(SettingsError) as err:
        load(**LIVE)
    line = str(err.value)
    assert "\n" not in line and "no STRATEGY_PROFILE is set" in line and "python -m rl.optimize" in line
    assert "LIVE_WITHOUT_EVIDENCE=I_ACCEPT_THE_RISK" in line


def test_live_on_a_profile_below_the_random_median_refuses(tmp_path: Path) -> None:
    path = write(tmp_path, "neg", profile(-9.18, -6.42))
    with pytest.raises(SettingsError, match=r"returned -9.18 %, not above the random-entry median -6.42 %"):
        load(STRATEGY_PROFILE=path, **LIVE)


def test_the_shipped_wf200_profile_is_refused_for_live(tmp_path: Path) -> None:
    # the real 200-trial study's profile: its unseen months lost more than random entries did
    shutil.copy(config.PROFILES_DIR / "wf200.json", tmp_path / "wf200.json")
    with pytest.raises(SettingsError, match="not above the random-entry median"):
        load(STRATEGY_PROFILE=str(tmp_path / "wf200.json"), **LIVE)


def test_live_on_a_profile_above_the_random_median_starts(tmp_path: Path) -> None:
    path = write(tmp_path, "pos", profile(-2.0, -6.0))
    s = load(STRATEGY_PROFILE=path, **LIVE)
    assert s.trading_mode == "live" and s.strategy_overrides == (("plan.atr_buffer", 0.7),)


def test_the_trader_can_accept_the_risk(tmp_path: Path) -> None:
    path = write(tmp_path, "neg", profile(-9.18, -6.42))
    for extra in ({}, {"STRATEGY_PROFILE": path}):
        s = load(LIVE_WITHOUT_EVIDENCE="I_ACCEPT_THE_RISK", **extra, **LIVE)
        assert s.trading_mode == "live" and s.live_without_evidence == config.LIVE_RISK_PHRASE


def test_any_other_value_of_live_without_evidence_is_refused() -> None:
    with pytest.raises(SettingsError, match="^LIVE_WITHOUT_EVIDENCE='yes' is invalid"):
        load(LIVE_WITHOUT_EVIDENCE="yes", **LIVE)


@pytest.mark.parametrize("mode", [{"TRADING_MODE": "paper"}, {"TRADING_MODE": "testnet", **KEYS}])
def test_paper_and_testnet_are_not_gated(tmp_path: Path, mode: dict) -> None:
    neg = write(tmp_path, "neg", profile(-9.18, -6.42))
    assert load(**mode).trading_mode == mode["TRADING_MODE"]
    assert load(STRATEGY_PROFILE=neg, **mode).strategy_profile == neg


def test_overrides_recheck_the_gate(tmp_path: Path) -> None:
    s = load(**{**LIVE, "LIVE_WITHOUT_EVIDENCE": "I_ACCEPT_THE_RISK"})
    with pytest.raises(SettingsError, match="refuses to start: no STRATEGY_PROFILE"):
        s.with_overrides(live_without_evidence="")


def test_web_app_refuses_live_on_a_negative_profile_with_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from web.app import main
    for k, v in LIVE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("LIVE_WITHOUT_EVIDENCE", raising=False)
    monkeypatch.delenv("STRATEGY_PROFILE", raising=False)
    neg = write(tmp_path, "neg", profile(-9.18, -6.42))
    assert main(["--profile", neg, "--db", str(tmp_path / "live.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: TRADING_MODE=live refuses to start: on unseen months profile") and "\n" not in err
