"""Progressive entry threshold (design 3.1) and the entry decision with its log line.

exploration (< 30 closed trades): score >= 35 and lead >= 10 - trade often, collect data;
learning (30-99): >= 45, lead >= 12; stable (>= 100): >= 55, lead >= 15.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    key: str            # "exploration" | "learning" | "stable"
    name_zh: str
    name_en: str
    min_score: float
    score_gap: float
    trade_count: int
    next_at: int | None  # trade count at which the next phase starts


_PHASES = (  # (upper bound exclusive, key, zh, en, min score, gap)
    (30, "exploration", "探索期", "exploration", 35.0, 10.0),
    (100, "learning", "学习期", "learning", 45.0, 12.0),
    (None, "stable", "稳定期", "stable", 55.0, 15.0),
)


PHASE_KEYS = tuple(key for _, key, *_ in _PHASES)   # in order; settings.phase_risk_scale follows it


_BY_COUNT: dict[int, Phase] = {}    # Phase is frozen: one instance per trade count is enough


def phase_for(trade_count: int) -> Phase:
    if isinstance(trade_count, bool) or not isinstance(trade_count, int) or trade_count < 0:
        raise ValueError(f"trade_count: must be a non-negative integer, got {trade_count!r}")
    ph = _BY_COUNT.get(trade_count)        # (decided at every 15m close while flat)
    if ph is not None:
        return ph
    for upper, key, zh, en, min_score, gap in _PHASES:
        if upper is None or trade_count < upper:
            ph = _BY_COUNT[trade_count] = Phase(key, zh, en, min_score, gap, int(trade_count), upper)
            return ph
    raise AssertionError("unreachable")


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


def decide(long_score: float, short_score: float, trade_count: int) -> Decision:
    """Enter the side whose score reaches the phase threshold and leads the other side by the
    phase's gap; otherwise wait, saying which condition failed."""
    ls, ss = _score(long_score, "long_score"), _score(short_score, "short_score")
    ph = phase_for(trade_count)
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
