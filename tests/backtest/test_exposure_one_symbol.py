"""With one symbol the exposure caps never change anything (issue 18): a one-symbol backtest
gives the very same result and trace with the caps at their defaults, at their strictest and
off, on a generated day (so it runs without the shared data)."""
from __future__ import annotations

import io
import json

from config import Settings
from rl.backtest.data import load_backtest_data
from rl.backtest.engine import TIMING_FIELDS, backtest_settings, dumps_json, run_backtest
from tests.support.archives import write_archive

SYMBOL = "TSTUSDT"
STRICTEST = {"max_open_positions": 1, "max_total_risk_percent": 2.0, "max_correlation": 0.01}
OFF = {"max_open_positions": 0, "max_total_risk_percent": 0.0, "max_correlation": 0.0}


def _run(data, caps: dict) -> tuple[str, str]:
    settings = backtest_settings(SYMBOL, 10_000.0, {"min_reward_r": 0.01, **caps}, base=Settings())
    buf = io.StringIO()
    doc = run_backtest(data, settings, trace=buf, progress=False).to_json()
    for k in TIMING_FIELDS:
        doc.pop(k)
    shown = doc.pop("settings")                     # lists the caps themselves, so it differs
    assert {k: shown[k] for k in caps} == caps
    return dumps_json(doc), buf.getvalue()


def test_a_one_symbol_backtest_is_the_same_with_the_caps_default_strictest_and_off(tmp_path):
    src = write_archive(tmp_path / "d", SYMBOL, "2024-01", 3 * 1440, "2024-01-01", seed=11)
    data = load_backtest_data([src], SYMBOL, "2024-01-02", "2024-01-02")
    default = _run(data, {})
    assert json.loads(default[0])["trades"], "the generated day must trade for this test to mean anything"
    assert '"exposure"' not in default[1]
    assert _run(data, STRICTEST) == default
    assert _run(data, OFF) == default
