"""Backtest honesty on real Binance data: no lookahead, determinism, parity with the dashboard's
replay; plus the CLI end to end on generated data.

Real-data runs use one day (1,439 steps) of FILUSDT with 30 days of warm-up history, and share
results through module fixtures so the suite stays fast.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from config import Settings
from rl.analysis.analyzer import IncrementalAnalyzer
from rl.backtest.data import BacktestData, load_backtest_data
from rl.backtest.engine import TIMING_FIELDS, BacktestResult, backtest_settings, dumps_json, main, run_backtest
from rl.market.candles import MINUTE_MS, index_to_ms
from tests.support.archives import write_archive
from tests.support.paths import shared_data_root, shared_kline_files
from tests.support.replay import replay_to_end

SYMBOL = "FILUSDT"
DAY = "2023-09-01"
TRADE_KEYS = ("side", "opened_ms", "closed_ms", "entry_price", "exit_price", "quantity", "pnl",
              "fees", "r_multiple", "exit_reason")


def _settings() -> Settings:
    # defaults, never the developer's .env: results must not depend on who runs the test. No
    # least reward: these tests check what the engine does with trades, so one day must have some
    return backtest_settings(SYMBOL, 10_000.0, {"min_reward_r": 0.01}, base=Settings())


def _run(data: BacktestData) -> tuple[BacktestResult, list[str]]:
    buf = io.StringIO()
    result = run_backtest(data, _settings(), trace=buf, progress=False)
    return result, buf.getvalue().splitlines()


def _json_without_timing(result: BacktestResult) -> str:
    doc = result.to_json()
    for k in TIMING_FIELDS:
        doc.pop(k)
    return dumps_json(doc)


@pytest.fixture(scope="module")
def day_run(day_data: BacktestData) -> tuple[BacktestResult, list[str]]:
    return _run(day_data)


def _truncated(data: BacktestData, last_open_ms: int) -> BacktestData:
    """The same data as if the archive ended with the bar opening at last_open_ms."""
    open_ms = index_to_ms(data.frame.index)
    frame = data.frame.iloc[: int(np.searchsorted(open_ms, last_open_ms, side="right"))]
    return replace(data, frame=frame, end_ms=last_open_ms + MINUTE_MS - 1)


# ----------------------------------------------------------------------------- honesty

@pytest.mark.shared_data
def test_the_run_trades_and_traces_decisions_and_trade_events(day_run) -> None:
    result, trace = day_run
    assert result.bars == 1440                                 # every closed bar of the day
    assert result.summary["trades"] > 0                        # the agent really traded
    lines = [json.loads(x) for x in trace]
    decisions = [x for x in lines if x["event"] == "decision"]
    assert len(decisions) == result.decisions > 0
    assert {"time_ms", "long_score", "short_score", "min_score", "score_gap", "action",
            "price"} <= set(decisions[0])
    # entry decisions happen only at 15m closes
    assert all(x["time_ms"] % (15 * MINUTE_MS) == 0 for x in decisions)
    everything = result.trades + result.open_trades
    entries = [x for x in lines if x["event"] == "entry"]
    assert [x["time_ms"] for x in entries] == [t["opened_ms"] for t in everything]
    # every entry follows a decision to enter on that side: at that very close (ioc) or, for a
    # resting maker entry, at the last decision before its fill, within ENTRY_TIMEOUT_SECONDS
    settings = _settings()
    for e in entries:
        before = [x for x in decisions if x["time_ms"] <= e["time_ms"]]
        assert before, e
        d = before[-1]
        assert d["action"] == ("enter_long" if e["side"] == "LONG" else "enter_short")
        waited_s = (e["time_ms"] - d["time_ms"]) / 1000
        assert waited_s == 0 if settings.entry_order == "ioc" else waited_s <= settings.entry_timeout_seconds
    closes = [x for x in lines if x["event"] == "close"]
    assert [(x["time_ms"], x["net_pnl"]) for x in closes] == [
        (t["closed_ms"], round(t["pnl"], 6)) for t in result.trades]
    exits = [x for x in lines if x["event"] == "exit"]
    assert len(exits) >= len(closes)
    # equity starts at the balance and ends at the final account value
    assert result.equity[0] == 10_000.0
    assert result.summary["end_balance"] == pytest.approx(result.equity[-1])


@pytest.mark.shared_data
def test_no_lookahead_trace_up_to_t_ignores_what_comes_after(day_data, day_run) -> None:
    """Decisions up to T are identical whether the data after T is missing or wildly changed.
    Every run prepares its level scans a chunk of closes ahead from the archive
    (rl.backtest.scans): that must not leak the future either."""
    _, full = day_run
    t_cut = int(index_to_ms(day_data.frame.index)[day_data.first_bar]) + 11 * 60 * MINUTE_MS + 17 * MINUTE_MS
    cut_result, cut = _run(_truncated(day_data, t_cut))
    assert 5 < len(cut) < len(full)
    assert cut == full[:len(cut)]                    # an exact prefix, byte for byte
    assert json.loads(full[len(cut)])["time_ms"] > t_cut     # ...ending where the data does

    # a future that crashes 50 % right after T must not change a single decision up to T
    tampered = day_data.frame.copy()
    after = index_to_ms(tampered.index) > t_cut
    for col in ("open", "high", "low", "close"):
        tampered.loc[after, col] = tampered.loc[after, col] * 0.5
    _, crash = _run(replace(day_data, frame=tampered))
    assert crash[:len(cut)] == cut
    assert crash != full                              # ...while the future really did differ
    # (compared without thought chains: they hold random client order ids, see docs/backtest.md)
    closed_before = [{k: t[k] for k in TRADE_KEYS} for t in cut_result.trades if t["closed_ms"] <= t_cut]
    assert closed_before and closed_before == [{k: t[k] for k in TRADE_KEYS}
                                               for t in day_run[0].trades if t["closed_ms"] <= t_cut]


@pytest.mark.shared_data
def test_determinism_byte_identical_json_and_trace(day_data, day_run) -> None:
    first, trace1 = day_run
    second, trace2 = _run(day_data)
    assert _json_without_timing(first) == _json_without_timing(second)
    assert trace1 == trace2
    # the HTML report too, thought chains (with their order ids) included, timing aside
    from rl.backtest.report import render_report

    def report(result):
        doc = result.to_report()
        for k in TIMING_FIELDS:
            doc.get("summary", {}).pop(k, None)
            doc.pop(k, None)
        return render_report(doc)

    assert first.trades and "-000001" in report(first)
    assert "candles" not in first.to_json() and first.to_report()["candles"]["time_s"]
    assert report(first) == report(second)


def _replay_trades(data: BacktestData, tmp_path: Path) -> tuple[list[dict], dict]:
    """The dashboard's replay over `data` (tests/support/replay.py): its trades in the
    backtest's row shape, and its final weights."""
    trades, weights = replay_to_end([data], tmp_path, _settings(), timeout_s=120)
    got = [{"side": t["side"], "opened_ms": t["opened_ms"], "closed_ms": t["closed_ms"],
            "entry_price": t["entry_price"], "exit_price": t["exit_price"], "quantity": t["quantity"],
            "pnl": t["net_pnl"], "fees": t["fees"], "r_multiple": t["r_multiple"],
            "exit_reason": t["exit_reason"]} for t in trades]
    return got, weights


