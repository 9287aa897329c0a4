"""The optimization report (rl.optimize.report) of a small real walk-forward: every section
there, rendered again by `python -m rl.optimize report` from the saved result, and opened in
real Chromium without console errors."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rl.optimize.__main__ import main
from rl.optimize.profile import write_profile, write_result
from rl.optimize.report import fold_overfitting, importances, render_optimize_report
from tests.optimize.wf_support import small_result

TRIALS = 12


@pytest.fixture(scope="module")
def result():
    return small_result(trials=TRIALS, runs=20)


def test_every_section_is_in_the_report(result) -> None:
    doc = json.loads(json.dumps(result.to_json()))
    page = render_optimize_report(doc)
    assert 'id="verdict"' in page and 'id="headline"' in page and 'id="folds"' in page
    assert page.count('class="fold"') == 2
    # the stitched chart: random 10 %, median, 90 %, buy & hold and the profile
    assert all(s in page for s in ("random 10 %", "random median", "random 90 %", "buy &amp; hold", "this profile"))
    # history: one dot per complete trial in each fold, a best-so-far line
    assert page.count("<circle") == 2 * TRIALS
    assert page.count('class="chart history"') == 2
    assert "紧缩夏普比率" in page and "Deflated Sharpe ratio" in page and "PBO" in page
    assert page.count('class="importance"') == 2
    assert "<script src" not in page and "https://" not in page and "http://" not in page


def test_importances_and_overfitting_come_from_the_fold_trials(result) -> None:
    doc = result.to_json()
    records = doc["trials"]["w.fold1"]
    imp = importances(records, doc["search_space"])
    assert imp is not None and set(imp) <= {r["key"] for r in doc["search_space"]}
    assert sum(imp.values()) == pytest.approx(1.0)
    stats = fold_overfitting(records, doc["folds"][0]["best_trial"])
    assert stats is not None and stats["n_trials"] == TRIALS
    assert 0.0 <= stats["pbo"]["pbo"] <= 1.0
    assert importances(records[:3], doc["search_space"]) is None        # too few trials


def test_the_report_subcommand_renders_a_saved_result_without_trials(result, tmp_path: Path, capsys) -> None:
    write_profile(result, "w", tmp_path)
    path = write_result(result, "w", tmp_path)
    before = path.read_text()
    out = tmp_path / "r" / "report.html"
    assert main(["report", str(path), "--out", str(out)]) == 0
    assert 'id="verdict"' in out.read_text() and path.read_text() == before      # nothing recomputed
    capsys.readouterr()
    assert main(["report", "no-such-study", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: result='no-such-study' is invalid: no file") and "\n" not in err
    (tmp_path / "bad.walkforward.json").write_text("{}")
    assert main(["report", str(tmp_path / "bad.walkforward.json"), "--out", str(out)]) == 2
    assert "is not a walk-forward result" in capsys.readouterr().err


@pytest.mark.browser
def test_the_report_opens_in_chromium_without_errors(result, browser, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_optimize_report(result.to_json()), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith("file://") else foreign.append(r.url))
    page.goto(path.as_uri())
    assert page.locator("h1").inner_text().startswith("优化报告")
    assert "此配置" in page.locator("#verdict").inner_text()
    page.screenshot(path="/tmp/evidence-report-test-zh.png", full_page=True)
    page.click("#lang")
    assert page.locator("h1").inner_text().startswith("Optimization report")
    assert re.search(r"this profile (gained|lost) \d", page.locator("#verdict").inner_text())
    page.screenshot(path="/tmp/evidence-report-test-en.png", full_page=True)
    assert errors == [] and foreign == []


def test_a_result_without_baselines_renders_and_says_what_is_missing() -> None:
    bare = small_result(trials=4, baselines=False)
    page = render_optimize_report(json.loads(json.dumps(bare.to_json())))
    assert "there is no random-entry baseline to compare with" in page and "random median" not in page
    assert "this profile" in page          # the stitched curve alone
