"""GET /api/agent/evidence on the real Flask app: the figures rl.optimize.evidence computes for
the active profile, served as they are; no profile -> the state that says so."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import config
from config import Settings, read_profile
from rl.optimize.evidence import profile_evidence
from web.app import create_app


def _client(tmp_path: Path, **settings):
    s = Settings(db_path=tmp_path / "agent.db", **settings)
    return create_app(s, market=None, runner=None, market_note="offline", runner_note="no agent").test_client()


def test_no_profile_is_served_as_none(tmp_path: Path) -> None:
    resp = _client(tmp_path).get("/api/agent/evidence")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["state"] == "none" and body["profile"] is None and body["live_gate"] == "not_gated"
    assert "python -m rl.optimize" in body["sentence_en"] and "默认参数没有任何样本外证据" in body["sentence_zh"]


def test_the_wf200_profile_is_served_with_its_negative_sentence(tmp_path: Path) -> None:
    path = tmp_path / "wf200.json"
    shutil.copy(config.PROFILES_DIR / "wf200.json", path)
    body = _client(tmp_path, strategy_profile=str(path),
                   strategy_overrides=read_profile(str(path))).get("/api/agent/evidence").get_json()
    assert body == json.loads(json.dumps(profile_evidence(str(path))))        # served, not recomputed
    assert body["state"] == "below_chance" and body["beats_random_median"] is False
    assert body["oos_return_pct"] < body["random_median_return_pct"]
    assert f"此配置亏损 {-body['oos_return_pct']:.2f} %；随机入场亏损 {-body['random_median_return_pct']:.2f} %" \
        in body["sentence_zh"]
    assert f"this profile lost {-body['oos_return_pct']:.2f} %; random entries lost" in body["sentence_en"]


def test_live_on_accepted_risk_is_reported(tmp_path: Path) -> None:
    body = _client(tmp_path, trading_mode="live", live_without_evidence=config.LIVE_RISK_PHRASE,
                   api_key="k", api_secret="s").get("/api/agent/evidence").get_json()
    assert body["live_gate"] == "overridden" and body["state"] == "none"
