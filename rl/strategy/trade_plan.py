"""Stop, target and size for a new position (pure).

The stop goes beyond the support/resistance level the trade leans on, by an ATR buffer, so
ordinary noise around the level does not take us out; never closer than a minimum distance,
because a stop inside the spread/fees is a guaranteed loss. Size comes from risk: lose at most
equity × risk_percent if the stop is hit, fees of both legs included, then capped by
leverage and available margin and floored to the exchange step. When the result cannot be
traded (below min qty / min notional) the plan says why instead of letting the exchange
answer -4164. The numbers are `TradePlanParams`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from client import SymbolFilters
from rl.strategy.params import TradePlanParams


@dataclass(frozen=True)
class TradePlan:
    side: str                    # "LONG" | "SHORT"
    entry: float
    stop: float
    target: float
    qty: float                   # 0 when not tradeable (see reasons)
    risk: float                  # quote lost at the stop incl. both fees, for qty
    reward_ratio: float          # |target - entry| / |entry - stop|
    reward_r: float              # what the target pays after both fees, in units of `risk`
    fees: float                  # entry fee + exit fee at the stop, for qty (part of `risk`)
    notional: float
    margin: float
    ok: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)
    reasons_zh: tuple[str, ...] = field(default_factory=tuple)   # reasons[i] in Chinese

    def to_dict(self) -> dict:
        return {"side": self.side, "entry": self.entry, "stop": self.stop, "target": self.target,
                "qty": self.qty, "risk": self.risk, "reward_ratio": self.reward_ratio,
                "reward_r": self.reward_r, "fees": self.fees,
                "notional": self.notional, "margin": self.margin, "ok": self.ok,
                "reasons": list(self.reasons), "reasons_zh": list(self.reasons_zh)}


def _positive(name: str, value: float) -> float:
    if value is None or not isinstance(value, (int, float)) or value != value or value <= 0:
        raise ValueError(f"{name}: must be a number > 0, got {value!r}")
    return float(value)


def stop_price(side: str, entry: float, level: float, atr: float, atr_buffer: float,
               min_stop_pct: float) -> float:
    """Stop beyond `level` by atr*atr_buffer, and at least entry*min_stop_pct from entry."""
    _positive("entry", entry)
    _positive("level", level)
    if atr is None or atr != atr or atr < 0:
        raise ValueError(f"atr: must be a number >= 0, got {atr!r}")
    min_dist = entry * min_stop_pct
    if side == "LONG":
        return min(level - atr * atr_buffer, entry - min_dist)
    if side == "SHORT":
        return max(level + atr * atr_buffer, entry + min_dist)
    raise ValueError(f"side: must be LONG or SHORT, got {side!r}")


def _target(side: str, entry: float, stop: float, opposing_level: float | None,
            reward_multiple: float) -> tuple[float, str, str]:
    """(target, why in English, why in Chinese)."""
    dist = abs(entry - stop)
    sign = 1.0 if side == "LONG" else -1.0
    if opposing_level is not None and (opposing_level - entry) * sign > 0:
        return (float(opposing_level),
                f"target at the next {'resistance' if sign > 0 else 'support'} {opposing_level:g}",
                f"止盈设在下一个{'阻力位' if sign > 0 else '支撑位'} {opposing_level:g}")
    return (entry + sign * reward_multiple * dist,
            f"target at {reward_multiple:g}R (no opposing level beyond entry)",
            f"止盈设在 {reward_multiple:g}R（入场价之外没有对向关键位）")


def plan_trade(side: str, entry: float, level: float, atr: float, equity: float,
               available: float, *, opposing_level: float | None = None,
               params: TradePlanParams = TradePlanParams(), risk_percent: float | None = None,
               leverage: int = 10, taker_fee: float = 0.0005, entry_fee: float | None = None,
               entry_offset: float = 0.0, filters: SymbolFilters | None = None) -> TradePlan:
    """Full plan: stop, target, risk-sized quantity rounded to the exchange's filters.

    `risk_percent`: this trade's risk budget in % of equity (the agent scales it by phase);
    None = `params.max_risk_percent`. `entry_fee`: the fee rate of the entry order (the maker
    rate for a post-only entry; None = `taker_fee`); the exit is priced at `taker_fee`, since
    a stop is a STOP_MARKET. `entry_offset`: how far beyond `entry` the entry may fill, as a
    fraction (an IOC limit may pay up to its offset; 0 for a limit at the planned price).

    Assumptions, so that a stop-out loses at most the risk budget:
    - the entry fills at the worst price the order allows (entry x (1 +- entry_offset));
    - the stop fills at its trigger (a STOP_MARKET can slip in a fast market: not bounded here);
    - both legs pay their fee on their own notional.
    The stop is never closer than `params.fee_stop_multiple` round-trip fees (5 x 0.1 % = 0.5 %
    of the price at taker fees): sizing from risk makes the position grow as the stop tightens,
    and the fees grow with it, so a 0.2 % stop pays half its risk budget in fees before the
    price moves. The notional is capped at `params.max_notional_percent` of equity, which caps
    what one round trip can cost in fees whatever the stop. A plan whose target, after both
    fees, pays less than `params.min_reward_r` times the risk is refused with the reason.
    """
    if risk_percent is None:
        risk_percent = params.max_risk_percent
    if entry_fee is None:
        entry_fee = taker_fee
    atr_buffer, reward_multiple = params.atr_buffer, params.reward_multiple
    if side not in ("LONG", "SHORT"):
        raise ValueError(f"side: must be LONG or SHORT, got {side!r}")
    _positive("entry", entry)
    _positive("equity", equity)
    if available is None or available != available:
        raise ValueError(f"available: must be a number, got {available!r}")
    if not 0 < risk_percent <= 100:
        raise ValueError(f"risk_percent: must be in (0, 100], got {risk_percent!r}")
    if not 1 <= int(leverage) <= 125:
        raise ValueError(f"leverage: must be 1..125, got {leverage!r}")
    if not 0 <= taker_fee < 0.01:
        raise ValueError(f"taker_fee: must be in [0, 0.01), got {taker_fee!r}")
    if not -0.01 < entry_fee < 0.01:
        raise ValueError(f"entry_fee: must be in (-0.01, 0.01), got {entry_fee!r}")
    if not 0 <= entry_offset < 0.1:
        raise ValueError(f"entry_offset: must be in [0, 0.1), got {entry_offset!r}")
    reasons: list[str] = []
    reasons_zh: list[str] = []

    def say(en: str, zh: str) -> None:     # every reason in both languages, one for one
        reasons.append(en)
        reasons_zh.append(zh)

    sign = 1.0 if side == "LONG" else -1.0
    round_trip_fee = max(entry_fee, 0.0) + taker_fee
    min_stop_pct = max(params.min_stop_pct, params.fee_stop_multiple * round_trip_fee)
    stop = stop_price(side, entry, level, atr, atr_buffer, min_stop_pct)
    if filters is not None:     # round the stop away from entry: never tighter than computed
        stop = filters.round_price(stop, "down" if side == "LONG" else "up")
    if stop <= 0:
        raise ValueError(f"level: gives a stop <= 0 ({stop:g}); level/atr are implausible")
    target, why, why_zh = _target(side, entry, stop, opposing_level, reward_multiple)
    if target <= 0:
        # A short whose stop is more than half the price away: its R-multiple target would be
        # a negative price. Not a plan to send to an exchange; say why instead of raising.
        return TradePlan(side=side, entry=float(entry), stop=float(stop), target=0.0, qty=0.0,
                         risk=0.0, reward_ratio=0.0, reward_r=0.0, fees=0.0, notional=0.0, margin=0.0, ok=False,
                         reasons=(f"target {target:g} would be <= 0: the stop {stop:g} is too far "
                                  f"from entry {entry:g} for a {reward_multiple:g}R target",),
                         reasons_zh=(f"止盈价 {target:g} 将 ≤ 0：止损 {stop:g} 离入场价 {entry:g} 太远，"
                                     f"无法设 {reward_multiple:g}R 止盈",))
    if filters is not None:
        target = filters.round_price(target, "nearest")
    say(f"stop {stop:g}: {atr_buffer:g} ATR beyond level {level:g}, "
        f"at least {min_stop_pct * 100:g}% from entry",
        f"止损 {stop:g}：在关键位 {level:g} 外侧 {atr_buffer:g} 倍 ATR，距入场价至少 {min_stop_pct * 100:g}%")
    say(why, why_zh)
    dist = abs(entry - stop)
    worst = entry * (1.0 + sign * entry_offset)      # the worst fill the entry order allows
    # Loss per unit at the stop: the move from the worst fill plus the fee on each leg.
    per_unit = abs(worst - stop) + entry_fee * worst + taker_fee * stop
    # What the target pays per unit, after both fees, from the planned entry.
    reward_unit = abs(target - entry) - entry_fee * entry - taker_fee * target
    budget = equity * risk_percent / 100.0
    caps = {"risk": budget / per_unit,
            # margin for the entry plus its fee must fit in what is available
            "margin": max(available, 0.0) / (worst * (1.0 / leverage + max(entry_fee, 0.0))),
            "notional": equity * params.max_notional_percent / 100.0 / worst}
    binding = min(caps, key=lambda k: caps[k])
    qty = caps[binding]
    if binding == "margin":
        say(f"size capped by available margin {available:.2f} at {leverage}x "
            f"(risk alone allowed {caps['risk']:.6g})",
            f"仓位受可用保证金 {available:.2f}（{leverage} 倍杠杆）限制（仅按风险可开 {caps['risk']:.6g}）")
    elif binding == "notional":
        say(f"size capped at {params.max_notional_percent:g}% of equity in notional "
            f"(risk alone allowed {caps['risk']:.6g})",
            f"仓位受名义价值上限（权益的 {params.max_notional_percent:g}%）限制（仅按风险可开 {caps['risk']:.6g}）")
    if filters is not None:
        qty = filters.floor_qty(qty)
    ok = qty > 0
    reward_r = reward_unit / per_unit
    if reward_r < params.min_reward_r:
        ok = False
        say(f"target {target:g} pays {reward_r:.2f}R after fees, less than the minimum "
            f"{params.min_reward_r:g}R: not worth the risk",
            f"止盈 {target:g} 扣除手续费后只赚 {reward_r:.2f}R，低于最低要求 {params.min_reward_r:g}R：不值得冒险")
    elif filters is not None:
        min_qty = float(filters.min_qty)
        if qty < min_qty:
            ok = False
            say(f"quantity {qty:g} below the exchange minimum {min_qty:g} (min notional "
                f"{float(filters.min_notional):g}): risk budget {budget:.2f} too small "
                f"for a stop {dist:g} away, or too little margin",
                f"数量 {qty:g} 低于交易所最小下单量 {min_qty:g}（最小名义价值 "
                f"{float(filters.min_notional):g}）：风险预算 {budget:.2f} 不足以承受 {dist:g} 的止损距离，"
                "或保证金不足")
        elif not filters.check_notional(entry, qty):
            ok = False
            say(f"order notional {entry * qty:.2f} below the exchange minimum "
                f"{float(filters.min_notional):g}: risk budget {budget:.2f} too small "
                f"for a stop {dist:g} away, or too little margin",
                f"订单名义价值 {entry * qty:.2f} 低于交易所最小值 {float(filters.min_notional):g}："
                f"风险预算 {budget:.2f} 不足以承受 {dist:g} 的止损距离，或保证金不足")
    elif not ok:
        say("quantity is 0: no risk budget or no available margin", "数量为 0：没有风险预算或可用保证金")
    if not ok:
        qty = 0.0
    return TradePlan(side=side, entry=float(entry), stop=float(stop), target=float(target),
                     qty=float(qty), risk=qty * per_unit, reward_ratio=abs(target - entry) / dist,
                     reward_r=reward_r, fees=qty * (entry_fee * worst + taker_fee * stop),
                     notional=qty * entry, margin=qty * entry / leverage, ok=ok,
                     reasons=tuple(reasons), reasons_zh=tuple(reasons_zh))
