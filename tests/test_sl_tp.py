from __future__ import annotations

import pytest

from dataclasses import replace

from client import parse_symbol_filters
from rl.strategy.params import TradePlanParams
from rl.strategy.trade_plan import plan_trade, stop_price, target_price
from tests.test_router import EXCHANGE_INFO

F = parse_symbol_filters(EXCHANGE_INFO)["BTCUSDT"]


def test_stop_beyond_level_by_atr_and_min_distance():
    assert stop_price("LONG", 50_000, 49_500, 200, atr_buffer=0.5, min_stop_pct=0.002) == 49_400
    assert stop_price("LONG", 50_000, 49_990, 10, atr_buffer=0.5, min_stop_pct=0.002) == 49_900   # min distance wins
    assert stop_price("SHORT", 50_000, 50_500, 200, 0.5, 0.002) == 50_600
    with pytest.raises(ValueError, match="side"):
        stop_price("UP", 1, 1, 1, 0.5, 0.002)


def test_target_uses_opposing_level_else_reward_multiple():
    assert target_price("LONG", 100, 98, 105, 2.0)[0] == 105
    assert target_price("LONG", 100, 98, 95, 2.0)[0] == 104          # level on the wrong side: 2R
    assert target_price("SHORT", 100, 102, None, 3)[0] == 94


def test_quantity_from_risk_including_fees_by_hand():
    p = plan_trade("LONG", 50_000, 49_500, 200, equity=10_000, available=10_000, filters=F,
                   risk_percent=2.0, leverage=10, taker_fee=0.0005)
    # stop 49400; per unit = 600 + 0.0005*(50000+49400) = 649.7; budget 200 → 0.3078 → 0.307
    assert p.stop == 49_400 and p.qty == 0.307 and p.ok
    assert p.risk == pytest.approx(0.307 * 649.7)
    assert p.risk <= 200
    assert p.target == 50_000 + 2 * 600


def test_capped_by_available_margin():
    p = plan_trade("LONG", 50_000, 49_950, 0, equity=10_000, available=100, filters=F,
                   params=replace(TradePlanParams(), min_stop_pct=0.001), leverage=10)
    # 100 / (50000 * (0.1 + 0.0005)) = 0.0199 → 0.019
    assert p.qty == 0.019 and any("available margin" in r for r in p.reasons)


def test_below_min_notional_gives_reason_not_exchange_error():
    p = plan_trade("LONG", 50_000, 45_000, 500, equity=100, available=100, filters=F)
    assert not p.ok and p.qty == 0
    assert any("minimum" in r for r in p.reasons)


def test_bad_input_names_field():
    with pytest.raises(ValueError, match="equity"):
        plan_trade("LONG", 50_000, 49_000, 100, equity=-1, available=1)
    with pytest.raises(ValueError, match="entry"):
        plan_trade("LONG", 0, 49_000, 100, equity=1, available=1)


def test_short_whose_target_would_be_negative_is_refused_with_a_reason() -> None:
    from rl.strategy.trade_plan import plan_trade
    # entry 10, level 14 -> stop ~16.5: a 2R target is 10 - 13 = -3
    plan = plan_trade("SHORT", 10.0, 14.0, 5.0, 10_000.0, 10_000.0, risk_percent=1.0)
    assert not plan.ok and plan.qty == 0.0
    assert "would be <= 0" in plan.reasons[0]


def test_plan_numbers_come_from_the_params() -> None:
    """risk_percent None stakes params.max_risk_percent; a wider ATR buffer and a 3R target
    move the stop and target as their fields say."""
    base = plan_trade("LONG", 50_000, 49_500, 200, equity=10_000, available=10_000, filters=F)
    assert base.risk == plan_trade("LONG", 50_000, 49_500, 200, equity=10_000, available=10_000,
                                   filters=F, risk_percent=2.0).risk
    wide = plan_trade("LONG", 50_000, 49_500, 200, equity=10_000, available=10_000, filters=F,
                      params=TradePlanParams(max_risk_percent=1.0, atr_buffer=1.0, reward_multiple=3.0))
    assert wide.stop == 49_300 and wide.target == 50_000 + 3 * 700
    assert wide.risk <= 100 < base.risk
