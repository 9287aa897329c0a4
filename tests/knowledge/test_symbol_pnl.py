"""rl.knowledge.symbol_pnl: the per-symbol PnL rows the dashboard serves (issue 18 #3), as a
pure function and over a real KnowledgeStore file."""
from __future__ import annotations

from pathlib import Path

import pytest

from rl.knowledge.store import KnowledgeStore
from rl.knowledge.symbol_pnl import store_symbol_pnl, symbol_pnl


def test_rows_per_symbol_with_realized_unrealized_trades_and_win_rate():
    closed = [{"symbol": "FILUSDT", "net_pnl": 12.5}, {"symbol": "FILUSDT", "net_pnl": -4.0},
              {"symbol": "FILUSDT", "net_pnl": 0.0}, {"symbol": "NEARUSDT", "net_pnl": -1.5}]
    positions = [{"symbol": "NEARUSDT", "amount": -300.0, "unrealized_pnl": 2.25},
                 {"symbol": "FILUSDT", "amount": 0.0, "unrealized_pnl": 99.0}]   # flat: not counted
    out = symbol_pnl(("FILUSDT", "NEARUSDT", "BTCUSDT"), closed, positions)
    rows = {r["symbol"]: r for r in out["symbols"]}
    assert [r["symbol"] for r in out["symbols"]] == ["FILUSDT", "NEARUSDT", "BTCUSDT"]
    fil = rows["FILUSDT"]
    assert (fil["realized_net"], fil["unrealized"], fil["trades"], fil["wins"], fil["losses"]) == (8.5, 0.0, 3, 1, 2)
    assert fil["win_rate"] == pytest.approx(1 / 3) and fil["open_positions"] == 0
    near = rows["NEARUSDT"]
    assert (near["realized_net"], near["unrealized"], near["total"], near["win_rate"], near["open_positions"]) == (
        -1.5, 2.25, 0.75, 0.0, 1)
    assert rows["BTCUSDT"]["trades"] == 0 and rows["BTCUSDT"]["win_rate"] is None   # no trades: no rate
    total = out["total"]
    assert (total["realized_net"], total["unrealized"], total["trades"], total["wins"]) == (7.0, 2.25, 4, 1)
    assert total["win_rate"] == 0.25 and total["total"] == 9.25


def test_a_symbol_traded_before_symbols_changed_still_counts_in_the_total():
    out = symbol_pnl(("FILUSDT",), [{"symbol": "AVAXUSDT", "net_pnl": 3.0}], [])
    assert [r["symbol"] for r in out["symbols"]] == ["FILUSDT", "AVAXUSDT"]
    assert out["total"]["realized_net"] == 3.0


def test_over_a_store_only_closed_trades_count(tmp_path: Path):
    store = KnowledgeStore(tmp_path / "k.db")
    try:
        a = store.open_trade(symbol="FILUSDT", side="LONG", entry_client_order_id="a", opened_ms=1000,
                             entry_price=4.0, quantity=10.0, stop_price=3.9, target_price=4.2,
                             leverage=5, features={}, perception={}, action={}, entry_fee=0.02)
        store.open_trade(symbol="NEARUSDT", side="SHORT", entry_client_order_id="b", opened_ms=1000,
                         entry_price=1.2, quantity=10.0, stop_price=1.3, target_price=1.1,
                         leverage=5, features={}, perception={}, action={}, entry_fee=0.01)
        store.record_exit(a, client_order_id="a-x", time_ms=2000, kind="target", price=4.2, quantity=10.0,
                          pnl=2.0, fee=0.02)
        store.close_trade(a, closed_ms=2000, exit_reason="target", reward={}, summary_zh="", summary_en="")
        [closed] = store.trades(status="closed")
        out = store_symbol_pnl(store, ("FILUSDT", "NEARUSDT"), [])
        rows = {r["symbol"]: r for r in out["symbols"]}
        assert rows["FILUSDT"]["realized_net"] == pytest.approx(closed["net_pnl"])
        assert closed["net_pnl"] == pytest.approx(2.0 - 0.04)         # after both fees
        assert rows["FILUSDT"]["trades"] == 1 and rows["FILUSDT"]["win_rate"] == 1.0
        assert rows["NEARUSDT"]["trades"] == 0                        # still open: not counted
    finally:
        store.close()
