"""The strategy's numbers in one frozen, typed object: `StrategyParams`.

Every threshold, score point, stop/target/size rule, exit rule and learning step the agent
trades by is a field here, grouped by the part of the strategy that reads it, with today's
values as defaults. The agent builds it once (`StrategyParams.from_settings`) and hands each
pure function its part; nothing in rl/strategy or rl/analysis reads a strategy number from a
module constant. It is also the search space of a parameter optimizer: every leaf is an int
or a float named by a dotted key ("phases.exploration.min_score"), `to_flat` lists them and
`replace_flat` builds a validated copy from a flat dict of overrides, which is what a trial
sampler produces.

Not here: market facts (fees, exchange filters, leverage, passed beside the params) and the
analysis' machinery (indicator periods, timeframes). Not yet here: how level candidates are
found (pivot strength, touch/merge/bounce distances, volume nodes: module constants of
rl/analysis/levels/candidates.py, which its array code and the backtest's scan-ahead worker
read directly).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any, get_type_hints

from rl.risk.config import ProtectionConfig

if TYPE_CHECKING:
    from config import Settings

PHASE_KEYS = ("exploration", "learning", "stable")   # in order; Settings.phase_risk_scale follows it


class ParamsError(ValueError):
    """A strategy parameter is invalid or unknown; the one-line message names it and the rule."""


def _fail(at: str, value: Any, rule: str) -> ParamsError:
    return ParamsError(f"{at}={value!r} is invalid: it must be {rule}")


def _need(ok: bool, at: str, value: Any, rule: str) -> None:
    if not ok:
        raise _fail(at, value, rule)


def _number(at: str, value: Any) -> None:
    _need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
          at, value, "a finite number")


def _within(at: str, value: Any, lo: float, hi: float) -> None:
    _number(at, value)
    _need(lo <= value <= hi, at, value, f"within {lo:g}..{hi:g}")


def _positive(at: str, value: Any) -> None:
    _number(at, value)
    _need(value > 0, at, value, "> 0")


def _count(at: str, value: Any, lo: int, hi: int) -> None:
    _need(isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi,
          at, value, f"an integer {lo}..{hi}")


# ------------------------------------------------------------------------------ phases
@dataclass(frozen=True)
class PhaseRule:
    """What one learning phase asks of an entry and how much it stakes."""

    min_score: float     # entry score (0..100) the leading side must reach
    score_gap: float     # points the leading side must lead the other side by
    risk_scale: float    # share of plan.max_risk_percent a trade entered in this phase risks

    def validate(self, at: str) -> None:
        _within(f"{at}.min_score", self.min_score, 0.0, 100.0)
        _within(f"{at}.score_gap", self.score_gap, 0.0, 100.0)
        _number(f"{at}.risk_scale", self.risk_scale)
        _need(0 < self.risk_scale <= 1, f"{at}.risk_scale", self.risk_scale, "in (0, 1]")


@dataclass(frozen=True)
class PhaseParams:
    """The progressive entry bar (design 3.1): low while the agent collects evidence."""

    learning_from: int = 30      # closed trades at which exploration gives way to learning
    stable_from: int = 100       # closed trades at which learning gives way to stable
    exploration: PhaseRule = PhaseRule(35.0, 10.0, 0.5)   # trade often, collect data
    learning: PhaseRule = PhaseRule(45.0, 12.0, 0.75)
    stable: PhaseRule = PhaseRule(55.0, 15.0, 1.0)

    def rule(self, key: str) -> PhaseRule:
        """The rule of the phase named `key` (one of PHASE_KEYS)."""
        if key not in PHASE_KEYS:
            raise KeyError(f"phase {key!r}: expected one of {', '.join(PHASE_KEYS)}")
        return getattr(self, key)

    def starts_at(self, key: str) -> int:
        """The closed-trade count at which the phase named `key` begins."""
        self.rule(key)
        return {"exploration": 0, "learning": self.learning_from, "stable": self.stable_from}[key]

    def validate(self, at: str = "phases") -> None:
        _count(f"{at}.learning_from", self.learning_from, 1, 10**6)
        _count(f"{at}.stable_from", self.stable_from, 1, 10**6)
        _need(self.stable_from > self.learning_from, f"{at}.stable_from", self.stable_from,
              f"> {at}.learning_from ({self.learning_from})")
        for key in PHASE_KEYS:
            self.rule(key).validate(f"{at}.{key}")


@dataclass(frozen=True)
class EntryParams:
    """Rules that keep the agent out of a trade whatever the scores say."""

    reentry_cooldown_minutes: int = 60   # no new entry on a symbol this long after its last close

    def validate(self, at: str = "entry") -> None:
        _count(f"{at}.reentry_cooldown_minutes", self.reentry_cooldown_minutes, 0, 10080)


# ------------------------------------------------------------------------------ entry score
@dataclass(frozen=True)
class ComponentPoints:
    """The most points each confirmation adds to a side's entry score (total capped at 100)."""

    trend: float = 25.0       # 8h + 1w trend direction
    level: float = 25.0       # best level's score x its proximity to price
    rsi: float = 15.0         # 15m RSI away from 50 toward our side
    macd: float = 20.0        # 15m MACD histogram; a fresh cross gives all of them
    bollinger: float = 15.0   # price's place in the 15m Bollinger bands
    volume: float = 5.0       # last 15m volume above its average, candle on our side

    def validate(self, at: str = "score.points") -> None:
        for f in fields(self):
            _within(f"{at}.{f.name}", getattr(self, f.name), 0.0, 100.0)


