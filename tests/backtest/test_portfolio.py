"""Portfolio backtests (issue 18): several symbols on one account over time-aligned bars.

Generated archives (tests/support/portfolio.py) for the walk itself: both symbols trade on one
account, a gap in one symbol does not stall the other, symbols without overlap join and leave
on their own, no lookahead on the portfolio path; the CLI end to end. Settings are pinned
(ENTRY_ORDER=ioc, TAKE_PROFIT_ORDER=market, ...) so a change of defaults elsewhere does not move
what these tests look at."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rl.backtest.engine import BacktestResult, main
from rl.backtest.portfolio import load_portfolio_data, run_portfolio, step_times
from rl.market.candles import MINUTE_MS, index_to_ms
from tests.support.portfolio import (
    SYMBOLS,
    crashed_after,
    load_pair,
    pinned_settings,
    truncated,
    without_bars,
    write_pair,
)

A, B = SYMBOLS
FROM, TO = "2024-02-01", "2024-02-05"
DAY = 86_400_000


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_pair(tmp_path_factory.mktemp("pair"))


@pytest.fixture(scope="module")
def pair(root):
    return load_pair(root, FROM, TO)


def _run(datas, **changes) -> tuple[BacktestResult, list[str], list[int]]:
    buf = io.StringIO()
    steps: list[int] = []
    result = run_portfolio(datas, pinned_settings(tuple(d.symbol for d in datas), **changes), trace=buf,
                           progress=False, on_step=lambda _k, t: steps.append(t))
    return result, buf.getvalue().splitlines(), steps


@pytest.fixture(scope="module")
def pair_run(pair):
    return _run(pair)


def _key(t: dict) -> tuple:
    return (t["symbol"], t["side"], t["opened_ms"], t["closed_ms"], t["entry_price"], t["exit_price"],
            t["quantity"], t["pnl"], t["fees"], t["exit_reason"])


def test_both_symbols_trade_on_one_account(pair, pair_run) -> None:
    result, trace, steps = pair_run
    everything = result.trades + result.open_trades
    assert {t["symbol"] for t in result.trades} == {A, B}
    # one account: at some moment both symbols hold a position at once
    spans = [(t["symbol"], t["opened_ms"], t["closed_ms"] or steps[-1]) for t in everything]
    assert any(sa != sb and oa < cb and ob < ca for sa, oa, ca in spans for sb, ob, cb in spans)
    # one equity curve over every step, one set of figures, the per-symbol parts add up to them
    assert len(steps) == result.steps == len(result.equity) - 1 == 5 * 1440
    assert steps == step_times(pair).tolist()
    per = result.per_symbol
    assert list(per) == [A, B]
    assert sum(p["trades"] for p in per.values()) == result.summary["trades"] == len(result.trades)
    assert sum(p["fees"] for p in per.values()) == pytest.approx(result.summary["fees"])
    assert sum(p["net_pnl"] for p in per.values()) == pytest.approx(sum(t["pnl"] for t in result.trades))
    assert sum(p["return_contribution_pct"] for p in per.values()) == pytest.approx(
        sum(t["pnl"] for t in result.trades) / 100.0)
    for sym, p in per.items():
        mine = [t for t in result.trades if t["symbol"] == sym]
        assert p["win_rate"] == sum(t["pnl"] > 0 for t in mine) / len(mine)
        assert p["bars"] == 5 * 1440
    assert result.summary["end_balance"] == pytest.approx(result.equity[-1])
    # trace: decisions of both symbols, entries only at 15m closes
    decisions = [json.loads(x) for x in trace if '"decision"' in x]
    assert {d["symbol"] for d in decisions} == {A, B}
    assert all(d["time_ms"] % (15 * MINUTE_MS) == 0 for d in decisions)


def test_the_account_is_shared_not_two_separate_runs(pair, pair_run) -> None:
    """Sizing reads the one account's equity, so after the first close the portfolio's B
    trades are not those of B run alone on its own account."""
    result, _, _ = pair_run
    alone = _run([pair[1]])[0].trades
    here = [t for t in result.trades if t["symbol"] == B]
    assert here and alone
    assert [t["quantity"] for t in here] != [t["quantity"] for t in alone]


def test_a_gap_in_one_symbol_does_not_stall_the_other(pair, pair_run) -> None:
    a, b = pair
    t0 = int(index_to_ms(b.frame.index)[b.first_bar])
    hole = (t0 + DAY + 2 * 3600_000, t0 + DAY + 8 * 3600_000)            # 6 h of B missing
    result, trace, steps = _run([a, without_bars(b, *hole)])
    assert len(steps) == 5 * 1440                       # A's steps go on through B's hole
    assert result.per_symbol[A]["bars"] == 5 * 1440
    assert result.per_symbol[B]["bars"] == 5 * 1440 - 360
    decisions = [json.loads(x) for x in trace if '"decision"' in x]
    inside = [d for d in decisions if hole[0] < d["time_ms"] <= hole[1]]
    assert {d["symbol"] for d in inside} == {A}         # B is not stepped, A decides as usual
    assert all(not (hole[0] < t["opened_ms"] <= hole[1]) for t in result.trades if t["symbol"] == B)
    # before the hole nothing differs from the run without it
    full, full_trace, _ = pair_run
    before = [x for x in full_trace if json.loads(x)["time_ms"] <= hole[0]]
    assert before and trace[:len(before)] == before


def test_symbols_without_overlap_join_after_their_warm_up_and_leave_at_their_end(tmp_path) -> None:
    write_pair(tmp_path, days=36, start="2024-01-01", symbols=(A,), seeds=(5,))
    write_pair(tmp_path, days=36, start="2024-03-01", symbols=(B,), seeds=(9,))
    datas = load_portfolio_data([tmp_path], (A, B), "2024-01-31", "2024-04-05")
    a, b = datas
    # A: from --from, its January is the warm-up; B's data starts after --from, so B joins
    # 30 days after its first bar (March 31), with March as its warm-up
    assert a.start_ms == 1706659200000 + MINUTE_MS                      # 2024-01-31 00:01
    assert b.start_ms == 1711843200000 + MINUTE_MS                      # 2024-03-31 00:01
    assert b.first_bar == 30 * 1440
    result, trace, steps = _run(datas)
    spans = {s["symbol"]: s for s in result.spans}
    assert spans[A]["overlaps"] == [] and spans[B]["overlaps"] == []
    assert spans[A]["leaves_ms"] < spans[B]["joins_ms"]
    assert len(steps) == a.tested_bars + b.tested_bars                  # the union, no empty minutes
    assert steps[a.tested_bars] == b.start_ms                           # straight from A's end to B's start
    for t in result.trades + result.open_trades:
        span = spans[t["symbol"]]
        assert span["joins_ms"] <= t["opened_ms"] <= span["leaves_ms"]
    assert result.per_symbol[A]["trades"] > 0 and result.per_symbol[B]["trades"] > 0
    # exposure counts the time some symbol had data, not the month between them
    assert 0 < result.summary["exposure_pct"] <= 100


def test_a_symbol_whose_data_leaves_no_test_after_its_warm_up_is_refused(tmp_path) -> None:
    write_pair(tmp_path, days=20, symbols=(A, B))
    with pytest.raises(ValueError, match=r"BBBUSDT is invalid.*30-day warm-up"):
        load_portfolio_data([tmp_path], (B,), None, None)


# ----------------------------------------------------------------------------- no lookahead

def test_no_lookahead_on_the_portfolio_path(pair, pair_run) -> None:
    """The trace of a portfolio cut at T is an exact prefix of the full one, and crashing one
    symbol's prices after T changes nothing up to T, in either symbol."""
    _, full, _ = pair_run
    t_cut = pair[0].start_ms + 2 * DAY + 7 * 3600_000 + 13 * MINUTE_MS
    cut_result, cut, _ = _run([truncated(d, t_cut) for d in pair])
    assert 10 < len(cut) < len(full)
    assert cut == full[:len(cut)]
    assert json.loads(full[len(cut)])["time_ms"] > t_cut
    assert {json.loads(x).get("symbol") for x in cut} >= {A, B}
    for crashed in ([crashed_after(pair[0], t_cut), pair[1]], [pair[0], crashed_after(pair[1], t_cut, 1.6)]):
        _, crash, _ = _run(crashed)
        assert crash[:len(cut)] == cut
        assert crash != full
    closed = [_key(t) for t in cut_result.trades if t["closed_ms"] <= t_cut]
    assert closed and closed == [_key(t) for t in pair_run[0].trades if t["closed_ms"] <= t_cut]


