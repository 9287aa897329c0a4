"""A trade's thought chain (rl.knowledge.thought) as readable HTML: what the agent saw, why it
entered, its plan, how it left and what it learned, in tables and sentences, not raw JSON.
Parts the chain lacks are left out, so old or partial chains still render."""
from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

from rl.backtest.report_labels import EXITS, WEIGHTS, t, word


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "—" if v is None else str(v)
    if isinstance(v, int | float):
        if not math.isfinite(v):
            return "—"
        return f"{v:,.6g}" if abs(v) < 1000 else f"{v:,.2f}"
    return html.escape(str(v))


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _both(d: dict, stem: str) -> str:
    """d[stem_zh] / d[stem_en] as one switching label ('' when neither is there)."""
    zh, en = d.get(f"{stem}_zh"), d.get(f"{stem}_en")
    if not zh and not en:
        return ""
    return t(str(zh or en), str(en or zh))


def _section(zh: str, en: str, body: str) -> str:
    return f'<div class="cs"><h4>{t(zh, en)}</h4>{body}</div>' if body else ""


def _kv(rows: list[tuple[str, str]]) -> str:
    return "<table class=\"kv\">" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _decision(p: dict, action: dict) -> str:
    dec = p.get("decision") or {}
    rows = []
    if dec.get("log_zh") or dec.get("log_en"):
        rows.append(f"<p>{_both(dec, 'log')}</p>")
    reason = _both(action, "reason") or _both(dec, "reason")
    if reason:
        rows.append(f"<p>{reason}</p>")
    phase = p.get("phase") or {}
    if phase.get("name_zh") or phase.get("name_en"):
        rows.append(f"<p>{t('阶段', 'Phase')}: {_both(phase, 'name')} "
                    f"({t('已平仓', 'closed trades')} {_num(phase.get('trade_count'))}, "
                    f"{t('最低分', 'minimum score')} {_num(phase.get('min_score'))})</p>")
    return "".join(rows)


def _scores(p: dict) -> str:
    sc = p.get("scores") or {}
    lb, sb = sc.get("long_breakdown") or {}, sc.get("short_breakdown") or {}
    if not lb and not sb:
        return ""
    names = {"trend": ("趋势", "Trend"), "level": ("关键位", "Level"), "macd": ("MACD", "MACD"),
             "rsi": ("RSI", "RSI"), "bollinger": ("布林带", "Bollinger"), "volume": ("成交量", "Volume")}
    rows = []
    for comp in dict.fromkeys([*lb, *sb]):
        lo, sh = lb.get(comp) or {}, sb.get(comp) or {}
        why = sh.get("reason") if sh.get("reason") != lo.get("reason") and lo.get("reason") else None
        reason = html.escape(str(lo.get("reason") or sh.get("reason") or ""))
        if why:
            reason = f"{t('做多', 'long')}: {reason}<br>{t('做空', 'short')}: {html.escape(str(why))}"
        rows.append(f"<tr><th>{word(names, comp)}</th><td>{_num(lo.get('points'))} / {_num(lo.get('max'))}</td>"
                    f"<td>{_num(sh.get('points'))} / {_num(sh.get('max'))}</td><td class=\"l\">{reason}</td></tr>")
    head = (f"<tr><th></th><th>{t('做多得分', 'Long points')}</th><th>{t('做空得分', 'Short points')}</th>"
            f"<th>{t('依据', 'Why')}</th></tr>")
    total = (f"<tr><th>{t('合计', 'Total')}</th><td>{_num(sc.get('long'))}</td><td>{_num(sc.get('short'))}</td>"
             "<td></td></tr>")
    return f"<table>{head}{''.join(rows)}{total}</table>"


def _level(p: dict) -> str:
    lv = p.get("level") or {}
    if not lv:
        return ""
    kind = {"support": ("支撑", "Support"), "resistance": ("阻力", "Resistance")}
    st = lv.get("stats") or {}
    touches = ", ".join(f"{html.escape(str(k))}: {_num(v)}" for k, v in (lv.get("touches") or {}).items())
    rows = [(t("类型", "Kind"), word(kind, lv.get("kind"))), (t("价格", "Price"), _num(lv.get("price"))),
            (t("周期", "Timeframe"), _num(lv.get("timeframe"))), (t("评分", "Score"), _num(lv.get("score"))),
            (t("触及次数", "Touches"), touches or "—"), (t("反弹次数", "Bounces"), _num(st.get("bounces"))),
            (t("假突破", "Failed breakouts"), _num(st.get("failed_breakouts"))),
            (t("持续天数", "Age (days)"), _num(st.get("duration_days"))),
            (t("首次出现", "First seen"), _when(lv.get("first_seen_ms")))]
    feats = lv.get("features") or p.get("features") or {}
    weights = p.get("weights") or {}
    if feats:
        rows += [(word(WEIGHTS, k), f"{_num(v)}" + (f" × {t('权重', 'weight')} {_num(weights[k])}"
                                                    if k in weights else "")) for k, v in feats.items()]
    return _kv(rows)