@dataclass(frozen=True)
class ScoreParams:
    """How the six confirmations of design 3.3 turn indicators into entry-score points."""

    points: ComponentPoints = ComponentPoints()   # each component's maximum
    trend_weight_8h: float = 0.6     # 8h's share of the trend direction (nearer the trading timeframe)
    trend_weight_1w: float = 0.4     # 1w's share of the trend direction
    rsi_full: float = 20.0           # RSI distance from 50 that gives full RSI points (30 / 70)
    volume_full: float = 1.0         # volume above 1x its average that gives full points (2x)
    macd_expanding: float = 14.0     # histogram on our side and growing
    macd_on_side: float = 8.0        # histogram on our side, not growing
    macd_converging: float = 4.0     # histogram against us but shrinking toward zero

    def validate(self, at: str = "score") -> None:
        self.points.validate(f"{at}.points")
        _positive(f"{at}.trend_weight_8h", self.trend_weight_8h)
        _positive(f"{at}.trend_weight_1w", self.trend_weight_1w)
        _within(f"{at}.rsi_full", self.rsi_full, 0.0, 50.0)
        _need(self.rsi_full > 0, f"{at}.rsi_full", self.rsi_full, "> 0")
        _positive(f"{at}.volume_full", self.volume_full)
        _within(f"{at}.macd_converging", self.macd_converging, 0.0, 100.0)
        for name, below in (("macd_on_side", "macd_converging"), ("macd_expanding", "macd_on_side")):
            v, lo = getattr(self, name), getattr(self, below)
            _number(f"{at}.{name}", v)
            _need(v >= lo, f"{at}.{name}", v, f">= {at}.{below} ({lo:g})")
        _need(self.macd_expanding <= self.points.macd, f"{at}.macd_expanding", self.macd_expanding,
              f"<= {at}.points.macd ({self.points.macd:g}), the fresh cross's points")


