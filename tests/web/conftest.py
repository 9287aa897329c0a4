"""Fixtures shared by the web API tests: the real app over a paper runner on 45 days of
generated 1m candles, the clock mid-bar on day 30 (a module may define its own `world`)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.test_web_api import paper_app


@pytest.fixture
def world(tmp_path: Path):
    with paper_app(tmp_path) as (app, runner, _clock, _frame):
        yield app, runner


@pytest.fixture
def client(world):
    return world[0].test_client()
