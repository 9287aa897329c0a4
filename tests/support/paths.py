"""Where the repository and the real Binance archive are."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def shared_data_root() -> Path:
    """The Binance archive root: $BINANCE_DATA_DIR, else ../shared/data beside the repo."""
    env = os.environ.get("BINANCE_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def shared_kline_files(symbol: str) -> list[Path]:
    base = shared_data_root() / "binance" / "futures" / "um" / "monthly" / "klines" / symbol / "1m"
    return sorted(base.glob(f"{symbol}-1m-*.zip")) if base.is_dir() else []
