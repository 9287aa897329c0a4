"""The learned trade filter in the real agent over real FILUSDT data: no lookahead (an exact
prefix on data cut at T, and a tampered future changes nothing up to T), deterministic, and
explained (thought chains with the prediction, skip lines in both languages).

The filter runs with no warm-up (filter.warmup_trades=0) so a single day's signals are judged
by the model from the first one, and its decisions (Thompson draws, exploration budget) shape
the trades; with the default warm-up a day would never get past it.
"""
from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from config import Settings
from rl.backtest.data import BacktestData
from rl.backtest.engine import BacktestResult, backtest_settings, run_backtest
from rl.knowledge.store import KnowledgeStore
from rl.market.candles import MINUTE_MS, index_to_ms
from rl.strategy.params import StrategyParams

SYMBOL = "FILUSDT"
DAY = "2023-09-01"
TRADE_KEYS = ("side", "opened_ms", "closed_ms", "entry_price", "exit_price", "quantity", "pnl",
              "fees", "r_multiple", "exit_reason")
pytestmark = pytest.mark.shared_data


def _settings(mode: str = "on") -> Settings:
    return backtest_settings(SYMBOL, 10_000.0, {"min_reward_r": 0.01, "trade_filter": mode}, base=Settings())


def _params(settings: Settings) -> StrategyParams:
    return StrategyParams.from_settings(settings).replace_flat({"filter.warmup_trades": 0})


def _run(data: BacktestData, store_path: str | Path = ":memory:") -> tuple[BacktestResult, list[str]]:
    buf = io.StringIO()
    s = _settings()
    result = run_backtest(data, s, trace=buf, progress=False, params=_params(s), store_path=store_path)
    return result, buf.getvalue().splitlines()


@pytest.fixture(scope="module")
def filtered(day_data: BacktestData, tmp_path_factory) -> tuple[BacktestResult, list[str], Path]:
    path = tmp_path_factory.mktemp("filter") / "agent.db"
    result, trace = _run(day_data, path)
    return result, trace, path


def _truncated(data: BacktestData, last_open_ms: int) -> BacktestData:
    open_ms = index_to_ms(data.frame.index)
    frame = data.frame.iloc[: int(np.searchsorted(open_ms, last_open_ms, side="right"))]
    return replace(data, frame=frame, end_ms=last_open_ms + MINUTE_MS - 1)


def test_the_filter_judges_signals_explains_them_and_skips_some(filtered) -> None:
    result, trace, path = filtered
    lines = [json.loads(x) for x in trace]
    signals = [x for x in lines if x["event"] == "decision" and x["action"] != "wait"]
    entries = [x for x in lines if x["event"] == "entry"]
    assert result.summary["trades"] > 0 and len(entries) < len(signals)
    # every trade's thought chain holds what the model said at its entry
    for t in result.trades:
        tf = t["thought_chain"]["perception"]["trade_filter"]
        assert tf["take"] is True and 0 < tf["stake"] <= 1
        assert {"mean", "spread", "p_positive", "top", "x", "reason"} <= set(tf)
        assert len(tf["top"]) == 3 and tf["reason"] in ("edge", "explore")
        assert t["thought_chain"]["reward"]["trade_filter"]["learned"] >= 1
    store = KnowledgeStore(path, default_weights=result.final_weights)
    try:
        state = store.filter_state()
        rows = store.decisions.recent(limit=100_000)
    finally:
        store.close()
    # it learned from every closed trade, and counted every signal it judged
    assert state["learned"] == result.summary["trades"]
    assert state["seen"] == state["taken"] + state["skipped"] and state["skipped"] > 0
    skips = [r for r in rows if r["message_zh"].startswith("⏭ 跳过")]
    assert len(skips) == state["skipped"]
    zh, en = skips[0]["message_zh"], skips[0]["message_en"]
    assert ("做多:" in zh or "做空:" in zh) and "预期" in zh and "R" in zh
    assert en.startswith("⏭ skipped | ") and "expected" in en and "P(>0)" in en


def test_no_lookahead_with_the_filter_prefix_and_tampered_future(day_data, filtered) -> None:
    """The filter learns only from trades closed before a decision: data cut at T gives an
    exact prefix of the full run's trace, and a crash after T changes nothing up to T."""
    full_result, full, _ = filtered
    t_cut = int(index_to_ms(day_data.frame.index)[day_data.first_bar]) + 13 * 60 * MINUTE_MS + 2 * MINUTE_MS
    cut_result, cut = _run(_truncated(day_data, t_cut))
    assert 5 < len(cut) < len(full)
    assert cut == full[:len(cut)]
    assert json.loads(full[len(cut)])["time_ms"] > t_cut

    tampered = day_data.frame.copy()
    after = index_to_ms(tampered.index) > t_cut
    for col in ("open", "high", "low", "close"):
        tampered.loc[after, col] = tampered.loc[after, col] * 0.5
    _, crash = _run(replace(day_data, frame=tampered))
    assert crash[:len(cut)] == cut and crash != full
    closed_before = [{k: t[k] for k in TRADE_KEYS} for t in cut_result.trades if t["closed_ms"] <= t_cut]
    assert closed_before and closed_before == [{k: t[k] for k in TRADE_KEYS}
                                               for t in full_result.trades if t["closed_ms"] <= t_cut]


def test_the_filter_is_deterministic(day_data, filtered) -> None:
    _, trace1, _ = filtered
    _, trace2 = _run(day_data)
    assert trace1 == trace2


def test_off_makes_the_frozen_agents_trades(day_data) -> None:
    """TRADE_FILTER=off is today's agent: the same trades as settings without the field set."""
    off = run_backtest(day_data, _settings("off"), progress=False)
    plain = run_backtest(day_data, backtest_settings(SYMBOL, 10_000.0, {"min_reward_r": 0.01}, base=Settings()),
                         progress=False)
    assert [{k: t[k] for k in TRADE_KEYS} for t in off.trades] == [{k: t[k] for k in TRADE_KEYS}
                                                                   for t in plain.trades]
    assert all("trade_filter" not in t["thought_chain"]["perception"] for t in off.trades)
