"""Progressive threshold boundaries and the decision with its log lines."""
import pytest

from rl.strategy.params import PhaseParams, PhaseRule
from rl.strategy.phases import decide, phase_for

P = PhaseParams()      # today's phases


@pytest.mark.parametrize("n, key, min_score, gap, next_at", [
    (0, "exploration", 35, 10, 30), (29, "exploration", 35, 10, 30), (30, "learning", 45, 12, 100),
    (99, "learning", 45, 12, 100), (100, "stable", 55, 15, None), (5000, "stable", 55, 15, None)])
def test_phase_boundaries(n, key, min_score, gap, next_at):
    p = phase_for(n, P)
    assert (p.key, p.min_score, p.score_gap, p.next_at, p.trade_count) == (key, min_score, gap, next_at, n)


def test_wait_log_line_matches_design():
    # the design's example numbers (42/25) would enter under its own rules; same format, a wait:
    d = decide(42, 34, 5, P)
    assert d.action == "wait"
    assert d.log_zh == "⏳ 观望中 | 做多:42 做空:34 (需≥35分) [探索期|5笔]"
    assert d.log_en == "⏳ Waiting | long:42 short:34 (need ≥35) [exploration|5 trades]"
    assert "gap 8 < 10" in d.reason_en
    e = decide(42, 25, 5, P)
    assert e.action == "enter_long" and e.log_en.endswith("long:42 short:25 (need ≥35) [exploration|5 trades]")
    assert decide(20.5, 0, 1, P).log_en == "⏳ Waiting | long:21 short:0 (need ≥35) [exploration|1 trade]"


def test_enter_long_and_short():
    assert decide(45, 30, 5, P).action == "enter_long"
    assert decide(30, 45, 5, P).action == "enter_short"
    assert decide(45, 34, 30, P).action == "wait"        # learning: lead 11 < 12
    assert decide(46, 30, 30, P).action == "enter_long"
    assert decide(44.9, 0, 30, P).action == "wait"
    assert decide(55, 40, 100, P).action == "enter_long"
    assert decide(55, 41, 100, P).action == "wait"       # gap 14 < 15
    d = decide(30, 10, 0, P)
    assert d.action == "wait" and "threshold" in d.reason_en


def test_decide_rejects_bad_input():
    with pytest.raises(ValueError, match="long_score"):
        decide(101, 0, 1, P)
    with pytest.raises(ValueError, match="trade_count"):
        decide(50, 0, -1, P)


def test_other_phase_params_move_the_bar_and_the_boundaries():
    p = PhaseParams(learning_from=5, stable_from=6)
    assert [phase_for(n, p).key for n in (4, 5, 6)] == ["exploration", "learning", "stable"]
    assert phase_for(4, p).next_at == 5 and p.starts_at("stable") == 6
    low = PhaseParams(exploration=PhaseRule(min_score=20.0, score_gap=5.0, risk_scale=0.5))
    assert decide(21, 15, 0, low).action == "enter_long"
    assert decide(21, 15, 0, P).action == "wait"
    assert "need ≥20" in decide(10, 0, 0, low).log_en
