"""rl.optimize.evidence: the Evidence panel's figures and sentences, and the live gate, as pure
functions over profile documents (made by hand here, the shape rl.optimize.profile writes)."""
from __future__ import annotations

import pytest

from rl.optimize.evidence import evidence, live_gate


def profile(oos: float | None, median: float | None, bh: float | None = 14.0, runs: int = 20) -> dict:
    base = None if median is None else {
        "agent": {"return_pct": oos}, "buy_hold": {"return_pct": bh},
        "random_entries": {"runs": runs, "agent_percentile": 30.0,
                           "return_pct": {"median": median, "p10": median - 3, "p90": median + 3}}}
    return {"created": "2026-12-02T07:16:32Z",
            "provenance": {"study": "s", "symbols": ["FILUSDT"], "trials_per_fold": 200,
                           "folds": [{"fold": 1, "train": ["2023-08", "2023-09"], "test": ["2023-10"],
                                      "in_sample_return_pct": 3.0, "out_of_sample_return_pct": oos}],
                           "out_of_sample_baselines": base},
            "objective": {"out_of_sample": None if oos is None else {"return_pct": oos, "max_drawdown_pct": 9.0,
                                                                      "trades": 40}}}


def test_no_profile_says_the_defaults_have_no_evidence_and_how_to_make_some() -> None:
    ev = evidence(None)
    assert ev["state"] == "none" and ev["profile"] is None and ev["beats_random_median"] is None
    assert "默认参数没有任何样本外证据" in ev["sentence_zh"] and "python -m rl.optimize" in ev["sentence_zh"]
    assert "no out-of-sample evidence" in ev["sentence_en"] and "STRATEGY_PROFILE=NAME" in ev["sentence_en"]


def test_a_losing_profile_below_chance_says_both_losses_in_both_languages() -> None:
    ev = evidence(profile(-9.18, -6.42, 32.71), "wf200")
    assert ev["state"] == "below_chance" and ev["beats_random_median"] is False
    assert ev["oos_return_pct"] == -9.18 and ev["random_median_return_pct"] == -6.42
    assert "在未见过的 1 个月份上，此配置亏损 9.18 %；随机入场亏损 6.42 %" in ev["sentence_zh"]
    assert "On 1 unseen month(s) this profile lost 9.18 %; random entries lost 6.42 %" in ev["sentence_en"]
    assert "buying and holding gained 32.71 %" in ev["sentence_en"] and "同期买入持有盈利 32.71 %" in ev["sentence_zh"]
    assert "no evidence of an edge" in ev["sentence_en"] and "不是优势的证据" in ev["sentence_zh"]
    assert ev["folds"][0]["out_of_sample_return_pct"] == -9.18 and ev["test_months"] == ["2023-10"]


def test_gaining_but_below_random_entries_is_still_negative() -> None:
    ev = evidence(profile(1.0, 2.5), "p")
    assert ev["state"] == "below_chance"
    assert "this profile gained 1.00 %; random entries gained 2.50 %" in ev["sentence_en"]
    assert "此配置盈利 1.00 %；随机入场盈利 2.50 %" in ev["sentence_zh"]


def test_losing_less_than_chance_beats_the_median_but_is_called_a_loss() -> None:
    ev = evidence(profile(-2.0, -6.0), "p")
    assert ev["state"] == "lost_but_beats_chance" and ev["beats_random_median"] is True
    assert "lost 2.00 %" in ev["sentence_en"] and "still a loss" in ev["sentence_en"] and "仍是亏损" in ev["sentence_zh"]


def test_beating_chance_with_a_gain() -> None:
    ev = evidence(profile(4.0, -1.0), "p")
    assert ev["state"] == "beats_chance" and "Above the random-entry median" in ev["sentence_en"]


def test_missing_pieces_say_what_is_missing() -> None:
    assert evidence(profile(-3.0, None), "p")["state"] == "no_baseline"
    assert "python -m rl.optimize report p" in evidence(profile(-3.0, None), "p")["sentence_en"]
    assert evidence(profile(None, None), "p")["state"] == "no_out_of_sample"
    assert evidence({}, "p")["state"] == "no_out_of_sample"


@pytest.mark.parametrize("doc, says", [
    (None, "no STRATEGY_PROFILE is set"),
    (profile(None, None), "has no out-of-sample result"),
    (profile(-3.0, None), "has no random-entry baseline"),
    (profile(-9.18, -6.42), "returned -9.18 %, not above the random-entry median -6.42 % (20 runs)"),
    (profile(-6.42, -6.42), "not above the random-entry median"),        # equal is not beating
])
def test_the_live_gate_refuses_with_one_line_naming_what_to_do(doc, says) -> None:
    line = live_gate(doc, "p")
    assert line is not None and says in line and "\n" not in line
    assert line.startswith("TRADING_MODE=live refuses to start") and "LIVE_WITHOUT_EVIDENCE=I_ACCEPT_THE_RISK" in line


def test_the_live_gate_passes_a_profile_above_the_random_median() -> None:
    assert live_gate(profile(-2.0, -6.0), "p") is None
    assert live_gate(profile(4.0, -1.0), "p") is None