def _plan(action: dict) -> str:
    plan = action.get("plan") or {}
    if not plan and not action:
        return ""
    rows = [(t("方向", "Side"), word({"LONG": ("做多", "Long"), "SHORT": ("做空", "Short")},
                                     action.get("side") or plan.get("side"))),
            (t("入场价", "Entry"), _num(plan.get("entry", action.get("price")))),
            (t("止损", "Stop"), _num(plan.get("stop", action.get("stop")))),
            (t("止盈", "Target"), _num(plan.get("target", action.get("target")))),
            (t("数量", "Quantity"), _num(plan.get("qty", action.get("quantity")))),
            (t("名义价值", "Notional"), _num(plan.get("notional"))), (t("保证金", "Margin"), _num(plan.get("margin"))),
            (t("风险金额", "Risk"), _num(plan.get("risk", action.get("risk_amount")))),
            (t("预期收益 (R)", "Reward (R)"), _num(plan.get("reward_r"))),
            (t("杠杆", "Leverage"), _num(action.get("leverage")))]
    ids = [*(action.get("order_ids") or []), *([action["stop_order_id"]] if action.get("stop_order_id") else [])]
    if ids:      # to find the orders in the store or the trace
        rows.append((t("订单编号", "Order ids"), html.escape(", ".join(map(str, ids)))))
    zh, en = plan.get("reasons_zh") or [], plan.get("reasons_en") or plan.get("reasons") or []
    items = "".join(f"<li>{t(str(z), str(e))}</li>" for z, e in zip(zh, en)) if zh and len(zh) == len(en) else \
        "".join(f"<li>{html.escape(str(e))}</li>" for e in en)
    return _kv(rows) + (f"<ul>{items}</ul>" if items else "")


def _reward(reward: dict) -> str:
    if not reward:
        return ""
    exits = reward.get("exits") or []
    head = (f"<tr><th>{t('时间 (UTC)', 'Time (UTC)')}</th><th>{t('方式', 'How')}</th><th>{t('价格', 'Price')}</th>"
            f"<th>{t('数量', 'Qty')}</th><th>{t('盈亏', 'PnL')}</th><th>{t('手续费', 'Fee')}</th></tr>")
    rows = "".join(f"<tr><td>{_when(e.get('time_ms'))}</td><td>{word(EXITS, e.get('kind'))}</td>"
                   f"<td>{_num(e.get('price'))}</td><td>{_num(e.get('quantity'))}</td><td>{_num(e.get('pnl'))}</td>"
                   f"<td>{_num(e.get('fee'))}</td></tr>" for e in exits)
    kv = _kv([(t("出场原因", "Exit reason"), word(EXITS, reward.get("exit_reason"))),
              (t("净盈亏", "Net PnL"), _num(reward.get("net_pnl"))), (t("手续费", "Fees"), _num(reward.get("fees"))),
              (t("R 倍数", "R multiple"), _num(reward.get("r_multiple")))])
    wc = reward.get("weight_change") or {}
    learn = f"<p>{t('学习', 'Learning')}: {_both(wc, 'reason')}</p>" if _both(wc, "reason") else ""
    return kv + (f"<table>{head}{rows}</table>" if exits else "") + learn


def chain_html(chain: dict) -> str:
    """The readable thought chain of one trade."""
    p, action, reward = chain.get("perception") or {}, chain.get("action") or {}, chain.get("reward") or {}
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in p.get("notes") or [])
    parts = [_section("入场判断", "Decision", _decision(p, action)),
             _section("评分明细", "Score breakdown", _scores(p)),
             _section("交易的关键位", "The level traded", _level(p)),
             _section("交易计划", "Plan", _plan(action)),
             _section("结果", "Outcome", _reward(reward)),
             _section("备注", "Notes", f"<ul>{notes}</ul>" if notes else "")]
    return f'<div class="chain-body">{"".join(parts)}</div>'
