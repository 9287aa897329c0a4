"""The optimization report: one self-contained HTML file of a walk-forward result
(profiles/NAME.walkforward.json), with no network and no second chart implementation: the
page style, SVG line charts, bilingual labels and language button are rl.backtest.report's.

It leads with the result that counts, the stitched out-of-sample equity, against buy & hold
and the random-entry band (10-90 % of the runs and their median, rl.optimize.oos_baselines),
with the Evidence sentence (rl.optimize.evidence); then in-sample vs out-of-sample per fold;
per fold the deflated Sharpe ratio and PBO of the study's choice (rl.backtest.overfit) with a
plain reading; the optimization history (each trial's score and the best so far); and the
parameter importances (Optuna's get_param_importances with PED-ANOVA, the one evaluator that
needs no scikit-learn: it measures how much each parameter's distribution differs between the
top 10 % of trials and all of them, i.e. which parameters matter for reaching the top).
"""
from __future__ import annotations

import html
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import optuna

from rl.backtest.overfit import overfit_sentence, trial_overfitting
from rl.backtest.report import HEIGHT, LANG_JS, PAD, PALETTE, STYLE, WIDTH, _polyline, _Scale, line_chart
from rl.backtest.report_labels import t
from rl.optimize.evidence import evidence
from rl.optimize.oos_baselines import compact

IMPORTANCE_TOP = 12        # parameters shown per fold; the rest are small by construction


def _pct(v: Any, signed: bool = True) -> str:
    if not isinstance(v, int | float) or not math.isfinite(v):
        return "—"
    return f"{v:+.2f} %" if signed else f"{v:.2f} %"


def _num(v: Any, digits: int = 3) -> str:
    return "—" if not isinstance(v, int | float) or not math.isfinite(v) else f"{v:.{digits}f}"


def profile_like(doc: dict) -> dict:
    """The parts of a profile document rl.optimize.evidence reads, from a walk-forward result."""
    base = doc.get("out_of_sample_baselines")
    cfg = doc.get("config") or {}
    return {"provenance": {"folds": doc.get("folds") or [], "study": cfg.get("study"),
                           "symbols": cfg.get("symbols"), "trials_per_fold": cfg.get("trials"),
                           "out_of_sample_baselines": compact(base) if base else None},
            "objective": {"out_of_sample": doc.get("out_of_sample")}}


def complete_trials(records: Sequence[dict]) -> list[dict]:
    return [r for r in records if r.get("state") == "COMPLETE" and isinstance(r.get("value"), int | float)]


def importances(records: Sequence[dict], space_rows: Sequence[dict]) -> dict[str, float] | None:
    """Optuna's parameter importances (PED-ANOVA) over a fold's complete trials, rebuilt in an
    in-memory study from the saved records; None when there are too few trials for it."""
    dists: dict[str, optuna.distributions.BaseDistribution] = {}
    for row in space_rows:
        if row["kind"] == "int":
            dists[row["key"]] = optuna.distributions.IntDistribution(int(row["low"]), int(row["high"]))
        else:
            dists[row["key"]] = optuna.distributions.FloatDistribution(float(row["low"]), float(row["high"]),
                                                                        log=row["kind"] == "log-float")
    done = [r for r in complete_trials(records) if set(r["params"]) <= set(dists)]
    if len(done) < 4:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)      # no "study created" line per fold
    study = optuna.create_study(direction="maximize")
    study.add_trials([optuna.trial.create_trial(params=r["params"], value=float(r["value"]),
                                                distributions={k: dists[k] for k in r["params"]})
                      for r in done])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # PED-ANOVA is marked experimental
        try:
            return dict(optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()))
        except (ValueError, RuntimeError, ZeroDivisionError):
            return None


def fold_overfitting(records: Sequence[dict], best_trial: int) -> dict | None:
    """Deflated Sharpe and PBO of the fold's choice among its complete trials' daily curves
    (those of the common length: a trial's curve covers the same training days)."""
    done = [r for r in complete_trials(records) if (r.get("curve") or {}).get("equity")]
    if not done:
        return None
    n = Counter(len(r["curve"]["equity"]) for r in done).most_common(1)[0][0]
    done = [r for r in done if len(r["curve"]["equity"]) == n]
    numbers = [r["number"] for r in done]
    if best_trial not in numbers or len(done) < 2 or n < 3:
        return None
    return trial_overfitting([r["curve"]["equity"] for r in done], numbers.index(best_trial))


