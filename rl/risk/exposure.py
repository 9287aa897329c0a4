"""Exposure caps (pure): may one more position open, given the positions already open?

The protections (rl/risk/protections.py) pause entries after losses; these caps limit what the
positions open at one time risk together, before any loss happened. Three rules, each off at 0:

- **Open positions** (`max_open_positions`): at most this many of the agent's positions open at
  once, all symbols together.
- **Total risk** (`max_total_risk_percent`): what every open position loses if its stop fills
  now (`risk_at_stop`), plus the candidate's planned risk (fees included), at most this % of
  equity. A candidate alone is not checked here: one trade's risk is MAX_RISK_PERCENT's rule
  (and the settings keep this cap >= that one), so a single symbol never meets this cap.
- **Correlation** (`max_correlation`): no new position that is the same bet as one already
  held: the same side in a symbol whose recent log returns correlate above the threshold with
  the held symbol's (or the opposite side with a correlation below minus the threshold). The
  opposite side of a positively correlated pair is a hedge: it is allowed (its risk still
  counts toward the total-risk cap), since a move that stops one of the two out moves the
  other towards its target. Too few shared candles for a correlation: said, never refused.

Pure: no I/O, no clock; the agent hands in the open positions, equity and candle closes
(rl/agent/exposure.py). Defaults and their reasons: `ExposureConfig`; docs/risk.md.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SIDES = ("LONG", "SHORT")
INTERVAL_MS = {"15m": 15 * 60_000, "8h": 8 * 3_600_000}
OPEN_POSITIONS, TOTAL_RISK, CORRELATION = "max_open_positions", "max_total_risk", "correlation"
RULES = (OPEN_POSITIONS, TOTAL_RISK, CORRELATION)
RULE_NAMES_ZH = {OPEN_POSITIONS: "持仓数上限", TOTAL_RISK: "总风险上限", CORRELATION: "相关性上限"}
RULE_NAMES_EN = {OPEN_POSITIONS: "open-position cap", TOTAL_RISK: "total-risk cap",
                 CORRELATION: "correlation cap"}
_SIDE_ZH = {"LONG": "多", "SHORT": "空"}


def _fail(name: str, value: object, rule: str) -> ValueError:
    return ValueError(f"{name}={value!r} is invalid: {rule}")


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(name, value, f"{name} must be a finite number")
    return float(value)


def _int_in(name: str, value: object, lo: int, hi: int, off: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(name, value, f"{name} must be an integer {lo}..{hi}{off}")
    return value


@dataclass(frozen=True)
class ExposureConfig:
    """The caps on positions open together. 0 turns a cap off."""

    # Three positions: with the 4 % total-risk cap and 1-2 % per trade, no more than two to
    # four can be open at full stake anyway, and three symbols that pairwise pass the
    # correlation cap are about as many independent bets as the USDⓈ-M alt market offers (most
    # of it moves with BTC); more would be the same bet several times over.
    max_open_positions: int = 3
    # 4 % = the daily loss limit's default: if every open position is stopped out by one move
    # (a crash takes the whole market through its stops at once), the account loses at most
    # what one bad day may lose, so the worst single event ends in the daily pause instead of
    # far beyond it, and stays well inside the 10 % drawdown limit. It fits two full-risk (2 %)
    # positions or four at the exploration stake.
    max_total_risk_percent: float = 4.0
    # 0.8: two equal positions correlated at rho carry sqrt(2 + 2 rho) / 2 of their summed
    # risk; at 0.8 that is 95 %: the second position adds almost its whole risk to the same
    # bet (a stop-out of one is a stop-out of both) while the total-risk cap assumes little
    # diversification anyway. Below it, the pair is priced as two bets.
    max_correlation: float = 0.8
    # 15m closes: the positions these caps limit live for hours, their stops are ATR(15m)
    # away, so what matters is whether the same few hours' move hits both stops; 15m returns
    # measure that, and the analyzer keeps 500 closed 15m candles of every symbol anyway.
    correlation_interval: str = "15m"
    # 384 returns = the last 4 days: recent enough to follow a regime change, and many enough
    # that the estimate's standard error is about (1 - rho^2) / sqrt(n) = 0.02 at rho 0.8.
    correlation_lookback: int = 384
    # Fewer shared returns than one day's 96 (a newly listed symbol, a gap in the data) say too
    # little of how the two move together: then the cap says so and does not refuse.
    correlation_min_overlap: int = 96

    def __post_init__(self) -> None:
        _int_in("max_open_positions", self.max_open_positions, 0, 1000, " (0 turns the rule off)")
        v = _finite("max_total_risk_percent", self.max_total_risk_percent)
        if not 0 <= v < 100:
            raise _fail("max_total_risk_percent", v, "max_total_risk_percent must be >= 0 and < 100 "
                        "(0 turns the rule off)")
        c = _finite("max_correlation", self.max_correlation)
        if not 0 <= c <= 1:
            raise _fail("max_correlation", c, "max_correlation must be >= 0 and <= 1 (0 turns the rule off)")
        if self.correlation_interval not in INTERVAL_MS:
            raise _fail("correlation_interval", self.correlation_interval,
                        f"correlation_interval must be one of {', '.join(INTERVAL_MS)}")
        _int_in("correlation_lookback", self.correlation_lookback, 10, 10_000)
        _int_in("correlation_min_overlap", self.correlation_min_overlap, 3, self.correlation_lookback)

    @property
    def interval_ms(self) -> int:
        return INTERVAL_MS[self.correlation_interval]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OpenExposure:
    """A position of the agent's (or an entry on its way): what it loses at its stop."""

    symbol: str
    side: str                    # LONG | SHORT
    risk: float                  # quote (USDT) lost if its stop fills now, exit fee included

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise _fail("side", self.side, "side must be LONG or SHORT")
        if _finite("risk", self.risk) < 0:
            raise _fail("risk", self.risk, "risk must be >= 0")


