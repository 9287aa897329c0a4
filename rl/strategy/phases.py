"""Progressive entry threshold (design 3.1) and the entry decision with its log line.

The bar rises with the closed-trade count (numbers: `PhaseParams`, defaults shown):
exploration (< 30 closed trades): score >= 35 and lead >= 10 - trade often, collect data;
learning (30-99): >= 45, lead >= 12; stable (>= 100): >= 55, lead >= 15.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from rl.strategy.params import PHASE_KEYS, PhaseParams


@dataclass(frozen=True)
class Phase:
    key: str            # "exploration" | "learning" | "stable"
    name_zh: str
    name_en: str
    min_score: float
    score_gap: float
    trade_count: int
    next_at: int | None  # trade count at which the next phase starts


_NAMES = {"exploration": ("探索期", "exploration"), "learning": ("学习期", "learning"),
          "stable": ("稳定期", "stable")}
assert tuple(_NAMES) == PHASE_KEYS


def phase_for(trade_count: int, params: PhaseParams) -> Phase:
    if isinstance(trade_count, bool) or not isinstance(trade_count, int) or trade_count < 0:
        raise ValueError(f"trade_count: must be a non-negative integer, got {trade_count!r}")
    return _phase(trade_count, params)


@lru_cache(maxsize=4096)    # Phase is frozen: one per (count, params) serves every 15m close
def _phase(trade_count: int, params: PhaseParams) -> Phase:
    if trade_count < params.learning_from:
        key, next_at = "exploration", params.learning_from
    elif trade_count < params.stable_from:
        key, next_at = "learning", params.stable_from
    else:
        key, next_at = "stable", None
    rule = params.rule(key)
    return Phase(key, *_NAMES[key], rule.min_score, rule.score_gap, int(trade_count), next_at)


@dataclass(frozen=True)
class Decision:
    action: str          # "enter_long" | "enter_short" | "wait"
    reason_zh: str
    reason_en: str
    log_zh: str
    log_en: str
    phase: Phase
    long_score: float
    short_score: float


def _r(x: float) -> int:
    """Round half up for display (42.5 -> 43), not banker's rounding."""
    return int(math.floor(x + 0.5))


def _score(x: float, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not (0.0 <= x <= 100.0):
        raise ValueError(f"{name}: must be a number within 0..100, got {x!r}")
    return float(x)


def decide(long_score: float, short_score: float, trade_count: int, params: PhaseParams) -> Decision:
    """Enter the side whose score reaches the phase threshold and leads the other side by the
    phase's gap; otherwise wait, saying which condition failed."""
    ls, ss = _score(long_score, "long_score"), _score(short_score, "short_score")
    ph = phase_for(trade_count, params)
    m, g = ph.min_score, ph.score_gap
    tag_zh = f"[{ph.name_zh}|{trade_count}笔]"
    tag_en = f"[{ph.name_en}|{trade_count} trade{'s' if trade_count != 1 else ''}]"
    scores_zh = f"做多:{_r(ls)} 做空:{_r(ss)}"
    scores_en = f"long:{_r(ls)} short:{_r(ss)}"
    for side, mine, other, zh, en, icon_zh, icon_en in (
            ("enter_long", ls, ss, "做多", "long", "🟢 开多", "🟢 Enter long"),
            ("enter_short", ss, ls, "做空", "short", "🔴 开空", "🔴 Enter short")):
        if mine >= m and mine - other >= g:
            rz = f"{zh}{_r(mine)}分 ≥ {m:.0f}分且领先{_r(mine - other)}分 (需≥{g:.0f}分)"
            re = f"{en} {_r(mine)} ≥ {m:.0f} and leads by {_r(mine - other)} (need ≥{g:.0f})"
            return Decision(side, rz, re, f"{icon_zh} | {scores_zh} (需≥{m:.0f}分) {tag_zh}",
                            f"{icon_en} | {scores_en} (need ≥{m:.0f}) {tag_en}", ph, ls, ss)
    best = max(ls, ss)
    if best < m:
        rz, re = f"最高分{_r(best)} < 门槛{m:.0f}分", f"best score {_r(best)} < threshold {m:.0f}"
    else:
        rz = f"多空分差{_r(abs(ls - ss))} < {g:.0f}分"
        re = f"long/short gap {_r(abs(ls - ss))} < {g:.0f}"
    return Decision("wait", rz, re, f"⏳ 观望中 | {scores_zh} (需≥{m:.0f}分) {tag_zh}",
                    f"⏳ Waiting | {scores_en} (need ≥{m:.0f}) {tag_en}", ph, ls, ss)
