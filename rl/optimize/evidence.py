"""What the active strategy profile's out-of-sample evidence says, in figures and plain words.

Pure functions over a profile document (profiles/NAME.json, rl.optimize.profile): the
stitched out-of-sample result of its walk-forward (`objective.out_of_sample`) against the
random-entry runs and buy & hold over the same unseen months
(`provenance.out_of_sample_baselines`, rl.optimize.oos_baselines). The dashboard's Evidence
panel shows `evidence(...)`; `live_gate(...)` is what TRADING_MODE=live must pass (config.py).

The bar for live trading is the one the issue sets: the stitched out-of-sample return must
beat the median of the random-entry runs. A profile that only loses less than chance still
passes that bar, so the sentence says "lost" when it lost.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from config import LIVE_RISK_PHRASE, profile_path

MAKE_PROFILE = ("python -m rl.optimize --data ../shared/data --symbols FILUSDT,NEARUSDT --train-months 2 "
                "--test-months 1 --trials 200 --study NAME")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def _moved(x: float, zh: bool) -> str:
    """'亏损 9.18 %' / 'lost 9.18 %' (gained for >= 0)."""
    if zh:
        return f"{'亏损' if x < 0 else '盈利'} {abs(x):.2f} %"
    return f"{'lost' if x < 0 else 'gained'} {abs(x):.2f} %"


def evidence(doc: dict | None, name: str = "") -> dict[str, Any]:
    """The Evidence panel's figures and sentences for profile `name` (doc None: no profile).

    state: "none" (no profile: the defaults have no evidence), "no_out_of_sample" (a profile
    without a walk-forward result), "no_baseline" (no random-entry runs to compare with),
    "beats_chance" (above the random median and not a loss), "lost_but_beats_chance",
    "below_chance" (at or below the random median)."""
    out: dict[str, Any] = {"profile": name or None, "state": "none", "beats_random_median": None}
    if doc is None:
        out["sentence_zh"] = ("未启用策略配置（STRATEGY_PROFILE）：默认参数没有任何样本外证据。"
                              f"用 {MAKE_PROFILE} 生成配置，"
                              "再在 .env 设置 STRATEGY_PROFILE=NAME（或 --profile NAME）。")
        out["sentence_en"] = ("No strategy profile (STRATEGY_PROFILE) is active: the default parameters have no "
                              f"out-of-sample evidence. Make one with {MAKE_PROFILE}, then set STRATEGY_PROFILE=NAME "
                              "in .env (or --profile NAME).")
        return out
    prov = doc.get("provenance") or {}
    oos = (doc.get("objective") or {}).get("out_of_sample") or {}
    ret = _num(oos.get("return_pct"))
    folds = prov.get("folds") or []
    out.update({
        "created": doc.get("created"), "study": prov.get("study"), "symbols": prov.get("symbols") or [],
        "test_months": [m for f in folds for m in (f.get("test") or [])],
        "trials_per_fold": prov.get("trials_per_fold"),
        "oos_return_pct": ret, "oos_max_drawdown_pct": _num(oos.get("max_drawdown_pct")),
        "oos_trades": oos.get("trades"),
        "folds": [{"fold": f.get("fold"), "train": f.get("train"), "test": f.get("test"),
                   "in_sample_return_pct": _num(f.get("in_sample_return_pct")),
                   "out_of_sample_return_pct": _num(f.get("out_of_sample_return_pct"))} for f in folds],
    })
    if ret is None:
        out["state"] = "no_out_of_sample"
        out["sentence_zh"] = f"配置 {name} 没有样本外结果：无法判断它是否好于随机。用 {MAKE_PROFILE} 重新生成。"
        out["sentence_en"] = (f"Profile {name} has no out-of-sample result: there is no telling whether it beats "
                              f"chance. Make it again with {MAKE_PROFILE}.")
        return out
    base = prov.get("out_of_sample_baselines") or {}
    rand = base.get("random_entries") or {}
    dist = rand.get("return_pct") or {}
    med = _num(dist.get("median"))
    bh = _num((base.get("buy_hold") or {}).get("return_pct"))
    months = len(out["test_months"])
    out.update({"random_runs": rand.get("runs"), "random_median_return_pct": med,
                "random_p10_return_pct": _num(dist.get("p10")), "random_p90_return_pct": _num(dist.get("p90")),
                "agent_percentile": _num(rand.get("agent_percentile")), "buy_hold_return_pct": bh})
    head_zh = f"在未见过的 {months} 个月份上，此配置{_moved(ret, True)}"
    head_en = f"On {months} unseen month(s) this profile {_moved(ret, False)}"
    if med is None:
        out["state"] = "no_baseline"
        out["sentence_zh"] = (f"{head_zh}；没有随机入场基准可比。用 python -m rl.optimize report {name} "
                              "--out report.html 补上。")
        out["sentence_en"] = (f"{head_en}; there is no random-entry baseline to compare with. Add it with "
                              f"python -m rl.optimize report {name} --out report.html.")
        return out
    beats = ret > med
    out["beats_random_median"] = beats
    out["state"] = ("beats_chance" if ret >= 0 else "lost_but_beats_chance") if beats else "below_chance"
    bh_zh = "" if bh is None else f"；同期买入持有{_moved(bh, True)}"
    bh_en = "" if bh is None else f"; buying and holding {_moved(bh, False)}"
    runs = rand.get("runs")
    verdict_zh = {"beats_chance": "高于随机入场的中位数。",
                  "lost_but_beats_chance": "比随机入场的中位数好，但仍是亏损。",
                  "below_chance": "没有好过随机入场的中位数：这不是优势的证据。"}[out["state"]]
    verdict_en = {"beats_chance": "Above the random-entry median.",
                  "lost_but_beats_chance": "Better than the random-entry median, but still a loss.",
                  "below_chance": "Not better than the random-entry median: this is no evidence of an edge."}[
        out["state"]]
    out["sentence_zh"] = f"{head_zh}；随机入场{_moved(med, True)}（{runs} 次的中位数）{bh_zh}。{verdict_zh}"
    out["sentence_en"] = (f"{head_en}; random entries {_moved(med, False)} (median of {runs} runs){bh_en}. "
                          f"{verdict_en}")
    return out


def live_gate(doc: dict | None, name: str = "") -> str | None:
    """None when live trading may start on this profile's evidence, else the one line saying
    why not and what to do (config.py raises it as a SettingsError)."""
    ev = evidence(doc, name)
    escape = f"or set LIVE_WITHOUT_EVIDENCE={LIVE_RISK_PHRASE} in .env to trade without it"
    head = "TRADING_MODE=live refuses to start"
    if ev["state"] == "none":
        return (f"{head}: no STRATEGY_PROFILE is set, so the default parameters have no out-of-sample evidence; "
                f"make a profile ({MAKE_PROFILE}) and set STRATEGY_PROFILE=NAME, {escape}")
    if ev["state"] == "no_out_of_sample":
        return f"{head}: profile {name} has no out-of-sample result; make it again ({MAKE_PROFILE}), {escape}"
    if ev["state"] == "no_baseline":
        return (f"{head}: profile {name} has no random-entry baseline; add it with python -m rl.optimize report "
                f"{name} --out report.html, {escape}")
    if not ev["beats_random_median"]:
        return (f"{head}: on unseen months profile {name} returned {ev['oos_return_pct']:+.2f} %, not above the "
                f"random-entry median {ev['random_median_return_pct']:+.2f} % ({ev['random_runs']} runs); "
                f"find a profile that beats it (python -m rl.optimize), {escape}")
    return None


def read_doc(path: Path) -> dict | None:
    """The profile document at `path`, None when it is missing or not a JSON object (config.py
    has already refused such a profile at start-up; the panel then says there is none)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def profile_evidence(profile: str, trading_mode: str = "paper", live_without_evidence: bool = False) -> dict:
    """`evidence` of the named active profile ("" = none), read from its file, plus whether
    live trading runs on LIVE_WITHOUT_EVIDENCE (what the dashboard serves)."""
    doc = read_doc(profile_path(profile)) if profile else None
    out = evidence(doc, profile)
    out["live_gate"] = "not_gated" if trading_mode != "live" else (
        "overridden" if live_without_evidence else "passed")
    return out