# ----------------------------------------------------------------------------- CLI

def test_cli_runs_a_portfolio_and_writes_its_breakdown(root, tmp_path, capsys, monkeypatch) -> None:
    from config import Settings

    monkeypatch.setattr("rl.backtest.engine.load_settings", lambda: Settings())
    out_json, out_html = tmp_path / "p.json", tmp_path / "p.html"
    code = main(["--data", str(root), "--symbol", "aaausdt, BBBUSDT", "--from", FROM, "--to", "2024-02-02",
                 "--set", "ENTRY_ORDER=ioc", "--set", "TAKE_PROFIT_ORDER=market",
                 "--json", str(out_json), "--report", str(out_html)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "AAAUSDT,BBBUSDT" in printed and "one account / 同一账户" in printed
    assert "Per symbol / 分品种" in printed and "Spans / 时段" in printed
    doc = json.loads(out_json.read_text())
    assert doc["symbols"] == [A, B] and set(doc["per_symbol"]) == {A, B}
    assert doc["bars"] == 2 * 2 * 1440 and doc["steps"] == 2 * 1440
    assert {"trades", "net_pnl", "fees", "win_rate", "return_contribution_pct"} <= set(doc["per_symbol"][A])
    assert {t["symbol"] for t in doc["trades"]} <= {A, B}
    page = out_html.read_text()
    assert 'id="by-symbol"' in page and 'id="spans"' in page
    assert 'data-en="Return contribution"' in page and 'data-zh="收益贡献"' in page


@pytest.mark.parametrize(("symbols", "extra", "message"), [
    ("AAAUSDT,,BBBUSDT", [], "no empty entries"),
    ("AAAUSDT,aaausdt", [], "AAAUSDT is given twice"),
    ("AAAUSDT,BBBUSDT", ["--baselines", "3"], "baselines run one symbol at a time"),
])
def test_cli_refuses_bad_symbol_lists(root, symbols, extra, message, capsys, monkeypatch) -> None:
    from config import Settings

    monkeypatch.setattr("rl.backtest.engine.load_settings", lambda: Settings())
    assert main(["--data", str(root), "--symbol", symbols, "--from", FROM, "--to", FROM, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "--" in err
