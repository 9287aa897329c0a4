"""Fixtures shared by the agent tests."""
from __future__ import annotations

import pytest

from rl.analysis.levels.finder import DEFAULT_WEIGHTS
from rl.clock import ManualClock
from rl.knowledge.store import KnowledgeStore
from rl.paper.exchange import PaperExchange
from tests.agent.test_agent_reconciler import SYM, T0


@pytest.fixture
def paper_world(tmp_path):
    """(paper exchange at 100 for SYM, store with its first weights, clock at T0), in SQLite
    files under tmp_path: the parts the reconciler and journal tests drive by hand."""
    clock = ManualClock(T0)
    exchange = PaperExchange(tmp_path / "paper.db", balance=10_000.0, clock=clock.now_ms, funding_rate=0.0)
    exchange.on_price(SYM, 100.0, T0)
    store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
    store.ensure_initial_weights(T0)
    yield exchange, store, clock
    store.close()
    exchange.close()