def overfit_verdict(stats: dict) -> tuple[str, str]:
    """(zh, en): what the two figures mean for THIS choice, in one sentence each."""
    dsr, pbo = stats.get("deflated_sharpe"), (stats.get("pbo") or {}).get("pbo")
    zh, en = [], []
    if dsr is not None:
        if dsr >= 0.95:
            zh.append("所选参数的训练期夏普比率大概率不只是择优的运气。")
            en.append("The chosen trial's training Sharpe ratio is unlikely to be only the luck of the search.")
        else:
            zh.append("所选参数的训练期成绩可以用“试得够多总有一个好看”来解释，不能当作优势的证据。")
            en.append("The chosen trial's training result is what trying this many parameter sets would show "
                      "by luck: it is no evidence of an edge.")
    if pbo is not None:
        if pbo > 0.5:
            zh.append("在训练期内部，最优参数换到另一半日期上多半不如中位数参数：搜索偏爱过拟合。")
            en.append("Within the training months the best trial usually fell below the median trial on the "
                      "other half of the days: the search favours overfit parameters.")
        else:
            zh.append("在训练期内部，最优参数换到另一半日期上多半仍在前一半。")
            en.append("Within the training months the best trial mostly stayed in the top half on the other "
                      "half of the days.")
    return "".join(zh), " ".join(en)


def history_chart(records: Sequence[dict]) -> str:
    """Each complete trial's score by trial number (dots) and the best so far (a line)."""
    done = sorted(complete_trials(records), key=lambda r: r["number"])
    if not done:
        return ""
    xs = [float(r["number"]) for r in done]
    ys = [float(r["value"]) for r in done]
    best, run = [], -math.inf
    for y in ys:
        run = max(run, y)
        best.append(run)
    sc = _Scale(xs, ys, HEIGHT)
    dots = "".join(f'<circle cx="{sc.x(x):.1f}" cy="{sc.y(y):.1f}" r="2.2" fill="{PALETTE[3]}">'
                   f"<title>#{int(x)}: {y:.3f}</title></circle>" for x, y in zip(xs, ys))
    ticks = [f'<text x="{PAD}" y="14" class="lbl">{html.escape("score / 得分 — best so far / 迄今最佳")}</text>']
    for frac in (0.0, 0.5, 1.0):
        v = sc.y0 + frac * (sc.y1 - sc.y0)
        ticks.append(f'<text x="2" y="{sc.y(v) + 4:.1f}" class="tick">{v:.2f}</text>')
        n = sc.x0 + frac * (sc.x1 - sc.x0)
        anchor = "start" if frac == 0 else ("end" if frac == 1 else "middle")
        ticks.append(f'<text x="{sc.x(n):.1f}" y="{HEIGHT - 4}" text-anchor="{anchor}" class="tick">'
                     f"trial {n:.0f}</text>")
    return (f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="chart history">{"".join(ticks)}{dots}'
            f'{_polyline(sc, xs, best, PALETTE[0])}</svg>')


def importance_table(imp: dict[str, float] | None) -> str:
    if not imp:
        return f'<p class="hint">{t("试验太少，无法计算参数重要性。", "Too few trials for parameter importances.")}</p>'
    rows = sorted(imp.items(), key=lambda kv: -kv[1])[:IMPORTANCE_TOP]
    top = max(v for _, v in rows) or 1.0
    body = "".join(f'<tr><th>{html.escape(k)}</th><td>{v:.3f}</td><td class="l"><span class="bar" '
                   f'style="width:{240 * v / top:.0f}px"></span></td></tr>' for k, v in rows)
    return f'<table class="importance">{body}</table>'


