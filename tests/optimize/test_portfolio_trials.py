"""`python -m rl.optimize --portfolio`: each month-trial runs the month's symbols as one
portfolio on one account (rl.backtest.portfolio) instead of one account per symbol."""
from __future__ import annotations

import pytest

from rl.backtest.portfolio import run_portfolio
from rl.optimize.__main__ import build_parser, config_from_args
from rl.optimize.bank import MonthBank
from rl.optimize.study import by_month, evaluate
from rl.optimize.walkforward import symbol_months
from rl.strategy.params import StrategyParams
from tests.support.portfolio import SYMBOLS, pinned_settings, write_pair

A, B = SYMBOLS
MONTH = "2024-02"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("pair"), days=60)


def _bank(root, portfolio: bool) -> MonthBank:
    return MonthBank([root], {s: pinned_settings(s) for s in SYMBOLS}, portfolio=portfolio)


def test_a_portfolio_bank_runs_a_months_symbols_on_one_account(root) -> None:
    params = StrategyParams.from_settings(pinned_settings(SYMBOLS))
    pairs = [(A, MONTH), (B, MONTH)]
    runs = evaluate(_bank(root, True), params, pairs)
    assert [r.symbol for r in runs] == [f"{A},{B}"] and runs[0].month == MONTH
    bank = _bank(root, False)
    direct = run_portfolio([bank.month(A, MONTH).data, bank.month(B, MONTH).data], pinned_settings(SYMBOLS),
                           progress=False, params=params)
    assert runs[0].trades == direct.summary["trades"] > 10
    assert runs[0].return_pct == direct.summary["return_pct"]
    assert runs[0].equity[-1] == pytest.approx(direct.equity[-1] / 10_000.0)
    # without --portfolio: one account per symbol, two runs, other figures
    separate = evaluate(bank, params, pairs)
    assert [r.symbol for r in separate] == [A, B]
    assert sum(r.trades for r in separate) != runs[0].trades
    # the least-trades rule counts symbol-months either way
    assert symbol_months(runs) == symbol_months(separate) == 2


def test_by_month_groups_pairs_and_the_flag_reaches_the_config() -> None:
    assert by_month([(A, "2024-03"), (A, "2024-02"), (B, "2024-02")]) == [("2024-02", [A, B]), ("2024-03", [A])]
    args = build_parser().parse_args(["--data", "x", "--symbols", f"{A},{B}", "--study", "s", "--portfolio"])
    cfg = config_from_args(args)
    assert cfg.portfolio and cfg.public()["portfolio"] is True
    plain = config_from_args(build_parser().parse_args(["--data", "x", "--symbols", A, "--study", "s"]))
    assert plain.portfolio is False