def _backtest_trades(result: BacktestResult) -> list[dict]:
    return [{k: t[k] for k in TRADE_KEYS} for t in result.trades + result.open_trades]


@pytest.mark.shared_data
@pytest.mark.slow
def test_parity_replay_runner_makes_the_same_trades(day_data, day_run, tmp_path: Path) -> None:
    """Replay (run_cycle per BarClock step) and backtest (prime + step) make exactly the same
    trades at the same times/prices, and learn the same weights."""
    backtest = day_run[0]
    got, weights = _replay_trades(day_data, tmp_path)
    assert len(backtest.trades) > 0
    assert got == _backtest_trades(backtest)
    assert weights == backtest.final_weights


@pytest.mark.shared_data
@pytest.mark.slow
def test_parity_holds_across_a_weekly_close(tmp_path: Path, monkeypatch) -> None:
    """Sun 2023-09-03 .. Mon 09-04: the backtest aggregates the 1w candle itself from 1m bars
    (primed from the week's start), replay reads it from the market port; at Monday 00:00 both
    must push the same weekly candle, or the scores and trades after it would differ."""
    if not shared_kline_files(SYMBOL):
        pytest.skip(f"real Binance archive for {SYMBOL} not found under {shared_data_root()}")
    data = load_backtest_data([shared_data_root()], SYMBOL, "2023-09-03", "2023-09-04")
    # the 1w candles each analyzer of the run is handed (the agent's, and the one preparing its
    # scans ahead): the prime's, then the ones formed from 1m bars
    pushed_1w: dict[int, list[tuple]] = {}
    real_push = IncrementalAnalyzer.push_candle

    def recording_push(self, tf, *candle):
        if tf == "1w":
            pushed_1w.setdefault(id(self), []).append(candle)
        return real_push(self, tf, *candle)

    with monkeypatch.context() as m:
        m.setattr(IncrementalAnalyzer, "push_candle", recording_push)
        result, _ = _run(data)
    # the weekly candle the agent formed itself equals the market port's (rl.market.candles.resample)
    from rl.market.candles import resample
    weekly = resample(data.frame[index_to_ms(data.frame.index) < 1693785600000], "1w")
    assert pushed_1w
    for candles in pushed_1w.values():
        t, o, h, l, c, v = candles[-1]
        assert int(t) == 1693180800000 == int(index_to_ms(weekly.index)[-1])   # Mon 08-28
        assert (o, h, l, c) == tuple(float(weekly[k].iloc[-1]) for k in ("open", "high", "low", "close"))
        # volume: step() adds 1m volumes one by one, the market port with numpy's pairwise sum;
        # they agree to the last few bits only (see docs/backtest.md "Open points")
        assert v == float(weekly["volume"].iloc[-1])     # fsum on both sides: bit for bit
    got, weights = _replay_trades(data, tmp_path)
    want = _backtest_trades(result)
    assert any(t["opened_ms"] > 1693785600000 for t in want)      # trades after Mon 00:00 UTC
    assert got == want
    assert weights == result.final_weights


