"""StatusBoard counts consecutive failed cycles (a cycle that logged an error) for the
dashboard badge, and a clean cycle ends the run; agent_status exposes it."""
from __future__ import annotations

from rl.agent.status import StatusBoard, agent_status
from rl.strategy.params import PhaseParams


def _cycle(board: StatusBoard, t: int, fail: bool) -> None:
    board.cycle_start()
    if fail:
        board.error({"time_ms": t, "symbol": "FILUSDT", "message": "Binance unreachable",
                     "message_zh": "无法连接币安", "message_en": "Binance unreachable"})
    board.cycle_done(t)


def test_failed_cycles_count_up_and_reset_on_a_clean_cycle():
    board = StatusBoard()
    assert board.view()["failed_cycles"] == 0
    for t in (1, 2, 3):
        _cycle(board, t, fail=True)
    assert board.view()["failed_cycles"] == 3
    status = agent_status(board.view(), 0, {}, PhaseParams())
    assert status["failed_cycles"] == 3 and status["last_error"]["message_en"] == "Binance unreachable"
    _cycle(board, 4, fail=False)
    assert board.view()["failed_cycles"] == 0


def test_an_error_between_cycles_counts_for_the_next_only_once():
    board = StatusBoard()
    _cycle(board, 1, fail=True)
    _cycle(board, 2, fail=False)
    assert board.view()["failed_cycles"] == 0