@dataclass(frozen=True)
class Correlation:
    """The correlation of the candidate's log returns with one held symbol's: `value` None when
    fewer than the minimum shared returns (`overlap`) or a flat series leave it undefined."""

    symbol: str
    value: float | None
    overlap: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Refusal:
    """Why an entry may not open: the rule, its reason in both languages and the figures."""

    rule: str
    symbol: str
    side: str
    reason_en: str
    reason_zh: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What a repeat of the same refusal shares (no figures that move every candle): the
        agent logs a refusal once per symbol while this stays the same."""
        others = ",".join(self.details.get("symbols", ()))
        return f"{self.rule}:{self.side}:{others}"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "symbol": self.symbol, "side": self.side, "reason_en": self.reason_en,
                "reason_zh": self.reason_zh, "details": dict(self.details)}


def risk_at_stop(side: str, entry: float, stop: float, qty: float, taker_fee: float) -> float:
    """What a position loses from its entry price if its stop (a STOP_MARKET, taker) fills at
    its trigger now: the price move to the stop (0 once the stop is at or past the entry) plus
    the exit fee. The entry fee is paid already and the partial exits' profits are not set
    against it: the figure is what is still at stake."""
    sign = 1.0 if side == "LONG" else -1.0
    return qty * max(0.0, sign * (entry - stop)) + taker_fee * stop * qty


def log_returns(times: np.ndarray, closes: np.ndarray, interval_ms: int) -> dict[int, float]:
    """Close time -> log return over one candle, for every pair of consecutive candles exactly
    `interval_ms` apart (a gap gives no return, never one spanning it)."""
    t = np.asarray(times, dtype=np.int64)
    c = np.asarray(closes, dtype=float)
    if len(t) < 2:
        return {}
    ok = (np.diff(t) == interval_ms) & (c[1:] > 0) & (c[:-1] > 0)
    r = np.log(c[1:][ok] / c[:-1][ok])
    return dict(zip(t[1:][ok].tolist(), r.tolist()))


def correlation(symbol: str, a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
                config: ExposureConfig) -> Correlation:
    """Pearson correlation of the log returns of two series of CLOSED candles (open times,
    closes) over the newest `correlation_lookback` candles both have; `symbol` names `b`."""
    ra = log_returns(a[0], a[1], config.interval_ms)
    rb = log_returns(b[0], b[1], config.interval_ms)
    shared = sorted(set(ra) & set(rb))[-config.correlation_lookback:]
    n = len(shared)
    if n < config.correlation_min_overlap:
        return Correlation(symbol, None, n)
    x = np.array([ra[t] for t in shared])
    y = np.array([rb[t] for t in shared])
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    if not den > 0:
        return Correlation(symbol, None, n)          # a flat series: no correlation to speak of
    return Correlation(symbol, max(-1.0, min(1.0, float(x @ y) / den)), n)


def open_risk_percent(positions: Sequence[OpenExposure], equity: float) -> float | None:
    """The open positions' summed risk at their stops in % of equity (None: equity <= 0)."""
    return 100.0 * sum(p.risk for p in positions) / equity if equity > 0 else None


