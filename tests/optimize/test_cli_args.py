"""Bad input to `python -m rl.optimize` is one line naming the flag, exit status 2."""
from __future__ import annotations

import pytest

from rl.optimize.__main__ import main
from rl.optimize.walkforward import masked, rdb_url


@pytest.mark.parametrize("extra, says", [
    (["--symbols", "FILUSDT,FILUSDT"], "--symbols='FILUSDT,FILUSDT' is invalid"),
    (["--study", "../x"], "--study='../x' is invalid"),
    (["--trials", "0"], "--trials=0 is invalid"),
    (["--jobs", "0"], "--jobs=0 is invalid"),
    (["--storage", "nonsense"], "--storage='nonsense' is invalid"),
    (["--data", "/nonexistent/archive"], "--data='/nonexistent/archive' is invalid"),
])
def test_bad_flags_are_one_line(extra, says, capsys, shared_data_dir) -> None:
    args = ["--data", str(shared_data_dir), "--symbols", "FILUSDT", "--study", "x", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err


def test_too_few_months_for_a_fold_is_one_line(capsys, shared_data_dir) -> None:
    args = ["--data", str(shared_data_dir), "--symbols", "FILUSDT", "--study", "x", "--storage", "sqlite://",
            "--train-months", "4", "--test-months", "1"]
    assert main(args) == 2
    assert "--train-months=4 --test-months=1 is invalid: the data holds 4 month(s)" in capsys.readouterr().err


def test_storage_urls_name_the_driver_and_hide_the_password() -> None:
    assert rdb_url("postgresql://u:pw@h:5432/db") == "postgresql+psycopg2://u:pw@h:5432/db"
    assert rdb_url("sqlite:///a.db") == "sqlite:///a.db"
    assert masked("postgresql+psycopg2://u:pw@h/db") == "postgresql+psycopg2://u:***@h/db"
    assert masked("sqlite:///a.db") == "sqlite:///a.db"