def _fold_table(folds: Sequence[dict]) -> str:
    cols = (("折", "Fold"), ("训练月份", "Train"), ("测试月份", "Test"), ("试验数", "Trials"),
            ("最优试验", "Best trial"), ("样本内得分", "IS score"), ("样本内收益", "IS return"),
            ("样本内回撤", "IS max DD"), ("样本内交易", "IS trades"), ("样本外得分", "OOS score"),
            ("样本外收益", "OOS return"), ("样本外回撤", "OOS max DD"), ("样本外交易", "OOS trades"))
    head = "".join(f"<th>{t(zh, en)}</th>" for zh, en in cols)
    rows = "".join(
        f"<tr><td>{f['fold']}</td><td>{f['train_from']}..{f['train_to']}</td><td>{f['test_from']}..{f['test_to']}"
        f"</td><td>{f['trials']}</td><td>{f['best_trial']}</td><td>{_num(f['in_sample_score'])}</td>"
        f"<td>{_pct(f['in_sample_return_pct'])}</td><td>{_pct(f['in_sample_max_drawdown_pct'], False)}</td>"
        f"<td>{f['in_sample_trades']}</td><td>{_num(f.get('out_of_sample_score'))}</td>"
        f"<td>{_pct(f.get('out_of_sample_return_pct'))}</td>"
        f"<td>{_pct(f.get('out_of_sample_max_drawdown_pct'), False)}</td><td>{f.get('out_of_sample_trades')}</td></tr>"
        for f in folds)
    return f'<table id="folds"><tr>{head}</tr>{rows}</table>'


def _headline(doc: dict, ev: dict) -> str:
    oos, base = doc.get("out_of_sample") or {}, doc.get("out_of_sample_baselines")
    rows = [(t("本结果（拼接样本外）", "This result (stitched out-of-sample)"), _pct(oos.get("return_pct")),
             _pct(oos.get("max_drawdown_pct"), False), str(oos.get("trades")))]
    chart = ""
    stitched = doc.get("stitched") or {}
    if base:
        r = base["random_entries"]
        d = r["return_pct"]
        rows.append((t("买入持有", "Buy & hold"), _pct(base["buy_hold"]["return_pct"]), "—", "—"))
        for q, zh, en in (("p10", "随机入场 10 %", "Random entries 10 %"), ("median", "随机入场中位数",
                          "Random entries median"), ("p90", "随机入场 90 %", "Random entries 90 %")):
            rows.append((t(zh, en), _pct(d[q]), _pct((r.get("max_drawdown_pct") or {}).get(q), False)
                         if q == "median" else "—", "—"))
        band = r.get("band") or {}
        if band.get("day_ms") and band["day_ms"] == stitched.get("day_ms"):
            series = {"random 10 %": band["p10"], "random median": band["median"], "random 90 %": band["p90"]}
            colors = ["#787b86", "#b2b5be", "#787b86"]
            bh = base["buy_hold"]["curve"]
            # buy & hold starts at the first bar's close time, a minute after the equity's start
            if len(bh["day_ms"]) == len(band["day_ms"]) and all(
                    abs(a - b) < 86_400_000 for a, b in zip(bh["day_ms"], band["day_ms"])):
                series["buy & hold"] = bh["equity"]
                colors.append(PALETTE[3])
            series["this profile"] = stitched["equity"]
            colors.append(PALETTE[0])
            chart = line_chart(band["day_ms"], series, "Stitched out-of-sample equity / 拼接样本外权益",
                               colors=colors)
        pct = r.get("agent_percentile")
        if pct is not None:
            rows.append((t("在随机入场中的百分位", "Percentile among random entries"), f"{pct:.0f}", "", ""))
    elif stitched.get("day_ms"):
        chart = line_chart(stitched["day_ms"], {"this profile": stitched["equity"]},
                           "Stitched out-of-sample equity / 拼接样本外权益")
    head = "".join(f"<th>{t(zh, en)}</th>" for zh, en in (("", ""), ("收益", "Return"), ("最大回撤", "Max DD"),
                                                          ("交易数", "Trades")))
    body = "".join(f"<tr><th>{a}</th><td>{b}</td><td>{c}</td><td>{d}</td></tr>" for a, b, c, d in rows)
    cls = "good" if ev.get("state") == "beats_chance" else "bad"
    return (f'<p id="verdict" class="verdict {cls}">{t(ev["sentence_zh"], ev["sentence_en"])}</p>'
            f'<table id="headline"><tr>{head}</tr>{body}</table>{chart}')