def _side_en(side: str) -> str:
    return side.lower()


def check(config: ExposureConfig, symbol: str, side: str, planned_risk: float,
          positions: Sequence[OpenExposure], equity: float,
          correlations: Mapping[str, Correlation] | None = None) -> Refusal | None:
    """None when an entry `side` in `symbol` risking `planned_risk` (quote, fees included) may
    open next to `positions` (the agent's others; none in `symbol`) at `equity`, else the first
    cap it breaks: open positions, total risk, correlation (`correlations`: held symbol -> its
    correlation with `symbol`; a held symbol missing or undefined there is never refused)."""
    if side not in SIDES:
        raise _fail("side", side, "side must be LONG or SHORT")
    risk = _finite("planned_risk", planned_risk)
    others = [p for p in positions if p.symbol != symbol]
    if not others:
        return None                     # alone: MAX_RISK_PERCENT's rule, never these caps
    held = tuple(sorted(p.symbol for p in others))
    cap = config.max_open_positions
    if cap and len(others) >= cap:
        return Refusal(OPEN_POSITIONS, symbol, side,
                       f"{len(others)} positions open ({', '.join(held)}), the cap is {cap}",
                       f"已有 {len(others)} 个持仓（{'、'.join(held)}），上限 {cap} 个",
                       {"open_positions": len(others), "limit": cap, "symbols": held})
    limit = config.max_total_risk_percent
    if limit:
        total = sum(p.risk for p in others) + max(risk, 0.0)
        pct = 100.0 * total / equity if equity > 0 else math.inf
        if pct > limit * (1 + 1e-12):
            open_pct = open_risk_percent(others, equity)
            shown = f"{open_pct:.2f}" if open_pct is not None else "-"
            return Refusal(TOTAL_RISK, symbol, side,
                           f"open risk {shown} % of equity ({', '.join(held)}) plus this trade's "
                           f"{100.0 * risk / equity if equity > 0 else math.inf:.2f} % would be "
                           f"{pct:.2f} %, over the cap of {limit:g} %",
                           f"已开仓风险占权益 {shown}%（{'、'.join(held)}），加上本笔 "
                           f"{100.0 * risk / equity if equity > 0 else math.inf:.2f}% 将达 {pct:.2f}%，"
                           f"超过上限 {limit:g}%",
                           {"open_risk": sum(p.risk for p in others), "planned_risk": risk,
                            "equity": equity, "total_percent": pct if math.isfinite(pct) else None,
                            "limit_percent": limit, "symbols": held})
    thr = config.max_correlation
    if thr and correlations:
        worst: tuple[float, OpenExposure, Correlation] | None = None
        for p in others:
            c = correlations.get(p.symbol)
            if c is None or c.value is None:
                continue
            same_bet = c.value > thr if p.side == side else c.value < -thr
            if same_bet and (worst is None or abs(c.value) > worst[0]):
                worst = (abs(c.value), p, c)
        if worst is not None:
            _, p, c = worst
            how_en = "the same side" if p.side == side else "the opposite side of a negatively correlated symbol"
            how_zh = "同方向" if p.side == side else "负相关品种的反方向"
            iv = config.correlation_interval
            return Refusal(CORRELATION, symbol, side,
                           f"{how_en} as the {_side_en(p.side)} in {p.symbol}: {iv} returns correlate "
                           f"{c.value:+.2f} over {c.overlap} candles (cap {thr:g}), one bet twice",
                           f"与 {p.symbol} 的{_SIDE_ZH[p.side]}单{how_zh}：{iv} 收益率相关系数 "
                           f"{c.value:+.2f}（{c.overlap} 根K线，上限 {thr:g}），等于同一笔押注下两次",
                           {"correlation": c.value, "overlap": c.overlap, "limit": thr, "interval": iv,
                            "symbols": (p.symbol,), "held_side": p.side})
    return None