# ----------------------------------------------------------------------------- CLI

def test_cli_writes_json_report_and_trace(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("rl.backtest.engine.load_settings", lambda: Settings())
    src = write_archive(tmp_path / "d", "TSTUSDT", "2024-01", 3 * 1440, "2024-01-01", seed=11)
    out_json, out_html, out_trace = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "t.jsonl"
    code = main(["--data", str(src), "--symbol", "tstusdt", "--from", "2024-01-02", "--to", "2024-01-02",
                 "--balance", "5000", "--set", "LEVERAGE=5", "--set", "MAX_RISK_PERCENT=1",
                 "--json", str(out_json), "--report", str(out_html), "--trace", str(out_trace)])
    assert code == 0
    printed = capsys.readouterr().out
    for label in ("Trades", "Win rate", "Net PnL", "Max drawdown", "Sharpe", "Sortino", "Profit factor",
                  "Expectancy", "Average R", "Exposure", "Buy & hold", "Final weights"):
        assert label in printed
    doc = json.loads(out_json.read_text())
    assert doc["bars"] == 1440 and doc["start_balance"] == 5000.0     # every close of Jan 2
    assert doc["settings"]["leverage"] == 5 and doc["settings"]["max_risk_percent"] == 1.0
    assert doc["bars_per_second"] > 0 and doc["seconds"] > 0
    assert set(doc["final_weights"]) and abs(sum(doc["final_weights"].values()) - 1) < 1e-9
    lines = out_trace.read_text().splitlines()
    decisions = [json.loads(x) for x in lines if json.loads(x)["event"] == "decision"]
    assert len(decisions) == doc["decisions"] > 0 and decisions[0]["min_score"] == 35.0
    page = out_html.read_text()
    assert "<svg" in page and "TSTUSDT" in page and 'id="price-chart"' in page
    assert "<script src" not in page
    assert doc["protections"]["pauses"] == [] and 'data-en="Protections">风控暂停</span> (0)' in page


def test_cli_reports_the_protections_pauses(tmp_path: Path, capsys, monkeypatch) -> None:
    """A drawdown limit of 0.2 % pauses entries on this generated day: the JSON lists the pause
    with ISO and ms times and both reasons, the HTML report has it in a table, the printed
    summary counts pauses per rule."""
    monkeypatch.setattr("rl.backtest.engine.load_settings", lambda: Settings())
    src = write_archive(tmp_path / "d", "TSTUSDT", "2024-01", 3 * 1440, "2024-01-01", seed=11)
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    assert main(["--data", str(src), "--symbol", "TSTUSDT", "--from", "2024-01-02", "--to", "2024-01-02",
                 "--set", "MAX_DRAWDOWN_PERCENT=0.2", "--set", "STOPLOSS_GUARD_TRADES=0",
                 "--json", str(out_json), "--report", str(out_html)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"Pauses / 风控暂停 +drawdown 1, daily_loss 0, stoploss_guard 0", printed)
    doc = json.loads(out_json.read_text())
    assert doc["protections"]["config"]["max_drawdown_percent"] == 0.2
    assert doc["protections"]["config"]["stoploss_guard_trades"] == 0
    (pause,) = doc["protections"]["pauses"]
    assert pause["rule"] == "drawdown" and pause["started"].startswith("2024-01-02T")
    assert pause["started"] == datetime.fromtimestamp(pause["started_ms"] / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert pause["until"].endswith("Z")
    day_end_ms = int(datetime(2024, 1, 3, tzinfo=UTC).timestamp() * 1000)
    assert pause["until_ms"] > pause["started_ms"] and pause["active"] is (pause["until_ms"] > day_end_ms - 1)
    assert pause["reason_en"].startswith("Drawdown guard") and pause["reason_zh"].startswith("回撤保护")
    page = out_html.read_text()
    assert 'data-en="Protections">风控暂停</span> (1)' in page and pause["started"] in page
    assert "回撤保护" in page
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)      # scripts inline, nothing fetched


def test_cli_date_range_outside_the_data_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("rl.backtest.engine.load_settings", lambda: Settings())
    src = write_archive(tmp_path / "d", "TSTUSDT", "2024-01", 100, "2024-01-01")
    assert main(["--data", str(src), "--symbol", "TSTUSDT", "--from", "2030-01-01", "--to", "2030-01-05"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PosixPath" not in err
    assert "--from/--to 2030-01-01..2030-01-05 is invalid" in err and "cover 2024-01..2024-01" in err


@pytest.mark.parametrize("args, message", [
    (["--set", "LEVERAGE=0"], "LEVERAGE"),
    (["--set", "NOPE=1"], "NOPE is not a setting"),
    (["--from", "2024-13-01"], "--from"),
    (["--balance", "-5"], "--balance"),
])
def test_cli_bad_input_exits_2_naming_the_field(tmp_path: Path, capsys, monkeypatch, args, message) -> None:
    monkeypatch.setattr("rl.backtest.engine.load_settings", lambda: Settings())
    src = write_archive(tmp_path / "d", "TSTUSDT", "2024-01", 100, "2024-01-01")
    assert main(["--data", str(src), "--symbol", "TSTUSDT", *args]) == 2
    assert message in capsys.readouterr().err