# ------------------------------------------------------------------------------ levels
@dataclass(frozen=True)
class LevelWeights:
    """Initial weights of the six level features (learning moves them); they sum to 1.
    Field order is rl.analysis.levels.book.FEATURES."""

    volume_density: float = 0.20          # traded volume at the level vs. a uniform spread
    touch_bounce_count: float = 0.20      # touches that bounced
    bounce_magnitude: float = 0.15        # how far price moved away after a bounce
    failed_breakout_count: float = 0.20   # breaks that came back
    duration_days: float = 0.10           # days between the first and the last touch
    multi_tf_confirm: float = 0.15        # the level holds on several timeframes

    def as_dict(self) -> dict[str, float]:
        """feature -> weight, in FEATURES order (what the finder and the store take)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def validate(self, at: str = "levels.weights") -> None:
        for f in fields(self):
            _within(f"{at}.{f.name}", getattr(self, f.name), 0.0, 1.0)
        total = sum(self.as_dict().values())
        _need(abs(total - 1.0) <= 1e-6, f"sum of {at}", round(total, 6), "1 (within 1e-6)")


@dataclass(frozen=True)
class MultiTfRule:
    """multi_tf_confirm (design 3.2): a timeframe on which the level has enough touches adds
    its points (together at most 1)."""

    touches_15m: int = 3        # 15m touches that confirm the level
    points_15m: float = 0.6     # what a 15m confirmation adds
    touches_8h: int = 2         # 8h touches that confirm the level
    points_8h: float = 0.3      # what an 8h confirmation adds
    touches_1w: int = 1         # 1w touches that confirm the level
    points_1w: float = 0.1      # what a 1w confirmation adds

    def as_rule(self) -> tuple[tuple[str, int, float], ...]:
        """((timeframe, touches needed, points), ...), finest timeframe first."""
        return (("15m", self.touches_15m, self.points_15m), ("8h", self.touches_8h, self.points_8h),
                ("1w", self.touches_1w, self.points_1w))

    def validate(self, at: str = "levels.multi_tf") -> None:
        for tf, _, _ in self.as_rule():
            _count(f"{at}.touches_{tf}", getattr(self, f"touches_{tf}"), 1, 10**6)
            _within(f"{at}.points_{tf}", getattr(self, f"points_{tf}"), 0.0, 1.0)
        total = self.points_15m + self.points_8h + self.points_1w
        _need(total <= 1.0 + 1e-9, f"sum of {at}.points_*", round(total, 9), "<= 1 (the feature is 0..1)")


@dataclass(frozen=True)
class LevelParams:
    """How a support/resistance level is scored (rl.analysis.levels.finder) and how near price
    it must be to count (rl.analysis.levels.book)."""

    weights: LevelWeights = LevelWeights()    # initial feature weights
    multi_tf: MultiTfRule = MultiTfRule()     # the multi_tf_confirm feature's rule
    volume_ratio_full: float = 3.0            # volume density (x uniform) at which volume_density is 1
    bounces_full: int = 5                     # bounces at which touch_bounce_count is 1
    bounce_atr_full: float = 3.0              # mean bounce (ATRs) at which bounce_magnitude is 1
    failed_full: int = 3                      # failed breakouts at which failed_breakout_count is 1
    duration_days_full: float = 30.0          # days (log scale) at which duration_days is 1
    proximity_atr: float = 3.0                # ATR(15m) from price at which a level stops counting

    def validate(self, at: str = "levels") -> None:
        self.weights.validate(f"{at}.weights")
        self.multi_tf.validate(f"{at}.multi_tf")
        _positive(f"{at}.volume_ratio_full", self.volume_ratio_full)
        _count(f"{at}.bounces_full", self.bounces_full, 1, 10**6)
        _positive(f"{at}.bounce_atr_full", self.bounce_atr_full)
        _count(f"{at}.failed_full", self.failed_full, 1, 10**6)
        _positive(f"{at}.duration_days_full", self.duration_days_full)
        _positive(f"{at}.proximity_atr", self.proximity_atr)


# ------------------------------------------------------------------------------ trades
@dataclass(frozen=True)
class TradePlanParams:
    """Stop, target and size of a new position (rl.strategy.trade_plan)."""

    max_risk_percent: float = 2.0     # equity % lost at the stop, fees included, in the stable phase
    atr_buffer: float = 0.5           # ATR(15m) the stop sits beyond the level
    min_stop_pct: float = 0.002       # least stop distance, as a fraction of entry
    reward_multiple: float = 2.0      # target at this many R when no opposing level lies beyond entry
    fee_stop_multiple: float = 5.0    # least stop distance in round-trip fees
    # Notional at most this % of equity: one round trip at taker fees (0.05 % a leg) then costs
    # at most 0.1 % of equity, a tenth of a 1 % risk budget, however tight the stop.
    max_notional_percent: float = 100.0
    # Least reward at the target after both fees, in R: the exits take their first profit at
    # 1R, and a payoff below 1:1 needs more than half the trades to win just to break even.
    min_reward_r: float = 1.0

    def validate(self, at: str = "plan") -> None:
        _number(f"{at}.max_risk_percent", self.max_risk_percent)
        _need(0.01 <= self.max_risk_percent <= 10, f"{at}.max_risk_percent", self.max_risk_percent, "in [0.01, 10]")
        _within(f"{at}.atr_buffer", self.atr_buffer, 0.0, 100.0)
        _within(f"{at}.min_stop_pct", self.min_stop_pct, 0.0, 0.5)
        _positive(f"{at}.reward_multiple", self.reward_multiple)
        _within(f"{at}.fee_stop_multiple", self.fee_stop_multiple, 0.0, 1000.0)
        _number(f"{at}.max_notional_percent", self.max_notional_percent)
        _need(0 < self.max_notional_percent <= 12500, f"{at}.max_notional_percent", self.max_notional_percent,
              "in (0, 12500] (% of equity; 125x leverage at most)")
        # 0 would accept a target at the entry price: a "take profit" that loses the fees
        _number(f"{at}.min_reward_r", self.min_reward_r)
        _need(0 < self.min_reward_r <= 100, f"{at}.min_reward_r", self.min_reward_r,
              "in (0, 100] (a target must pay more than the fees)")


@dataclass(frozen=True)
class ExitParams:
    """Exit rules of an open position (rl.strategy.exits), in priority order."""

    opposite_score_exit: float = 70.0   # opposite side's entry score (0..100) that closes everything
    partial_at_r: float = 1.0           # profit in R at which part is taken and the stop goes to break-even
    partial_fraction: float = 0.5       # share of the position taken off there
    trail_atr: float = 2.0              # ATR(15m) the stop then trails behind the best price

    def validate(self, at: str = "exits") -> None:
        _within(f"{at}.opposite_score_exit", self.opposite_score_exit, 0.0, 100.0)
        _positive(f"{at}.partial_at_r", self.partial_at_r)
        _number(f"{at}.partial_fraction", self.partial_fraction)
        _need(0 < self.partial_fraction < 1, f"{at}.partial_fraction", self.partial_fraction, "in (0, 1)")
        _positive(f"{at}.trail_atr", self.trail_atr)


@dataclass(frozen=True)
class LearningParams:
    """Feature-weight learning from closed trades (rl.strategy.learning, design §9)."""

    min_trades: int = 30               # closed trades before the weights move at all
    step: float = 0.05                 # relative weight change per adjustment (+5 % / -5 %)
    min_weight: float = 0.02           # floor: a feature never dies out
    max_weight: float = 0.50           # cap: no feature dominates the level score
    min_correlation: float = 0.05      # weakest |r| ever counted as evidence, however many trades
    significance_z: float = 1.645      # |r| must exceed z / sqrt(n) to count (one-sided 5 %)

    def validate(self, at: str = "learning") -> None:
        _count(f"{at}.min_trades", self.min_trades, 1, 100000)
        _number(f"{at}.step", self.step)
        _need(0 < self.step < 1, f"{at}.step", self.step, "in (0, 1)")
        n = len(fields(LevelWeights))
        _within(f"{at}.min_weight", self.min_weight, 0.0, 1.0 / n)
        _within(f"{at}.max_weight", self.max_weight, 1.0 / n, 1.0)
        _within(f"{at}.min_correlation", self.min_correlation, 0.0, 1.0)
        _positive(f"{at}.significance_z", self.significance_z)


@dataclass(frozen=True)
class FilterParams:
    """The trade filter (rl.strategy.trade_filter): a Bayesian online regression of a trade's
    net R on what was known at its entry decides whether a signal is taken and at what stake.
    Whether it runs at all is the TRADE_FILTER setting (off by default)."""

    prior_strength: float = 10.0   # prior precision per weight: counts like this many trades at 0R
    forgetting: float = 0.995      # per learned trade; 1 = never forget (half-life ~140 trades)
    threshold: float = 0.0         # a signal is taken when its draw of expected net R exceeds this
    thompson: float = 1.0          # spread multiple of the Thompson draw (0 = the posterior mean)
    explore_rate: float = 0.10     # least share of the judged signals it trades (exploration budget)
    min_stake: float = 0.25        # share of the risk budget an exploration (or least confident) trade stakes
    full_stake_p: float = 0.80     # P(expected net R > 0) at which a trade stakes the whole budget
    warmup_trades: int = 30        # trades learned before the filter refuses anything
    r_clip: float = 5.0            # |R| beyond this is learned as this (one outlier never rules)
    max_weight: float = 2.0        # largest |weight| (R per standard deviation of a feature) used
    seed: int = 0                  # of the draws (Thompson, exploration): deterministic decisions
    # 0: the model ignores every feature and learns only the average net R (a control arm: does
    # it help by picking trades, or only by trading less when the agent loses on average?)
    use_features: int = 1

    def validate(self, at: str = "filter") -> None:
        _positive(f"{at}.prior_strength", self.prior_strength)
        _number(f"{at}.forgetting", self.forgetting)
        _need(0.5 <= self.forgetting <= 1, f"{at}.forgetting", self.forgetting, "in [0.5, 1]")
        _within(f"{at}.threshold", self.threshold, -5.0, 5.0)
        _within(f"{at}.thompson", self.thompson, 0.0, 10.0)
        _within(f"{at}.explore_rate", self.explore_rate, 0.0, 1.0)
        _number(f"{at}.min_stake", self.min_stake)
        _need(0 < self.min_stake <= 1, f"{at}.min_stake", self.min_stake, "in (0, 1]")
        _number(f"{at}.full_stake_p", self.full_stake_p)
        _need(0.5 < self.full_stake_p <= 1, f"{at}.full_stake_p", self.full_stake_p, "in (0.5, 1]")
        _count(f"{at}.warmup_trades", self.warmup_trades, 0, 100000)
        _positive(f"{at}.r_clip", self.r_clip)
        _positive(f"{at}.max_weight", self.max_weight)
        _count(f"{at}.seed", self.seed, 0, 2**31 - 1)
        _count(f"{at}.use_features", self.use_features, 0, 1)


# ------------------------------------------------------------------------------ all of it
@dataclass(frozen=True)
class StrategyParams:
    """Every strategy number, by the part that reads it. Frozen: build a changed copy with
    `replace_flat` (or dataclasses.replace)."""

    phases: PhaseParams = PhaseParams()         # entry bar per learning phase
    entry: EntryParams = EntryParams()          # entry gates besides the scores
    score: ScoreParams = ScoreParams()          # entry-score points
    levels: LevelParams = LevelParams()         # level features and proximity
    plan: TradePlanParams = TradePlanParams()   # stop, target, size
    exits: ExitParams = ExitParams()            # partial, break-even, trailing, opposite signal
    learning: LearningParams = LearningParams()  # weight learning
    filter: FilterParams = FilterParams()       # the learned trade filter (TRADE_FILTER=on)
    # pauses on new entries after losses (rl.risk): validated on construction, so a bad value
    # raises as soon as replace_flat builds it
    protections: ProtectionConfig = ProtectionConfig()

    @classmethod
    def from_settings(cls, settings: Settings) -> StrategyParams:
        """Defaults, with the numbers `Settings` holds (MAX_RISK_PERCENT, MAX_NOTIONAL_PERCENT,
        MIN_REWARD_R, PHASE_RISK_SCALE, MIN_TRADES_FOR_ADJUST, REENTRY_COOLDOWN_MINUTES and the
        six protection limits) taken from it, then the STRATEGY_PROFILE's numbers
        (`settings.strategy_overrides`, an optimizer's profile) over them; validated. The one
        place a ProtectionConfig is built from Settings."""
        d = cls()
        _need(len(settings.phase_risk_scale) == len(PHASE_KEYS), "phase_risk_scale",
              settings.phase_risk_scale, f"one number per phase ({', '.join(PHASE_KEYS)})")
        scales = dict(zip(PHASE_KEYS, settings.phase_risk_scale))
        rules = {k: replace(d.phases.rule(k), risk_scale=float(scales[k])) for k in PHASE_KEYS}
        # mypy matches a ** dict's values against every field of PhaseParams (the ints too),
        # not only the PhaseRule fields its keys (PHASE_KEYS) name
        phases = replace(d.phases, **rules)  # type: ignore[arg-type]
        built = replace(d, phases=phases,
                       entry=replace(d.entry, reentry_cooldown_minutes=int(settings.reentry_cooldown_minutes)),
                       plan=replace(d.plan, max_risk_percent=float(settings.max_risk_percent),
                                    max_notional_percent=float(settings.max_notional_percent),
                                    min_reward_r=float(settings.min_reward_r)),
                       learning=replace(d.learning, min_trades=int(settings.min_trades_for_adjust)),
                       protections=_built("protections", lambda: replace(
                           d.protections, max_drawdown_percent=float(settings.max_drawdown_percent),
                           drawdown_lookback_days=float(settings.drawdown_lookback_days),
                           daily_loss_limit_percent=float(settings.daily_loss_limit_percent),
                           stoploss_guard_trades=int(settings.stoploss_guard_trades),
                           stoploss_guard_window_hours=float(settings.stoploss_guard_window_hours),
                           stoploss_guard_pause_hours=float(settings.stoploss_guard_pause_hours)))
                       ).validate()
        overrides = settings.strategy_overrides
        if not overrides:
            return built
        try:
            return built.replace_flat(dict(overrides))
        except ParamsError as exc:
            raise ParamsError(f"STRATEGY_PROFILE={settings.strategy_profile!r}: {exc}") from None

    def validate(self) -> StrategyParams:
        """Raise ParamsError (a ValueError) naming the first bad field and its rule; returns self.
        (`protections` validates itself when it is built.)"""
        for f in fields(self):
            part = getattr(self, f.name)
            if not isinstance(part, ProtectionConfig):
                part.validate(f.name)
        return self

    def to_flat(self) -> dict[str, int | float]:
        """Every numeric leaf by its dotted key ("phases.exploration.min_score": 35.0), in field
        order. (protections.stop_exit_kinds, a tuple of exit names, is not a number to search.)"""
        out: dict[str, int | float] = {}

        def walk(obj: Any, prefix: str) -> None:
            for f in fields(obj):
                v = getattr(obj, f.name)
                if is_dataclass(v):
                    walk(v, f"{prefix}{f.name}.")
                elif isinstance(v, (int, float)):
                    out[prefix + f.name] = v
        walk(self, "")
        return out

    def replace_flat(self, overrides: Mapping[str, int | float]) -> StrategyParams:
        """A validated copy with the leaves named by dotted keys replaced. An int given for a
        float field becomes a float, an integral float for an int field an int; an unknown
        key or a value of the wrong kind raises ParamsError naming the key."""
        out = self
        for key, value in overrides.items():
            out = _replace_at(out, str(key).split("."), value, str(key))
        return out.validate()


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _replace_at(obj: Any, path: list[str], value: Any, key: str) -> Any:
    """`obj` with the leaf at `path` (the rest of dotted `key`) set to `value`."""
    name = path[0]
    # (annotated: mypy takes the type[Any] of type(obj) for unhashable, so lru_cache refuses it)
    cls: type = type(obj)
    hints = _hints(cls)
    if name not in hints:
        where = key[:len(key) - len(".".join(path))].rstrip(".") or "StrategyParams"
        raise ParamsError(f"{key}: unknown parameter; {where} has {', '.join(hints)}")
    typ: type = hints[name]
    if len(path) > 1:
        if not is_dataclass(typ):
            raise ParamsError(f"{key}: unknown parameter; {name} is a number, it has no fields")
        return replace(obj, **{name: _replace_at(getattr(obj, name), path[1:], value, key)})
    if is_dataclass(typ):
        raise ParamsError(f"{key}: is a group, not a number; set its fields: "
                          + ", ".join(f"{key}.{f}" for f in _hints(typ)))
    at = key[:len(key) - len(name)]          # the dotted prefix of this leaf ("protections.")
    return _built(at.rstrip("."), lambda: replace(obj, **{name: _coerce(key, value, typ)}))


def _built(at: str, build: Callable[[], Any]) -> Any:
    """`build()`, a ValueError a self-validating part (ProtectionConfig) raises turned into a
    ParamsError naming the dotted key ("protections.max_drawdown_percent=...")."""
    try:
        return build()
    except ParamsError:
        raise
    except ValueError as exc:
        raise ParamsError(f"{at}.{exc}" if at else str(exc)) from None


def _coerce(key: str, value: Any, typ: type) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(key, value, "a number")
    if typ is int:
        if isinstance(value, float) and not value.is_integer():
            raise _fail(key, value, "an integer")
        return int(value)
    return float(value)
