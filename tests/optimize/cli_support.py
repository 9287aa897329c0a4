"""Running `python -m rl.optimize` as a separate process on two real FILUSDT months."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT, shared_kline_files

MONTH_FILES = ("FILUSDT-1m-2023-08.zip", "FILUSDT-1m-2023-09.zip")


def two_months() -> list[str]:
    """The two archive files (train 2023-08, test 2023-09), or skip."""
    files = {p.name: p for p in shared_kline_files("FILUSDT")}
    if not all(n in files for n in MONTH_FILES):
        pytest.skip("real FILUSDT 2023-08/09 archive files not found (set BINANCE_DATA_DIR)")
    return [str(files[n]) for n in MONTH_FILES]


def command(study: str, storage: str, out: Path, trials: int, jobs: int = 1) -> list[str]:
    return [sys.executable, "-m", "rl.optimize", "--data", *two_months(), "--symbols", "FILUSDT",
            "--train-months", "1", "--test-months", "1", "--trials", str(trials), "--jobs", str(jobs),
            "--study", study, "--storage", storage, "--seed", "7", "--out", str(out)]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("STRATEGY_PROFILE", None)
    # SIGINT at its default in the child, whatever this process inherited: a background job
    # starts with it ignored, and Python then installs no KeyboardInterrupt for Ctrl-C
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
