"""The Evidence / 证据 panel in real Chromium on the replay dashboard: the shipped wf200
profile's negative out-of-sample evidence in Chinese, then English; no console errors."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import config
from config import read_profile
from tests.support.browser import chromium, expect, require_browser, serve_replay_dashboard, watch_page

pytestmark = [pytest.mark.browser, pytest.mark.shared_data, pytest.mark.slow]
require_browser()



def test_evidence_panel_says_the_profile_lost_more_than_random_entries(shared_data_dir, tmp_path: Path):
    path = tmp_path / "wf200.json"
    shutil.copy(config.PROFILES_DIR / "wf200.json", path)
    with serve_replay_dashboard(shared_data_dir, tmp_path, strategy_profile=str(path),
                strategy_overrides=read_profile(str(path))) as (base, _runner):
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            errors, _ = watch_page(page)
            page.goto(base + "/")
            page.wait_for_selector("#evidence-panel[data-ready='1']", timeout=20_000)
            panel = page.locator("#evidence-panel")
            expect(panel.locator("h2")).to_have_text("证据")
            sentence = page.locator("#evidence-sentence")
            expect(sentence).to_have_attribute("data-state", "below_chance")
            expect(sentence).to_contain_text("此配置亏损 9.18 %；随机入场亏损 6.42 %")
            expect(panel).to_contain_text(str(path))
            expect(panel).to_have_class("panel negative")
            expect(panel).to_contain_text("第 1 折 2023-10")
            panel.screenshot(path="/tmp/evidence-panel-zh.png")
            page.click("#btn-lang")
            expect(panel.locator("h2")).to_have_text("Evidence")
            expect(sentence).to_contain_text("this profile lost 9.18 %; random entries lost 6.42 %")
            expect(panel).to_contain_text("Random entries, median")
            panel.screenshot(path="/tmp/evidence-panel-en.png")
            page.screenshot(path="/tmp/evidence-dashboard-en.png")
            browser.close()
            assert errors == [], errors


def test_evidence_panel_without_a_profile_says_how_to_make_one(shared_data_dir, tmp_path: Path):
    with serve_replay_dashboard(shared_data_dir, tmp_path) as (base, _runner):
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            errors, _ = watch_page(page)
            page.goto(base + "/")
            page.wait_for_selector("#evidence-panel[data-ready='1']", timeout=20_000)
            sentence = page.locator("#evidence-sentence")
            expect(sentence).to_have_attribute("data-state", "none")
            expect(sentence).to_contain_text("默认参数没有任何样本外证据")
            expect(sentence).to_contain_text("python -m rl.optimize")
            expect(page.locator("#evidence-panel")).to_contain_text("无（默认参数）")
            page.locator("#evidence-panel").screenshot(path="/tmp/evidence-panel-none-zh.png")
            page.click("#btn-lang")
            expect(sentence).to_contain_text("the default parameters have no out-of-sample evidence")
            browser.close()
            assert errors == [], errors
