"""`python -m web.app` as a trader runs it: real processes on free loopback ports.

- replay mode over ../shared/data serves both kline endpoints;
- with Binance unreachable (a closed loopback port stands in for "no network") and no
  --replay, it still serves the page, says so in page and log, and answers 503, not a crash;
- a bad setting stops start-up with one line on stderr and exit code 2.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.paths import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRADING_MODE", "API_KEY", "API_SECRET", "SYMBOLS", "REPLAY_DIR", "DB_PATH")}
    env.update({"DB_PATH": str(tmp_path / "agent.db"), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "web.app", *args], cwd=REPO_ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_up(proc: subprocess.Popen, url: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"web.app exited with {proc.returncode}:\n{log.read_text()}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    pytest.fail(f"web.app did not answer within {timeout} s:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.mark.shared_data
def test_replay_subprocess_serves_klines(shared_data_dir: Path, tmp_path: Path):
    port = free_port()
    log = tmp_path / "server.log"
    proc = start(["--replay", str(shared_data_dir), "--symbol", "FILUSDT", "--speed", "120",
                  "--port", str(port)], clean_env(tmp_path), log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(proc, base + "/api/meta", log)
        one = requests.get(f"{base}/api/klines/FILUSDT/15m?limit=20", timeout=10)
        assert one.status_code == 200, one.text
        candles = one.json()["candles"]
        assert len(candles) == 20 and all(b["time"] - a["time"] == 900 for a, b in zip(candles, candles[1:]))
        # FILUSDT traded between 2 and 6 USDT in 2023-08..11: real archive prices, not generated.
        assert all(2.0 < c["close"] < 6.0 for c in candles)
        every = requests.get(f"{base}/api/klines_all/FILUSDT?limit=30", timeout=10).json()
        assert [len(every["klines"][i]) > 0 for i in ("1m", "15m", "8h", "1w")] == [True] * 4
        meta = requests.get(f"{base}/api/meta", timeout=5).json()
        assert meta["mode"] == "replay" and meta["symbols"] == ["FILUSDT"]
        assert requests.get(f"{base}/api/klines/NEARUSDT/1m", timeout=5).status_code == 404
        page = requests.get(base + "/", timeout=5)
        assert page.status_code == 200 and 'name="dashboard-token"' in page.text
    finally:
        stop(proc)
    assert "waitress" in log.read_text().lower() or "Serving on" in log.read_text()


@pytest.mark.slow
def test_offline_serves_page_and_says_how_to_replay(tmp_path: Path):
    port, dead = free_port(), free_port()   # nothing listens on `dead`: Binance "unreachable"
    log = tmp_path / "server.log"
    # MARKET_DATA_URL accepts only Binance's hosts, so "no network" is a proxy that is not there
    env = clean_env(tmp_path, HTTPS_PROXY=f"http://127.0.0.1:{dead}", REQUEST_TIMEOUT="2")
    for name in ("NO_PROXY", "no_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(name, None)
    proc = start(["--port", str(port)], env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(proc, base + "/", log, timeout=60)
        page = requests.get(base + "/", timeout=5).text
        assert "Binance is unreachable" in page and "--replay" in page
        resp = requests.get(f"{base}/api/klines/BTCUSDT/1m", timeout=30)
        assert resp.status_code == 503 and "unreachable" in resp.json()["error"]
        assert proc.poll() is None                       # still serving, not crashed
    finally:
        stop(proc)
    text = log.read_text()
    assert "Binance is unreachable" in text and "--replay" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("args,env_extra,needle", [
    ([], {"LEVERAGE": "500"}, "LEVERAGE"),
    (["--port", "99999"], {}, "PORT"),
    (["--speed", "10"], {}, "--speed"),
    (["--replay", "/nonexistent/archive"], {}, "--replay"),
])
def test_bad_setting_exits_2_with_one_line(tmp_path: Path, args, env_extra, needle):
    proc = subprocess.run([sys.executable, "-m", "web.app", *args], cwd=REPO_ROOT,
                          env=clean_env(tmp_path, **env_extra), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