def _fold_section(doc: dict, fold: dict) -> str:
    records = (doc.get("trials") or {}).get(fold["study"]) or []
    stats = fold_overfitting(records, fold["best_trial"])
    over = f'<p class="hint">{t("没有足够的试验曲线。", "Not enough trial curves.")}</p>'
    if stats:
        en, zh = overfit_sentence(stats)
        vzh, ven = overfit_verdict(stats)
        pbo = (stats.get("pbo") or {}).get("pbo")
        over = (f'<table class="overfit"><tr><th>{t("紧缩夏普比率", "Deflated Sharpe ratio")}</th>'
                f'<td>{_num(stats.get("deflated_sharpe"), 2)}</td></tr><tr><th>'
                f'{t("回测过拟合概率 (PBO)", "Probability of backtest overfitting (PBO)")}</th><td>{_num(pbo, 2)}</td>'
                f'</tr><tr><th>{t("试验数", "Trials")}</th><td>{stats.get("n_trials")}</td></tr></table>'
                f"<p>{t(zh, en)}</p><p><b>{t(vzh, ven)}</b></p>")
    return (f'<div class="fold" data-fold="{fold["fold"]}"><h2>{t("第", "Fold ")}{fold["fold"]}'
            f'{t(" 折", "")}: {t("训练", "train")} {fold["train_from"]}..{fold["train_to"]}, '
            f'{t("测试", "test")} {fold["test_from"]}..{fold["test_to"]}</h2>'
            f'<h3>{t("过拟合统计", "Overfitting statistics")}</h3>{over}'
            f'<h3>{t("优化历史", "Optimization history")}</h3>{history_chart(records)}'
            f'<h3>{t("参数重要性 (Optuna PED-ANOVA)", "Parameter importances (Optuna PED-ANOVA)")}</h3>'
            f"{importance_table(importances(records, doc.get('search_space') or []))}</div>")


def render_optimize_report(doc: dict) -> str:
    """HTML for a walk-forward result document (WalkForwardResult.to_json)."""
    cfg = doc.get("config") or {}
    ev = evidence(profile_like(doc), str(cfg.get("study", "")))
    title = f'{cfg.get("study", "")} · {", ".join(cfg.get("symbols") or [])}'
    months = doc.get("months") or []
    obj = doc.get("objective") or {}
    info = (f'<p>{t("月份", "Months")} {html.escape(months[0] if months else "")}..'
            f'{html.escape(months[-1] if months else "")} · '
            f'{t("滚动" if not cfg.get("anchored") else "锚定", "rolling" if not cfg.get("anchored") else "anchored")}'
            f' {t("训练", "train")} {cfg.get("train_months")} / {t("测试", "test")} {cfg.get("test_months")} · '
            f'{t("每折试验", "trials per fold")} {cfg.get("trials")} · seed {cfg.get("seed")}</p>'
            f'<p class="hint">{t("目标函数", "Objective")}: {html.escape(str(obj.get("formula", "")))}</p>')
    style = STYLE + (".verdict{font-size:14px;padding:8px 12px;border-left:4px solid} "
                     ".verdict.bad{border-color:#ef5350} .verdict.good{border-color:#26a69a} "
                     ".bar{display:inline-block;height:10px;background:#f0b90b}")
    return f"""<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>Optimization {html.escape(title)}</title>
<style>{style}</style></head><body>
<button id="lang" type="button">English</button>
<h1>{t("优化报告", "Optimization report")} {html.escape(title)}</h1>{info}
<h2>{t("样本外结果（拼接）与基准", "Out-of-sample result (stitched) against the baselines")}</h2>{_headline(doc, ev)}
<h2>{t("每折：样本内与样本外", "Per fold: in-sample vs out-of-sample")}</h2>{_fold_table(doc.get("folds") or [])}
{"".join(_fold_section(doc, f) for f in doc.get("folds") or [])}
<script>{LANG_JS}</script>
</body></html>"""
