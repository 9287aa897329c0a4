from __future__ import annotations

from dataclasses import replace

import pytest

from client import parse_symbol_filters
from rl.strategy.params import TradePlanParams
from rl.strategy.trade_plan import plan_trade, stop_price
from tests.support.fake_binance import EXCHANGE_INFO

F = parse_symbol_filters(EXCHANGE_INFO)["BTCUSDT"]


def test_stop_beyond_level_by_atr_and_min_distance():
    assert stop_price("LONG", 50_000, 49_500, 200, atr_buffer=0.5, min_stop_pct=0.002) == 49_400
    assert stop_price("LONG", 50_000, 49_990, 10, atr_buffer=0.5, min_stop_pct=0.002) == 49_900   # min distance wins
    assert stop_price("SHORT", 50_000, 50_500, 200, 0.5, 0.002) == 50_600
    with pytest.raises(ValueError, match="side"):
        stop_price("UP", 1, 1, 1, 0.5, 0.002)


def test_target_uses_opposing_level_else_reward_multiple():
    def plan(side, opposing, multiple=2.0):
        return plan_trade(side, 100.0, 98.0 if side == "LONG" else 102.0, 1.0, equity=10_000, available=10_000,
                          opposing_level=opposing, params=TradePlanParams(reward_multiple=multiple))
    assert plan("LONG", 105.0).target == 105
    p = plan("LONG", 95.0)                                           # level on the wrong side: 2R
    assert p.target == pytest.approx(100 + 2 * (100 - p.stop))
    p = plan("SHORT", None, 3)
    assert p.target == pytest.approx(100 - 3 * (p.stop - 100))


def test_quantity_from_risk_including_fees_by_hand():
    p = plan_trade("LONG", 50_000, 49_500, 200, equity=10_000, available=10_000, filters=F,
                   risk_percent=2.0, leverage=10, taker_fee=0.0005,
                   params=replace(TradePlanParams(), max_notional_percent=1000.0))   # risk binds
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


# --- fee-aware sizing (risk issue): two examples worked by hand -------------------------------

def test_fee_aware_size_with_ioc_offset_worked_by_hand() -> None:
    # LONG at 100, support 99, ATR 0.4 -> stop 99 - 0.2 = 98.8 (1.2 % away, beyond the 0.5 % floor).
    # IOC offset 5 bps: the entry may fill at 100.05. Per unit lost at the stop:
    #   (100.05 - 98.8) + 0.0005 * 100.05 + 0.0005 * 98.8 = 1.25 + 0.050025 + 0.0494 = 1.349425
    # budget 10,000 x 1 % = 100 -> qty 74.1056...; notional cap 100 % -> 10,000 / 100.05 = 99.95;
    # margin cap 10,000 / (100.05 x (0.1 + 0.0005)) = 994.6 -> the risk binds.
    p = plan_trade("LONG", 100.0, 99.0, 0.4, equity=10_000, available=10_000, risk_percent=1.0,
                   opposing_level=104.0, entry_offset=0.0005, taker_fee=0.0005)
    assert p.stop == pytest.approx(98.8)
    assert p.qty == pytest.approx(100 / 1.349425)
    assert p.risk == pytest.approx(100.0)           # a stop-out at the worst fill loses the budget
    # target 104 pays (4 - 0.05 - 0.052) / 1.349425 = 2.8886R after both fees
    assert p.reward_r == pytest.approx((4 - 0.05 - 0.052) / 1.349425)
    assert p.ok


def test_notional_cap_and_maker_fee_worked_by_hand() -> None:
    # SHORT at 50, resistance 50.1, ATR 0.02 -> 50.11, but the floor is 5 x (0.0002 + 0.0005) =
    # 0.35 % -> stop 50.175. Maker entry (no offset). Per unit: 0.175 + 0.0002 x 50 + 0.0005 x 50.175
    # = 0.175 + 0.01 + 0.0250875 = 0.2100875; 2 % of 10,000 = 200 -> 951.98 by risk, but the
    # notional cap of 100 % allows 10,000 / 50 = 200: the cap binds and the reason says so.
    p = plan_trade("SHORT", 50.0, 50.1, 0.02, equity=10_000, available=10_000, risk_percent=2.0,
                   entry_fee=0.0002, taker_fee=0.0005)
    assert p.stop == pytest.approx(50.175)
    assert p.qty == pytest.approx(200.0)
    assert p.notional == pytest.approx(10_000.0)
    assert p.risk == pytest.approx(200 * 0.2100875)      # 42.02: well inside the 200 budget
    assert p.fees == pytest.approx(200 * (0.01 + 0.0250875))
    assert any("100% of equity in notional" in r for r in p.reasons)


def test_target_inside_the_fees_is_refused_with_its_reward() -> None:
    # LONG at 100, stop 99.5 (floor), resistance at 100.3: (0.3 - 0.05 - 0.05015) / per-unit
    # (0.5 + 0.05 + 0.04975 = 0.59975) = 0.333R < 1R -> no trade, and the reason says why
    p = plan_trade("LONG", 100.0, 99.9, 0.0, equity=10_000, available=10_000, opposing_level=100.3)
    assert not p.ok and p.qty == 0
    assert p.reward_r == pytest.approx((0.3 - 0.05 - 0.05015) / 0.59975)
    assert any("0.33R after fees" in r for r in p.reasons)
    assert any("扣除手续费" in r for r in p.reasons_zh)
    loose = plan_trade("LONG", 100.0, 99.9, 0.0, equity=10_000, available=10_000, opposing_level=100.3,
                       params=replace(TradePlanParams(), min_reward_r=0.01))
    assert loose.ok
