"""The exposure-cap settings: defaults, 0 turns a cap off, one line naming the variable and rule
for a bad value, and the agent's ExposureConfig built from them."""
from __future__ import annotations

from pathlib import Path

import pytest

from config import PROJECT_ROOT, load_settings
from rl.agent.exposure import exposure_config
from rl.errors import SettingsError
from rl.risk.exposure import ExposureConfig


def load(**env: str):
    return load_settings(env, dotenv_path="/nonexistent/.env")


def test_defaults_and_zero_turns_each_cap_off():
    s = load()
    assert (s.max_open_positions, s.max_total_risk_percent, s.max_correlation) == (3, 4.0, 0.8)
    assert exposure_config(s) == ExposureConfig()
    off = load(MAX_OPEN_POSITIONS="0", MAX_TOTAL_RISK_PERCENT="0", MAX_CORRELATION="0")
    c = exposure_config(off)
    assert (c.max_open_positions, c.max_total_risk_percent, c.max_correlation) == (0, 0.0, 0.0)
    s = load(MAX_OPEN_POSITIONS="5", MAX_TOTAL_RISK_PERCENT="6.5", MAX_CORRELATION="0.7")
    assert exposure_config(s).to_dict() == {**ExposureConfig().to_dict(), "max_open_positions": 5,
                                            "max_total_risk_percent": 6.5, "max_correlation": 0.7}
    assert s.public_dict()["max_correlation"] == 0.7            # shown with the other settings


@pytest.mark.parametrize("var,value,fragment", [
    ("MAX_OPEN_POSITIONS", "-1", "MAX_OPEN_POSITIONS must be an integer 0..1000 (0 turns the rule off)"),
    ("MAX_OPEN_POSITIONS", "2.5", "MAX_OPEN_POSITIONS must be an integer 0..1000"),
    ("MAX_OPEN_POSITIONS", "three", "MAX_OPEN_POSITIONS must be an integer 0..1000"),
    ("MAX_TOTAL_RISK_PERCENT", "100", "MAX_TOTAL_RISK_PERCENT must be a number >= 0 and < 100"),
    ("MAX_TOTAL_RISK_PERCENT", "-1", "MAX_TOTAL_RISK_PERCENT must be a number >= 0 and < 100"),
    ("MAX_TOTAL_RISK_PERCENT", "nan", "MAX_TOTAL_RISK_PERCENT must be a number >= 0 and < 100"),
    ("MAX_TOTAL_RISK_PERCENT", "1", "it must be 0 (off) or at least MAX_RISK_PERCENT=2"),
    ("MAX_CORRELATION", "1.2", "MAX_CORRELATION must be a number >= 0 and <= 1 (0 turns the rule off)"),
    ("MAX_CORRELATION", "-0.5", "MAX_CORRELATION must be a number >= 0 and <= 1"),
    ("MAX_CORRELATION", "high", "MAX_CORRELATION must be a number >= 0 and <= 1"),
])
def test_a_bad_value_stops_start_up_with_one_line(var, value, fragment):
    with pytest.raises(SettingsError) as err:
        load(**{var: value})
    message = str(err.value)
    assert "\n" not in message and fragment in message
    assert message.startswith(f"{var}=")


def test_total_risk_cap_may_equal_the_per_trade_risk():
    s = load(MAX_RISK_PERCENT="1.5", MAX_TOTAL_RISK_PERCENT="1.5")
    assert s.max_total_risk_percent == 1.5


@pytest.mark.parametrize("doc", [".env.example", "docs/configuration.md"])
def test_each_setting_is_documented(doc):
    text = Path(PROJECT_ROOT / doc).read_text(encoding="utf-8")
    for var in ("MAX_OPEN_POSITIONS", "MAX_TOTAL_RISK_PERCENT", "MAX_CORRELATION"):
        assert var in text
