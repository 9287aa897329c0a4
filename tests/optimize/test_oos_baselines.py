"""rl.optimize.oos_baselines over a small real walk-forward (real Optuna studies, made-up
months): random entries stitched like the agent's test runs, seeded, and saved into the
result and the profile."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rl.backtest.baselines import percentile_of
from rl.optimize.objective import window_curve
from rl.optimize.oos_baselines import compact, compute, oos_pairs
from rl.optimize.profile import save_baselines, write_profile, write_result
from tests.optimize.fakes import FakeTestBank
from tests.optimize.wf_support import SYMBOL, small_result


@pytest.fixture(scope="module")
def result():
    return small_result(trials=6, runs=20)


def test_each_random_run_is_stitched_like_the_agents_test_runs(result) -> None:
    b = result.baselines
    r = b["random_entries"]
    assert r["runs"] == 20 and len(r["stitched_return_pct"]) == 20 and r["seed"] == 5
    bank = FakeTestBank()
    doc = result.to_json()
    pairs = oos_pairs(doc)
    assert [(s, m) for _f, s, m in pairs] == [(SYMBOL, "2023-09"), (SYMBOL, "2023-10")]
    # run 3 by hand: seed 5 + 3 in each test month, chained by window_curve
    runs = [bank.random_month(s, m, None, 20, (0, 1), 8) for _f, s, m in pairs]   # type: ignore[arg-type]
    assert r["stitched_return_pct"][3] == pytest.approx((window_curve(runs)[1][-1] - 1) * 100)
    assert len(set(r["stitched_return_pct"])) == 20                 # every seed its own run
    assert b["agent"]["return_pct"] == pytest.approx(result.out_of_sample.return_pct)
    assert r["agent_percentile"] == percentile_of(b["agent"]["return_pct"], r["stitched_return_pct"])
    assert r["return_pct"]["median"] == pytest.approx(float(np.median(r["stitched_return_pct"])))
    band = r["band"]
    assert band["day_ms"] == result.stitched["day_ms"]
    assert all(lo <= mid <= hi for lo, mid, hi in zip(band["p10"], band["median"], band["p90"]))
    assert b["buy_hold"]["return_pct"] == pytest.approx((1.01 ** 10) ** 2 * 100 - 100)
    assert [m["entries_drawn"] for m in b["per_month"]] == [20, 20]


def test_the_same_seed_gives_the_same_runs_and_another_seed_others(result) -> None:
    doc = result.to_json()
    again = compute(doc, FakeTestBank(), runs=20, seed=5)
    assert again["random_entries"]["stitched_return_pct"] == result.baselines["random_entries"]["stitched_return_pct"]
    other = compute(doc, FakeTestBank(), runs=20, seed=6)
    assert other["random_entries"]["stitched_return_pct"] != again["random_entries"]["stitched_return_pct"]
    with pytest.raises(ValueError, match="--baseline-runs=0 is invalid"):
        compute(doc, FakeTestBank(), runs=0)


def test_the_profile_keeps_the_figures_and_the_result_the_band(result, tmp_path: Path) -> None:
    prof = json.loads(write_profile(result, "w", tmp_path).read_text())
    res = json.loads(write_result(result, "w", tmp_path).read_text())
    kept = prof["provenance"]["out_of_sample_baselines"]
    assert kept == json.loads(json.dumps(compact(result.baselines)))
    assert "band" not in kept["random_entries"] and "curve" not in kept["buy_hold"]
    assert res["out_of_sample_baselines"]["random_entries"]["band"]["p10"]


def test_save_baselines_adds_them_to_a_saved_result_and_its_profile(tmp_path: Path) -> None:
    bare = small_result(trials=4, baselines=False)
    write_profile(bare, "w", tmp_path)
    path = write_result(bare, "w", tmp_path)
    doc = json.loads(path.read_text())
    assert doc["out_of_sample_baselines"] is None
    section = compute(doc, FakeTestBank(), runs=20)
    assert save_baselines(path, doc, section) == [path, tmp_path / "w.json"]
    assert json.loads(path.read_text())["out_of_sample_baselines"]["random_entries"]["runs"] == 20
    prov = json.loads((tmp_path / "w.json").read_text())["provenance"]
    assert prov["out_of_sample_baselines"]["random_entries"]["runs"] == 20
