"""Learning messages say what actually happened (issue 17 item 5): no 'X up, X down' when
nothing moved, no 'none +5 %', and the moved features named once."""
from rl.knowledge.thought import summarize
from rl.strategy.learning import FeatureEvidence, WeightUpdate, describe_change

OLD = {"a": 0.5, "b": 0.5}


def _ev(a: str, b: str) -> dict[str, FeatureEvidence]:
    return {k: FeatureEvidence(k, 40, 0.5, 1.0, 0.0, v) for k, v in (("a", a), ("b", b))}


def _summary(new: dict[str, float], ev: dict[str, FeatureEvidence]) -> str:
    upd = WeightUpdate(old=OLD, new=new, evidence=ev, trade_count=40, applied=True)
    return summarize({"symbol": "X"}, {"side": "LONG"}, {"weight_change": upd.to_dict()})[1]


def test_nothing_changed_says_so_and_names_no_feature():
    zh, en = describe_change(40, OLD, dict(OLD), _ev("inconclusive", "inconclusive"))
    assert "no weight changed" in en and "none" not in en and "未改变" in zh
    assert "weights moved" not in _summary(dict(OLD), _ev("inconclusive", "inconclusive"))


def test_one_up_names_only_it():
    new = {"a": 0.52, "b": 0.48}                 # b only renormalized
    zh, en = describe_change(40, OLD, new, _ev("helped", "inconclusive"))
    assert "a predicted profit, weight 0.500 -> 0.520" in en and "b predicted" not in en
    s = _summary(new, _ev("helped", "inconclusive"))
    assert "weights moved: a up." in s


def test_one_down_names_only_it():
    new = {"a": 0.48, "b": 0.52}
    zh, en = describe_change(40, OLD, new, _ev("did_not_help", "inconclusive"))
    assert "a predicted losses" in en and "b" not in en.split(":", 1)[1].split(";")[0]
    assert "weights moved: a down." in _summary(new, _ev("did_not_help", "inconclusive"))
