"""`python -m rl.optimize ... --report` end to end on two real FILUSDT months (train 2023-08,
test 2023-09): the random-entry baseline over the test month is in the result and the profile,
the report is written, and `python -m rl.optimize report` recomputes a removed baseline from the
archive with the same seeded figures."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.optimize.cli_support import REPO_ROOT, command, two_months

pytestmark = pytest.mark.slow


def test_a_real_study_writes_its_baselines_and_report_and_the_report_rerenders(tmp_path) -> None:
    report = tmp_path / "study.html"
    cmd = command("rep", f"sqlite:///{tmp_path / 'rep.db'}", tmp_path, trials=2, jobs=2)
    run = subprocess.run(cmd + ["--baseline-runs", "20", "--report", str(report)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-2000:]
    res = json.loads((tmp_path / "rep.walkforward.json").read_text())
    b = res["out_of_sample_baselines"]
    assert b["random_entries"]["runs"] == 20 and len(b["random_entries"]["stitched_return_pct"]) == 20
    # the rerun of the chosen parameters made the walk-forward's own test trades
    assert b["agent"]["return_pct"] == pytest.approx(res["out_of_sample"]["return_pct"], abs=1e-9)
    assert b["per_month"][0]["month"] == "2023-09" and b["per_month"][0]["entries_drawn"] >= 0
    assert b["buy_hold"]["return_pct"] == pytest.approx(res["out_of_sample_runs"][0]["buy_hold_return_pct"], abs=0.5)
    prof = json.loads((tmp_path / "rep.json").read_text())
    assert prof["provenance"]["out_of_sample_baselines"]["random_entries"]["stitched_return_pct"] == \
        b["random_entries"]["stitched_return_pct"]
    page = report.read_text()
    assert 'id="verdict"' in page and "random median" in page

    res["out_of_sample_baselines"] = None
    (tmp_path / "rep.walkforward.json").write_text(json.dumps(res))
    again = tmp_path / "again.html"
    run = subprocess.run([sys.executable, "-m", "rl.optimize", "report", str(tmp_path / "rep.walkforward.json"),
                          "--out", str(again), "--data", *two_months(), "--jobs", "2"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-2000:]
    redone = json.loads((tmp_path / "rep.walkforward.json").read_text())["out_of_sample_baselines"]
    assert redone["random_entries"]["stitched_return_pct"] == b["random_entries"]["stitched_return_pct"]
    assert 'id="verdict"' in again.read_text()
